"""The settings of an evaluation (`recipes/evaluate_model.py`): the protocol, the dataset as the card names it, and
the embedding pass shared with ensemble training. Plain dataclasses that import nothing heavy (the checks import
what they check against), so that a recipe's `--help` answers without torch; draccus derives the command line."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class EmbeddingPassConfig:
    """The embedding pass over the shards (`subcell_hf.inference.embed`), cached and reused for the same inputs."""

    # embedding cache folder; none: <output>/embeddings
    cache: str | None = None
    # cells per encoder forward pass
    batch_size: int = 64
    # data loader worker processes
    num_workers: int = 2
    # encoder autocast: auto (bf16 on a GPU that has it, else fp32), fp32, bf16 or fp16
    precision: str = "auto"

    def __post_init__(self) -> None:
        from ..options import PRECISION_NAMES

        if self.precision not in ("auto", *PRECISION_NAMES):
            raise ValueError(f"embedding.precision must be auto or one of {PRECISION_NAMES}, found {self.precision!r}")

    def cache_dir(self, output: str | os.PathLike) -> Path:
        return Path(self.cache) if self.cache else Path(output) / "embeddings"

    def embed_options(self) -> dict[str, Any]:
        """The `subcell_hf.inference.EmbedConfig` fields of this pass."""
        return {"batch_size": self.batch_size, "num_workers": self.num_workers, "precision": self.precision}


@dataclass
class EvaluationOptions:
    """How to evaluate (the protocol); defaults reproduce the paper's HPA test-set evaluation."""

    # antibody split: published (the paper's lists; only test antibodies are scored), random (score every cell
    # given), or a split file (a folder of <split>_antibodies.txt, or a .csv/.tsv with columns antibody,split)
    split: str | None = "published"
    # score the paper's location groups, e.g. 'Grouping 1' (default: the classes)
    grouping: str | None = None
    # clustering methods, a list of kmeans and leiden ([] for none)
    clustering: tuple[str, ...] = ("kmeans", "leiden")
    # clustering and null-distribution seed
    seed: int = 0
    # Leiden: kNN graph size
    leiden_neighbors: int = 15
    # Leiden resolution
    leiden_resolution: float = 1.0
    # CSV/TSV/Parquet table joined to the cells on the columns it shares with them (e.g. plate, well), adding
    # columns such as compound, moa
    metadata: str | None = None
    # per-cell column naming the perturbation: replicate retrieval
    replicate_column: str | None = None
    # per-cell column naming the mechanism of action: MoA retrieval
    moa_column: str | None = None
    # columns defining a profile
    profile_by: tuple[str, ...] = ("plate", "well")
    # plate column for the per-plate normalisation
    plate_column: str = "plate"
    # pycytominer per-plate normalisation: mad_robustize, robustize, standardize, spherize or none
    normalization: str = "mad_robustize"
    # reference wells for the normalisation, a pandas query such as "pert_type == 'control'" (default: all)
    normalization_samples: str = "all"
    # copairs null-distribution size
    null_size: int = 10000
    # p-value threshold of the fraction retrieved
    threshold: float = 0.05

    def __post_init__(self):
        from .functional import CLUSTERING_METHODS
        from .groupings import grouping_map
        from .retrieval import NORMALIZATION_METHODS

        unknown = [method for method in self.clustering if method not in CLUSTERING_METHODS]
        if unknown:
            raise ValueError(f"clustering methods must be among {CLUSTERING_METHODS}, found {unknown}")
        if self.normalization not in NORMALIZATION_METHODS:
            raise ValueError(f"normalization must be one of {NORMALIZATION_METHODS}, found {self.normalization!r}")
        if self.grouping is not None:
            grouping_map(self.grouping)  # an unknown grouping fails here, before any work


@dataclass
class DatasetInfo:
    """The dataset as the results and the model card name it."""

    # dataset name on the card
    name: str = "SubCell shards"
    # dataset id on the card
    type: str = "subcell-shards"
    # dataset split on the card
    split: str = "test"


@dataclass
class EvaluateModelConfig:
    """An evaluation run (`recipes/evaluate_model.py`): the protocol's metrics of a model on labelled shards."""

    # required: SubCell model folder or Hub id (with or without classifiers)
    model: str
    # required: labelled shards: a folder, a brace pattern, a .tar, or a YAML list of those
    shards: list[str] | str
    # required: output folder: results.json, model-index.yaml, report.md, plots, retrieval tables
    output: str
    # the model as the results name it, e.g. a Hub repo id (default: model)
    model_name: str | None = None
    protocol: EvaluationOptions = field(default_factory=EvaluationOptions)
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    embedding: EmbeddingPassConfig = field(default_factory=EmbeddingPassConfig)
    # also write the results JSON here (hub_cards/results/<repo>.json)
    card_results: str | None = None
    # discard an embedding cache computed with other settings
    overwrite: bool = False
