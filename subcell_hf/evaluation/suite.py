"""Run the model card's metrics over labelled cells, following the paper's protocol (`recipes/evaluate_model.py`).

1. Split: with an antibody split (`published` by default, or a split file) only the cells of its `test` list are
   evaluated, and how many antibodies of each list the data holds is recorded; `random` evaluates every cell.
2. Localization (models with classifiers): each head's and the ensemble's probabilities against each cell's
   locations over the model's classes (or over a grouping's groups, `grouping`), cells with none of them left
   out, classes absent from the evaluated cells dropped before every metric (`functional.localization_report`).
3. Clustering: k-means and/or Leiden clusters of the embeddings of single-location cells against that location.
4. Retrieval (with `replicate_column` and/or `moa_column`): cells averaged to profiles (`profile_by`, e.g.
   plate + well), normalised per plate, scored with copairs (`retrieval.profile_retrieval`).

`Evaluation.protocol` records every choice (split, grouping, seeds, clustering and retrieval settings, library
versions), and goes into the results JSON.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import __version__
from .config import DatasetInfo, EvaluateModelConfig, EvaluationOptions  # noqa: F401  (re-exported)
from .embeddings import LabelledEmbeddings
from .functional import CLUSTERING_METHODS, clustering_metrics, localization_report
from .groupings import group_scores, grouping_map
from .model_index import LOCALIZATION_TASK, make_results, metric_entries
from .splits import format_report, resolve_split

EMBEDDING_TASK: dict[str, str] = {"type": "image-feature-extraction", "name": "Protein localization"}
#: Libraries whose versions are recorded with the results.
RECORDED_LIBRARIES = (
    "subcell_hf",
    "torch",
    "transformers",
    "numpy",
    "scikit-learn",
    "copairs",
    "pycytominer",
    "scanpy",
    "igraph",
    "huggingface_hub",
)
CLUSTERING_LABELS = {"kmeans": "k-means", "leiden": "Leiden"}


@dataclass
class Evaluation:
    """Headline metrics per family (what the card shows), the full localization report, copairs' per-group
    retrieval tables, cell counts, notes and the protocol."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    localization: dict[str, Any] | None = None
    retrieval_tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    failed_inputs: int = 0  # inputs that could not be read: the metrics leave their cells out

    def describe(self) -> str:
        """How it was measured, in one paragraph (the results JSON `source`)."""
        protocol = self.protocol
        parts = [
            f"subcell_hf {__version__} recipes/evaluate_model.py over {self.counts.get('cells', 0)} cells "
            f"(antibody split: {protocol.get('split', 'random')})"
        ]
        if self.localization:
            report = self.localization
            parts.append(
                f"localization: {report['num_heads']} classifier heads and their ensemble (mean probabilities) on "
                f"{report['num_cells']} cells, {len(report['classes'])} classes present"
                + (f" of {protocol['grouping']}" if protocol.get("grouping") else "")
                + (f", {len(report['absent_classes'])} absent classes dropped before every metric"
                   if report["absent_classes"] else "")
            )
        for method in protocol.get("clustering", []):
            if f"clustering_{method}" in self.metrics:
                parts.append(
                    f"clustering: {CLUSTERING_LABELS[method]} of {self.counts['clustering_cells']} single-location "
                    f"cells (L2-normalised embeddings, seed {protocol['seed']})"
                )
        for family in ("replicate_retrieval", "moa_retrieval"):
            if family in self.metrics:
                retrieval = protocol["retrieval"]
                parts.append(
                    f"{family.replace('_', ' ')}: copairs mAP on {self.counts['profiles']} profiles (mean by "
                    f"{'+'.join(retrieval['profile_by'])}, {retrieval['normalization']} per "
                    f"{retrieval['plate_column']})"
                )
        return "; ".join(parts + self.notes) + "."


def library_versions() -> dict[str, str | None]:
    """Installed versions of the libraries behind the numbers (None when one is not installed)."""
    versions = {}
    for name in RECORDED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def evaluate_embeddings(
    labelled: LabelledEmbeddings,
    options: EvaluationOptions = EvaluationOptions(),
    head_probabilities: np.ndarray | None = None,
    seeds: Sequence[int] | None = None,
) -> Evaluation:
    """Every metric family the data allows; a family that cannot be computed is skipped with a note.

    Args:
        labelled: per-cell embeddings and metadata (and the ensemble's probabilities, if any).
        options: the protocol.
        head_probabilities: (N, H, L) per-head probabilities in `labelled.probability_classes` order; without
            them, the ensemble's probabilities are scored as a single head.
        seeds: the heads' seeds, for the record (default 0..H-1, as `recipes/train_classifiers.py` trains them).
    """
    split = resolve_split(options.split)
    protocol = {
        "split": "random" if split is None else split.source,
        "grouping": options.grouping,
        "seed": options.seed,
        "clustering": list(options.clustering),
        "library_versions": library_versions(),
    }
    result = Evaluation(counts={"cells_in_data": len(labelled)}, protocol=protocol)
    if options.metadata is not None:
        labelled = attach_metadata(labelled, options.metadata, result.notes)
        protocol["metadata"] = str(options.metadata)
    if split is not None:
        report = split.report(labelled.antibodies)
        protocol["split_report"] = report
        result.notes.append(format_report(report, split.source).replace("\n", " "))
        rows = split.rows(labelled.antibodies, "test")
        labelled = labelled.subset(rows)
        head_probabilities = None if head_probabilities is None else np.asarray(head_probabilities)[rows]
    result.counts["cells"] = len(labelled)
    if labelled.probabilities is not None:
        _localization(result, labelled, options, head_probabilities, seeds)
    if options.clustering:
        _clustering(result, labelled, options)
    if options.replicate_column or options.moa_column:
        _retrieval(result, labelled, options)
    return result


def attach_metadata(
    labelled: LabelledEmbeddings, path: str | os.PathLike, notes: list[str] | None = None
) -> LabelledEmbeddings:
    """Add the columns of a CSV / TSV / Parquet table (e.g. per well: compound, MoA, control flag) to every cell,
    joined on the columns it shares with the per-cell metadata (e.g. `plate` and `well`). Cells without a
    matching row get "" (counted in `notes`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: metadata table not found")
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path).astype(str)
    elif path.suffix.lower() in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    else:
        raise ValueError(f"{path}: expected a .csv, .tsv or .parquet table, found {path.suffix!r}")
    keys = [column for column in table.columns if column in labelled.obs.columns]
    if not keys or len(keys) == len(table.columns):
        raise ValueError(
            f"{path}: needs key columns shared with the cells' metadata {sorted(labelled.obs.columns)} and new "
            f"columns; found {list(table.columns)}"
        )
    duplicated = table.duplicated(keys)
    if duplicated.any():
        raise ValueError(f"{path}: several rows for the keys {keys}, e.g. {table[duplicated].iloc[0][keys].tolist()}")
    obs = labelled.obs.reset_index(drop=True)
    merged = obs.astype({key: str for key in keys}).merge(table, on=keys, how="left", indicator=True)
    unmatched = int((merged.pop("_merge") != "both").sum())
    if unmatched and notes is not None:
        notes.append(f"{unmatched} cells have no row in {path.name} (joined on {keys})")
    new_columns = [column for column in table.columns if column not in keys]
    merged[new_columns] = merged[new_columns].fillna("")
    merged.index = labelled.obs.index
    return LabelledEmbeddings(labelled.embeddings, merged, labelled.probabilities, list(labelled.probability_classes))


def _localization(result, labelled, options, head_probabilities, seeds) -> None:
    classes = list(labelled.probability_classes)
    labels = labelled.labels(classes)
    heads = labelled.probabilities[:, None, :] if head_probabilities is None else np.asarray(head_probabilities)
    if options.grouping:
        labels, heads, classes = group_scores(labels, heads, classes, options.grouping)
    rows = labels.any(axis=1)
    result.counts.update(classes=len(classes), localization_cells=int(rows.sum()))
    if not rows.any():
        result.notes.append("no cell has a location among the model's classes: no localization metrics")
        return
    report = localization_report(labels[rows], heads[rows], classes)
    report["seeds"]["ids"] = list(seeds) if seeds is not None else list(range(report["num_heads"]))
    if head_probabilities is None:
        result.notes.append("per-head probabilities unavailable: the ensemble is scored as one head")
    result.localization = report
    result.metrics["localization"] = report["ensemble"]
    if report["num_heads"] > 1:
        result.metrics["localization_seed_mean"] = report["seeds"]["mean"]
        result.metrics["localization_seed_std"] = report["seeds"]["std"]


def _clustering(result, labelled, options) -> None:
    locations = labelled.locations()
    if options.grouping:
        mapping = grouping_map(options.grouping)
        locations = [list(dict.fromkeys(mapping[name] for name in names if name in mapping)) for names in locations]
    single = np.array([len(names) == 1 for names in locations], dtype=bool)
    names = np.array([names[0] for names, one in zip(locations, single) if one])
    if len(np.unique(names)) < 2:
        result.notes.append("fewer than 2 distinct single-location classes: no clustering metrics")
        return
    result.counts.update(clustering_cells=int(single.sum()), clusters=int(len(np.unique(names))))
    result.protocol["leiden"] = {"n_neighbors": options.leiden_neighbors, "resolution": options.leiden_resolution}
    for method in options.clustering:
        result.metrics[f"clustering_{method}"] = clustering_metrics(
            labelled.embeddings[single],
            names,
            seed=options.seed,
            method=method,
            n_neighbors=options.leiden_neighbors,
            resolution=options.leiden_resolution,
        )


def _retrieval(result, labelled, options) -> None:
    from copairs.matching import UnpairedException

    from .retrieval import normalize_per_plate, profile_retrieval, well_profiles

    profiles = well_profiles(labelled.embeddings, labelled.obs, options.profile_by)
    profiles = normalize_per_plate(profiles, options.plate_column, options.normalization, options.normalization_samples)
    result.counts["profiles"] = len(profiles)
    result.protocol["retrieval"] = {
        "replicate_column": options.replicate_column,
        "moa_column": options.moa_column,
        "profile_by": list(options.profile_by),
        "aggregation": "mean",
        "plate_column": options.plate_column,
        "normalization": options.normalization,
        "normalization_samples": options.normalization_samples,
        "null_size": options.null_size,
        "threshold": options.threshold,
        "distance": "cosine",
    }
    common = dict(
        plate=options.plate_column, null_size=options.null_size, threshold=options.threshold, seed=options.seed
    )
    families = []
    if options.replicate_column:
        families.append(("replicate_retrieval", options.replicate_column, []))
    if options.moa_column:
        exclude = [options.replicate_column] if options.replicate_column else []
        families.append(("moa_retrieval", options.moa_column, exclude))
    for family, column, exclude in families:
        try:
            retrieved = profile_retrieval(profiles.values, profiles.meta, column, exclude=exclude, **common)
        except UnpairedException as error:  # e.g. every MoA has a single compound in the data
            result.notes.append(f"no {family.replace('_', ' ')}: {error} (column {column!r}, excluding {exclude})")
            continue
        result.metrics[family] = retrieved.metrics
        result.retrieval_tables[family] = retrieved.per_group


def head_probabilities(model: Any, embeddings: np.ndarray, batch_size: int = 65536) -> np.ndarray | None:
    """(N, H, L) per-head probabilities of a `SubCellForProteinLocalization` (or an `EmbeddingModel` holding one)
    on precomputed embeddings, in float32; None for an encoder without heads."""
    import torch

    module = getattr(model, "model", model)
    if not hasattr(module, "classify"):
        return None
    parameter = next(module.parameters())
    outputs = []
    with torch.no_grad():
        for batch in torch.from_numpy(np.asarray(embeddings, dtype=np.float32)).split(batch_size):
            logits, _, _ = module.classify(batch.to(parameter.device, parameter.dtype))
            outputs.append(torch.sigmoid(logits.float()).cpu().numpy())
    return np.concatenate(outputs)


def evaluate_shards(
    model: Any,
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    cache_dir: str | os.PathLike,
    options: EvaluationOptions = EvaluationOptions(),
    embed_options: dict[str, Any] | None = None,
) -> Evaluation:
    """Embed (and classify) `shards` with `model` (an `EmbeddingModel`, Hub id or folder), then `evaluate_embeddings`.

    The embeddings are cached in `cache_dir`; under `accelerate launch` the processes share the embedding pass.
    Per-head probabilities are recomputed from the cached embeddings with the model's heads.
    """
    from ..inference import EmbeddingModel
    from .embeddings import embed_shards

    resolve_split(options.split)  # a bad split file fails before the embedding pass
    if not isinstance(model, EmbeddingModel):
        model = EmbeddingModel.from_pretrained(str(model))
    labelled = embed_shards(model, shards, cache_dir, **(embed_options or {}))
    evaluation = evaluate_embeddings(labelled, options, head_probabilities(model, labelled.embeddings))
    if labelled.failed_inputs:  # said in the results and in the exit status, never silently fewer cells
        evaluation.failed_inputs = labelled.failed_inputs
        evaluation.notes.append(
            f"{labelled.failed_inputs} input(s) could not be read and are left out (see {cache_dir}/summary.csv)"
        )
    return evaluation


def results_from_evaluation(model: str, evaluation: Evaluation, dataset: dict[str, str]) -> dict[str, Any]:
    """The results JSON object (the Hub cards' schema, plus `protocol` and `report`) of an evaluation."""
    grouping = evaluation.protocol.get("grouping")
    suffix = f", {grouping}" if grouping else ""
    entries = []
    if "localization" in evaluation.metrics:
        heads = evaluation.localization["num_heads"]
        label = f"ensemble of {heads} heads" if heads > 1 else "ensemble"
        entries += metric_entries(evaluation.metrics["localization"], qualifier=label + suffix, config="ensemble")
        if "localization_seed_mean" in evaluation.metrics:
            entries += metric_entries(
                evaluation.metrics["localization_seed_mean"],
                qualifier=f"mean of {heads} seeds{suffix}",
                config="seed-mean",
            )
    for method in CLUSTERING_METHODS:
        if f"clustering_{method}" in evaluation.metrics:
            entries += metric_entries(
                evaluation.metrics[f"clustering_{method}"], qualifier=CLUSTERING_LABELS[method] + suffix, config=method
            )
    for family, label in (("replicate_retrieval", "replicate retrieval"), ("moa_retrieval", "MoA retrieval")):
        if family in evaluation.metrics:
            entries += metric_entries(evaluation.metrics[family], qualifier=label, config=family.replace("_", "-"))
    if not entries:
        raise ValueError("the evaluation produced no metric: " + "; ".join(evaluation.notes or ["no data"]))
    task = LOCALIZATION_TASK if "localization" in evaluation.metrics else EMBEDDING_TASK
    results = make_results(model, entries, dataset, evaluation.describe(), task)
    results["protocol"] = evaluation.protocol
    results["report"] = {
        "metrics": evaluation.metrics,
        "localization": evaluation.localization,
        "counts": evaluation.counts,
        "notes": evaluation.notes,
    }
    return results


__all__ = [
    "EMBEDDING_TASK",
    "Evaluation",
    "EvaluationOptions",
    "evaluate_embeddings",
    "evaluate_shards",
    "head_probabilities",
    "library_versions",
    "results_from_evaluation",
]
