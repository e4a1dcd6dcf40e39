"""The three input kinds: wrapper CSV parsing, per-row failures, fields of view, detection."""

from __future__ import annotations

import numpy as np
import pytest

from subcell_hf.data.io import read_image
from subcell_hf.inference.inputs import (
    Cell,
    FieldSource,
    InputFailure,
    WrapperCsvSource,
    cell_id_for,
    detect_kind,
    open_source,
)
from subcell_hf.models import HPA_CHANNELS
from tests.utils import write_crop_files, write_wrapper_csv

from .conftest import FIELD_OPTIONS


def test_wrapper_csv_reads_rows_in_channel_order_and_skips_comments(wrapper_csv):
    source = WrapperCsvSource(wrapper_csv, HPA_CHANNELS)
    assert len(source) == 6 and source.cells_per_item == 1
    assert [row.id for row in source.rows] == [f"cell{i}" for i in range(6)]
    assert [row.line for row in source.rows[:2]] == [2, 5]  # line 3 is a comment, line 4 blank
    (cell,) = source.iter_cells(2)
    assert isinstance(cell, Cell) and cell.id == "cell2" and cell.source == "path_list.csv line 6"
    root = wrapper_csv.parent
    expected = np.stack([read_image(root / f"crops/cell2_{c}.tif") for c in HPA_CHANNELS])
    np.testing.assert_array_equal(cell.pixels, expected)
    assert cell.pixels.dtype == np.uint16
    (eight_bit,) = source.iter_cells(1)
    assert eight_bit.pixels.dtype == np.uint8


def test_wrapper_csv_blank_channels_for_a_two_channel_variant(tmp_path):
    rng = np.random.default_rng(0)
    paths = write_crop_files(tmp_path, "c", rng)
    csv = write_wrapper_csv(tmp_path, [{"dna": paths["dna"], "protein": paths["protein"], "output_prefix": "c"}])
    source = WrapperCsvSource(csv, ["dna", "protein"])
    (cell,) = source.iter_cells(0)
    assert cell.pixels.shape == (2, 64, 64)
    assert source.unused_channels() == []
    # the same row read by a four-channel model: the blank columns are a per-row failure naming them
    (failure,) = WrapperCsvSource(csv, HPA_CHANNELS).iter_cells(0)
    assert isinstance(failure, InputFailure) and "r_image (microtubules) is blank" in failure.error


def test_wrapper_csv_header_comment_legacy_folder_and_metadata(tmp_path):
    rng = np.random.default_rng(0)
    p = write_crop_files(tmp_path, "c", rng)
    csv = tmp_path / "legacy.csv"
    csv.write_text(
        "#r_image,y_image,b_image,g_image,output_folder,output_prefix,condition\n"
        f"{p['microtubules']},{p['er']},{p['dna']},{p['protein']},plate1,cellA,treated\n"
    )
    source = WrapperCsvSource(csv, HPA_CHANNELS)
    (cell,) = source.iter_cells(0)
    assert cell.id == "plate1/cellA"
    assert cell.metadata["condition"] == "treated"


@pytest.mark.parametrize(
    "text, message",
    [
        ("r_image,y_image,b_image,output_prefix\n", "missing columns ['g_image']"),
        ("r_image,y_image,b_image,g_image,output_prefix\na,b,c,d,x\na,b,c,d,x\n", "'x' repeats line 2"),
        ("r_image,y_image,b_image,g_image,output_prefix\n# only a comment\n", "no rows"),
    ],
)
def test_wrapper_csv_fatal_problems_name_the_file_and_line(tmp_path, text, message):
    csv = tmp_path / "bad.csv"
    csv.write_text(text)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        WrapperCsvSource(csv, HPA_CHANNELS)


def test_bad_rows_become_failures_with_file_expected_and_found(broken_csv):
    source = WrapperCsvSource(broken_csv, HPA_CHANNELS)
    entries = [entry for index in range(len(source)) for entry in source.iter_cells(index)]
    kinds = [type(e).__name__ for e in entries]
    assert kinds == ["Cell", "InputFailure", "InputFailure", "Cell", "InputFailure"]
    missing, other_size, garbage = (e for e in entries if isinstance(e, InputFailure))
    assert "nowhere.png: file not found" in missing.error and missing.source == "path_list.csv line 5"
    assert "y_image (er" in other_size.error and "48x48, expected 64x64" in other_size.error
    assert "garbage.png: unreadable image" in garbage.error


def test_leading_slash_prefixes_name_subfolders_of_the_output_as_in_the_original_readme(tmp_path):
    p = write_crop_files(tmp_path, "c", np.random.default_rng(0))
    csv = tmp_path / "legacy.csv"
    csv.write_text(
        "r_image,y_image,b_image,g_image,output_folder,output_prefix\n"
        f"{p['microtubules']},{p['er']},{p['dna']},{p['protein']},,/subfolder_1/sample_1\n"
        f"{p['microtubules']},{p['er']},{p['dna']},{p['protein']},/abs/out,cell1_\n"
    )
    source = WrapperCsvSource(csv, HPA_CHANNELS)
    ids = [entry.id for index in range(len(source)) for entry in source.iter_cells(index)]
    assert ids == ["subfolder_1/sample_1", "abs/out/cell1_"]
    assert all(isinstance(entry, Cell) for index in range(len(source)) for entry in source.iter_cells(index))


def test_unsafe_prefix_is_a_failure(tmp_path):
    p = write_crop_files(tmp_path, "c", np.random.default_rng(0))
    csv = write_wrapper_csv(tmp_path, [{**p, "output_prefix": "../escape"}])
    (failure,) = WrapperCsvSource(csv, HPA_CHANNELS).iter_cells(0)
    assert isinstance(failure, InputFailure) and "without '..'" in failure.error


def test_fields_are_cropped_and_an_empty_mask_is_a_failure(synthetic_fields, tmp_path):
    import pandas as pd

    from subcell_hf.data.io import write_image

    table = pd.read_csv(synthetic_fields)
    empty_mask = tmp_path / "empty_mask.png"
    write_image(empty_mask, np.zeros((256, 256), np.uint16))
    table.loc[len(table)] = {**table.iloc[0].to_dict(), "image_id": "empty", "mask": str(empty_mask)}
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)

    source = FieldSource(manifest, HPA_CHANNELS, **FIELD_OPTIONS)
    cells = list(source.iter_cells(0))
    assert len(cells) > 5 and all(isinstance(c, Cell) for c in cells)
    first = cells[0]
    assert first.pixels.shape == (4, 64, 64) and first.pixels.dtype == np.uint16
    assert first.id == cell_id_for("field00000", first.metadata["cell_label"])
    assert {"antibody", "gene", "cell_line", "pattern", "bbox_top", "centroid_row"} <= set(first.metadata)
    (failure,) = source.iter_cells(2)
    assert isinstance(failure, InputFailure) and failure.id == "empty" and "no usable cells" in failure.error


def test_masked_cells_from_fields_are_the_masked_cells_of_their_shards(synthetic_fields, tmp_path):
    """One `CropOptions` for both: with mask_cells, a field's cell is zeroed outside the same (dilated) mask the
    shards written with these options store, so fields and shards give the same pixels."""
    import dataclasses

    from subcell_hf.data.shards import write_shards
    from subcell_hf.inference.inputs import ShardSource

    crop = FIELD_OPTIONS["crop"]
    write_shards(synthetic_fields, tmp_path / "shards", crop=crop, num_workers=0, show_progress=False)
    from_shards = ShardSource(tmp_path / "shards", HPA_CHANNELS, mask_cells=True)
    shard_cells = {c.id: c.pixels for i in range(len(from_shards)) for c in from_shards.iter_cells(i)}
    fields = FieldSource(synthetic_fields, HPA_CHANNELS, crop, mask_cells=True)
    field_cells = {c.id: c.pixels for i in range(len(fields)) for c in fields.iter_cells(i)}
    assert len(field_cells) > 10 and field_cells.keys() == shard_cells.keys()
    for cell_id, pixels in field_cells.items():
        np.testing.assert_array_equal(pixels, shard_cells[cell_id])
    exact = FieldSource(synthetic_fields, HPA_CHANNELS, dataclasses.replace(crop, mask_dilation=0), mask_cells=True)
    exact_cells = {c.id: c.pixels for c in exact.iter_cells(0)}
    assert all((exact_cells[i] <= field_cells[i]).all() for i in exact_cells)  # the exact mask keeps fewer pixels
    assert sum(int((exact_cells[i] > 0).sum()) for i in exact_cells) < sum(
        int((field_cells[i] > 0).sum()) for i in exact_cells)
    assert fields.describe()["mask_dilation"] == 7 and "mask_dilation" not in FieldSource(
        synthetic_fields, HPA_CHANNELS, crop).describe()  # unmasked runs keep their settings (they still resume)


def test_detect_kind(wrapper_csv, synthetic_fields, tmp_path):
    assert detect_kind(wrapper_csv) == "csv"
    assert detect_kind(synthetic_fields) == "fields"
    assert detect_kind(["a.tar", "b.tar"]) == "shards"
    other = tmp_path / "other.csv"
    other.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match="cannot tell the input kind"):
        open_source(other, HPA_CHANNELS)


def test_a_shard_rewritten_in_place_with_the_same_size_changes_the_fingerprint(tmp_path):
    """Resumed runs and embedding caches compare fingerprints; tar files are padded to 10 KiB blocks, so a
    regenerated shard often keeps its size."""
    import os
    import tarfile

    from subcell_hf.inference.inputs import ShardSource

    shard = tmp_path / "shard-000000.tar"
    for version, payload in enumerate((b"old pixels", b"new pixels")):
        member = tmp_path / "cell.npy"
        member.write_bytes(payload)
        with tarfile.open(shard, "w") as archive:
            archive.add(member, arcname="record.npy")
        os.utime(shard, ns=(10**18 + version, 10**18 + version))
        if version == 0:
            size, before = shard.stat().st_size, ShardSource(str(shard), HPA_CHANNELS).fingerprint()
    assert shard.stat().st_size == size
    assert ShardSource(str(shard), HPA_CHANNELS).fingerprint() != before
