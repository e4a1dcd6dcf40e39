"""Atomic writes of whole folders: stage next to the destination, then rename, so that a failure leaves either
the previous folder or nothing, never a half-written one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(destination: str | Path, overwrite: bool = True) -> Iterator[Path]:
    """Yield an empty staging folder; on success it replaces `destination`, on error it is removed.

    With `overwrite=False` an existing destination raises `FileExistsError` before anything is written.
    """
    destination = Path(destination)
    if destination.exists() and not overwrite:
        raise FileExistsError(f"{destination}: output folder exists; pass overwrite=True (--overwrite) to replace it")
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.tmp-", dir=destination.parent))
    try:
        yield staging
        if destination.exists():
            shutil.rmtree(destination)
        os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
