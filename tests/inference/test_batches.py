"""CellBatches: raw integer crops min-max scaled on the device give the processor's pixel values exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from subcell_hf.inference.chunks import plan_chunks
from subcell_hf.inference.embed import CellBatches, model_inputs
from subcell_hf.inference.inputs import Cell, CellSource
from subcell_hf.models import SubCellImageProcessor


class ArraySource(CellSource):
    def __init__(self, arrays):
        super().__init__(["microtubules", "er", "dna", "protein"])
        self.arrays = arrays

    def __len__(self):
        return len(self.arrays)

    def iter_cells(self, index):
        yield Cell(f"cell{index}", self.arrays[index], f"item {index}")


def _inputs(batches: CellBatches) -> tuple[dict[str, torch.Tensor], list[bool]]:
    values, normalized = {}, []
    for piece in batches:
        if piece["end"]:
            continue
        normalized.append(piece["normalized"])
        pixels = model_inputs(piece, torch.device("cpu"), batches.processor)
        values.update({cell["id"]: p for cell, p in zip(piece["cells"], pixels)})
    return values, normalized


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_raw_transfer_equals_processor(dtype):
    rng = np.random.default_rng(0)
    high = {np.uint8: 255, np.uint16: 65536}.get(dtype, 4000)  # uint16 above 32767: the int16-bit widening
    arrays = [(rng.integers(0, high, (4, 32, 32)) + (i == 2) * 100).astype(dtype) for i in range(5)]
    processor = SubCellImageProcessor()
    chunks = plan_chunks(len(arrays), 5)
    raw, raw_flags = _inputs(CellBatches(ArraySource(arrays), processor, chunks, batch_size=2))
    reference, reference_flags = _inputs(CellBatches(ArraySource(arrays), processor, chunks, 2, raw_transfer=False))
    assert raw_flags == [dtype == np.float32] * 3  # floats keep the processor path (its finiteness check)
    assert reference_flags == [True] * 3
    assert sorted(raw) == sorted(reference) == [f"cell{i}" for i in range(5)]
    for name, pixels in raw.items():
        assert pixels.dtype == torch.float32
        assert torch.equal(pixels, reference[name])
        assert torch.equal(pixels, processor(arrays[int(name[4:])])["pixel_values"][0])
    batch = next(iter(CellBatches(ArraySource(arrays), processor, chunks, batch_size=2)))
    if dtype != np.float32:
        assert batch["pixel_values"].dtype == torch.from_numpy(arrays[0]).dtype  # travels in its own type


def test_resize_and_mixed_types_keep_order_and_processor_path():
    rng = np.random.default_rng(1)
    arrays = [rng.integers(0, 255, (4, 48, 48)).astype(np.uint8 if i % 2 else np.uint16) for i in range(4)]
    processor = SubCellImageProcessor()
    chunks = plan_chunks(len(arrays), 4)
    resized, flags = _inputs(CellBatches(ArraySource(arrays), processor, chunks, 4, {"do_resize": True, "size": 32}))
    assert flags == [True]  # resizing stays with the processor in the worker
    assert resized["cell1"].shape == (4, 32, 32)
    mixed = [piece for piece in CellBatches(ArraySource(arrays), processor, chunks, 4) if not piece["end"]]
    assert [[c["id"] for c in piece["cells"]] for piece in mixed] == [["cell0", "cell1", "cell2", "cell3"]]
    assert [piece["order"].tolist() for piece in mixed] == [[0, 1, 2, 3]]
    assert mixed[0]["pixel_values"].dtype == torch.uint16 and not mixed[0]["normalized"]  # widened, exact


@pytest.mark.parametrize("kinds", [(np.uint8, np.uint16), (np.uint16, np.float32)])
def test_batches_do_not_depend_on_raw_transfer(kinds):
    """Mixed pixel types share batches either way, so the numbers never depend on the workers (the CPU decides
    raw transfer by the number of workers)."""
    rng = np.random.default_rng(2)
    arrays = [rng.integers(0, 255, (4, 32, 32)).astype(kinds[i % 2]) for i in range(4)]
    processor = SubCellImageProcessor()
    chunks = plan_chunks(len(arrays), 4)
    raw = [p for p in CellBatches(ArraySource(arrays), processor, chunks, 3) if not p["end"]]
    reference = [p for p in CellBatches(ArraySource(arrays), processor, chunks, 3, raw_transfer=False) if not p["end"]]
    assert [p["order"].tolist() for p in raw] == [p["order"].tolist() for p in reference] == [[0, 1, 2], [3]]
    for piece, expected in zip(raw, reference):
        assert torch.equal(model_inputs(piece, torch.device("cpu"), processor), expected["pixel_values"])
