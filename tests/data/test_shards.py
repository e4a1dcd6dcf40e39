"""Writing shards from a manifest (broken rows, record splitting, resume) and reading them back three ways."""

from __future__ import annotations

import json
import shutil
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from subcell_hf.data import shards as shards_module
from subcell_hf.data.io import write_image
from subcell_hf.data.manifest import antibody_id
from subcell_hf.data.shards import deal_into_parts, iter_records, list_shards, record_key, write_shards
from subcell_hf.models import LOCALIZATION_CLASSES, PRETRAINING_CLASSES

from .conftest import CROP


def records_by_key(folder):
    return {record["key"]: record for record in iter_records(folder)}


def test_records_hold_every_kept_cell_with_metadata(synthetic_manifest, synthetic_shards):
    folder, summary = synthetic_shards
    table = pd.read_csv(synthetic_manifest)
    records = list(iter_records(folder))
    assert summary.failed_rows == [] and summary.num_fields == 6
    assert len(records) == summary.num_records and sum(len(r["cells"]) for r in records) == summary.num_cells > 60
    assert summary.shards == [f"shard-{i:06d}.tar" for i in range(len(summary.shards))]
    assert len(summary.shards) == -(-summary.num_records // 4)
    for record in records:
        cells, masks, metadata = record["cells"], record["masks"], record["metadata"]
        assert cells.dtype == np.uint16 and cells.shape[1:] == (4, 32, 32) and len(cells) >= 1
        assert masks.dtype == bool and masks.shape == (len(cells), 32, 32) and masks.any(axis=(1, 2)).all()
        assert record["channels"] == ["microtubules", "er", "dna", "protein"]
        assert record["antibody_id"] == antibody_id(record["antibody"])
        fields = table[table["antibody"] == record["antibody"]]
        assert {cell["image_id"] for cell in metadata} <= set(fields["image_id"])
        location = fields["locations"].iloc[0]
        for cell in metadata:
            assert cell["locations"] == [location]
            assert [PRETRAINING_CLASSES[i] for i, v in enumerate(cell["labels"]) if v] == [location]
            assert [LOCALIZATION_CLASSES[i] for i, v in enumerate(cell["localization_labels"]) if v] == [location]
            assert cell["plate_position"] == f"{cell['plate']}/{cell['well']}"
            top, left, bottom, right = cell["bbox"]
            assert 0 < top < bottom <= 255 and 0 < left < right <= 255  # half-open; border cells were skipped


def test_each_antibody_is_four_parts_spanning_its_fields_of_view(synthetic_shards):
    """The release's sampling unit: 4 near-equal parts per antibody, dealt over its fields of view."""
    folder, summary = synthetic_shards
    by_antibody = {}
    for record in iter_records(folder):
        by_antibody.setdefault(record["antibody"], []).append(record)
    assert len(by_antibody) == 3 and summary.num_records == 12 == summary.records_per_epoch
    for antibody, parts in by_antibody.items():
        sizes = [len(p["cells"]) for p in parts]
        assert len(parts) == parts[0]["num_parts"] == 4 and parts[0]["mult"] == 1
        assert max(sizes) - min(sizes) <= 1
        assert [p["key"] for p in parts] == [record_key(antibody, i) for i in range(len(parts))]
        fields = {c["image_id"] for p in parts for c in p["metadata"]}
        assert len(fields) == 2
        for part in parts:  # every part holds cells of each field of view (each has >= 4 cells)
            assert {c["image_id"] for c in part["metadata"]} == fields


def test_mult_column_repeats_an_antibody_per_epoch(synthetic_manifest, tmp_path):
    table = pd.read_csv(synthetic_manifest)
    first = table["antibody"].iloc[0]
    table["mult"] = np.where(table["antibody"] == first, 3, 1)
    summary = write_shards(table, tmp_path / "out", num_workers=0, show_progress=False, **CROP)
    assert summary.num_records == 12 and summary.records_per_epoch == 4 * 3 + 8
    assert {r["antibody"]: r["mult"] for r in iter_records(tmp_path / "out")}[first] == 3
    table.loc[table.index[table["antibody"] == first][0], "mult"] = 2
    with pytest.raises(ValueError, match=rf"antibody '{first}' has mult 3, an earlier row has 2; mult is per antibody"):
        write_shards(table, tmp_path / "bad", num_workers=0, show_progress=False, **CROP)


def test_deal_into_parts_spreads_every_big_group_over_all_parts():
    groups = ["a"] * 7 + ["b"] * 2 + ["c"] * 3
    parts = deal_into_parts(groups, 3)
    assert sorted(sum(parts, [])) == list(range(12)) and [len(p) for p in parts] == [4, 4, 4]
    for part in parts:
        assert {"a", "c"} <= {groups[i] for i in part}  # groups with >= 3 items reach every part
    assert deal_into_parts(["a", "b"], 1) == [[0, 1]]
    assert record_key("HPA.1/x", 2).startswith("HPA_1_x_") and "." not in record_key("HPA.1/x", 2)


def test_broken_rows_are_reported_and_the_rest_is_written(synthetic_manifest, tmp_path):
    table = pd.read_csv(synthetic_manifest)
    table.loc[1, "protein"] = str(tmp_path / "missing.png")
    table.loc[2, "mask"] = str(write_image(tmp_path / "small_mask.png", np.ones((128, 128), np.uint16)))
    table.loc[3, "er"] = str(write_image(tmp_path / "narrow.png", np.ones((256, 200), np.uint16)))
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    table.loc[4, "dna"] = str(tmp_path / "corrupt.png")
    table.loc[5, "locations"] = "Nucleoplasm;Not a place"
    manifest = tmp_path / "manifest.csv"
    table.to_csv(manifest, index=False)

    summary = write_shards(manifest, tmp_path / "out", num_workers=0, show_progress=False, **CROP)

    reasons = {f.row: f.reason for f in summary.failed_rows}
    assert sorted(reasons) == [1, 2, 3, 4, 5]
    assert "missing.png: file not found" in reasons[1]
    assert "expected shape (256, 256) (the channels' size), found (128, 128)" in reasons[2]
    assert "shape (256, 200) differs from channel 'microtubules' ((256, 256))" in reasons[3]
    assert "corrupt.png: unreadable image" in reasons[4]
    assert "unknown location 'Not a place'" in reasons[5]
    assert summary.num_fields == 1 and summary.num_cells > 0
    assert {c["image_id"] for r in iter_records(tmp_path / "out") for c in r["metadata"]} == {table.loc[0, "image_id"]}
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert [(f["row"], f["image_id"]) for f in saved["failed_rows"]][0] == (1, table.loc[1, "image_id"])


def test_parallel_workers_write_the_same_records(synthetic_manifest, synthetic_shards, tmp_path):
    folder, _ = synthetic_shards
    write_shards(
        synthetic_manifest, tmp_path, records_per_shard=4, num_workers=2,
        show_progress=False, **CROP,
    )
    serial, parallel = records_by_key(folder), records_by_key(tmp_path)
    assert serial.keys() == parallel.keys()
    for key in serial:
        np.testing.assert_array_equal(serial[key]["cells"], parallel[key]["cells"])
        assert serial[key]["metadata"] == parallel[key]["metadata"]


def test_rerun_resumes_without_rewriting_finished_shards(synthetic_manifest, synthetic_shards, tmp_path, monkeypatch):
    reference = records_by_key(synthetic_shards[0])
    options = dict(records_per_shard=4, num_workers=0, show_progress=False, **CROP)
    real_build_records = shards_module.build_records

    def crash_on_last_antibody(antibody, *args, **kwargs):
        if antibody == "HPA000002":
            raise KeyboardInterrupt
        return real_build_records(antibody, *args, **kwargs)

    monkeypatch.setattr(shards_module, "build_records", crash_on_last_antibody)
    with pytest.raises(KeyboardInterrupt):
        write_shards(synthetic_manifest, tmp_path, **options)
    monkeypatch.undo()
    finished = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard-*.tar")}
    assert finished and not list(tmp_path.glob("*.partial"))

    summary = write_shards(synthetic_manifest, tmp_path, **options)
    assert summary.resumed_shards == len(finished)
    assert {name: (tmp_path / name).stat().st_mtime_ns for name in finished} == finished  # untouched
    resumed = records_by_key(tmp_path)
    assert resumed.keys() == reference.keys()
    assert all(np.array_equal(resumed[k]["cells"], reference[k]["cells"]) for k in reference)

    again = write_shards(synthetic_manifest, tmp_path, **options)  # nothing left to do
    assert again.resumed_shards == len(summary.shards) and again.num_cells == summary.num_cells


def test_other_inputs_refuse_to_mix_unless_overwrite(synthetic_manifest, synthetic_shards, tmp_path):
    shutil.copytree(synthetic_shards[0], tmp_path / "copy")
    with pytest.raises(FileExistsError, match="another manifest or with other options"):
        write_shards(synthetic_manifest, tmp_path / "copy", parts_per_antibody=2, show_progress=False, **CROP)
    summary = write_shards(
        synthetic_manifest, tmp_path / "copy", parts_per_antibody=2, num_workers=0, overwrite=True,
        show_progress=False, **CROP,
    )
    assert {r["num_parts"] for r in iter_records(tmp_path / "copy")} == {2} and summary.resumed_shards == 0


def test_channels_must_follow_the_hpa_order(synthetic_manifest, tmp_path):
    expected = (r"channel_names: expected channels \['dna', 'protein'\], found \['protein', 'dna'\]; give distinct "
                r"HPA channels in the order \['microtubules', 'er', 'dna', 'protein'\]")
    with pytest.raises(ValueError, match=expected):
        write_shards(synthetic_manifest, tmp_path, channel_names=["protein", "dna"], show_progress=False, **CROP)
    with pytest.raises(ValueError, match=r"expected channels \['dna'\], found \['dna', 'nucleus'\]"):
        write_shards(synthetic_manifest, tmp_path, channel_names=["dna", "nucleus"], show_progress=False, **CROP)


def test_webdataset_reads_the_shards(synthetic_shards):
    import webdataset as wds

    folder, summary = synthetic_shards
    reference = records_by_key(folder)
    dataset = wds.WebDataset(list_shards(folder), shardshuffle=False).decode()
    samples = list(dataset)
    assert len(samples) == summary.num_records
    for sample in samples:
        np.testing.assert_array_equal(sample["cells.npy"], reference[sample["__key__"]]["cells"])
        assert sample["json"]["antibody"] == reference[sample["__key__"]]["antibody"]


def test_datasets_load_dataset_reads_the_shards(synthetic_shards):
    from datasets import load_dataset

    folder, summary = synthetic_shards
    reference = records_by_key(folder)
    dataset = load_dataset("webdataset", data_files={"train": list_shards(folder)}, split="train")
    assert len(dataset) == summary.num_records
    assert {"cells.npy", "masks.npy", "json"} <= set(dataset.column_names)
    row = dataset.with_format("numpy")[0]
    record = reference[row["__key__"]]
    np.testing.assert_array_equal(np.asarray(row["cells.npy"]).astype(np.uint16), record["cells"])
    np.testing.assert_array_equal(np.asarray(row["masks.npy"]).astype(bool), record["masks"])
    assert dataset[0]["json"]["cells"][0]["labels"] == reference[dataset[0]["__key__"]]["metadata"][0]["labels"]


def test_cli_synth_then_shards(tmp_path, capsys):
    from subcell_hf.cli import main

    assert main(["synth", "--output", str(tmp_path / "synth"), "--num_fields", "2", "--num_antibodies", "2",
                 "--image_size", "128"]) == 0
    manifest = json.loads(capsys.readouterr().out)["manifest"]
    table = pd.read_csv(manifest)
    table.loc[1, "dna"] = "nowhere.png"
    table.to_csv(manifest, index=False)
    preset = tmp_path / "shards.yaml"  # a YAML preset with a nested section; the flags override it
    preset.write_text("crop:\n  size: 32\n  output_size: 16\n  min_area: 100000\nnum_workers: 0\n")
    code = main(["shards", "--config_path", str(preset), "--manifest", manifest, "--output", str(tmp_path / "shards"),
                 "--crop.min_area", "50"])
    captured = capsys.readouterr()
    assert code == 1 and "row 1 (field00001) skipped: " in captured.err and "nowhere.png" in captured.err
    assert json.loads(captured.out)["num_records"] == 4  # one antibody left: its 4 parts (min_area 50, not 100000)
    summary = json.loads((tmp_path / "shards" / "summary.json").read_text())
    assert {k: summary["options"][k] for k in ("crop_size", "output_size", "min_area", "mask_dilation")} == {
        "crop_size": 32, "output_size": 16, "min_area": 50, "mask_dilation": 7}
    # one check of the crop options, naming the field, the expected and the found value; nothing written
    code = main(["shards", "--manifest", manifest, "--output", str(tmp_path / "bad"), "--crop.size", "32",
                 "--crop.output_size", "64"])
    assert code == 2 and not (tmp_path / "bad").exists()
    error = capsys.readouterr().err
    assert "CropOptions.output_size: expected at most size (32)" in error and "found 64" in error
