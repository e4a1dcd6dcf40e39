"""Local file helpers for the Hub tools: an atomic copy and the two hashes the Hub identifies files by."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from ..utils.atomic_writes import atomic_path
from ..utils.hashing import update_from_file


def file_hashes(path: str | Path, chunk_size: int = 1 << 22) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file in one pass.

    The Hub names a file by the sha256 of its content when it is stored with LFS (weights) and by its git blob
    sha1 (``sha1(b"blob <size>\\0" + content)``) otherwise; comparing both lets a push skip unchanged files.
    """
    path = Path(path)
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    update_from_file(path, sha256, git_sha1, chunk_size=chunk_size)
    return sha256.hexdigest(), git_sha1.hexdigest()


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """Copy `source` to a temporary file next to `target`, then rename it over `target`."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)
