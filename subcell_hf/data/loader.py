"""The streaming loader of SubCell pretraining: shards -> records -> 8-cell draws -> batches.

The pipeline, one small stage each (webdataset's where one exists):

    shard urls (resampled per rank and worker, or split by rank then worker)
    -> tar members -> records (`decode_record`, optional channel subset)
    -> draws of `cells_per_record` cells (`draw_cells`: round-robin over (cell line, plate position) groups)
    -> shuffle buffer -> batches (`collate`) -> optional `TwoViewAugmentation` in the workers.

Distributed use: the loader splits the data by rank itself (it reads the rank and world size from
`torch.distributed` when the loader is built, or takes them as arguments). **Do not pass it to
`accelerator.prepare`**, which would split a second time and drop data. With `resampled=True` (training) every
rank and worker draws shards from its own seeded stream, so nothing needs splitting and ranks never run out;
with `resampled=False` each epoch is one pass, shards are split by rank, then by worker (give at least
`world_size * num_workers` shards).

Broken samples (a truncated tar, undecodable arrays) are skipped and counted, never fatal:
`loader.num_skipped` is the total seen so far, for the trainer to log.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from itertools import islice

import torch
from torch.utils.data import DataLoader

from .augment import TwoViewAugmentation
from .shards import decode_record, group_key, list_shards

logger = logging.getLogger(__name__)

_SKIPPED_KEY = "_num_skipped"
_WORKER_KEY = "_worker"


# ------------------------------------------------------------------------------------------------ stages
def draw_cells(
    groups: Sequence, cells_per_record: int, rng: random.Random, num_draws: int | None = None
) -> list[list[int]]:
    """Indices of `num_draws` draws of `cells_per_record` cells from one record (default: ``n // cells_per_record``,
    at least 1, so that one visit of a record uses each cell at most once when it has enough cells).

    Cells are lined up round-robin over their groups (the (cell line, plate position) of each cell, in random
    group order, random order within a group) and dealt to the draws in turn (cell k of the line to draw
    k mod num_draws), so every draw gets its share of every group: with groups of 48, 8 and 8 cells, each of
    the 8 draws holds 6, 1 and 1 (consecutive slices of the line would give the last draws the big group only).
    A pass over all n cells is followed by a new shuffled pass: a record with fewer cells than needed repeats
    cells (every cell appears before any repeats) instead of looping forever. Always terminates: each pass adds
    n >= 1 cells.
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
    missing = [name for name in channel_names if name not in record["channels"]]
    if missing:
        raise ValueError(
            f"record {record.get('key')}: channels {missing} requested, the shards hold {record['channels']}"
        )
    order = [record["channels"].index(name) for name in channel_names]
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


# ------------------------------------------------------------------------------------------------ the stream
@dataclass
class _StreamState:
    """What every stage of one worker's pipeline shares: seeds, the rank, the epoch and the skip counter."""

    seed: int
    rank: int
    world_size: int
    epoch: int = 0
    num_skipped: int = 0

    @staticmethod
    def worker() -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return (0, 1) if info is None else (info.id, info.num_workers)

    def rng(self, purpose: str) -> random.Random:
        """Independent per (seed, rank, worker, epoch, purpose); the same in every run."""
        return random.Random(f"{self.seed}/{self.rank}/{self.worker()[0]}/{self.epoch}/{purpose}")

    def worker_seed(self) -> int:
        return self.rng("shards").getrandbits(62)

    def skip(self, error: Exception) -> bool:
        """webdataset exception handler: count, warn for the first few, continue."""
        self.num_skipped += 1
        if self.num_skipped <= 5:
            logger.warning("skipping a broken sample (%d so far on this worker): %r", self.num_skipped, error)
        return True


class _OnePass:
    """Shard source for `resampled=False`: each epoch, all shards in an order shared by all ranks, split by rank,
    then by worker."""

    def __init__(self, urls: list[str], state: _StreamState):
        self.urls = urls
        self.state = state

    def __call__(self) -> Iterator[dict]:
        order = list(self.urls)
        random.Random(f"{self.state.seed}/{self.state.epoch}/shard-order").shuffle(order)
        mine = islice(order, self.state.rank, None, self.state.world_size)
        worker, num_workers = self.state.worker()
        for url in islice(mine, worker, None, num_workers):
            yield {"url": url}


def _to_draws(records: Iterator[dict], state: _StreamState, cells_per_record: int) -> Iterator[dict]:
    rng = state.rng("draws")
    for record in records:
        groups = [group_key(cell) for cell in record["metadata"]]
        for indices in draw_cells(groups, cells_per_record, rng):
            yield {
                "cells": record["cells"][indices],
                "masks": record["masks"][indices],
                "metadata": [record["metadata"][i] for i in indices],
                "antibody_id": record["antibody_id"],
            }


def _shuffle(draws: Iterator[dict], state: _StreamState, size: int) -> Iterator[dict]:
    import webdataset as wds

    yield from wds.shuffle(size, initial=size, rng=state.rng("shuffle"))(draws)


def _finish(
    batches: Iterator[dict],
    state: _StreamState,
    augmentation: TwoViewAugmentation | None,
    cells_per_record: int,
) -> Iterator[dict]:
    """Optional augmentation in the worker, and the bookkeeping the loader reads (skips per worker)."""
    generator = torch.Generator().manual_seed(state.rng("augment").getrandbits(62))
    for batch in batches:
        if augmentation is not None:
            with torch.no_grad():
                batch.update(augmentation(batch["cells"], batch["masks"], cells_per_record, generator))
        batch[_SKIPPED_KEY] = state.num_skipped
        batch[_WORKER_KEY] = state.worker()[0]
        yield batch


def build_stream(
    shards,
    batch_records: int,
    cells_per_record: int = 8,
    channel_names: Sequence[str] | None = None,
    seed: int = 0,
    resampled: bool = True,
    shuffle_buffer: int = 128,
    augmentation: TwoViewAugmentation | None = None,
    rank: int = 0,
    world_size: int = 1,
):
    """The `IterableDataset` behind `build_pretraining_loader` (see there); batches come out of it whole.

    Every stage is a module-level function or a picklable object, so workers may be forked or spawned.
    """
    import webdataset as wds

    state = _StreamState(seed, rank, world_size)
    urls = list_shards(shards)
    source = (
        wds.ResampledShards(urls, worker_seed=state.worker_seed, deterministic=True)
        if resampled
        else _OnePass(urls, state)
    )
    stages = [
        source,
        wds.tarfile_to_samples(handler=state.skip),
        wds.map(decode_record, handler=state.skip),
        wds.map(partial(select_channels, channel_names=channel_names), handler=state.skip),
        partial(_to_draws, state=state, cells_per_record=cells_per_record),
    ]
    if shuffle_buffer > 1:
        stages.append(partial(_shuffle, state=state, size=shuffle_buffer))
    stages += [
        wds.batched(batch_records, collation_fn=collate, partial=False),
        partial(_finish, state=state, augmentation=augmentation, cells_per_record=cells_per_record),
    ]
    pipeline = wds.DataPipeline(*stages)
    pipeline.state = state
    return pipeline


class PretrainingLoader(DataLoader):
    """A `DataLoader` over `build_stream` that counts skipped samples and, optionally, fixes the epoch length.

    Attributes:
        num_skipped: broken samples skipped so far, over all workers and epochs.
        batches_per_epoch: batches one iteration yields (None: until the stream ends; endless when resampled).
    """

    def __init__(self, stream, batches_per_epoch: int | None = None, **kwargs):
        super().__init__(stream, batch_size=None, **kwargs)
        self.batches_per_epoch = batches_per_epoch
        self._skipped_before = 0
        self._skipped_by_worker: dict[int, int] = {}

    @property
    def num_skipped(self) -> int:
        return self._skipped_before + sum(self._skipped_by_worker.values())

    def __len__(self) -> int:
        if self.batches_per_epoch is None:
            raise TypeError("this loader streams without a fixed length; pass batches_per_epoch to give it one")
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        self._skipped_before = self.num_skipped
        self._skipped_by_worker = {}
        self.dataset.state.epoch += 1  # new seeds for this epoch; workers copy the state when they start
        batches = super().__iter__()
        for batch in islice(batches, self.batches_per_epoch):
            self._skipped_by_worker[int(batch.pop(_WORKER_KEY))] = int(batch.pop(_SKIPPED_KEY))
            yield batch


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from `torch.distributed` when initialised, else from RANK/WORLD_SIZE, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def build_pretraining_loader(
    shards,
    batch_records: int,
    cells_per_record: int = 8,
    channel_names: Sequence[str] | None = None,
    num_workers: int = 4,
    seed: int = 0,
    resampled: bool = True,
    shuffle_buffer: int = 128,
    augmentation: TwoViewAugmentation | None = None,
    batches_per_epoch: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    pin_memory: bool | None = None,
) -> PretrainingLoader:
    """The pretraining `DataLoader` (module docstring). Do not pass it to `accelerator.prepare`.

    Args:
        shards: a shard folder, brace pattern or list of paths (`list_shards`).
        batch_records: draws per batch (per rank); a batch holds ``batch_records * cells_per_record`` cells.
        cells_per_record: cells per draw (SPEC: 8), contiguous in the batch.
        channel_names: channels to keep, in order (default: all channels of the shards).
        num_workers: `DataLoader` worker processes.
        seed: makes the stream reproducible for a given rank, world size and number of workers.
        resampled: draw shards with replacement forever (training) instead of one pass per epoch.
        shuffle_buffer: draws held per worker for shuffling (memory: ~ buffer x draw size, e.g. 128 x 8 cells x
            4 channels x 448^2 x 2 bytes = 1.6 GB).
        augmentation: if given, applied in the workers and the batch also holds `view1`, `view2`, `mask1`,
            `mask2`; leave it None to run it on the accelerator in the training loop (faster there).
        batches_per_epoch: batches per iteration of the loader (the same on every rank: required for
            `resampled=True` epochs, and a guard against ranks that run out at different times).
        rank, world_size: default from `torch.distributed` (or RANK / WORLD_SIZE).
        pin_memory: default: when CUDA is available.

    Batches are dicts: `cells` float32 (N, C, H, W) raw intensities, `masks` float32 (N, 1, H, W) in {0, 1},
    `antibody_id` int64 (N,) (`subcell_hf.data.manifest.antibody_id`, stable across processes), `labels` float32
    (N, 35) multi-hot over `PRETRAINING_CLASSES`, with N = batch_records * cells_per_record.
    """
    if rank is None or world_size is None:
        rank, world_size = distributed_rank()
    stream = build_stream(
        shards,
        batch_records,
        cells_per_record,
        channel_names,
        seed,
        resampled,
        shuffle_buffer,
        augmentation,
        rank,
        world_size,
    )
    return PretrainingLoader(
        stream,
        batches_per_epoch=batches_per_epoch,
        num_workers=num_workers,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        prefetch_factor=2 if num_workers > 0 else None,
    )


__all__ = [
    "PretrainingLoader",
    "build_pretraining_loader",
    "build_stream",
    "collate",
    "distributed_rank",
    "draw_cells",
    "select_channels",
]
