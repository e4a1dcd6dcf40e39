"""Fixtures of the reliability tests: tiny synthetic pretraining shards (as small as the tiny preset allows)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pretraining_shards(tmp_path_factory) -> dict:
    from subcell_hf.data.synthetic import prepare_synthetic_shards

    train, validation = prepare_synthetic_shards(
        tmp_path_factory.mktemp("synthetic"), num_fields=2, num_validation_fields=2, num_antibodies=2, image_size=128,
        show_progress=False,
    )
    return {"train": train, "validation": validation}
