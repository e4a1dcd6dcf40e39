"""The pretraining loader: parts (records) -> one 8-cell draw per visit -> batches, in epochs as the release.

The sampling rule (docs/data.md, "Epochs"): the shard writer stores each antibody as 4 parts (records); one
*epoch* is one shuffled pass over all parts, each part visited `mult` times (1 unless the manifest says), without
replacement; each visit yields exactly **one draw** of `cells_per_record` (8) cells, round-robin over the part's
fields of view. Every antibody therefore gets 4 x mult draws per epoch whatever its cell count.

How it is read:

- `ShardIndex` scans the tar headers of local shard files once (no image data is read) and keeps, per record, the
  byte offsets of its members, its cell count, antibody id and `mult`. A visit then reads the record's JSON and only
  the 8 drawn cells' rows of its ``.npy`` arrays, so a part of any size costs the same to draw from.
- `EpochPlan` is the order: the record visits of an epoch shuffled with a seed shared by all ranks, cut into global
  micro-batches of ``world_size * batch_records`` visits (the epoch's tail that does not fill one is dropped, as a
  drop-last sampler does); rank r takes its slice of each. DataLoader workers share a rank's batches as usual.
- Everything random about a visit (which cells) is seeded by (seed, epoch, position in the epoch), so a run
  resumed at micro-batch k reads exactly what the uninterrupted run read, at no replay cost (`start=k`).

Broken data: a shard whose headers cannot be read is left out with a warning (a truncated shard keeps its complete
records); when no shard is readable the loader raises `ShardReadError` naming them. A record that fails to decode
at visit time is replaced by the next record of the index and counted (`loader.num_skipped`); after
`max_consecutive_failures` failures in a row the loader raises `ShardReadError` naming the shards involved, instead
of spinning.

Distributed use: the loader takes its rank and world size from `torch.distributed` (or the arguments). **Do not
pass it to `accelerator.prepare`**, which would split a second time.
"""

from __future__ import annotations

import json
import logging
import os
import random
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from ..utils import distributed
from .augment import TwoViewAugmentation
from .channels import check_channels
from .shards import group_key, list_shards

logger = logging.getLogger(__name__)

_SKIPPED_KEY = "_num_skipped"
DEFAULT_MAX_CONSECUTIVE_FAILURES = 16


class ShardReadError(ValueError):
    """The shards cannot feed training: none is readable, or too many records in a row failed to decode."""


# ------------------------------------------------------------------------------------------------ draws
def draw_cells(
    groups: Sequence, cells_per_record: int, rng: random.Random, num_draws: int | None = None
) -> list[list[int]]:
    """Indices of `num_draws` draws of `cells_per_record` cells from one record (default: ``n // cells_per_record``,
    at least 1). The loader makes one draw per visit (``num_draws=1``).

    Cells are lined up round-robin over their groups (the field of view of each cell, in random group order,
    random order within a group) and dealt to the draws in turn, so every draw gets its share of every group. A
    pass over all n cells is followed by a new shuffled pass: a record with fewer cells than needed repeats cells
    (every cell appears before any repeats). Always terminates: each pass adds n >= 1 cells.
    """
    count = len(groups)
    if count == 0:
        raise ValueError("cannot draw cells from an empty record")
    num_draws = max(1, count // cells_per_record) if num_draws is None else num_draws
    needed = num_draws * cells_per_record
    sequence: list[int] = []
    while len(sequence) < needed:
        members: dict = {}
        for index, group in enumerate(groups):
            members.setdefault(group, []).append(index)
        queues = list(members.values())
        rng.shuffle(queues)
        for queue in queues:
            rng.shuffle(queue)
        while queues:
            for queue in queues:
                sequence.append(queue.pop())
            queues = [queue for queue in queues if queue]
    sequence = sequence[:needed]
    return [sequence[i::num_draws] for i in range(num_draws)]


def select_channels(record: dict, channel_names: Sequence[str] | None) -> dict:
    """Keep `channel_names` (in that order) of a record whose shards hold more channels."""
    if channel_names is None or list(channel_names) == list(record["channels"]):
        return record
    order = check_channels(record["channels"], channel_names, f"shard record {record.get('key')}")
    return {**record, "cells": record["cells"][:, order], "channels": list(channel_names)}


def collate(draws: list[dict]) -> dict[str, torch.Tensor]:
    """Draws -> the batch: `cells` float32 (N, C, H, W) raw intensities, `masks` float32 (N, 1, H, W),
    `antibody_id` int64 (N,), `labels` float32 (N, 35); the cells of one draw are contiguous.

    Pixels are converted while being copied into the batch tensors (one pass, no intermediate arrays).
    """
    count = sum(len(draw["cells"]) for draw in draws)
    cells = torch.empty((count,) + draws[0]["cells"].shape[1:], dtype=torch.float32)
    masks = torch.empty((count, 1) + draws[0]["masks"].shape[1:], dtype=torch.float32)
    cells_view, masks_view = cells.numpy(), masks.numpy()
    start = 0
    for draw in draws:
        stop = start + len(draw["cells"])
        cells_view[start:stop] = draw["cells"]
        masks_view[start:stop, 0] = draw["masks"]
        start = stop
    antibody_ids = [draw["antibody_id"] for draw in draws for _ in range(len(draw["cells"]))]
    labels = [cell["labels"] for draw in draws for cell in draw["metadata"]]
    return {
        "cells": cells,
        "masks": masks,
        "antibody_id": torch.tensor(antibody_ids, dtype=torch.int64),
        "labels": torch.tensor(labels, dtype=torch.float32),
    }


# ------------------------------------------------------------------------------------------------ the index
@dataclass(frozen=True)
class _Array:
    """Where a ``.npy`` member's data lies in its tar file."""

    offset: int  # first byte of the array data (after the npy header)
    shape: tuple[int, ...]
    dtype: str

    def read_rows(self, handle, rows: Sequence[int]) -> np.ndarray:
        """Rows `rows` (first axis) of the array, reading only those bytes."""
        dtype = np.dtype(self.dtype)
        row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * dtype.itemsize
        out = np.empty((len(rows),) + tuple(self.shape[1:]), dtype=dtype)
        for position, row in enumerate(rows):
            handle.seek(self.offset + int(row) * row_bytes)
            data = handle.read(row_bytes)
            if len(data) != row_bytes:
                raise ValueError(f"array data ends early (row {row}: {len(data)} of {row_bytes} bytes)")
            out[position] = np.frombuffer(data, dtype=dtype).reshape(self.shape[1:])
        return out


@dataclass(frozen=True)
class RecordEntry:
    """One record (part) of the index."""

    shard: str
    key: str
    json_offset: int
    json_size: int
    cells: _Array
    masks: _Array
    num_cells: int
    antibody_id: int
    mult: int


def _read_npy_header(handle, offset: int, size: int) -> _Array:
    handle.seek(offset)
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(handle)
    else:
        shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(handle)
    if fortran_order or dtype.hasobject:
        raise ValueError("expected a C-ordered array of plain numbers")
    data_offset = handle.tell()
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if data_offset - offset + expected != size:
        raise ValueError(f"array {shape} {dtype} does not fill its {size}-byte member")
    return _Array(data_offset, tuple(int(v) for v in shape), dtype.str)


def _index_shard(path: str) -> tuple[list[RecordEntry], str | None]:
    """The complete records of one tar file, and why it is (partly) unreadable, if it is."""
    file_size = os.path.getsize(path)
    members: dict[str, dict[str, tarfile.TarInfo]] = {}
    problem = None
    try:
        with tarfile.open(path, mode="r:") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                directory, name = os.path.split(member.name)
                if "." not in name:
                    continue
                stem, suffix = name.split(".", 1)
                members.setdefault(os.path.join(directory, stem), {})[suffix] = member
    except (tarfile.TarError, OSError, EOFError) as error:
        problem = f"{type(error).__name__}: {error}"
    records: list[RecordEntry] = []
    with open(path, "rb") as handle:
        for key, parts in members.items():
            try:
                if not {"json", "cells.npy", "masks.npy"} <= set(parts):
                    raise ValueError(f"members {sorted(parts)}, expected json, cells.npy and masks.npy")
                if any(m.offset_data + m.size > file_size for m in parts.values()):
                    raise ValueError("the file ends inside the record")
                cells = _read_npy_header(handle, parts["cells.npy"].offset_data, parts["cells.npy"].size)
                masks = _read_npy_header(handle, parts["masks.npy"].offset_data, parts["masks.npy"].size)
                handle.seek(parts["json"].offset_data)
                record = json.loads(handle.read(parts["json"].size))
                count = len(record["cells"])
                if len(cells.shape) != 4 or cells.shape[0] != count or masks.shape != (count,) + cells.shape[2:]:
                    raise ValueError(f"cells {cells.shape}, masks {masks.shape} and {count} metadata entries differ")
                if count == 0:
                    raise ValueError("no cells")
            except (ValueError, KeyError, TypeError, OSError) as error:
                problem = problem or f"record {key}: {error}"
                continue
            records.append(
                RecordEntry(
                    path, key, parts["json"].offset_data, parts["json"].size, cells, masks, count,
                    int(record["antibody_id"]), int(record.get("mult", 1)),
                )
            )
    if not records and problem is None:
        problem = "holds no complete record"
    return records, problem


class ShardIndex:
    """Every readable record of a set of local shard files (module docstring).

    Attributes:
        records: the `RecordEntry` list, in shard order.
        problems: {shard: reason} for shards that were unreadable in whole or in part.
    """

    def __init__(self, shards):
        urls = list_shards(shards)
        remote = [url for url in urls if "://" in url or url.startswith("pipe:")]
        if remote:
            raise ShardReadError(
                f"the pretraining loader reads local shard files by offset; found {remote[:3]}: copy or mount them"
            )
        self.records: list[RecordEntry] = []
        self.problems: dict[str, str] = {}
        for url in urls:
            if not Path(url).is_file():
                self.problems[url] = "no such file"
                continue
            records, problem = _index_shard(url)
            self.records += records
            if problem:
                self.problems[url] = problem
                logger.warning("shard %s: %s (%d complete records kept)", url, problem, len(records))
        if not self.records:
            described = "; ".join(f"{url}: {why}" for url, why in list(self.problems.items())[:10])
            raise ShardReadError(f"no readable record in {len(urls)} shard file(s): {described}")

    def __len__(self) -> int:
        return len(self.records)

    @property
    def visits_per_epoch(self) -> int:
        """Record visits in one epoch: each record `mult` times."""
        return sum(record.mult for record in self.records)


# ------------------------------------------------------------------------------------------------ the order
class EpochPlan:
    """The shuffled epochs over the record visits, cut into global micro-batches and rank slices (docstring)."""

    def __init__(self, mults: Sequence[int], batch_records: int, seed: int = 0, rank: int = 0, world_size: int = 1):
        self.visits = np.repeat(np.arange(len(mults)), np.asarray(mults, dtype=np.int64))
        self.batch_records, self.seed, self.rank, self.world_size = batch_records, seed, rank, world_size
        self.global_batch_records = batch_records * world_size
        self.batches_per_epoch = len(self.visits) // self.global_batch_records
        if self.batches_per_epoch == 0:
            raise ShardReadError(
                f"an epoch holds {len(self.visits)} record visits, fewer than one global micro-batch of "
                f"{world_size} process(es) x {batch_records} records; write more parts or use smaller batches"
            )
        self._epoch, self._order = None, None

    def order(self, epoch: int) -> np.ndarray:
        """The visits of `epoch` in their shuffled order (the same on every rank)."""
        if self._epoch != epoch:
            rng = np.random.default_rng([self.seed, epoch, 0x5EED])
            self._epoch, self._order = epoch, rng.permutation(self.visits)
        return self._order

    def batch(self, position: int) -> list[tuple[int, int]]:
        """This rank's (record index, draw seed) pairs of global micro-batch `position` (0, 1, ... over epochs)."""
        epoch, step = divmod(position, self.batches_per_epoch)
        start = step * self.global_batch_records + self.rank * self.batch_records
        visits = self.order(epoch)[start : start + self.batch_records]
        seeds = [_draw_seed(self.seed, epoch, start + k) for k in range(len(visits))]
        return list(zip(visits.tolist(), seeds))


def _draw_seed(seed: int, epoch: int, position: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, position]).generate_state(1)[0])


class _PlanSampler(Sampler):
    """Batches of `EpochPlan` from micro-batch `start` on, `count` of them (None: endless)."""

    def __init__(self, plan: EpochPlan, start: int = 0, count: int | None = None):
        self.plan, self.start, self.count = plan, start, count

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        position = self.start
        while self.count is None or position < self.start + self.count:
            yield self.plan.batch(position)
            position += 1

    def __len__(self) -> int:
        if self.count is None:
            raise TypeError("an endless plan has no length")
        return self.count


# ------------------------------------------------------------------------------------------------ the dataset
class PartDraws(Dataset):
    """Map-style dataset: item ``(record index, draw seed)`` -> one draw of `cells_per_record` cells of that record.

    A record that fails to read is replaced by the following records of the index (counted in the draw's
    ``_num_skipped``), at most `max_consecutive_failures` times in a row; then `ShardReadError`.
    """

    def __init__(
        self,
        index: ShardIndex,
        cells_per_record: int = 8,
        channel_names: Sequence[str] | None = None,
        max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    ):
        self.index, self.cells_per_record = index, cells_per_record
        self.channel_names = None if channel_names is None else list(channel_names)
        self.max_consecutive_failures = max_consecutive_failures

    def __len__(self) -> int:
        return len(self.index)

    def read_draw(self, record_index: int, seed: int) -> dict:
        """One draw from one record (no fallback): cells (8, C, S, S), masks (8, S, S), metadata, antibody_id."""
        entry = self.index.records[record_index]
        with open(entry.shard, "rb") as handle:
            handle.seek(entry.json_offset)
            record = json.loads(handle.read(entry.json_size))
            metadata = record["cells"]
            if len(metadata) != entry.num_cells:
                raise ValueError(f"{len(metadata)} metadata entries, the index saw {entry.num_cells}")
            rows = draw_cells([group_key(cell) for cell in metadata], self.cells_per_record, random.Random(seed), 1)[0]
            unique = sorted(set(rows))
            position = {row: k for k, row in enumerate(unique)}
            take = [position[row] for row in rows]
            cells = entry.cells.read_rows(handle, unique)[take]
            masks = entry.masks.read_rows(handle, unique)[take].astype(bool, copy=False)
        draw = {
            "key": entry.key,
            "cells": cells,
            "masks": masks,
            "metadata": [metadata[row] for row in rows],
            "antibody_id": entry.antibody_id,
            "channels": record["channels"],
        }
        return select_channels(draw, self.channel_names)

    def __getitem__(self, item: tuple[int, int]) -> dict:
        record_index, seed = item
        failures: list[str] = []
        for attempt in range(self.max_consecutive_failures + 1):
            index = (record_index + attempt) % len(self.index)
            try:
                draw = self.read_draw(index, seed)
            except Exception as error:  # any decoding problem: counted, replaced, bounded
                entry = self.index.records[index]
                failures.append(f"{entry.shard} ({entry.key}: {type(error).__name__}: {error})")
                if len(failures) <= 3:
                    logger.warning("skipping unreadable record %s of %s: %r", entry.key, entry.shard, error)
                continue
            draw[_SKIPPED_KEY], draw["_seed"] = len(failures), seed
            return draw
        raise ShardReadError(
            f"{len(failures)} records in a row could not be read; giving up instead of retrying forever: "
            + "; ".join(failures[:5])
        )


def _collate_draws(draws: list[dict], augmentation: TwoViewAugmentation | None, cells_per_record: int) -> dict:
    batch = collate(draws)
    batch[_SKIPPED_KEY] = sum(draw[_SKIPPED_KEY] for draw in draws)
    if augmentation is not None:
        generator = torch.Generator().manual_seed(int(draws[0]["_seed"]))
        with torch.no_grad():
            batch.update(augmentation(batch["cells"], batch["masks"], cells_per_record, generator))
    return batch


class PretrainingLoader(DataLoader):
    """A `DataLoader` over `PartDraws` in the order of an `EpochPlan` (see `build_pretraining_loader`).

    Attributes:
        index: the `ShardIndex`; plan: the `EpochPlan` (`plan.batches_per_epoch` micro-batches per epoch).
        num_skipped: unreadable records replaced so far in this loader's batches.
    """

    def __init__(self, dataset: PartDraws, plan: EpochPlan, start: int, num_batches: int | None, **kwargs):
        super().__init__(dataset, batch_sampler=_PlanSampler(plan, start, num_batches), **kwargs)
        self.index, self.plan = dataset.index, plan
        self.num_skipped = 0

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for batch in super().__iter__():
            self.num_skipped += int(batch.pop(_SKIPPED_KEY))
            yield batch


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from `torch.distributed` when initialised, else from RANK/WORLD_SIZE, else (0, 1)."""
    return distributed.rank(), distributed.world_size()


def build_pretraining_loader(
    shards,
    batch_records: int,
    cells_per_record: int = 8,
    channel_names: Sequence[str] | None = None,
    num_workers: int = 4,
    seed: int = 0,
    start: int = 0,
    num_batches: int | None = None,
    augmentation: TwoViewAugmentation | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool | None = None,
    max_consecutive_failures: int = DEFAULT_MAX_CONSECUTIVE_FAILURES,
    index: ShardIndex | None = None,
) -> PretrainingLoader:
    """The pretraining `DataLoader` (module docstring). Do not pass it to `accelerator.prepare`.

    Args:
        shards: a shard folder, brace pattern or list of local paths (`list_shards`).
        batch_records: record visits (draws) per batch per rank; a batch holds ``batch_records * cells_per_record``
            cells.
        cells_per_record: cells per draw (8 in the release), contiguous in the batch.
        channel_names: channels to keep, in order (default: all channels of the shards).
        num_workers: `DataLoader` worker processes.
        seed: the epochs' order and every draw, the same for a given seed, world size and batch size.
        start: the global micro-batch to start at (a resumed run passes the micro-batches it has done).
        num_batches: batches one iteration yields (None: endless, epoch after epoch).
        augmentation: if given, applied in the workers and the batch also holds `view1`, `view2`, `mask1`,
            `mask2`; leave it None to run it on the accelerator in the training loop (faster there).
        rank, world_size: default from `torch.distributed` (or RANK / WORLD_SIZE).
        max_consecutive_failures: unreadable records replaced in a row before `ShardReadError`.
        index: a `ShardIndex` already built over `shards` (saves the header scan).

    Batches are dicts: `cells` float32 (N, C, H, W) raw intensities, `masks` float32 (N, 1, H, W) in {0, 1},
    `antibody_id` int64 (N,) (`subcell_hf.data.manifest.antibody_id`, stable across processes), `labels` float32
    (N, 35) multi-hot over `PRETRAINING_CLASSES`, with N = batch_records * cells_per_record.
    """
    if rank is None or world_size is None:
        rank, world_size = distributed_rank()
    index = index if index is not None else ShardIndex(shards)
    plan = EpochPlan([record.mult for record in index.records], batch_records, seed, rank, world_size)
    dataset = PartDraws(index, cells_per_record, channel_names, max_consecutive_failures)
    return PretrainingLoader(
        dataset,
        plan,
        start,
        num_batches,
        collate_fn=partial(_collate_draws, augmentation=augmentation, cells_per_record=cells_per_record),
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        prefetch_factor=2 if num_workers > 0 else None,
        persistent_workers=False,
    )


__all__ = [
    "EpochPlan",
    "PartDraws",
    "PretrainingLoader",
    "RecordEntry",
    "ShardIndex",
    "ShardReadError",
    "build_pretraining_loader",
    "collate",
    "distributed_rank",
    "draw_cells",
    "select_channels",
]
