"""Agreement of unsupervised clusters (k-means or Leiden) of embeddings with known labels (an `evaluate` module)."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from subcell_hf.evaluation.functional import clustering_metrics
from subcell_hf.evaluation.metrics import CITATION

_DESCRIPTION = """\
Clusters the L2-normalised embeddings with k-means (k = number of distinct labels unless given, fixed seed, 10
restarts) or with Leiden on scanpy's kNN graph (`method="leiden"`), and scores the clusters against the labels:
adjusted Rand index, V-measure and Fowlkes-Mallows index.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[float]]`): (N, D) embeddings.
    references (`list[str]` or `list[int]`): N labels, e.g. each protein's localization.
    n_clusters (`int`, *optional*): number of clusters; defaults to the number of distinct labels.
    seed (`int`, defaults to 0): random state.
    method (`str`, defaults to "kmeans"): "kmeans" or "leiden".
Returns:
    adjusted_rand_index, v_measure, fowlkes_mallows (1 is a perfect match).
"""

_FEATURES = [
    datasets.Features(
        {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value(label_type)}
    )
    for label_type in ("string", "int64")
]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Clustering(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES,
            reference_urls=[
                "https://scikit-learn.org/stable/modules/clustering.html#clustering-performance-evaluation"
            ],
        )

    def _compute(
        self, predictions, references, n_clusters: int | None = None, seed: int = 0, method: str = "kmeans"
    ) -> dict[str, float]:
        return clustering_metrics(np.asarray(predictions), references, n_clusters=n_clusters, seed=seed, method=method)
