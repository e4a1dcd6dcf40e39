"""Run the model card's metrics over a labelled shard set (`recipes/evaluate.py`).

- Localization (models with classifiers): the ensemble's probabilities against each cell's locations, over the
  model's classes; cells with none of those classes are left out.
- Clustering: k-means of the embeddings of single-location cells against that location.
- Retrieval (optional): leave-one-out cosine retrieval of cells sharing a metadata column (e.g. `antibody`),
  optionally skipping candidates that share another column (e.g. `image_id`, so neighbours in the same field
  do not count).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import __version__
from .embeddings import LabelledEmbeddings, embed_shards
from .functional import clustering_metrics, localization_metrics, retrieval_metrics
from .model_index import LOCALIZATION_TASK, make_results, metric_entries

EMBEDDING_TASK: dict[str, str] = {"type": "image-feature-extraction", "name": "Protein localization"}


@dataclass
class Evaluation:
    """Metric values per family (`localization`, `clustering`, `retrieval`) and the cell counts behind them."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    retrieval_groups: str | None = None
    failed_inputs: int = 0  # inputs that could not be read: the metrics leave their cells out

    def describe(self) -> str:
        """How it was measured, in one paragraph (the results JSON `source`)."""
        parts = [f"subcell_hf {__version__} recipes/evaluate.py over {self.counts.get('cells', 0)} cells"]
        if "localization" in self.metrics:
            parts.append(
                f"localization: ensemble probabilities of {self.counts['localization_cells']} cells with a location "
                f"among the model's {self.counts['classes']} classes"
            )
        if "clustering" in self.metrics:
            parts.append(
                f"clustering: k-means (k = {self.counts['clusters']}, seed 0, L2-normalised embeddings) of "
                f"{self.counts['clustering_cells']} single-location cells"
            )
        if "retrieval" in self.metrics:
            parts.append(
                f"retrieval: leave-one-out cosine retrieval of cells with the same {self.retrieval_groups} "
                f"({self.counts['retrieval_queries']} cells)"
            )
        return "; ".join(parts + self.notes) + "."


def evaluate_embeddings(
    labelled: LabelledEmbeddings,
    clustering: bool = True,
    retrieval_groups: str | None = None,
    retrieval_exclude: str | None = None,
    seed: int = 0,
) -> Evaluation:
    """Every metric family the data allows; a family that cannot be computed is skipped with a note."""
    result = Evaluation(counts={"cells": len(labelled)}, retrieval_groups=retrieval_groups)
    if labelled.probabilities is not None:
        classes = labelled.probability_classes
        labels = labelled.labels(classes)
        rows = labels.any(axis=1)
        result.counts.update(classes=len(classes), localization_cells=int(rows.sum()))
        if rows.any():
            result.metrics["localization"] = localization_metrics(labels[rows], labelled.probabilities[rows])
        else:
            result.notes.append("no cell has a location among the model's classes: no localization metrics")
    if clustering:
        locations = labelled.locations()
        single = np.array([len(names) == 1 for names in locations])
        names = np.array([names[0] for names, one in zip(locations, single) if one])
        if len(np.unique(names)) >= 2:
            result.metrics["clustering"] = clustering_metrics(labelled.embeddings[single], names, seed=seed)
            result.counts.update(clustering_cells=int(single.sum()), clusters=int(len(np.unique(names))))
        else:
            result.notes.append("fewer than 2 distinct single-location classes: no clustering metrics")
    if retrieval_groups:
        exclude = labelled.column(retrieval_exclude) if retrieval_exclude else None
        result.metrics["retrieval"] = retrieval_metrics(
            labelled.embeddings, labelled.column(retrieval_groups).astype(str), exclude=exclude
        )
        result.counts["retrieval_queries"] = len(labelled)
        if retrieval_exclude:
            result.notes.append(f"retrieval candidates sharing the query's {retrieval_exclude} are skipped")
    return result


def evaluate_shards(
    model: Any,
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    clustering: bool = True,
    retrieval_groups: str | None = None,
    retrieval_exclude: str | None = None,
    embed_options: dict[str, Any] | None = None,
) -> Evaluation:
    """Embed (and classify) `shards` with `model` (an `EmbeddingModel`, Hub id or folder), then `evaluate_embeddings`.

    The embeddings are cached in `cache_dir`; under `accelerate launch` the processes share the embedding pass.
    """
    labelled = embed_shards(model, shards, cache_dir, **(embed_options or {}))
    evaluation = evaluate_embeddings(labelled, clustering, retrieval_groups, retrieval_exclude)
    if labelled.failed_inputs:  # said in the results and in the exit status, never silently fewer cells
        evaluation.failed_inputs = labelled.failed_inputs
        evaluation.notes.append(
            f"{labelled.failed_inputs} input(s) could not be read and are left out (see {cache_dir}/summary.csv)"
        )
    return evaluation


def results_from_evaluation(model: str, evaluation: Evaluation, dataset: dict[str, str]) -> dict[str, Any]:
    """The results JSON object (the Hub cards' schema) of an evaluation."""
    entries = []
    for family in ("localization", "clustering"):
        entries += metric_entries(evaluation.metrics.get(family, {}))
    if "retrieval" in evaluation.metrics:
        entries += metric_entries(evaluation.metrics["retrieval"], qualifier=f"{evaluation.retrieval_groups} retrieval")
    if not entries:
        raise ValueError("the evaluation produced no metric: " + "; ".join(evaluation.notes or ["no data"]))
    task = LOCALIZATION_TASK if "localization" in evaluation.metrics else EMBEDDING_TASK
    return make_results(model, entries, dataset, evaluation.describe(), task)
