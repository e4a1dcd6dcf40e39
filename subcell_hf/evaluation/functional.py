"""The model card's metrics (SPEC section 8) as plain functions of arrays.

- `localization_metrics`: multi-label localization (HPA test sets): micro / macro average precision, label
  ranking average precision, coverage error.
- `clustering_metrics`: how well unsupervised k-means clusters of the embeddings agree with labels (OpenCell):
  adjusted Rand index, V-measure, Fowlkes-Mallows.
- `retrieval_metrics`: leave-one-out cosine retrieval of profiles of the same group (JUMP-CP replicate and MoA
  retrieval): mean average precision and nearest-neighbour accuracy.

Each returns a `dict[str, float]` keyed by the names in `METRIC_NAMES`; scikit-learn does the scoring wherever it
has the function, so the numbers mean exactly what its documentation says.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import (
    adjusted_rand_score,
    average_precision_score,
    coverage_error,
    fowlkes_mallows_score,
    label_ranking_average_precision_score,
    v_measure_score,
)

#: Result key -> the human-readable name used on model cards.
METRIC_NAMES: dict[str, str] = {
    "micro_average_precision": "Micro average precision",
    "macro_average_precision": "Macro average precision",
    "label_ranking_average_precision": "Label ranking average precision",
    "coverage_error": "Coverage error",
    "adjusted_rand_index": "Adjusted Rand index",
    "v_measure": "V-measure",
    "fowlkes_mallows": "Fowlkes-Mallows index",
    "mean_average_precision": "Mean average precision",
    "nearest_neighbor_accuracy": "Nearest-neighbour accuracy",
}


def localization_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Multi-label localization metrics.

    Args:
        y_true: (N, L) multi-hot targets (0/1).
        y_score: (N, L) scores, e.g. the ensemble's probabilities.

    Returns:
        `micro_average_precision` (all (cell, class) pairs pooled), `macro_average_precision` (mean of the per-class
        APs over the classes that have at least one positive: a class absent from the test set has no defined AP),
        `label_ranking_average_precision` and `coverage_error` (scikit-learn's definitions; lower coverage is
        better).
    """
    y_true, y_score = _multilabel_arrays(y_true, y_score)
    return {
        "micro_average_precision": float(average_precision_score(y_true, y_score, average="micro")),
        "macro_average_precision": macro_average_precision(y_true, y_score),
        "label_ranking_average_precision": float(label_ranking_average_precision_score(y_true, y_score)),
        "coverage_error": float(coverage_error(y_true, y_score)),
    }


def macro_average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean of the per-class average precisions over the classes with at least one positive in `y_true`."""
    y_true, y_score = _multilabel_arrays(y_true, y_score)
    present = y_true.sum(axis=0) > 0
    return float(average_precision_score(y_true[:, present], y_score[:, present], average="macro"))


def cluster_embeddings(embeddings: np.ndarray, n_clusters: int, seed: int = 0) -> np.ndarray:
    """k-means cluster ids of L2-normalised embeddings (cosine geometry, as in retrieval); 10 restarts, fixed seed."""
    unit = _l2_normalize(embeddings)
    return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(unit)


def clustering_metrics(
    embeddings: np.ndarray, labels: Sequence, n_clusters: int | None = None, seed: int = 0
) -> dict[str, float]:
    """Agreement between k-means clusters of the embeddings and known labels.

    Args:
        embeddings: (N, D) embeddings.
        labels: N labels (strings or ints), one per row: e.g. each protein's localization.
        n_clusters: number of k-means clusters; defaults to the number of distinct labels.
        seed: k-means random state, so that the numbers are reproducible.

    Returns:
        `adjusted_rand_index`, `v_measure` and `fowlkes_mallows` of the cluster ids against `labels`.
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    labels = np.asarray(labels)
    if labels.shape != (len(embeddings),):
        raise ValueError(f"labels must have one entry per embedding ({len(embeddings)}), found shape {labels.shape}")
    n_clusters = n_clusters or len(np.unique(labels))
    if not 2 <= n_clusters <= len(embeddings):
        raise ValueError(f"need between 2 and {len(embeddings)} clusters, found {n_clusters}")
    clusters = cluster_embeddings(embeddings, n_clusters, seed)
    return {
        "adjusted_rand_index": float(adjusted_rand_score(labels, clusters)),
        "v_measure": float(v_measure_score(labels, clusters)),
        "fowlkes_mallows": float(fowlkes_mallows_score(labels, clusters)),
    }


def retrieval_metrics(
    embeddings: np.ndarray, groups: Sequence, exclude: Sequence | None = None, block_size: int = 1024
) -> dict[str, float]:
    """Leave-one-out retrieval of same-group profiles by cosine similarity.

    Every row queries all the others, ranked by cosine similarity. Its positives are the other rows of its group;
    its average precision is scikit-learn's `average_precision_score` of that ranking. Rows that share the
    query's `exclude` value are left out of its ranking altogether: for MoA retrieval pass the compound id, so
    that replicates of the query's own compound neither help nor hurt.

    Args:
        embeddings: (N, D) profiles (cells, or wells after aggregation).
        groups: N group ids: the perturbation for replicate retrieval, the mechanism of action for MoA retrieval.
        exclude: optional N ids; candidates sharing the query's id are skipped.
        block_size: queries scored at once (memory is `block_size * N` floats).

    Returns:
        `mean_average_precision` (mean over queries) and `nearest_neighbor_accuracy` (fraction of queries whose most
        similar remaining row is a positive). Only queries with at least one positive count in either.
    """
    unit = _l2_normalize(_as_matrix(embeddings, "embeddings"))
    groups = _codes(groups, len(unit), "groups")
    exclude = None if exclude is None else _codes(exclude, len(unit), "exclude")
    average_precisions, hits = [], []
    for start in range(0, len(unit), block_size):
        rows = np.arange(start, min(start + block_size, len(unit)))
        # rounded so that identical profiles tie exactly (BLAS may round duplicate columns differently)
        similarity = np.round(unit[rows] @ unit.T, 12)
        candidate = np.ones_like(similarity, dtype=bool)
        candidate[np.arange(len(rows)), rows] = False
        if exclude is not None:
            candidate &= exclude[rows, None] != exclude[None, :]
        positive = candidate & (groups[rows, None] == groups[None, :])
        score = np.where(candidate, similarity, -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")
        ranked_score = np.take_along_axis(score, order, axis=1)
        ranked_positive = np.take_along_axis(positive, order, axis=1)
        ranked_candidate = np.take_along_axis(candidate, order, axis=1)
        # precision at each rank among the remaining candidates, averaged over the positives' ranks; rows tied in
        # similarity share the precision at the end of their tie (scikit-learn's thresholds), whatever their order
        precision = np.cumsum(ranked_positive, axis=1) / np.maximum(np.cumsum(ranked_candidate, axis=1), 1)
        positions = np.arange(score.shape[1])
        is_last_of_tie = np.append(ranked_score[:, :-1] != ranked_score[:, 1:], np.ones((len(rows), 1), bool), axis=1)
        tie_end = np.minimum.accumulate(np.where(is_last_of_tie, positions, positions[-1])[:, ::-1], axis=1)[:, ::-1]
        precision = np.take_along_axis(precision, tie_end, axis=1)
        num_positive = ranked_positive.sum(axis=1)
        has_positive = num_positive > 0
        ap = (precision * ranked_positive).sum(axis=1)[has_positive] / num_positive[has_positive]
        average_precisions.append(ap)
        hits.append(ranked_positive[has_positive, 0])
    average_precisions, hits = np.concatenate(average_precisions), np.concatenate(hits)
    if not len(average_precisions):
        raise ValueError("no query has another row of its group to retrieve: check `groups` and `exclude`")
    return {
        "mean_average_precision": float(average_precisions.mean()),
        "nearest_neighbor_accuracy": float(hits.mean()),
    }


def _as_matrix(array: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or len(array) < 2:
        raise ValueError(f"{name} must have shape (N >= 2, D), found {array.shape}")
    return array


def _l2_normalize(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array, dtype=np.float64)
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def _codes(values: Sequence, length: int, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.shape != (length,):
        raise ValueError(f"{name} must have one entry per embedding ({length}), found shape {values.shape}")
    return np.unique(values, return_inverse=True)[1]


def _multilabel_arrays(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(
            f"y_true and y_score must both have shape (num_cells, num_labels), found {y_true.shape} and {y_score.shape}"
        )
    if not np.isin(y_true, (0, 1)).all():
        raise ValueError(f"y_true must be multi-hot (0/1), found values {np.unique(y_true)[:10].tolist()}")
    if not y_true.any():
        raise ValueError("y_true has no positive label: average precision is undefined")
    return y_true.astype(np.int64), y_score
