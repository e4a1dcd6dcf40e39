"""The sha256 of files and bytes, the one hashing helper of the package (fingerprints of inputs, checksums of
release files)."""

from __future__ import annotations

import hashlib
import os

CHUNK_SIZE = 1 << 22


def update_from_file(path: str | os.PathLike, *digests, chunk_size: int = CHUNK_SIZE) -> None:
    """Feed a file's content to every `hashlib` object of `digests`, reading it once in `chunk_size` blocks."""
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            for digest in digests:
                digest.update(chunk)


def sha256_file(path: str | os.PathLike, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex sha256 of a file's content (read in blocks: any size)."""
    digest = hashlib.sha256()
    update_from_file(path, digest, chunk_size=chunk_size)
    return digest.hexdigest()


def sha256_bytes(*parts: bytes) -> str:
    """Hex sha256 of the concatenation of `parts`."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


__all__ = ["sha256_bytes", "sha256_file", "update_from_file"]
