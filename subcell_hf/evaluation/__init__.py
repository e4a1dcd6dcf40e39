"""Evaluation of SubCell models with the paper's protocol (docs/evaluation.md): the model card's metrics as plain
functions and as offline `evaluate` modules, the published antibody split and location groupings (vendored
data), JUMP-CP style retrieval with copairs, the suite that runs them over labelled shards, and the results JSON
/ `model-index` that the Hub cards consume.

Importing this package does not import `evaluate`, scanpy, copairs or pycytominer (slow); the functions that
need them do.
"""

from .embeddings import EmbeddingPassConfig, LabelledEmbeddings, embed_shards, read_labelled_embeddings
from .functional import (
    METRIC_NAMES,
    cluster_embeddings,
    clustering_metrics,
    localization_metrics,
    localization_report,
    nearest_neighbor_accuracy,
    per_class_average_precision,
    retrieval_metrics,
)
from .groupings import available_groupings, group_scores, grouping_map
from .metrics import AVAILABLE_METRICS, load_metric, metric_path
from .model_index import (
    LOCALIZATION_TASK,
    eval_results_from_results,
    make_results,
    metric_entries,
    model_index_from_results,
    read_results,
    validate_results,
    write_results,
)
from .splits import AntibodySplit, published_split, read_split, resolve_split
from .suite import (
    DatasetInfo,
    EvaluateModelConfig,
    Evaluation,
    EvaluationOptions,
    evaluate_embeddings,
    evaluate_shards,
    head_probabilities,
    library_versions,
    results_from_evaluation,
)

__all__ = [
    "AVAILABLE_METRICS",
    "AntibodySplit",
    "DatasetInfo",
    "EmbeddingPassConfig",
    "EvaluateModelConfig",
    "Evaluation",
    "EvaluationOptions",
    "LabelledEmbeddings",
    "LOCALIZATION_TASK",
    "METRIC_NAMES",
    "available_groupings",
    "cluster_embeddings",
    "clustering_metrics",
    "embed_shards",
    "eval_results_from_results",
    "evaluate_embeddings",
    "evaluate_shards",
    "group_scores",
    "grouping_map",
    "head_probabilities",
    "library_versions",
    "load_metric",
    "localization_metrics",
    "localization_report",
    "make_results",
    "metric_entries",
    "metric_path",
    "model_index_from_results",
    "nearest_neighbor_accuracy",
    "per_class_average_precision",
    "published_split",
    "read_labelled_embeddings",
    "read_results",
    "read_split",
    "resolve_split",
    "results_from_evaluation",
    "retrieval_metrics",
    "validate_results",
    "write_results",
]
