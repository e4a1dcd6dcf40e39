"""The pretraining loader: cell draws (spread over groups, never hanging), batches, rank splits, broken shards."""

from __future__ import annotations

import random
import shutil
from collections import Counter

import numpy as np
import pytest
import torch

from subcell_hf.data.loader import build_pretraining_loader, collate, draw_cells
from subcell_hf.data.manifest import antibody_id
from subcell_hf.data.shards import iter_records, list_shards


def test_draws_spread_evenly_over_groups():
    groups = [(line, plate) for line in ("U2OS", "A-431") for plate in ("p1/A1", "p2/B3") for _ in range(10)]
    draws = draw_cells(groups, 8, random.Random(0))
    assert len(draws) == 5  # 40 cells -> 5 draws of 8, each cell used once
    assert sorted(sum(draws, [])) == list(range(40))
    for draw in draws:
        assert set(Counter(groups[i] for i in draw).values()) == {2}  # 4 groups x 2 cells


def test_small_groups_still_reach_the_draws():
    groups = ["big"] * 30 + ["small_1"] * 2 + ["small_2"] * 1
    for seed in range(5):
        draws = draw_cells(groups, 8, random.Random(seed))
        assert len(draws) == 4 and all(len(draw) == 8 for draw in draws)
        holding = {name: [k for k, draw in enumerate(draws) for i in draw if groups[i] == name] for name in groups}
        assert len(holding["small_2"]) == 1  # the dropped 33rd cell is a big one: every small cell is drawn
        assert len(set(holding["small_1"])) == 2  # and the two small_1 cells go to different draws


def test_uneven_groups_are_spread_over_every_draw():
    """A big group must not fill the last draws on its own (SPEC section 7: draws spread over the groups)."""
    groups = ["A"] * 48 + ["B"] * 8 + ["C"] * 8
    for seed in range(5):
        draws = draw_cells(groups, 8, random.Random(seed))
        assert sorted(sum(draws, [])) == list(range(64))  # each cell once per visit
        for draw in draws:
            assert Counter(groups[i] for i in draw) == {"A": 6, "B": 1, "C": 1}


@pytest.mark.parametrize("count", [1, 3, 7])
def test_records_with_fewer_cells_than_a_draw_terminate_and_repeat_fairly(count):
    draws = draw_cells(["g"] * count, 8, random.Random(0))
    assert len(draws) == 1 and len(draws[0]) == 8
    counts = Counter(draws[0])
    assert set(counts) == set(range(count))  # every cell appears...
    assert max(counts.values()) - min(counts.values()) <= 1  # ...before any cell appears again
    assert draw_cells(["g"] * count, 8, random.Random(0), num_draws=3)[2]  # more draws: still terminates


def test_collate_keeps_draws_contiguous():
    def draw(antibody, value):
        return {
            "cells": np.full((8, 2, 4, 4), value, np.uint16),
            "masks": np.ones((8, 4, 4), bool),
            "metadata": [{"labels": [1] + [0] * 34}] * 8,
            "antibody_id": antibody_id(antibody),
        }

    batch = collate([draw("A", 1), draw("B", 60000)])
    assert batch["cells"].dtype == torch.float32 and batch["cells"].shape == (16, 2, 4, 4)
    assert batch["cells"][8:].min() == 60000  # raw intensities, not normalised
    assert batch["masks"].shape == (16, 1, 4, 4) and batch["labels"].shape == (16, 35)
    assert batch["antibody_id"].tolist() == [antibody_id("A")] * 8 + [antibody_id("B")] * 8


def test_loader_batches(synthetic_shards):
    folder, _ = synthetic_shards
    loader = build_pretraining_loader(folder, batch_records=3, num_workers=0, shuffle_buffer=4, batches_per_epoch=4)
    batches = list(loader)
    assert len(batches) == len(loader) == 4
    known = {r["antibody_id"]: r for r in iter_records(folder)}
    for batch in batches:
        assert batch["cells"].shape == (24, 4, 32, 32) and batch["cells"].dtype == torch.float32
        assert batch["masks"].shape == (24, 1, 32, 32) and set(batch["masks"].unique().tolist()) <= {0.0, 1.0}
        assert batch["labels"].shape == (24, 35) and batch["antibody_id"].dtype == torch.int64
        ids = batch["antibody_id"].view(3, 8)
        assert (ids == ids[:, :1]).all() and set(ids[:, 0].tolist()) <= set(known)
        assert batch["cells"].max() > 255  # 16-bit raw intensities
    assert loader.num_skipped == 0


def test_same_seed_same_stream_and_channel_subset(synthetic_shards):
    folder, _ = synthetic_shards

    def first_batch(seed, **kwargs):
        loader = build_pretraining_loader(folder, 2, num_workers=0, seed=seed, batches_per_epoch=1, **kwargs)
        return next(iter(loader))

    assert torch.equal(first_batch(7)["cells"], first_batch(7)["cells"])
    assert not torch.equal(first_batch(7)["cells"], first_batch(8)["cells"])
    subset = first_batch(7, channel_names=["dna", "protein"])
    assert torch.equal(subset["cells"], first_batch(7)["cells"][:, 2:])


def test_one_pass_per_epoch_split_by_rank_and_worker(synthetic_shards):
    folder, summary = synthetic_shards

    def antibodies_and_cells(rank, num_workers):
        loader = build_pretraining_loader(
            folder, 1, num_workers=num_workers, resampled=False, shuffle_buffer=0, rank=rank, world_size=2
        )
        batches = list(loader)
        return Counter(b["antibody_id"][0].item() for b in batches), sum(len(b["cells"]) for b in batches)

    rank0, cells0 = antibodies_and_cells(0, num_workers=2)
    rank1, cells1 = antibodies_and_cells(1, num_workers=0)
    expected = sum(max(1, len(r["cells"]) // 8) for r in iter_records(folder))  # draws in one pass
    assert (cells0 + cells1) // 8 == expected and cells0 > 0 and cells1 > 0
    assert sum((rank0 + rank1).values()) == expected


def test_broken_shard_is_skipped_and_counted(synthetic_shards, tmp_path):
    folder, _ = synthetic_shards
    shards = list_shards(folder)
    for path in shards:
        shutil.copy(path, tmp_path)
    first = tmp_path / "shard-000000.tar"
    first.write_bytes(first.read_bytes()[:40_000])  # truncated mid-record
    loader = build_pretraining_loader(tmp_path, 1, num_workers=0, resampled=False, shuffle_buffer=0)
    seen = Counter(batch["antibody_id"][0].item() for batch in loader)
    intact = [r for path in shards[1:] for r in iter_records(path)]
    assert loader.num_skipped >= 1
    assert sum(seen.values()) >= sum(max(1, len(r["cells"]) // 8) for r in intact)  # the rest all arrived


def test_rank_comes_from_the_environment_when_not_given(synthetic_shards, monkeypatch):
    from subcell_hf.data.loader import distributed_rank

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed_rank() == (1, 2)
    loader = build_pretraining_loader(synthetic_shards[0], 1, num_workers=0)
    assert (loader.dataset.state.rank, loader.dataset.state.world_size) == (1, 2)
