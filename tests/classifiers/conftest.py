from __future__ import annotations

import pytest

from tests.utils import torch_threads


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread():
    """Tiny MLPs run ~10x slower with 2 intra-op threads when other test processes share the 2 cores."""
    with torch_threads(1):
        yield
