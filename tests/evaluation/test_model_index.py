"""Results JSON: schema checks, atomic writing, and the model-index that huggingface_hub accepts."""

from __future__ import annotations

import json

import pytest
from huggingface_hub import ModelCard, ModelCardData

from subcell_hf.evaluation import (
    make_results,
    metric_entries,
    model_index_from_results,
    read_results,
    write_results,
)

DATASET = {"name": "Synthetic HPA", "type": "synthetic-hpa", "split": "test"}


def _results(model="subcell/dna-protein-vit-prots-pool"):
    metrics = metric_entries({"micro_average_precision": 0.8, "coverage_error": 2.5})
    return make_results(model, metrics, DATASET, source="subcell_hf recipes/evaluate_model.py on 64 cells")


def test_results_follow_the_agreed_schema():
    results = _results()
    assert set(results) == {"model", "task", "dataset", "metrics", "source"}
    assert results["task"] == {"type": "image-classification", "name": "Protein localization"}
    assert results["metrics"][0] == {
        "type": "micro_average_precision",
        "name": "Micro average precision",
        "value": 0.8,
    }
    assert metric_entries({"mean_average_precision": 0.5}, qualifier="antibody retrieval")[0]["name"] == (
        "Mean average precision (antibody retrieval)"
    )


def test_write_and_read_round_trip(tmp_path):
    path = write_results(_results(), tmp_path / "results" / "model.json")
    assert read_results(path) == _results()
    assert [p.name for p in path.parent.iterdir()] == ["model.json"]  # no temp file left behind


def test_invalid_results_name_the_field(tmp_path):
    broken = _results()
    broken["metrics"][1]["value"] = "high"
    with pytest.raises(ValueError, match=r"metrics\[1\]\.value.*a number.*'high'"):
        write_results(broken, tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()
    path = tmp_path / "no_split.json"
    results = _results()
    del results["dataset"]["split"]
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError, match=r"no_split\.json: field 'dataset\.split'"):
        read_results(path)


def test_model_index_round_trips_through_model_card_data(tmp_path):
    clustering = make_results(
        "subcell/dna-protein-vit-prots-pool",
        metric_entries({"adjusted_rand_index": 0.4}),
        DATASET,
        source="k-means",
        task={"type": "image-feature-extraction", "name": "Unsupervised clustering"},
    )
    model_index = model_index_from_results([_results(), clustering])
    card_data = ModelCardData(**{"model-index": model_index})
    assert card_data.model_name == "subcell/dna-protein-vit-prots-pool"
    assert [(r.task_type, r.metric_type, r.metric_value) for r in card_data.eval_results] == [
        ("image-classification", "micro_average_precision", 0.8),
        ("image-classification", "coverage_error", 2.5),
        ("image-feature-extraction", "adjusted_rand_index", 0.4),
    ]
    card = ModelCard.from_template(card_data, template_str="---\n{{ card_data }}\n---\n# Model\n")
    card.save(tmp_path / "README.md")
    reloaded = ModelCard.load(tmp_path / "README.md")
    assert reloaded.data.to_dict()["model-index"] == model_index


def test_model_index_refuses_mixed_models():
    with pytest.raises(ValueError, match="same model"):
        model_index_from_results([_results("a/b"), _results("c/d")])
