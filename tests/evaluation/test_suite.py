"""The evaluation suite on in-memory labelled embeddings: which metric families run, and the results they make."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell_hf.evaluation import LabelledEmbeddings, evaluate_embeddings, localization_metrics, results_from_evaluation

DATASET = {"name": "Synthetic", "type": "synthetic", "split": "test"}


def _labelled(locations, probabilities=None, classes=()):
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"antibody": [f"HPA{i % 4}" for i in range(len(locations))], "locations": locations})
    return LabelledEmbeddings(
        rng.normal(size=(len(locations), 8)).astype(np.float32), obs, probabilities, list(classes)
    )


def test_encoder_only_gets_embedding_metrics_and_its_own_task():
    labelled = _labelled(["Nucleoli", "Cytosol;Nucleoli", "Cytosol", "Mitochondria"] * 5)
    evaluation = evaluate_embeddings(labelled, retrieval_groups="antibody")
    assert set(evaluation.metrics) == {"clustering", "retrieval"}
    assert evaluation.counts["clustering_cells"] == 15 and evaluation.counts["clusters"] == 3
    results = results_from_evaluation("me/encoder", evaluation, DATASET)
    assert results["task"]["type"] == "image-feature-extraction"
    assert [m["name"] for m in results["metrics"]][-2:] == [
        "Mean average precision (antibody retrieval)",
        "Nearest-neighbour accuracy (antibody retrieval)",
    ]


def test_localization_uses_the_model_classes_and_skips_cells_without_them():
    classes = ["Nucleoli", "Cytosol"]
    locations = ["Nucleoli", "Cytosol", "Nucleoli;Cytosol", "Mitochondria", "Cytosol", "Nucleoli"]
    probabilities = np.array([[0.9, 0.1], [0.2, 0.7], [0.6, 0.5], [0.9, 0.9], [0.3, 0.8], [0.4, 0.3]])
    evaluation = evaluate_embeddings(_labelled(locations, probabilities, classes), clustering=False)
    kept = [0, 1, 2, 4, 5]  # the Mitochondria cell has none of the model's classes
    expected = localization_metrics(np.array([[1, 0], [0, 1], [1, 1], [0, 1], [1, 0]]), probabilities[kept])
    assert evaluation.metrics == {"localization": expected}
    assert evaluation.counts["localization_cells"] == 5
    assert results_from_evaluation("me/model", evaluation, DATASET)["task"]["type"] == "image-classification"


def test_an_evaluation_without_any_metric_is_refused():
    evaluation = evaluate_embeddings(_labelled(["Nucleoli"] * 6))
    assert "fewer than 2 distinct single-location classes" in evaluation.notes[0]
    with pytest.raises(ValueError, match="no metric"):
        results_from_evaluation("me/encoder", evaluation, DATASET)
