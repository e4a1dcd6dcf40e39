"""Evaluation of SubCell models: the model card's metrics (SPEC section 8) as plain functions and as offline
`evaluate` modules, the suite that runs them over labelled shards, and the results JSON / `model-index` that the
Hub cards consume.

Importing this package does not import `evaluate` (slow); `load_metric` does.
"""

from .embeddings import LabelledEmbeddings, embed_shards, read_labelled_embeddings
from .functional import METRIC_NAMES, clustering_metrics, localization_metrics, retrieval_metrics
from .metrics import AVAILABLE_METRICS, load_metric, metric_path
from .model_index import (
    LOCALIZATION_TASK,
    make_results,
    metric_entries,
    model_index_from_results,
    read_results,
    validate_results,
    write_results,
)
from .suite import Evaluation, evaluate_embeddings, evaluate_shards, results_from_evaluation

__all__ = [
    "AVAILABLE_METRICS",
    "Evaluation",
    "LabelledEmbeddings",
    "LOCALIZATION_TASK",
    "METRIC_NAMES",
    "clustering_metrics",
    "embed_shards",
    "evaluate_embeddings",
    "evaluate_shards",
    "load_metric",
    "localization_metrics",
    "make_results",
    "metric_entries",
    "metric_path",
    "model_index_from_results",
    "read_labelled_embeddings",
    "read_results",
    "results_from_evaluation",
    "retrieval_metrics",
    "validate_results",
    "write_results",
]
