"""`recipes/train_classifiers.py` and `recipes/evaluate_model.py` end to end on tiny synthetic shards, in-process."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCardData
from transformers import AutoModelForImageClassification

from subcell_hf import SubCellImageProcessor, SubCellModel
from subcell_hf.data.crops import CropOptions
from subcell_hf.data.shards import write_shards
from subcell_hf.data.synthetic import generate_dataset
from subcell_hf.evaluation import published_split, read_labelled_embeddings, read_results
from tests.conftest import tiny_config
from tests.utils import corrupt_shard_record

pytestmark = pytest.mark.slow

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
EMBED_ARGS = ["--embedding.num_workers", "0", "--embedding.precision", "fp32"]


def recipe(name: str):
    return runpy.run_path(str(RECIPES / f"{name}.py"), run_name=f"recipe_{name}")["main"]


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread():
    """Tiny models run ~10x slower with 2 intra-op threads when other test processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def published_ids():
    """Real antibody ids of the published split: 3 train, 1 valid, 2 test (sorted, so the choice is fixed)."""
    split = published_split()
    train, valid, test = (sorted(split.antibodies[name]) for name in ("train", "valid", "test"))
    return train[:3] + valid[:1] + test[:2]


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """6 antibodies with 6 synthetic patterns named with real ids of the published split (3 train, 1 valid,
    2 test), 64-px crops: ~30 cells in 2 shards."""
    import pandas as pd

    root = tmp_path_factory.mktemp("synthetic")
    manifest = pd.read_csv(
        generate_dataset(
            root / "fields", num_fields=12, num_antibodies=6, image_size=256, cells_per_field=(8, 12),
            show_progress=False,
        ),
        dtype=str,
        keep_default_na=False,
    )
    synthetic = sorted(manifest["antibody"].unique())
    manifest["antibody"] = manifest["antibody"].map(dict(zip(synthetic, published_ids())))
    write_shards(
        manifest,
        root / "shards",
        crop=CropOptions(size=96, output_size=64, min_area=50),
        parts_per_antibody=1,  # one record per antibody: 2 shards of 3
        records_per_shard=3,
        num_workers=0,
        show_progress=False,
    )
    return root / "shards"


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("encoder")
    encoder = SubCellModel(tiny_config())
    encoder.save_pretrained(folder)
    SubCellImageProcessor.from_config(encoder.config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def trained(shards, encoder_dir, tmp_path_factory):
    output = tmp_path_factory.mktemp("classifiers")
    argv = [
        "--encoder",
        str(encoder_dir),
        "--shards",
        str(shards),
        "--output",
        str(output),
        "--classes",
        "present",
        "--num_classifiers",
        "2",
        "--training.batch_size",
        "8",
        "--training.max_epochs",
        "3",
        *EMBED_ARGS,
    ]
    assert recipe("train_classifiers")(argv) == 0  # --split published (the default)
    return output, argv


def test_train_classifiers_writes_an_ensemble_on_the_unchanged_encoder(trained, encoder_dir):
    output, _ = trained
    model = AutoModelForImageClassification.from_pretrained(output / "model")
    assert (output / "model" / "preprocessor_config.json").is_file()
    assert len(model.classifiers) == model.config.num_classifiers == 2
    cached = read_labelled_embeddings(output / "embeddings" / "embeddings.h5ad")
    present = {name for names in cached.locations() for name in names}
    assert set(model.config.id2label.values()) == present and len(present) == 6
    encoder = SubCellModel.from_pretrained(encoder_dir)
    torch.testing.assert_close(model.subcell.state_dict(), encoder.state_dict(), rtol=0, atol=0)
    log = json.loads((output / "training.json").read_text())
    assert [head["seed"] for head in log["heads"]] == [0, 1]
    # the published split selects exactly the 3 train + 1 valid antibodies; the 2 test antibodies are left out
    ids = published_ids()
    train_valid = np.isin(cached.antibodies, ids[:4])
    assert log["split"] == "published" and log["num_antibodies"] == 4 and log["num_cells"] == train_valid.sum()
    assert log["validation_cells"] == (cached.antibodies == ids[3]).sum()
    assert {name: entry["antibodies_found"] for name, entry in log["split_report"].items()} == {
        "train": 3, "valid": 1, "test": 2, "unlisted": 0
    }


def test_train_classifiers_that_skipped_a_record_says_so_and_exits_1(trained, shards, tmp_path, capsys):
    """A corrupt record of a test antibody is left out, the model is still written, and the run says so."""
    import shutil

    from subcell_hf.data.shards import iter_records

    copy = tmp_path / "shards"
    shutil.copytree(shards, copy)
    test_ids = set(published_ids()[4:])
    shard, key = next((path, record["key"]) for path in sorted(copy.glob("shard-*.tar"))
                      for record in iter_records(path) if record["antibody"] in test_ids)
    corrupt_shard_record(shard, key)
    _, argv = trained
    argv = [*argv, "--shards", str(copy), "--output", str(tmp_path / "out")]
    assert recipe("train_classifiers")(argv) == 1
    assert (tmp_path / "out" / "model" / "model.safetensors").is_file()
    log = json.loads((tmp_path / "out" / "training.json").read_text())
    assert log["failed_inputs"] == 1 and log["failures_listed_in"].endswith("summary.csv")
    assert "1 input(s) could not be read" in capsys.readouterr().err


def test_second_run_reuses_the_embedding_cache(trained):
    output, argv = trained
    chunks = sorted((output / "embeddings" / "chunks").glob("chunk-*.npz"))
    before = {path: path.stat().st_mtime_ns for path in chunks}
    assert len(before) == 2  # one chunk per shard
    assert recipe("train_classifiers")(argv) == 2  # the model folder exists: refused without --overwrite
    assert recipe("train_classifiers")(argv + ["--overwrite", "true"]) == 0
    assert {path: path.stat().st_mtime_ns for path in before} == before


def test_overwrite_recomputes_an_embedding_cache_of_another_encoder(trained, tmp_path):
    output, argv = trained
    torch.manual_seed(1)
    other = tmp_path / "other_encoder"
    encoder = SubCellModel(tiny_config())
    encoder.save_pretrained(other)
    SubCellImageProcessor.from_config(encoder.config).save_pretrained(other)
    before = read_labelled_embeddings(output / "embeddings" / "embeddings.h5ad").embeddings
    with_other = [str(other) if value == argv[argv.index("--encoder") + 1] else value for value in argv]
    assert recipe("train_classifiers")(with_other) == 2  # the cache holds another encoder's embeddings: refused
    assert recipe("train_classifiers")(with_other + ["--overwrite", "true"]) == 0
    after = read_labelled_embeddings(output / "embeddings" / "embeddings.h5ad").embeddings
    assert after.shape == before.shape and not np.allclose(after, before)
    model = AutoModelForImageClassification.from_pretrained(output / "model")
    torch.testing.assert_close(model.subcell.state_dict(), encoder.state_dict(), rtol=0, atol=0)


def test_evaluate_writes_results_and_model_index(trained, shards, tmp_path, capsys):
    output, _ = trained
    card_results = tmp_path / "hub_cards" / "results" / "tiny.json"
    argv = [
        "--model",
        str(output / "model"),
        "--shards",
        str(shards),
        "--output",
        str(tmp_path / "eval"),
        "--model_name",
        "synthetic/tiny-subcell",
        "--dataset.name",
        "Synthetic HPA",
        "--dataset.type",
        "synthetic-hpa",
        "--protocol.clustering",
        "[kmeans]",
        "--protocol.replicate_column",
        "antibody",
        "--protocol.profile_by",
        "[image_id]",
        "--protocol.null_size",
        "200",
        "--card_results",
        str(card_results),
        *EMBED_ARGS,
    ]
    assert recipe("evaluate_model")(argv) == 0
    results = read_results(tmp_path / "eval" / "results.json")
    assert read_results(card_results) == results
    assert results["task"] == {"type": "image-classification", "name": "Protein localization"}
    localization = [
        "micro_average_precision",
        "macro_average_precision",
        "label_ranking_average_precision",
        "coverage_error",
    ]
    retrieval = ("mean_average_precision", "fraction_retrieved", "nearest_neighbor_accuracy")
    types = [(m["type"], m.get("config")) for m in results["metrics"]]
    assert types == (
        [(t, "ensemble") for t in localization]
        + [(t, "seed-mean") for t in localization]
        + [(t, "kmeans") for t in ("adjusted_rand_index", "v_measure", "fowlkes_mallows")]
        + [(t, "replicate-retrieval") for t in retrieval]
    )
    values = {(m["type"], m.get("config")): m["value"] for m in results["metrics"]}
    assert 0 < values["micro_average_precision", "ensemble"] <= 1 and values["coverage_error", "ensemble"] >= 1
    # only the 2 test antibodies are scored; the protocol and the report travel with the numbers
    ids = published_ids()
    cached = read_labelled_embeddings(tmp_path / "eval" / "embeddings" / "embeddings.h5ad")
    assert results["report"]["counts"]["cells"] == np.isin(cached.antibodies, ids[4:]).sum()
    assert results["protocol"]["split"] == "published" and results["protocol"]["split_report"]["test"]["cells"] > 0
    assert results["report"]["localization"]["num_heads"] == 2
    report = (tmp_path / "eval" / "report.md").read_text()
    assert "## Localization: average precision per class" in report and "| seed 0 | seed 1 |" in report
    assert (tmp_path / "eval" / "per_class_average_precision.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "eval" / "replicate_retrieval.csv").is_file()
    model_index = yaml.safe_load((tmp_path / "eval" / "model-index.yaml").read_text())["model-index"]
    card_data = ModelCardData(**{"model-index": model_index})
    assert card_data.model_name == "synthetic/tiny-subcell"
    assert [r.metric_value for r in card_data.eval_results] == [m["value"] for m in results["metrics"]]
    assert "Micro average precision" in capsys.readouterr().out


def test_evaluate_reports_an_unknown_column(trained, shards, tmp_path, capsys):
    output, _ = trained
    argv = [
        "--model",
        str(output / "model"),
        "--shards",
        str(shards),
        "--output",
        str(tmp_path / "eval"),
        "--embedding.cache",
        str(output / "eval-cache"),
        "--protocol.clustering",
        "[]",
        "--protocol.replicate_column",
        "compound",
        *EMBED_ARGS,
    ]
    assert recipe("evaluate_model")(argv) == 2
    assert "no column ['compound']" in capsys.readouterr().err
    assert not (tmp_path / "eval" / "results.json").exists()


def test_a_split_of_which_the_shards_hold_no_antibody_is_an_error(trained, shards, tmp_path, capsys):
    output, _ = trained
    split_file = tmp_path / "split.csv"
    split_file.write_text("antibody,split\nCAB000001,train\nHPA000002,test\n")
    argv = [
        "--model",
        str(output / "model"),
        "--shards",
        str(shards),
        "--output",
        str(tmp_path / "eval"),
        "--embedding.cache",
        str(output / "eval-cache"),
        "--protocol.split",
        str(split_file),
        *EMBED_ARGS,
    ]
    assert recipe("evaluate_model")(argv) == 2
    assert "none of the 6 antibodies in the data is in the 'test' list" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, argv, message",
    [
        ("train_classifiers", ["--shards", "s", "--output", "o"], "Missing required field(s) `encoder`"),
        ("train_classifiers", ["--encoder", "e", "--shards", "s", "--output", "o", "--training.loss", "mse"],
         "the command line: loss must be one of ['bce', 'focal'], found 'mse'"),
        ("evaluate_model", ["--model", "m", "--shards", "s", "--output", "o", "--protocol.clustering", "[dbscan]"],
         "the command line: clustering methods must be among ('kmeans', 'leiden'), found ['dbscan']"),
        ("evaluate_model", ["--model", "m", "--shards", "s", "--output", "o", "--protocol.null_size", "many"],
         "the command line: protocol.null_size: Couldn't parse 'many' into an int"),
    ],
)
def test_a_bad_command_line_exits_2_naming_the_field(name, argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        recipe(name)(argv)
    assert stop.value.code == 2
    assert message in capsys.readouterr().err
