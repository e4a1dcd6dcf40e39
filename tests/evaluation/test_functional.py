"""The metric functions against hand-computed values on tiny examples, and against scikit-learn, copairs and
scanpy called directly on random ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    coverage_error,
    label_ranking_average_precision_score,
)

from subcell_hf.evaluation import (
    clustering_metrics,
    localization_metrics,
    localization_report,
    nearest_neighbor_accuracy,
    per_class_average_precision,
    retrieval_metrics,
)

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


def test_a_class_absent_from_the_test_labels_changes_no_metric():
    # The absent class gets the highest score of every cell: kept, it would rank above every true label.
    y_true = np.hstack([Y_TRUE, np.zeros((3, 1), dtype=int)])
    y_score = np.hstack([Y_SCORE, np.full((3, 1), 0.95)])
    assert localization_metrics(y_true, y_score) == pytest.approx(localization_metrics(Y_TRUE, Y_SCORE))


def test_missing_classes_are_dropped_before_every_metric_as_sklearn_computes_by_hand():
    rng = np.random.default_rng(1)
    y_true = (rng.random((300, 31)) < 0.15).astype(int)
    y_true[:, [3, 17, 30]] = 0  # three classes absent from the test set
    y_true[y_true.sum(axis=1) == 0, 0] = 1  # every cell keeps a label
    y_score = rng.random((300, 31))
    kept = [i for i in range(31) if i not in (3, 17, 30)]
    expected = {
        "micro_average_precision": average_precision_score(y_true[:, kept], y_score[:, kept], average="micro"),
        "macro_average_precision": average_precision_score(y_true[:, kept], y_score[:, kept], average="macro"),
        "label_ranking_average_precision": label_ranking_average_precision_score(y_true[:, kept], y_score[:, kept]),
        "coverage_error": coverage_error(y_true[:, kept], y_score[:, kept]),
    }
    metrics = localization_metrics(y_true, y_score)
    assert metrics == pytest.approx(expected, abs=1e-12)
    # ... and every one of them differs from scoring all 31 columns (what this project computed before)
    all_columns = {
        "micro_average_precision": average_precision_score(y_true, y_score, average="micro"),
        "label_ranking_average_precision": label_ranking_average_precision_score(y_true, y_score),
        "coverage_error": coverage_error(y_true, y_score),
    }
    assert all(abs(metrics[key] - value) > 1e-4 for key, value in all_columns.items())
    per_class = per_class_average_precision(y_true, y_score, [f"c{i}" for i in range(31)])
    assert list(per_class) == [f"c{i}" for i in kept]
    assert per_class["c5"] == pytest.approx(average_precision_score(y_true[:, 5], y_score[:, 5]))


def test_localization_report_scores_each_seed_and_the_ensemble():
    rng = np.random.default_rng(2)
    y_true = (rng.random((80, 5)) < 0.3).astype(int)
    y_true[:, 4] = 0
    y_true[y_true.sum(axis=1) == 0, 0] = 1
    heads = np.clip(y_true[:, None, :] * 0.4 + rng.random((80, 3, 5)) * 0.6, 0, 1)
    classes = ["Nucleoli", "Cytosol", "Mitochondria", "Vesicles", "Aggresome"]
    report = localization_report(y_true, heads, classes)
    assert report["absent_classes"] == ["Aggresome"] and report["classes"] == classes[:4]
    assert report["ensemble"] == pytest.approx(localization_metrics(y_true, heads.mean(axis=1)))
    per_head = [localization_metrics(y_true, heads[:, h]) for h in range(3)]
    for key in per_head[0]:
        values = [m[key] for m in per_head]
        assert report["seeds"]["values"][key] == pytest.approx(values)
        assert report["seeds"]["mean"][key] == pytest.approx(np.mean(values))
        assert report["seeds"]["std"][key] == pytest.approx(np.std(values, ddof=1))
    ensemble_ap = report["per_class_average_precision"]["ensemble"]
    assert ensemble_ap["Cytosol"] == pytest.approx(average_precision_score(y_true[:, 1], heads.mean(axis=1)[:, 1]))
    assert report["positives"]["Nucleoli"] == int(y_true[:, 0].sum())


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
    # wrong); every other query finds its positive first. copairs averages per group: A 1, B (1/3 + 1) / 2, and the
    # mAP is the mean over groups. Scaling rows changes nothing (cosine).
    embeddings = _unit([0, 10, 25, 90]) * np.array([[1.0], [3.0], [0.5], [2.0]])
    metrics = retrieval_metrics(embeddings, ["A", "A", "B", "B"], null_size=100)
    assert metrics["mean_average_precision"] == pytest.approx((1 + (1 / 3 + 1) / 2) / 2)
    assert metrics["nearest_neighbor_accuracy"] == pytest.approx(3 / 4)


def test_retrieval_mean_average_precision_equals_copairs_and_per_query_sklearn():
    from copairs.map import average_precision, mean_average_precision

    rng = np.random.default_rng(0)
    compounds = np.repeat(np.arange(12), 3)
    moa = compounds % 4
    profiles = rng.normal(size=(36, 10)) + 1.5 * np.eye(10)[moa]
    meta = pd.DataFrame({"moa": moa.astype(str), "compound": compounds.astype(str)})
    ap = average_precision(meta, profiles, ["moa"], ["compound"], [], ["moa", "compound"], progress_bar=False)
    direct = mean_average_precision(ap, ["moa"], null_size=1000, threshold=0.05, seed=0, progress_bar=False)
    metrics = retrieval_metrics(profiles, moa, exclude=compounds, null_size=1000)
    assert metrics["mean_average_precision"] == pytest.approx(direct["mean_average_precision"].mean(), abs=1e-12)
    assert metrics["fraction_retrieved"] == pytest.approx(direct["below_corrected_p"].mean())
    # copairs' per-query AP is scikit-learn's AP of the query's ranking of the candidates it may see
    unit = profiles / np.linalg.norm(profiles, axis=1, keepdims=True)
    per_query = []
    for query in range(36):
        candidates = compounds != compounds[query]
        per_query.append(average_precision_score(moa[candidates] == moa[query], unit[candidates] @ unit[query]))
    assert ap["average_precision"].to_numpy() == pytest.approx(per_query, abs=1e-6)
    by_moa = pd.Series(per_query).groupby(moa).mean().mean()
    assert metrics["mean_average_precision"] == pytest.approx(by_moa, abs=1e-6)


def test_fraction_retrieved_separates_signal_from_noise():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(6), 4)
    signal = rng.normal(scale=0.1, size=(24, 8)) + 3 * np.eye(8)[groups]
    noise = rng.normal(size=(24, 8))
    assert retrieval_metrics(signal, groups, null_size=2000)["fraction_retrieved"] == 1.0
    assert retrieval_metrics(noise, groups, null_size=2000)["fraction_retrieved"] < 0.5


def test_nearest_neighbor_accuracy_skips_the_queries_plate():
    # Points at 0, 10, 25, 90, 100 degrees, labels A A B B A. All plates: 0 -> 1 (hit), 1 -> 0 (hit), 2 -> 1, 3 -> 4,
    # 4 -> 3 (misses): 2/5. Plates p p q q q: 0 -> 2 and 1 -> 2 (misses), 4 -> 1 (hit); queries 2 and 3 have no
    # B on another plate and do not count: 1/3.
    embeddings = _unit([0, 10, 25, 90, 100])
    labels = ["A", "A", "B", "B", "A"]
    assert nearest_neighbor_accuracy(embeddings, labels) == pytest.approx(2 / 5)
    assert nearest_neighbor_accuracy(embeddings, labels, exclude=["p", "p", "q", "q", "q"]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="no profile has another profile of its label"):
        nearest_neighbor_accuracy(embeddings, labels, exclude=[list("pqrst"), list("aabba")])


def test_clustering_metrics_are_perfect_on_separated_blobs_with_any_label_names():
    rng = np.random.default_rng(0)
    centers = np.eye(3) * 10
    embeddings = np.concatenate([center + rng.normal(scale=0.1, size=(20, 3)) for center in centers])
    labels = ["nucleoli"] * 20 + ["cytosol"] * 20 + ["actin"] * 20
    perfect = {"adjusted_rand_index": 1.0, "v_measure": 1.0, "fowlkes_mallows": 1.0}
    assert clustering_metrics(embeddings, labels) == pytest.approx(perfect)
    assert clustering_metrics(embeddings, labels, method="leiden") == pytest.approx(perfect)


def test_leiden_clusters_are_scanpys():
    import anndata
    import scanpy as sc
    from sklearn.metrics import adjusted_rand_score

    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, size=90)
    embeddings = rng.normal(size=(90, 12)) + 2.5 * np.eye(12)[labels]
    adata = anndata.AnnData(X=(embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32))
    sc.pp.neighbors(adata, n_neighbors=15, use_rep="X", metric="cosine", random_state=0)
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, directed=False, random_state=0)
    expected = adjusted_rand_score(labels, adata.obs["leiden"].astype(int))
    assert clustering_metrics(embeddings, labels, method="leiden")["adjusted_rand_index"] == pytest.approx(expected)


def test_clustering_metrics_reject_label_count_mismatch_and_unknown_methods():
    with pytest.raises(ValueError, match="one entry per embedding"):
        clustering_metrics(np.zeros((4, 2)), ["a", "b"])
    with pytest.raises(ValueError, match="clustering method must be one of"):
        clustering_metrics(np.random.default_rng(0).normal(size=(4, 2)), ["a", "b", "a", "b"], method="dbscan")


def test_one_present_class_gives_scikit_learns_definitions():
    # scikit-learn refuses one column; adding a never-positive class scored below everything changes neither the
    # ranking depth of the true label nor LRAP, so scikit-learn on two columns is the reference.
    y_true = np.array([[1], [0], [1]])
    y_score = np.array([[0.9], [0.8], [0.3]])
    metrics = localization_metrics(y_true, y_score)
    padded_true, padded_score = np.hstack([y_true, [[0]] * 3]), np.hstack([y_score, [[-1.0]] * 3])
    assert metrics["micro_average_precision"] == metrics["macro_average_precision"] == pytest.approx(
        average_precision_score(y_true[:, 0], y_score[:, 0])
    )
    assert metrics["coverage_error"] == pytest.approx(coverage_error(padded_true, padded_score))
    assert metrics["label_ranking_average_precision"] == pytest.approx(
        label_ranking_average_precision_score(padded_true, padded_score)
    )
