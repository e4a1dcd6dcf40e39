from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def single_torch_thread():
    """Tiny MLPs run ~10x slower with 2 intra-op threads when other test processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
