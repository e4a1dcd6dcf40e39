"""Tiny pretraining configs shared by the pretraining tests."""

from __future__ import annotations

import pytest

from subcell_hf.pretraining import SubCellPreTrainingConfig
from tests.utils import tiny_pretraining_config  # noqa: F401  (also imported from here)


@pytest.fixture
def tiny_mae_config() -> SubCellPreTrainingConfig:
    return tiny_pretraining_config()


@pytest.fixture(scope="session")
def synthetic_shards(tmp_path_factory):
    """Tiny synthetic shards: `train` (2 good shards + a truncated and a garbage one, so that skipping broken
    samples is exercised) and `validation`."""
    from subcell_hf.data.synthetic import prepare_synthetic_shards

    root = tmp_path_factory.mktemp("synthetic")
    train, validation = prepare_synthetic_shards(
        # 12 antibodies for 10 patterns: in validation, two patterns have two antibodies each (for kNN and the probe)
        root, num_fields=8, num_validation_fields=12, num_antibodies=12, show_progress=False
    )
    mixed = root / "train_with_broken_shards"
    mixed.mkdir()
    good = sorted(train.glob("shard-*.tar"))[:2]
    for index, shard in enumerate(good):
        (mixed / f"shard-{index:06d}.tar").write_bytes(shard.read_bytes())
    data = good[0].read_bytes()
    (mixed / "shard-000002.tar").write_bytes(data[: len(data) // 2 + 700])  # cut inside a record
    (mixed / "shard-000003.tar").write_bytes(b"not a tar file" * 100)
    return {"train": mixed, "validation": validation}
