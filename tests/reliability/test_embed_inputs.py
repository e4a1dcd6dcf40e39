"""Embedding inputs: prefixes naming one file collide, fixed or changed images are recomputed on rerun, the same
model by another path resumes, bad sizes and malformed rows are errors, one corrupt shard record loses only
itself (issue 10, defects 7, 8, 9 and 10)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from subcell_hf.cli import main
from subcell_hf.data.crops import CropOptions
from subcell_hf.data.io import write_image
from subcell_hf.inference import embed
from subcell_hf.inference.inputs import WrapperCsvSource
from subcell_hf.models import HPA_CHANNELS
from tests.utils import corrupt_shard_record
from tests.inference.conftest import write_crop_files, write_wrapper_csv

FAST = dict(num_workers=0, progress=False, chunk_size=1, formats=("h5ad",))


@pytest.fixture
def three_cells(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{**write_crop_files(tmp_path, f"cell{i}", rng), "output_prefix": f"cell{i}"} for i in range(3)]
    return tmp_path, rows


def test_prefixes_naming_the_same_file_are_duplicates(three_cells):
    folder, rows = three_cells
    for index, prefix in enumerate(["a", "./a", "a/"]):
        rows[index]["output_prefix"] = prefix
    with pytest.raises(ValueError, match="repeats line"):
        WrapperCsvSource(write_wrapper_csv(folder, rows), HPA_CHANNELS)


def test_a_fixed_image_is_retried_and_an_image_changed_in_place_recomputed(tiny_converted, three_cells):
    folder, rows = three_cells
    missing = folder / rows[1]["protein"]
    good = missing.read_bytes()
    missing.unlink()
    csv = write_wrapper_csv(folder, rows)
    first = embed(tiny_converted, csv, folder / "out", **FAST)
    assert first.num_cells == 2 and len(first.failures) == 1
    missing.write_bytes(good)  # the user fixes the image and reruns
    second = embed(tiny_converted, csv, folder / "out", **FAST)
    assert second.num_cells == 3 and not second.failures and second.chunks_computed == 1
    changed = folder / rows[2]["dna"]  # rewritten in place with other pixels
    write_image(changed, np.zeros((64, 64), np.uint16) + 1000)
    third = embed(tiny_converted, csv, folder / "out", **FAST)
    assert third.chunks_computed == 1 and third.chunks_skipped == 2
    fresh = embed(tiny_converted, csv, folder / "fresh", **FAST)
    np.testing.assert_array_equal(third.table.embeddings, fresh.table.embeddings)


def test_the_same_model_by_another_path_resumes(tiny_converted, three_cells):
    folder, rows = three_cells
    csv = write_wrapper_csv(folder, rows)
    embed(tiny_converted, csv, folder / "out", **FAST)
    elsewhere = folder / "same_model"
    shutil.copytree(tiny_converted, elsewhere)
    again = embed(elsewhere, csv, folder / "out", **FAST)
    assert again.chunks_computed == 0 and again.chunks_skipped == 3


@pytest.mark.parametrize("option", [["--chunk_size", "0"], ["--size", "0"], ["--size", "-16"]])
def test_zero_or_negative_sizes_are_errors(tiny_converted, three_cells, option, capsys):
    folder, rows = three_cells
    csv = write_wrapper_csv(folder, rows)
    status = main(["embed", "--model", str(tiny_converted), "--inputs", str(csv), "--output", str(folder / "out"),
                   "--num_workers", "0", "--progress", "false", *option])
    assert status == 2
    assert "must be a positive integer" in capsys.readouterr().err


def test_extra_values_in_a_row_are_an_error_naming_the_line(three_cells):
    folder, rows = three_cells
    csv = write_wrapper_csv(folder, rows)
    lines = csv.read_text().splitlines()
    lines[-1] += ",surplus"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"line {len(lines)}: 6 values, expected at most 5"):
        WrapperCsvSource(csv, HPA_CHANNELS)


def test_a_folder_given_as_an_image_is_named_as_a_folder(tiny_converted, three_cells):
    folder, rows = three_cells
    rows[0]["dna"] = "crops"
    result = embed(tiny_converted, write_wrapper_csv(folder, rows), folder / "out", **FAST)
    assert len(result.failures) == 1 and "is a folder" in result.failures[0]["error"]


def test_one_corrupt_record_loses_only_itself(tiny_converted, tmp_path):
    from subcell_hf.data.shards import iter_records, write_shards
    from subcell_hf.data.synthetic import generate_dataset

    synthetic_fields = generate_dataset(tmp_path / "fields", num_fields=2, num_antibodies=2, image_size=256, seed=0,
                                        show_progress=False)
    write_shards(synthetic_fields, tmp_path / "shards", num_workers=0, show_progress=False, records_per_shard=100,
                 crop=CropOptions(size=64, output_size=64, min_area=100))
    shard = sorted((tmp_path / "shards").glob("shard-*.tar"))[0]
    good = list(iter_records(shard))
    assert len(good) >= 2
    first_key = corrupt_shard_record(shard)  # the first record's arrays become garbage
    errors = []
    kept = list(iter_records(shard, on_error=lambda url, key, error: errors.append(key)))
    assert len(kept) == len(good) - 1 and errors == [first_key]
    result = embed(tiny_converted, tmp_path / "shards", tmp_path / "out", **FAST)
    cells_lost = len(good[0]["metadata"])
    assert result.num_cells == sum(len(r["metadata"]) for r in good) - cells_lost
    assert len(result.failures) == 1 and first_key in result.failures[0]["source"]


def test_a_second_run_on_the_same_output_is_refused_while_the_first_runs(tiny_converted, three_cells, capsys):
    import fcntl

    folder, rows = three_cells
    csv = write_wrapper_csv(folder, rows)
    out = folder / "out"
    out.mkdir()
    with open(out / ".subcell_hf.lock", "a") as held:  # what a running `subcell-hf embed` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status = main(["embed", "--model", str(tiny_converted), "--inputs", str(csv), "--output", str(out),
                       "--num_workers", "0", "--progress", "false"])
    assert status == 2 and "another run is writing" in capsys.readouterr().err
    assert not (out / "chunks").exists()


def test_a_rerun_clears_the_temporaries_a_killed_run_left(tiny_converted, three_cells):
    folder, rows = three_cells
    out = folder / "out"
    (out / "sub").mkdir(parents=True)
    stale = [out / ".embeddings.h5ad.k3j_x9q2.partial.h5ad", out / "sub" / ".a_attention_map.png.abcdefgh.partial.png"]
    for path in stale:
        path.write_bytes(b"half")
    (out / "sub" / ".keep.partial").write_text("a user's file, not ours")
    embed(tiny_converted, write_wrapper_csv(folder, rows), out, **FAST)
    assert not any(path.exists() for path in stale) and (out / "sub" / ".keep.partial").exists()


def test_an_all_zero_crop_is_reported_not_classified(tiny_converted, three_cells):
    folder, rows = three_cells
    for channel in ("microtubules", "er", "dna", "protein"):
        write_image(folder / rows[0][channel], np.zeros((64, 64), np.uint16))
    result = embed(tiny_converted, write_wrapper_csv(folder, rows), folder / "out", **FAST)
    assert result.num_cells == 2 and "every channel is 0" in result.failures[0]["error"]
