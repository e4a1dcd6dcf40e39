"""The packaged `evaluate` modules load offline from their folders and give scikit-learn's numbers."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    coverage_error,
    fowlkes_mallows_score,
    label_ranking_average_precision_score,
    v_measure_score,
)

from subcell_hf.evaluation import AVAILABLE_METRICS, load_metric, metric_path

pytestmark = pytest.mark.slow  # `import evaluate` alone costs ~7 s


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    """Each module loaded once, from its local path, with every socket connection refused (proves: no network)."""

    def refuse(*args, **kwargs):
        raise OSError("network access attempted while loading a local metric module")

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    cache = tmp_path_factory.mktemp("evaluate_cache")
    try:
        loaded = {name: load_metric(name, keep_in_memory=True, cache_dir=str(cache)) for name in AVAILABLE_METRICS}
    finally:
        monkeypatch.undo()
    return loaded


def test_localization_module_equals_sklearn(modules):
    rng = np.random.default_rng(1)
    y_true = (rng.random((200, 31)) < 0.1).astype(int)
    y_true[0] = 1  # every class has a positive: the macro AP is sklearn's plain macro AP
    y_score = rng.random((200, 31))
    result = modules["localization"].compute(predictions=y_score, references=y_true)
    assert result == pytest.approx(
        {
            "micro_average_precision": average_precision_score(y_true, y_score, average="micro"),
            "macro_average_precision": average_precision_score(y_true, y_score, average="macro"),
            "label_ranking_average_precision": label_ranking_average_precision_score(y_true, y_score),
            "coverage_error": coverage_error(y_true, y_score),
        },
        abs=1e-12,
    )


def test_clustering_module_equals_sklearn_kmeans_scores(modules):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, size=120)
    embeddings = rng.normal(size=(120, 16)) + 3 * np.eye(16)[labels]
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    clusters = KMeans(n_clusters=4, n_init=10, random_state=0).fit_predict(unit)
    names = np.array(["Nucleoli", "Cytosol", "Mitochondria", "Actin filaments"])[labels].tolist()
    for references in (labels.tolist(), names):
        result = modules["clustering"].compute(predictions=embeddings, references=references)
        assert result == pytest.approx(
            {
                "adjusted_rand_index": adjusted_rand_score(labels, clusters),
                "v_measure": v_measure_score(labels, clusters),
                "fowlkes_mallows": fowlkes_mallows_score(labels, clusters),
            },
            abs=1e-12,
        )
    assert result["adjusted_rand_index"] > 0.5  # the embeddings do carry the labels


def test_retrieval_module_equals_per_group_mean_of_per_query_sklearn(modules):
    rng = np.random.default_rng(3)
    compounds = rng.integers(0, 30, size=90)
    moa = compounds % 5  # each mechanism has 6 compounds, each compound ~3 replicates
    embeddings = rng.normal(size=(90, 12)) + 2 * np.eye(12)[moa]
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    average_precisions, hits = [], []
    for query in range(90):
        candidates = compounds != compounds[query]
        relevant = moa[candidates] == moa[query]
        similarity = unit[candidates] @ unit[query]
        average_precisions.append(average_precision_score(relevant, similarity))
        hits.append(relevant[np.argmax(similarity)])
    result = modules["retrieval"].compute(
        predictions=embeddings, references=[f"moa-{m}" for m in moa], exclude=compounds.tolist(), null_size=500
    )
    per_group = np.mean([np.mean(np.array(average_precisions)[moa == m]) for m in range(5)])
    assert result["mean_average_precision"] == pytest.approx(per_group, abs=1e-6)
    assert result["nearest_neighbor_accuracy"] == pytest.approx(np.mean(hits), abs=1e-12)
    assert result["fraction_retrieved"] == 1.0  # every mechanism is retrieved far above chance


def test_modules_are_packaged_next_to_the_code():
    for name in AVAILABLE_METRICS:
        assert (metric_path(name) / f"{name}.py").is_file()
    with pytest.raises(ValueError, match="unknown metric"):
        metric_path("accuracy")
