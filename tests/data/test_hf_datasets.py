"""`load_dataset("webdataset", ...)` on our shards, read with typed cells."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest


def test_typed_cells_gives_uint16_arrays_of_the_record_shape(synthetic_shards):
    from datasets import load_dataset

    from subcell_hf.data.hf_datasets import typed_cells

    output, _ = synthetic_shards
    files = sorted(str(p) for p in output.glob("*.tar"))
    records = typed_cells(load_dataset("webdataset", data_files=files, split="train"))
    first = records[0]
    cells, masks = first["cells.npy"], first["masks.npy"]
    assert cells.dtype == np.uint16 and masks.dtype == bool
    assert cells.shape[1:] == (4, 32, 32) and masks.shape == (cells.shape[0], 32, 32)
    # the same pixels as the .npy inside the tar
    with tarfile.open(files[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name == f"{first['__key__']}.cells.npy")
        expected = np.lib.format.read_array(io.BytesIO(tar.extractfile(member).read()), allow_pickle=False)
    np.testing.assert_array_equal(cells, expected)
    assert len(records[:2]["cells.npy"]) == 2  # batched access too


def test_typed_cells_refuses_other_datasets():
    from datasets import Dataset

    from subcell_hf.data.hf_datasets import typed_cells

    with pytest.raises(ValueError, match="missing"):
        typed_cells(Dataset.from_dict({"image": [1, 2]}))
