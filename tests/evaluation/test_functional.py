"""The metric functions against hand-computed values on tiny examples, and against scikit-learn on random ones."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from subcell_hf.evaluation import clustering_metrics, localization_metrics, retrieval_metrics

# 3 cells x 2 classes. Class 0 ranks P N P -> AP (1 + 2/3) / 2; class 1 ranks P N P -> the same. Pooled ranking
# P P N N P P -> micro AP (1 + 1 + 3/5 + 4/6) / 4 = 49/60. Cell 2 ranks its only label second -> LRAP row 1/2;
# coverage depths 2, 1, 2.
Y_TRUE = np.array([[1, 1], [0, 1], [1, 0]])
Y_SCORE = np.array([[0.9, 0.1], [0.6, 0.8], [0.3, 0.7]])


def test_localization_metrics_match_hand_computed_values():
    metrics = localization_metrics(Y_TRUE, Y_SCORE)
    assert metrics["micro_average_precision"] == pytest.approx(49 / 60)
    assert metrics["macro_average_precision"] == pytest.approx(5 / 6)
    assert metrics["label_ranking_average_precision"] == pytest.approx((1 + 1 + 1 / 2) / 3)
    assert metrics["coverage_error"] == pytest.approx(5 / 3)


def test_macro_average_precision_skips_classes_without_positives():
    y_true = np.hstack([Y_TRUE, np.zeros((3, 1), dtype=int)])
    y_score = np.hstack([Y_SCORE, np.full((3, 1), 0.05)])
    assert localization_metrics(y_true, y_score)["macro_average_precision"] == pytest.approx(5 / 6)


def test_localization_metrics_reject_bad_inputs():
    with pytest.raises(ValueError, match="shape"):
        localization_metrics(Y_TRUE, Y_SCORE[:, :1])
    with pytest.raises(ValueError, match="multi-hot"):
        localization_metrics(Y_TRUE * 2, Y_SCORE)


def _unit(angles_deg):
    radians = np.deg2rad(angles_deg)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


def test_retrieval_metrics_match_hand_computed_values():
    # Points at 0, 10, 25, 90 degrees; groups A A B B. Query 2 ranks 1, 0, 3: its positive is third (AP 1/3, NN
    # wrong); every other query finds its positive first. Scaling rows changes nothing (cosine).
    embeddings = _unit([0, 10, 25, 90]) * np.array([[1.0], [3.0], [0.5], [2.0]])
    metrics = retrieval_metrics(embeddings, ["A", "A", "B", "B"])
    assert metrics["mean_average_precision"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert metrics["nearest_neighbor_accuracy"] == pytest.approx(3 / 4)


def test_retrieval_exclude_drops_candidates_and_lonely_queries_do_not_count():
    # Points at 0, 10, 25, 90, 50 degrees; groups A A B B C; rows 0 and 2 share an exclude id, so neither sees the
    # other. Query 0 ranks 1, 4, 3 (AP 1); query 1 ranks 0 first (AP 1); query 2 ranks 1, 4, 3 (AP 1/3, NN wrong);
    # query 3 ranks 4, 2, ... (AP 1/2, NN wrong). Row 4 has no other C: a candidate, never a query.
    embeddings = _unit([0, 10, 25, 90, 50])
    metrics = retrieval_metrics(embeddings, ["A", "A", "B", "B", "C"], exclude=[0, 1, 0, 2, 3])
    assert metrics["mean_average_precision"] == pytest.approx((1 + 1 + 1 / 3 + 1 / 2) / 4)
    assert metrics["nearest_neighbor_accuracy"] == pytest.approx(2 / 4)


@pytest.mark.parametrize("copies", [1, 3], ids=["distinct", "tied"])
def test_retrieval_metrics_equal_per_query_sklearn_average_precision(copies):
    """Also with exact duplicates (tied similarities), which scikit-learn scores at the end of each tie."""
    rng = np.random.default_rng(0)
    embeddings = np.tile(rng.normal(size=(60 // copies, 8)), (copies, 1))
    groups = rng.integers(0, 6, size=60)
    exclude = rng.integers(0, 20, size=60)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    average_precisions, hits = [], []
    for query in range(60):
        candidates = (np.arange(60) != query) & (exclude != exclude[query])
        relevant = groups[candidates] == groups[query]
        if not relevant.any():
            continue
        similarity = np.round(unit[candidates] @ unit[query], 12)  # duplicates tie exactly, as in the metric
        average_precisions.append(average_precision_score(relevant, similarity))
        hits.append(relevant[np.argmax(similarity)])
    metrics = retrieval_metrics(embeddings, groups, exclude=exclude, block_size=7)
    assert metrics["mean_average_precision"] == pytest.approx(np.mean(average_precisions), abs=1e-12)
    assert metrics["nearest_neighbor_accuracy"] == pytest.approx(np.mean(hits), abs=1e-12)


def test_clustering_metrics_are_perfect_on_separated_blobs_with_any_label_names():
    rng = np.random.default_rng(0)
    centers = np.eye(3) * 10
    embeddings = np.concatenate([center + rng.normal(scale=0.1, size=(20, 3)) for center in centers])
    labels = ["nucleoli"] * 20 + ["cytosol"] * 20 + ["actin"] * 20
    metrics = clustering_metrics(embeddings, labels)
    assert metrics == pytest.approx({"adjusted_rand_index": 1.0, "v_measure": 1.0, "fowlkes_mallows": 1.0})


def test_clustering_metrics_reject_label_count_mismatch():
    with pytest.raises(ValueError, match="one entry per embedding"):
        clustering_metrics(np.zeros((4, 2)), ["a", "b"])
