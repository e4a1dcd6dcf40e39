"""The model card's metrics as plain functions of arrays (definitions: docs/evaluation.md).

- `localization_metrics`: multi-label localization (HPA test sets): micro / macro average precision, label
  ranking average precision, coverage error, computed as the released evaluation does: the classes without a
  positive in `y_true` are dropped before every metric. `localization_report` scores each classifier seed and
  the ensemble and gives the per-class APs.
- `clustering_metrics`: how well unsupervised clusters of the embeddings (k-means, or Leiden on a kNN graph
  through scanpy) agree with labels (OpenCell): adjusted Rand index, V-measure, Fowlkes-Mallows.
- `retrieval_metrics`: JUMP-CP style retrieval of profiles of the same group with `copairs` (mean average
  precision, fraction retrieved at p < 0.05) and `nearest_neighbor_accuracy` (see `retrieval.py`).

Each returns a `dict[str, float]` keyed by the names in `METRIC_NAMES`; scikit-learn, scanpy and copairs do the
scoring, so the numbers mean exactly what their documentation says.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
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
    "fraction_retrieved": "Fraction retrieved (p < 0.05)",
    "nearest_neighbor_accuracy": "Nearest-neighbour accuracy",
}
LOCALIZATION_METRICS = (
    "micro_average_precision",
    "macro_average_precision",
    "label_ranking_average_precision",
    "coverage_error",
)
CLUSTERING_METHODS = ("kmeans", "leiden")


def present_classes(y_true: np.ndarray) -> np.ndarray:
    """Boolean mask of the classes (columns) with at least one positive."""
    return np.asarray(y_true).sum(axis=0) > 0


def localization_metrics(y_true: np.ndarray, y_score: np.ndarray) -> dict[str, float]:
    """Multi-label localization metrics over the classes present in `y_true`.

    The columns of classes without a positive are dropped first, from `y_true` and `y_score` alike, and every
    metric is computed on what remains (the released evaluation's protocol: an absent class would otherwise still
    add negatives to the pooled micro AP and ranks to LRAP and coverage).

    Args:
        y_true: (N, L) multi-hot targets (0/1).
        y_score: (N, L) scores, e.g. the ensemble's probabilities.

    Returns:
        `micro_average_precision` (all (cell, class) pairs pooled), `macro_average_precision` (mean of the per-class
        APs), `label_ranking_average_precision` and `coverage_error` (scikit-learn's definitions; lower coverage is
        better).
    """
    y_true, y_score = _multilabel_arrays(y_true, y_score)
    present = present_classes(y_true)
    y_true, y_score = y_true[:, present], y_score[:, present]
    if y_true.shape[1] == 1:  # scikit-learn's ranking metrics refuse one column; their definitions give these
        average_precision = float(average_precision_score(y_true[:, 0], y_score[:, 0]))
        return {
            "micro_average_precision": average_precision,
            "macro_average_precision": average_precision,
            "label_ranking_average_precision": 1.0,  # the one label always ranks first
            "coverage_error": float(y_true[:, 0].mean()),  # depth 1 for a cell with the label, 0 without
        }
    return {
        "micro_average_precision": float(average_precision_score(y_true, y_score, average="micro")),
        "macro_average_precision": float(average_precision_score(y_true, y_score, average="macro")),
        "label_ranking_average_precision": float(label_ranking_average_precision_score(y_true, y_score)),
        "coverage_error": float(coverage_error(y_true, y_score)),
    }


def macro_average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Mean of the per-class average precisions over the classes with at least one positive in `y_true`."""
    y_true, y_score = _multilabel_arrays(y_true, y_score)
    present = present_classes(y_true)
    return float(average_precision_score(y_true[:, present], y_score[:, present], average="macro"))


def per_class_average_precision(y_true: np.ndarray, y_score: np.ndarray, classes: Sequence[str]) -> dict[str, float]:
    """Class name -> average precision, for the classes with a positive (the others have no defined AP)."""
    y_true, y_score = _multilabel_arrays(y_true, y_score)
    if len(classes) != y_true.shape[1]:
        raise ValueError(f"need one class name per column ({y_true.shape[1]}), found {len(classes)}")
    present = present_classes(y_true)
    values = average_precision_score(y_true[:, present], y_score[:, present], average=None)
    return {name: float(value) for name, value in zip(np.asarray(classes)[present], np.atleast_1d(values))}


def localization_report(y_true: np.ndarray, head_scores: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Localization metrics of each classifier seed and of the ensemble, and the per-class APs.

    Args:
        y_true: (N, L) multi-hot targets.
        head_scores: (N, H, L) probabilities of each of the H heads (head i was trained with seed i); the ensemble
            scores are their mean, as `SubCellForProteinLocalization` computes them.
        classes: the L class names.

    Returns:
        `classes` (evaluated) and `absent_classes` (dropped: no positive), `positives` per evaluated class,
        `ensemble` (metrics of the mean probabilities), `seeds` (`values`: one list entry per head; `mean` and
        `std`: mean and sample standard deviation (ddof 1; 0 for one head) over the heads), and
        `per_class_average_precision` (`ensemble`, `seed_mean`, `seed_std`: class -> AP).
    """
    y_true = np.asarray(y_true)
    head_scores = np.asarray(head_scores, dtype=np.float64)
    if head_scores.ndim != 3 or head_scores.shape[0] != len(y_true) or head_scores.shape[2] != y_true.shape[1]:
        raise ValueError(
            f"head_scores must have shape ({len(y_true)}, heads, {y_true.shape[1]}), found {head_scores.shape}"
        )
    present = present_classes(y_true)
    names = list(classes)
    ensemble = head_scores.mean(axis=1)
    heads = range(head_scores.shape[1])
    per_head = [localization_metrics(y_true, head_scores[:, h]) for h in heads]
    per_head_class = [per_class_average_precision(y_true, head_scores[:, h], names) for h in heads]
    evaluated = [name for name, keep in zip(names, present) if keep]
    return {
        "classes": evaluated,
        "absent_classes": [name for name, keep in zip(names, present) if not keep],
        "positives": {name: int(count) for name, count in zip(evaluated, y_true[:, present].sum(axis=0))},
        "num_cells": int(len(y_true)),
        "num_heads": int(head_scores.shape[1]),
        "ensemble": localization_metrics(y_true, ensemble),
        "seeds": {
            "values": {key: [m[key] for m in per_head] for key in LOCALIZATION_METRICS},
            "mean": {key: float(np.mean([m[key] for m in per_head])) for key in LOCALIZATION_METRICS},
            "std": {key: _spread([m[key] for m in per_head]) for key in LOCALIZATION_METRICS},
        },
        "per_class_average_precision": {
            "ensemble": per_class_average_precision(y_true, ensemble, names),
            "seed_mean": {name: float(np.mean([m[name] for m in per_head_class])) for name in evaluated},
            "seed_std": {name: _spread([m[name] for m in per_head_class]) for name in evaluated},
        },
    }


def cluster_embeddings(
    embeddings: np.ndarray,
    method: str = "kmeans",
    n_clusters: int | None = None,
    seed: int = 0,
    n_neighbors: int = 15,
    resolution: float = 1.0,
) -> np.ndarray:
    """Cluster ids of L2-normalised embeddings (cosine geometry).

    - `kmeans`: scikit-learn's k-means with `n_clusters` clusters, 10 restarts, random state `seed`.
    - `leiden`: scanpy's kNN graph (`sc.pp.neighbors`, `n_neighbors`, cosine metric) then `sc.tl.leiden`
      (igraph flavour, 2 iterations, `resolution`, random state `seed`); the number of clusters is Leiden's own.
    """
    unit = _l2_normalize(_as_matrix(embeddings, "embeddings"))
    if method == "kmeans":
        from sklearn.cluster import KMeans

        if n_clusters is None or not 2 <= n_clusters <= len(unit):
            raise ValueError(f"k-means needs between 2 and {len(unit)} clusters, found {n_clusters}")
        return KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(unit)
    if method == "leiden":
        import anndata
        import scanpy as sc  # ~10 s to import: only when Leiden is asked for

        adata = anndata.AnnData(X=unit.astype(np.float32))
        neighbors = min(n_neighbors, len(unit) - 1)
        sc.pp.neighbors(adata, n_neighbors=neighbors, use_rep="X", metric="cosine", random_state=seed)
        sc.tl.leiden(adata, resolution=resolution, flavor="igraph", n_iterations=2, directed=False, random_state=seed)
        return adata.obs["leiden"].astype(int).to_numpy()
    raise ValueError(f"clustering method must be one of {CLUSTERING_METHODS}, found {method!r}")


def clustering_metrics(
    embeddings: np.ndarray,
    labels: Sequence,
    n_clusters: int | None = None,
    seed: int = 0,
    method: str = "kmeans",
    n_neighbors: int = 15,
    resolution: float = 1.0,
) -> dict[str, float]:
    """Agreement between unsupervised clusters of the embeddings (`cluster_embeddings`) and known labels.

    Args:
        embeddings: (N, D) embeddings.
        labels: N labels (strings or ints), one per row: e.g. each protein's localization.
        n_clusters: number of k-means clusters; defaults to the number of distinct labels (unused by Leiden).
        seed: random state, so that the numbers are reproducible.
        method: `kmeans` or `leiden`; `n_neighbors` and `resolution` are Leiden's.

    Returns:
        `adjusted_rand_index`, `v_measure` and `fowlkes_mallows` of the cluster ids against `labels`.
    """
    embeddings = _as_matrix(embeddings, "embeddings")
    labels = np.asarray(labels)
    if labels.shape != (len(embeddings),):
        raise ValueError(f"labels must have one entry per embedding ({len(embeddings)}), found shape {labels.shape}")
    n_clusters = n_clusters or len(np.unique(labels))
    clusters = cluster_embeddings(embeddings, method, n_clusters, seed, n_neighbors, resolution)
    return {
        "adjusted_rand_index": float(adjusted_rand_score(labels, clusters)),
        "v_measure": float(v_measure_score(labels, clusters)),
        "fowlkes_mallows": float(fowlkes_mallows_score(labels, clusters)),
    }


def nearest_neighbor_accuracy(
    profiles: np.ndarray, labels: Sequence, exclude: Sequence | Sequence[Sequence] | None = None
) -> float:
    """Share of profiles whose most cosine-similar other profile has the same label.

    `exclude`: one or several sequences of N ids (e.g. the plate, for JUMP-CP's "not on the same plate"; the
    compound too for MoA): candidates sharing any of them with the query are skipped. Only queries with at least
    one same-label candidate left count.
    """
    from sklearn.metrics.pairwise import cosine_similarity

    profiles = _as_matrix(profiles, "profiles")
    labels = _codes(labels, len(profiles), "labels")
    similarity = cosine_similarity(profiles)
    candidate = ~np.eye(len(profiles), dtype=bool)
    if exclude is not None:
        columns = [exclude] if np.asarray(exclude, dtype=object).ndim == 1 else list(exclude)
        for column in columns:
            codes = _codes(column, len(profiles), "exclude")
            candidate &= codes[:, None] != codes[None, :]
    same = labels[:, None] == labels[None, :]
    counted = (candidate & same).any(axis=1)
    if not counted.any():
        raise ValueError("no profile has another profile of its label to retrieve: check `labels` and `exclude`")
    nearest = np.where(candidate, similarity, -np.inf).argmax(axis=1)
    return float((labels[nearest] == labels)[counted].mean())


def retrieval_metrics(
    profiles: np.ndarray,
    groups: Sequence,
    exclude: Sequence | None = None,
    plates: Sequence | None = None,
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
) -> dict[str, float]:
    """`copairs` retrieval of same-group profiles (arrays in, numbers out; see `retrieval.profile_retrieval`).

    Args:
        profiles: (N, D) profiles (wells after aggregation, or cells).
        groups: N group ids: the perturbation for replicate retrieval, the mechanism of action for MoA retrieval.
        exclude: optional N ids; pairs sharing one are neither positives nor negatives (the compound, for MoA).
        plates: optional N plate ids; nearest neighbours on the query's plate are skipped.

    Returns:
        `mean_average_precision`, `fraction_retrieved` and `nearest_neighbor_accuracy`.
    """
    import pandas as pd

    from .retrieval import profile_retrieval

    profiles = _as_matrix(profiles, "profiles")
    meta = {"group": np.asarray(groups).astype(str)}
    if exclude is not None:
        meta["exclude"] = np.asarray(exclude).astype(str)
    if plates is not None:
        meta["plate"] = np.asarray(plates).astype(str)
    result = profile_retrieval(
        profiles,
        pd.DataFrame(meta),
        "group",
        exclude=["exclude"] if exclude is not None else [],
        plate="plate" if plates is not None else None,
        null_size=null_size,
        threshold=threshold,
        seed=seed,
    )
    return result.metrics


def _spread(values: Sequence[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


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
