"""This process's rank and the job's number of processes, the one place the package asks.

Once `torch.distributed` is initialised its process group answers; before that (or in a process that never joins
one) the launcher's environment does: `torchrun` and `accelerate launch` set `RANK` and `WORLD_SIZE` for every
process they start. A plain `python` run is rank 0 of 1.
"""

from __future__ import annotations

import os


def _process_group():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def launched_world_size() -> int:
    """The number of processes the launcher started (`WORLD_SIZE`), 1 without a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    """This process's rank as the launcher numbered it (`RANK`), 0 without a launcher."""
    return int(os.environ.get("RANK", "0"))


def world_size(launcher_fallback: bool = True) -> int:
    """The number of processes: the process group's size once initialised; before that the launcher's
    `WORLD_SIZE`, or 1 with `launcher_fallback=False` (what collective operations can use: none without a group)."""
    group = _process_group()
    if group is not None:
        return group.get_world_size()
    return launched_world_size() if launcher_fallback else 1


def rank(launcher_fallback: bool = True) -> int:
    """This process's rank: the process group's once initialised; before that the launcher's `RANK`, or 0 with
    `launcher_fallback=False`."""
    group = _process_group()
    if group is not None:
        return group.get_rank()
    return launched_rank() if launcher_fallback else 0


__all__ = ["launched_rank", "launched_world_size", "rank", "world_size"]
