"""Shards as a Hugging Face `datasets.Dataset` whose cells come back as typed arrays.

`load_dataset("webdataset", data_files=...)` reads the shards offline, but its `.npy` columns come back as nested
Python lists (and, through the numpy formatter, widened to int64). `typed_cells` gives every record's
`cells.npy` as a (n, C, S, S) array of the shards' own pixel type (uint8 or uint16) and `masks.npy` as (n, S, S)
bool, with C and S read from the record's own metadata:

    >>> from datasets import load_dataset
    >>> from subcell_hf.data.hf_datasets import typed_cells
    >>> records = typed_cells(load_dataset("webdataset", data_files="shards/*.tar", split="train"))
    >>> records[0]["cells.npy"].dtype, records[0]["cells.npy"].shape
    (dtype('uint16'), (32, 4, 448, 448))
"""

from __future__ import annotations

from typing import Any

import numpy as np

CELLS, MASKS, META = "cells.npy", "masks.npy", "json"


def _pixel_dtype(dataset) -> np.dtype:
    feature = dataset.features[CELLS]
    while hasattr(feature, "feature"):  # List(List(...(Value)))
        feature = feature.feature
    return np.dtype(getattr(feature, "dtype", "uint16"))


def typed_cells(dataset):
    """The same dataset, read with `cells.npy` / `masks.npy` as numpy arrays of the right type and shape."""
    missing = [c for c in (CELLS, MASKS, META) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"expected SubCell shard columns {[CELLS, MASKS, META]}, missing {missing}")
    dtype = _pixel_dtype(dataset)

    def transform(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        out = dict(batch)
        cells, masks = [], []
        for pixels, mask, meta in zip(batch[CELLS], batch[MASKS], batch[META]):
            channels, size = len(meta["channels"]), int(meta["output_size"])
            cells.append(np.asarray(pixels, dtype=dtype).reshape(-1, channels, size, size))
            masks.append(np.asarray(mask, dtype=bool).reshape(-1, size, size))
        out[CELLS], out[MASKS] = cells, masks
        return out

    return dataset.with_transform(transform)


__all__ = ["typed_cells"]
