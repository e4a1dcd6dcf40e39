"""Crop geometry on hand-made masks: centre, zero padding, downsampling, the skip rule, and manifest rows."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from subcell_hf.data.crops import CropOptions, FieldError, crop_cells, crop_window, find_cells, read_field
from subcell_hf.data.io import write_image


def undilated(**options) -> CropOptions:
    """Crop options with the cell masks kept exact (no dilation), so that a mask tells the crop geometry."""
    return CropOptions(mask_dilation=0, **options)


def coordinate_field(height=100, width=100, channels=2, dtype=np.uint16):
    """Pixel value = row * 256 + column (+ 1 per channel), so every crop pixel tells where it came from."""
    rows, columns = np.indices((height, width))
    base = rows * 256 + columns
    return np.stack([base + k for k in range(channels)]).astype(dtype)


@pytest.fixture
def mask():
    mask = np.zeros((100, 100), dtype=np.uint16)
    mask[40:50, 30:46] = 1  # well inside: bbox (40, 30, 50, 46), centre (45, 38)
    mask[2:8, 3:9] = 2  # near the top-left corner, not touching it: window leaves the field
    mask[0:5, 60:70] = 3  # touches the top edge
    mask[80:82, 80:82] = 4  # 4 pixels: too small
    return mask


def test_crop_is_centred_on_the_bounding_box(mask):
    channels = coordinate_field()
    crops = {c.cell_id: c for c in crop_cells(channels, mask, undilated(size=20, output_size=20, min_area=10))}
    cell = crops[1]
    assert cell.bbox == (40, 30, 50, 46)
    assert crop_window(cell.bbox, 20) == (35, 28)
    assert cell.image.dtype == np.uint16 and cell.image.shape == (2, 20, 20)
    np.testing.assert_array_equal(cell.image, channels[:, 35:55, 28:48])
    expected_mask = np.zeros((20, 20), bool)
    expected_mask[5:15, 2:18] = True
    np.testing.assert_array_equal(cell.mask, expected_mask)
    assert cell.centroid == pytest.approx((44.5, 37.5)) and cell.area == 160


def test_window_outside_the_field_is_zero_padded(mask):
    channels = coordinate_field()
    cell = {c.cell_id: c for c in crop_cells(channels, mask, undilated(size=20, output_size=20, min_area=10))}[2]
    assert crop_window(cell.bbox, 20) == (-5, -4)
    assert (cell.image[:, :5, :] == 0).all() and (cell.image[:, :, :4] == 0).all()
    np.testing.assert_array_equal(cell.image[:, 5:, 4:], channels[:, 0:15, 0:16])
    assert cell.mask.sum() == 36 and cell.mask[7:13, 7:13].all()


def test_downsampling_is_the_block_mean_in_the_input_dtype(mask):
    channels = coordinate_field()
    full = {c.cell_id: c for c in crop_cells(channels, mask, undilated(size=20, output_size=20, min_area=10))}[1]
    half = {c.cell_id: c for c in crop_cells(channels, mask, undilated(size=20, output_size=10, min_area=10))}[1]
    assert half.image.shape == (2, 10, 10) and half.image.dtype == np.uint16
    block_mean = full.image.astype(np.float64).reshape(2, 10, 2, 10, 2).mean(axis=(2, 4))
    np.testing.assert_array_equal(half.image, np.rint(block_mean).astype(np.uint16))
    # the mask keeps a block when at least half of it is the cell
    np.testing.assert_array_equal(half.mask, full.mask.reshape(10, 2, 10, 2).mean(axis=(1, 3)) >= 0.5)


def test_non_integer_downsampling_averages_areas(mask):
    ramp = np.broadcast_to(np.arange(100, dtype=np.float32), (1, 100, 100)).copy()
    cell = {c.cell_id: c for c in crop_cells(ramp, mask, undilated(size=30, output_size=20, min_area=10))}[1]
    left = crop_window(cell.bbox, 30)[1]
    # output pixel k averages input [1.5k, 1.5k + 1.5): whole pixels count fully, the cut one by its overlap
    expected = [
        (left + 1.5 * k + 1 / 3) if k % 2 == 0 else (left + 1.5 * k - 0.5 + 2 / 3) for k in range(20)
    ]
    np.testing.assert_allclose(cell.image[0, 10], expected, atol=1e-4)


def test_skip_rule_border_and_small_cells(mask):
    selection = find_cells(mask, min_area=10, skip_border=True)
    assert [c.cell_id for c in selection.cells] == [1, 2]
    assert (selection.skipped_border, selection.skipped_small) == (1, 1)
    kept = find_cells(mask, min_area=4, skip_border=False)
    assert [c.cell_id for c in kept.cells] == [1, 2, 3, 4]
    assert [c.area for c in kept.cells] == [160, 36, 50, 4]


def test_uint8_fields_stay_uint8(mask):
    crops = crop_cells(coordinate_field(dtype=np.uint8), mask, undilated(size=20, output_size=10, min_area=10))
    assert {c.image.dtype for c in crops} == {np.dtype(np.uint8)}


def test_bad_inputs_are_rejected(mask):
    with pytest.raises(ValueError, match=r"mask: expected shape \(100, 100\)"):
        crop_cells(coordinate_field(), mask[:50], undilated(size=20, output_size=10))
    with pytest.raises(ValueError, match="integer label image"):
        find_cells(mask.astype(bool))


def write_row(tmp_path, shapes=None, mask_shape=(32, 32)):
    shapes = shapes or {}
    row = {}
    for name in ("dna", "protein"):
        row[name] = str(write_image(tmp_path / f"{name}.png", np.ones(shapes.get(name, (32, 32)), np.uint16)))
    mask = np.zeros(mask_shape, np.uint16)
    mask[10:20, 10:20] = 1
    row["mask"] = str(write_image(tmp_path / "mask.png", mask))
    return row


def test_read_field_stacks_channels_in_the_requested_order(tmp_path):
    row = write_row(tmp_path)
    channels, mask = read_field(row, ["dna", "protein"])
    assert channels.shape == (2, 32, 32) and channels.dtype == np.uint16
    assert mask.max() == 1


def test_read_field_names_the_file_and_the_mismatch(tmp_path):
    row = write_row(tmp_path, shapes={"protein": (32, 30)})
    mismatch = r"channel 'protein' \(.*protein.png\): shape \(32, 30\) differs from channel 'dna' \(\(32, 32\)\)"
    with pytest.raises(FieldError, match=mismatch):
        read_field(row, ["dna", "protein"])
    row = write_row(tmp_path, mask_shape=(16, 16))
    wrong_mask = r"mask \(.*mask.png\): expected shape \(32, 32\) \(the channels' size\), found \(16, 16\)"
    with pytest.raises(FieldError, match=wrong_mask):
        read_field(row, ["dna", "protein"])
    row = write_row(tmp_path) | {"protein": str(tmp_path / "gone.png")}
    with pytest.raises(FieldError, match="protein: .*gone.png: file not found"):
        read_field(row, ["dna", "protein"])


def test_mask_is_dilated_at_native_resolution_before_downsampling():
    """The release's writer dilated each stored cell mask by 7 native pixels (a disk), then downsampled."""
    from subcell_hf.data.crops import crop_cell, dilate

    mask = np.zeros((100, 100), dtype=np.uint16)
    mask[50, 50] = 1  # a one-pixel cell: its dilated mask is the disk of radius 7
    mask[50, 60] = 2  # a neighbour stays outside cell 1's own mask unless within 7 px
    channels = coordinate_field()
    cell = find_cells(mask, min_area=1).cells[0]
    exact = crop_cell(channels, mask, cell, undilated(size=40, output_size=40))
    dilated = crop_cell(channels, mask, cell, CropOptions(size=40, output_size=40, mask_dilation=7))
    assert exact.mask.sum() == 1
    rows, columns = np.indices((40, 40))
    centre = tuple(int(v[0]) for v in np.nonzero(exact.mask))
    disk = (rows - centre[0]) ** 2 + (columns - centre[1]) ** 2 <= 49
    np.testing.assert_array_equal(dilated.mask, disk)
    assert dilated.mask.sum() == 149  # lattice points within radius 7
    half = crop_cell(channels, mask, cell, CropOptions(size=40, output_size=20, mask_dilation=7))
    np.testing.assert_array_equal(half.mask, dilated.mask.reshape(20, 2, 20, 2).mean(axis=(1, 3)) >= 0.5)
    np.testing.assert_array_equal(dilate(np.zeros((5, 5), bool), 3), np.zeros((5, 5), bool))


def test_shards_store_dilated_masks(synthetic_manifest, tmp_path):
    from subcell_hf.data.shards import iter_records, write_shards

    from .conftest import CROP

    import pandas as pd

    table = pd.read_csv(synthetic_manifest).iloc[:1]
    crop = dataclasses.replace(CROP["crop"], output_size=64)
    options = dict(num_workers=0, show_progress=False)
    exact = write_shards(table, tmp_path / "exact", crop=dataclasses.replace(crop, mask_dilation=0), **options)
    dilated = write_shards(table, tmp_path / "dilated", crop=crop, **options)  # the default: 7 px
    assert dilated.options["mask_dilation"] == 7 and exact.num_cells == dilated.num_cells
    area = {d: sum(int(r["masks"].sum()) for r in iter_records(tmp_path / d)) for d in ("exact", "dilated")}
    assert area["dilated"] > 1.3 * area["exact"]


def test_crop_options_are_checked_once_naming_the_field_the_expected_and_the_found_value():
    assert CropOptions() == CropOptions(size=896, output_size=448, min_area=500, skip_border=True, mask_dilation=7)
    assert CropOptions(size=128).output_size == 128  # 448 unless the window is smaller: never an upsampling
    for options, message in (
        (dict(size=0), "CropOptions.size: expected an integer >= 1, found 0"),
        (dict(size=64.0), "CropOptions.size: expected an integer >= 1, found 64.0"),
        (dict(size=64, output_size=128), "CropOptions.output_size: expected at most size (64)"),
        (dict(min_area=-1), "CropOptions.min_area: expected an integer >= 0, found -1"),
        (dict(mask_dilation=True), "CropOptions.mask_dilation: expected an integer >= 0, found True"),
        (dict(skip_border="no"), "CropOptions.skip_border: expected true or false, found 'no'"),
    ):
        with pytest.raises(ValueError, match=re.escape(message)):
            CropOptions(**options)
    with pytest.raises(dataclasses.FrozenInstanceError):
        CropOptions().size = 1
