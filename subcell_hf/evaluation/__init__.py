"""Evaluation of SubCell models with the paper's protocol (docs/evaluation.md): the model card's metrics as plain
functions and as offline `evaluate` modules, the published antibody split and location groupings (vendored
data), JUMP-CP style retrieval with copairs, the suite that runs them over labelled shards, and the results JSON
/ `model-index` that the Hub cards consume.

Importing this package imports nothing heavy: the names below load on first use (`evaluate`, scanpy, copairs and
pycytominer only in the functions that need them), so that `recipes/evaluate_model.py --help`, which reads the
dataclasses of `subcell_hf.evaluation.config`, answers without torch.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy_exports import lazy_exports

#: public name -> submodule that defines it (imported on first access)
_LAZY_NAMES = {
    "DatasetInfo": ".config",
    "EmbeddingPassConfig": ".config",
    "EvaluateModelConfig": ".config",
    "EvaluationOptions": ".config",
    "LabelledEmbeddings": ".embeddings",
    "embed_shards": ".embeddings",
    "read_labelled_embeddings": ".embeddings",
    "METRIC_NAMES": ".functional",
    "cluster_embeddings": ".functional",
    "clustering_metrics": ".functional",
    "localization_metrics": ".functional",
    "localization_report": ".functional",
    "nearest_neighbor_accuracy": ".functional",
    "per_class_average_precision": ".functional",
    "retrieval_metrics": ".functional",
    "available_groupings": ".groupings",
    "group_scores": ".groupings",
    "grouping_map": ".groupings",
    "AVAILABLE_METRICS": ".metrics",
    "load_metric": ".metrics",
    "metric_path": ".metrics",
    "LOCALIZATION_TASK": ".model_index",
    "eval_results_from_results": ".model_index",
    "make_results": ".model_index",
    "metric_entries": ".model_index",
    "model_index_from_results": ".model_index",
    "read_results": ".model_index",
    "validate_results": ".model_index",
    "write_results": ".model_index",
    "AntibodySplit": ".splits",
    "published_split": ".splits",
    "read_split": ".splits",
    "resolve_split": ".splits",
    "Evaluation": ".suite",
    "evaluate_embeddings": ".suite",
    "evaluate_shards": ".suite",
    "head_probabilities": ".suite",
    "library_versions": ".suite",
    "results_from_evaluation": ".suite",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import DatasetInfo, EmbeddingPassConfig, EvaluateModelConfig, EvaluationOptions
    from .embeddings import LabelledEmbeddings, embed_shards, read_labelled_embeddings
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
        Evaluation,
        evaluate_embeddings,
        evaluate_shards,
        head_probabilities,
        library_versions,
        results_from_evaluation,
    )


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES)

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
