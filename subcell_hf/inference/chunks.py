"""Numbered chunk files that make an embedding run resumable.

The input items are cut into fixed chunks (`plan_chunks`); each chunk's results are written as one `.npz` file,
atomically, once all of its cells are done. A rerun reads `run.json`, refuses chunks made with other settings,
and skips every chunk whose file exists. Merging reads the chunks in order, so the merged outputs do not depend on
how many processes, workers or restarts produced them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.atomic_writes import atomic_path, atomic_write_text, remove_stale_partials

RUN_FILE = "run.json"
CHUNK_TEMPLATE = "chunk-{index:06d}.npz"


@dataclass(frozen=True)
class Chunk:
    index: int
    items: range  # input item indices


def plan_chunks(num_items: int, chunk_size: int) -> list[Chunk]:
    """Consecutive chunks of `chunk_size` items (the last one shorter)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, found {chunk_size}")
    return [
        Chunk(index, range(start, min(start + chunk_size, num_items)))
        for index, start in enumerate(range(0, num_items, chunk_size))
    ]


@dataclass
class ChunkResult:
    """Everything one chunk produced, cells in input order."""

    embeddings: np.ndarray  # (n, D) float32
    probabilities: np.ndarray | None  # (n, L) float32, or None for an encoder-only model
    cells: list[dict[str, Any]] = field(default_factory=list)  # per cell: id, item, metadata, attention_map
    failures: list[dict[str, Any]] = field(default_factory=list)  # InputFailure.to_dict() of the chunk's items

    @classmethod
    def concatenate(cls, parts: list["ChunkResult"], embedding_size: int) -> "ChunkResult":
        with_probabilities = any(p.probabilities is not None for p in parts)
        return cls(
            np.concatenate([p.embeddings for p in parts]) if parts else np.zeros((0, embedding_size), np.float32),
            np.concatenate([p.probabilities for p in parts]) if with_probabilities else None,
            [cell for p in parts for cell in p.cells],
            [failure for p in parts for failure in p.failures],
        )


class ChunkStore:
    """The `chunks/` folder of an output directory."""

    def __init__(self, root: str | os.PathLike, signatures: dict[int, str] | None = None):
        """`signatures`: chunk index -> `CellSource.signature` of its items now; a chunk written under another
        signature (its files changed) counts as not done."""
        self.root = Path(root)
        self.signatures = dict(signatures or {})

    def path(self, index: int) -> Path:
        return self.root / CHUNK_TEMPLATE.format(index=index)

    def completed(self, chunks: list[Chunk]) -> set[int]:
        """Chunks done and still valid: written, from files unchanged since, and without failed inputs (a rerun
        retries those, e.g. after a missing image was added)."""
        done = set()
        for chunk in chunks:
            path = self.path(chunk.index)
            if not path.is_file():
                continue
            try:
                with np.load(path, allow_pickle=False) as data:
                    signature = str(data["signature"]) if "signature" in data.files else ""
                    failures = json.loads(str(data["failures"]))
            except (OSError, ValueError, KeyError):  # a damaged chunk is computed again
                continue
            if signature == self.signatures.get(chunk.index, "") and not failures:
                done.add(chunk.index)
        return done

    def write(self, index: int, result: ChunkResult) -> Path:
        path = self.path(index)
        with atomic_path(path) as temporary, open(temporary, "wb") as stream:
            np.savez(
                stream,
                embeddings=result.embeddings.astype(np.float32, copy=False),
                probabilities=(
                    np.zeros((len(result.embeddings), 0), np.float32)
                    if result.probabilities is None
                    else result.probabilities.astype(np.float32, copy=False)
                ),
                has_probabilities=np.array(result.probabilities is not None),
                cells=np.array(json.dumps(result.cells)),
                failures=np.array(json.dumps(result.failures)),
                signature=np.array(self.signatures.get(index, "")),
            )
        return path

    def read(self, index: int) -> ChunkResult:
        path = self.path(index)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: chunk {index} is missing; run the embedding again to compute it")
        with np.load(path, allow_pickle=False) as data:
            return ChunkResult(
                data["embeddings"],
                data["probabilities"] if bool(data["has_probabilities"]) else None,
                json.loads(str(data["cells"])),
                json.loads(str(data["failures"])),
            )

    # ---------------------------------------------------------------------------------------- run settings
    def read_run_info(self) -> dict[str, Any] | None:
        path = self.root / RUN_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def write_run_info(self, info: dict[str, Any]) -> None:
        atomic_write_text(self.root / RUN_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")

    def reset(self) -> None:
        """Delete every chunk and the run file (a fresh start); nothing else in the folder is touched."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(CHUNK_TEMPLATE.split("{")[0] + "*.npz"):
            path.unlink(missing_ok=True)
        (self.root / RUN_FILE).unlink(missing_ok=True)
        remove_stale_partials(self.root)


def settings_mismatch(found: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """Names of the settings that differ between a previous run and this one."""
    return sorted(key for key in set(found) | set(expected) if found.get(key) != expected.get(key))


__all__ = ["CHUNK_TEMPLATE", "RUN_FILE", "Chunk", "ChunkResult", "ChunkStore", "plan_chunks", "settings_mismatch"]
