"""Labelled embeddings of a shard set: what both ensemble training and evaluation start from.

The embedding itself is `subcell_hf.inference.embed` (batched, resumable, split over `accelerate` processes); its
output folder is the on-disk cache, so a second run over the same model and shards computes nothing. Labels are
read back from each cell's `locations` (the shard metadata), as multi-hot vectors over whichever class list the
caller needs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..data.manifest import multi_hot, parse_locations

logger = logging.getLogger(__name__)


@dataclass
class LabelledEmbeddings:
    """Per-cell embeddings (and the model's probabilities when it has classifiers) with the cells' metadata."""

    embeddings: np.ndarray  # (N, D) float32
    obs: pd.DataFrame  # one row per cell: antibody, locations, image_id, cell_line, ...
    probabilities: np.ndarray | None = None  # (N, L) in `probability_classes` order
    probability_classes: list[str] = field(default_factory=list)
    failed_inputs: int = 0  # inputs (shards, records) that could not be read: their cells are left out

    def __len__(self) -> int:
        return len(self.embeddings)

    @property
    def antibodies(self) -> np.ndarray:
        return self.column("antibody")

    def column(self, name: str) -> np.ndarray:
        """A metadata column as an array; the error lists the columns there are."""
        if name not in self.obs.columns:
            raise KeyError(f"no per-cell column {name!r}; the shards give {sorted(self.obs.columns)}")
        return self.obs[name].to_numpy()

    def locations(self) -> list[list[str]]:
        """Each cell's location names (canonical spelling)."""
        return [parse_locations(text) for text in self.column("locations")]

    def labels(self, classes: Sequence[str]) -> np.ndarray:
        """(N, len(classes)) multi-hot targets; locations outside `classes` are ignored."""
        return np.array([multi_hot(names, classes) for names in self.locations()], dtype=np.int64).reshape(
            len(self), len(classes)
        )

    def subset(self, rows: np.ndarray) -> "LabelledEmbeddings":
        """The cells at `rows` (indices or a boolean mask)."""
        return LabelledEmbeddings(
            self.embeddings[rows],
            self.obs.iloc[np.arange(len(self))[rows]],
            None if self.probabilities is None else self.probabilities[rows],
            list(self.probability_classes),
        )


def embed_shards(
    model: Any,
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    **embed_options: Any,
) -> LabelledEmbeddings:
    """Embed every cell of `shards` with `model` (an `EmbeddingModel`, Hub id or folder), caching in `cache_dir`.

    `embed_options` are `subcell_hf.inference.EmbedConfig` fields (e.g. `batch_size`, `num_workers`, `precision`,
    `progress`). Under `accelerate launch` every process takes part and every process gets the full result.
    Cells that could not be read are logged and left out; no cell at all is an error.
    """
    from ..inference import embed
    from ..inference.embed import OUTPUT_NAMES

    result = embed(model, shards, cache_dir, input_kind="shards", formats=("h5ad",), **embed_options)
    if result.failures:
        logger.warning(
            "%d inputs could not be embedded (see %s)", len(result.failures), Path(cache_dir) / "summary.csv"
        )
    if result.table is not None:  # the main process has the merged table in memory
        table = result.table
        labelled = LabelledEmbeddings(table.embeddings, table.obs, table.probabilities, list(table.class_names))
    else:
        labelled = read_labelled_embeddings(Path(cache_dir) / OUTPUT_NAMES["h5ad"])
    labelled.failed_inputs = len(result.failures)
    if not len(labelled):
        raise ValueError(f"no cell could be embedded from {shards!r}; see {Path(cache_dir) / 'summary.csv'}")
    return labelled


def read_labelled_embeddings(path: str | os.PathLike) -> LabelledEmbeddings:
    """Read an `embeddings.h5ad` written by `subcell_hf.inference.embed`."""
    import anndata

    adata = anndata.read_h5ad(path)
    probabilities = adata.obsm["probabilities"] if "probabilities" in adata.obsm else None
    classes = [str(name) for name in adata.uns.get("probability_classes", [])]
    return LabelledEmbeddings(np.asarray(adata.X, dtype=np.float32), adata.obs.copy(), probabilities, classes)
