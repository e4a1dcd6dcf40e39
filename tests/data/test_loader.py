"""The pretraining loader: epochs over parts as the release (4 x mult draws per antibody), one draw per visit,
rank splits, exact resume, broken shards that end in an error instead of a hang."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from math import comb

import numpy as np
import pytest
import torch

from subcell_hf.data.crops import CellCrop, CropOptions
from subcell_hf.data.loader import EpochPlan, ShardIndex, ShardReadError, build_pretraining_loader, collate, draw_cells
from subcell_hf.data.manifest import antibody_id
from subcell_hf.data.shards import build_records, iter_records, list_shards


def write_antibodies(folder, antibodies: dict[str, tuple[int, int, int]], side: int = 4) -> None:
    """One shard of the records `build_records` makes for antibodies {name: (cells, fields of view, mult)}; pixel
    value = the cell's index within its antibody, so every drawn cell tells which one it is."""
    import webdataset as wds

    folder.mkdir(parents=True, exist_ok=True)
    with wds.TarWriter(str(folder / "shard-000000.tar"), encoder=False) as writer:
        for name, (count, fields, mult) in antibodies.items():
            cells = []
            for index in range(count):
                image = np.full((2, side, side), index, np.uint16)
                crop = CellCrop(index + 1, image, np.ones((side, side), bool), (0, 0, 1, 1), (0.5, 0.5), 1)
                meta = {"image_id": f"{name}-field{index % fields}", "cell_id": index + 1, "labels": [0] * 35}
                cells.append((crop, meta))
            for sample in build_records(name, "GENE", cells, ["dna", "protein"], 4, CropOptions(size=side), mult):
                writer.write(sample)


# ------------------------------------------------------------------------------------------------ draws
def test_draws_spread_evenly_over_fields_of_view():
    groups = [f"field{k}" for k in range(4) for _ in range(10)]
    draws = draw_cells(groups, 8, random.Random(0))
    assert len(draws) == 5  # 40 cells -> 5 draws of 8, each cell used once
    assert sorted(sum(draws, [])) == list(range(40))
    for draw in draws:
        assert set(Counter(groups[i] for i in draw).values()) == {2}  # 4 fields x 2 cells
    one = draw_cells(groups, 8, random.Random(1), num_draws=1)[0]  # what one visit of a part takes
    assert Counter(groups[i] for i in one) == dict.fromkeys(set(groups), 2)


@pytest.mark.parametrize("count", [1, 3, 7])
def test_records_with_fewer_cells_than_a_draw_terminate_and_repeat_fairly(count):
    draws = draw_cells(["g"] * count, 8, random.Random(0), num_draws=1)
    assert len(draws) == 1 and len(draws[0]) == 8
    counts = Counter(draws[0])
    assert set(counts) == set(range(count))  # every cell appears...
    assert max(counts.values()) - min(counts.values()) <= 1  # ...before any cell appears again


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


# ------------------------------------------------------------------------------------------------ epochs
def test_every_antibody_gets_four_times_mult_draws_per_epoch_whatever_its_size(tmp_path):
    """Antibodies of 9, 40 and 400 cells: 4 x mult draws each per epoch (today's n // 8 per visit gave 50x more to
    the big one), and one epoch visits every part exactly mult times."""
    antibodies = {"small": (9, 3, 1), "medium": (40, 5, 1), "large": (400, 7, 2)}
    write_antibodies(tmp_path, antibodies)
    index = ShardIndex(tmp_path)
    assert len(index) == 12 and index.visits_per_epoch == 16
    loader = build_pretraining_loader(tmp_path, batch_records=4, num_workers=0, seed=3, num_batches=4)
    assert loader.plan.batches_per_epoch == 4
    draws = Counter()
    for batch in loader:
        assert batch["cells"].shape == (32, 2, 4, 4)
        ids = batch["antibody_id"].view(4, 8)
        assert (ids == ids[:, :1]).all()  # the 8 cells of a draw share their antibody
        draws.update(ids[:, 0].tolist())
    assert draws == {antibody_id("small"): 4, antibody_id("medium"): 4, antibody_id("large"): 8}
    order = loader.plan.order(0)
    assert Counter(order.tolist()) == {i: record.mult for i, record in enumerate(index.records)}
    assert not np.array_equal(order, loader.plan.order(1))  # a new shuffle each epoch


def test_a_visit_draws_eight_cells_of_one_part_round_robin_over_its_fields(tmp_path):
    write_antibodies(tmp_path, {"a": (64, 2, 1)})  # 4 parts of 16 cells, 8 from each field
    index = ShardIndex(tmp_path)
    loader = build_pretraining_loader(tmp_path, batch_records=4, num_workers=0, num_batches=1, index=index)
    batch = next(iter(loader))
    parts = [set(record["cells"][:, 0, 0, 0].tolist()) for record in iter_records(tmp_path)]
    assert [len(part) for part in parts] == [16] * 4
    for draw in batch["cells"].view(4, 8, 2, 4, 4):
        cell_indices = draw[:, 0, 0, 0].long().tolist()
        assert len(set(cell_indices)) == 8  # no cell twice: the part has 16
        assert Counter(k % 2 for k in cell_indices) == {0: 4, 1: 4}  # 4 from each field of view
        assert any(set(cell_indices) <= part for part in parts)  # all from one part


def test_ranks_split_each_global_batch_and_resume_is_exact(tmp_path):
    write_antibodies(tmp_path, {f"ab{k}": (12, 2, 1) for k in range(6)})  # 24 parts
    index = ShardIndex(tmp_path)
    plans = [EpochPlan([1] * 24, batch_records=3, seed=5, rank=r, world_size=2) for r in (0, 1)]
    assert plans[0].batches_per_epoch == 4
    for epoch in (0, 1):
        seen = [i for p in range(4) for plan in plans for i, _ in plan.batch(epoch * 4 + p)]
        assert sorted(seen) == list(range(24))  # one epoch = every part once, over both ranks

    def batches(start, count, num_workers=0):
        loader = build_pretraining_loader(
            tmp_path, 3, num_workers=num_workers, seed=5, start=start, num_batches=count, rank=1, world_size=2,
            index=index,
        )
        return [b["cells"] for b in loader]

    run = batches(0, 6)
    resumed = batches(4, 2)  # a run resumed at micro-batch 4 reads what the uninterrupted one read
    assert all(torch.equal(a, b) for a, b in zip(run[4:], resumed))
    assert all(torch.equal(a, b) for a, b in zip(run, batches(0, 6, num_workers=2)))  # workers change nothing


def test_draws_of_one_antibody_share_a_batch_only_as_often_as_chance():
    """The 4 parts of an antibody are written side by side; the epoch order must not keep them together."""
    mults = [1] * 400  # 100 antibodies x 4 parts, in writing order
    antibody = np.arange(400) // 4
    plan = EpochPlan(mults, batch_records=16, seed=0)
    pairs = []
    for epoch in range(60):
        order = plan.order(epoch)
        for step in range(plan.batches_per_epoch):
            counts = Counter(antibody[order[step * 16 : (step + 1) * 16]].tolist())
            pairs.append(sum(comb(c, 2) for c in counts.values()))
    expected = 100 * comb(4, 2) * comb(16, 2) / comb(400, 2)  # pairs of one antibody in a random batch of 16
    assert np.mean(pairs) == pytest.approx(expected, rel=0.2)


def test_loader_over_written_shards(synthetic_shards):
    folder, summary = synthetic_shards
    loader = build_pretraining_loader(folder, batch_records=3, num_workers=0, num_batches=4)
    known = {r["antibody_id"] for r in iter_records(folder)}
    assert loader.plan.batches_per_epoch == summary.records_per_epoch // 3 == 4
    for batch in loader:
        assert batch["cells"].shape == (24, 4, 32, 32) and batch["cells"].max() > 255  # 16-bit raw
        assert batch["masks"].shape == (24, 1, 32, 32) and set(batch["masks"].unique().tolist()) <= {0.0, 1.0}
        assert batch["labels"].shape == (24, 35) and set(batch["antibody_id"].tolist()) <= known
    subset = build_pretraining_loader(folder, 3, num_workers=0, num_batches=1, channel_names=["dna", "protein"])
    full = build_pretraining_loader(folder, 3, num_workers=0, num_batches=1)
    assert torch.equal(next(iter(subset))["cells"], next(iter(full))["cells"][:, 2:])
    assert loader.num_skipped == 0


# ------------------------------------------------------------------------------------------------ broken data
def test_truncated_shard_keeps_its_complete_records(synthetic_shards, tmp_path):
    folder, _ = synthetic_shards
    for path in list_shards(folder):
        shutil.copy(path, tmp_path)
    first = tmp_path / "shard-000000.tar"
    first.write_bytes(first.read_bytes()[:40_000])  # cut inside a record
    index = ShardIndex(tmp_path)
    assert str(first) in index.problems
    intact = sum(1 for path in list_shards(folder)[1:] for _ in iter_records(path))
    assert intact <= len(index) < intact + 4


def test_only_broken_shards_fail_at_once_naming_them(tmp_path):
    (tmp_path / "shard-000000.tar").write_bytes(b"not a tar file" * 100)
    (tmp_path / "shard-000001.tar").write_bytes(b"")
    with pytest.raises(ShardReadError, match=r"no readable record in 2 shard file\(s\).*shard-000000\.tar.*000001"):
        build_pretraining_loader(tmp_path, 1, num_workers=0)


def test_records_failing_at_read_time_are_replaced_then_bounded(tmp_path):
    write_antibodies(tmp_path, {"a": (16, 2, 1), "b": (16, 2, 1)})
    index = ShardIndex(tmp_path)
    entry = index.records[0]
    data = bytearray((tmp_path / "shard-000000.tar").read_bytes())
    data[entry.json_offset : entry.json_offset + 8] = b"\xff" * 8  # its JSON no longer parses
    (tmp_path / "shard-000000.tar").write_bytes(bytes(data))
    loader = build_pretraining_loader(tmp_path, 4, num_workers=0, num_batches=2, index=index)
    assert sum(len(b["cells"]) for b in loader) == 64 and loader.num_skipped == 1  # its one visit, replaced
    (tmp_path / "shard-000000.tar").write_bytes(b"\0" * len(data))  # everything broken after indexing
    loader = build_pretraining_loader(tmp_path, 4, num_workers=0, num_batches=1, index=index,
                                      max_consecutive_failures=5)
    with pytest.raises(ShardReadError, match=r"6 records in a row could not be read.*shard-000000\.tar"):
        next(iter(loader))


def test_rank_comes_from_the_environment_when_not_given(synthetic_shards, monkeypatch):
    from subcell_hf.data.loader import distributed_rank

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert distributed_rank() == (1, 2)
    loader = build_pretraining_loader(synthetic_shards[0], 1, num_workers=0)
    assert (loader.plan.rank, loader.plan.world_size) == (1, 2)
