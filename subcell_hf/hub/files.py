"""Local file helpers for the Hub tools: atomic writes and the two hashes the Hub identifies files by."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def file_hashes(path: str | Path, chunk_size: int = 1 << 22) -> tuple[str, str]:
    """(sha256, git blob sha1) of a file in one pass.

    The Hub names a file by the sha256 of its content when it is stored with LFS (weights) and by its git blob
    sha1 (``sha1(b"blob <size>\\0" + content)``) otherwise; comparing both lets a push skip unchanged files.
    """
    path = Path(path)
    sha256 = hashlib.sha256()
    git_sha1 = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            sha256.update(chunk)
            git_sha1.update(chunk)
    return sha256.hexdigest(), git_sha1.hexdigest()


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write `text` to a temporary file next to `path`, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def copy_atomic(source: str | Path, target: str | Path) -> None:
    """Copy `source` to a temporary file next to `target`, then rename it over `target`."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
