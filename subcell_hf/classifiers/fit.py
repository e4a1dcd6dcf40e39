"""From an encoder and labelled shards to a `SubCellForProteinLocalization` folder (`recipes/train_classifiers.py`).

1. Embed every cell once with the frozen encoder (`subcell_hf.inference.embed`; its output folder is the cache).
2. Turn each cell's locations into multi-hot targets over the chosen class list.
3. Choose the training and validation cells: with an antibody split (`published` by default, or a split file)
   the cells of its `train` and `valid` antibodies (test antibodies and unlisted ones are left out, and the
   counts recorded); with `random`, a random share of the antibodies validates.
4. Train one head per seed 0..N-1 (`train_ensemble`); under `accelerate launch` the seeds are dealt over the
   processes and the trained heads gathered on the main process.
5. Attach the heads to the encoder and save the model with its image processor, plus `training.json`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.atomic_writes import atomic_directory, atomic_write_text, check_output_folder
from ..models import LOCALIZATION_CLASSES, PRETRAINING_CLASSES
from .ensemble import attach_ensemble, localization_config
from .config import CLASS_SETS, ClassifierTrainingConfig
from .training import TrainedClassifier, train_ensemble

logger = logging.getLogger(__name__)

MODEL_DIRNAME = "model"
EMBEDDINGS_DIRNAME = "embeddings"
TRAINING_LOG = "training.json"


def resolve_classes(classes: str | Sequence[str], locations: Sequence[Sequence[str]]) -> list[str]:
    """A class list from a name in `CLASS_SETS` or an explicit list. `"present"` keeps the classes that occur in
    `locations`, in `PRETRAINING_CLASSES` order (a superset of the 31 localization classes)."""
    if isinstance(classes, str):
        if classes == "localization":
            return list(LOCALIZATION_CLASSES)
        if classes == "pretraining":
            return list(PRETRAINING_CLASSES)
        if classes == "present":
            seen = {name for names in locations for name in names}
            return [name for name in PRETRAINING_CLASSES if name in seen]
        raise ValueError(f"classes must be one of {CLASS_SETS} or a list of class names, found {classes!r}")
    unknown = [name for name in classes if name not in PRETRAINING_CLASSES]
    if unknown:
        raise ValueError(f"unknown class names {unknown}; expected names from PRETRAINING_CLASSES")
    return list(classes)


def load_encoder(name_or_path: str | os.PathLike, revision: str | None = None):
    """An `EmbeddingModel` holding only the encoder of any SubCell folder or Hub repo (its heads, if any, dropped)."""
    from ..inference import EmbeddingModel

    return EmbeddingModel.from_pretrained(str(name_or_path), revision, classifiers=False)


def train_localization_model(
    encoder: str | os.PathLike,
    shards: str | os.PathLike | Sequence[str | os.PathLike],
    output_dir: str | os.PathLike,
    classes: str | Sequence[str] = "localization",
    split: str | os.PathLike | None = "published",
    num_classifiers: int = 10,
    training: ClassifierTrainingConfig = ClassifierTrainingConfig(),
    embedding_cache: str | os.PathLike | None = None,
    embed_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> Path:
    """Train an N-head localization ensemble on a frozen encoder and save encoder + ensemble.

    Args:
        encoder: folder or Hub id of a SubCell encoder (e.g. one exported by `recipes/pretrain.py`).
        shards: labelled WebDataset shards (`subcell-hf shards`): a folder, a brace pattern or a list.
        output_dir: receives `model/` (the `SubCellForProteinLocalization` folder, image processor included),
            `training.json` (per-head best epoch, validation AP and history) and, by default, the embedding cache.
        classes: `"localization"` (the 31 released classes), `"pretraining"` (35), `"present"` or a list.
        split: `"published"` (the paper's antibody lists: train on `train`, stop early on `valid`), `"random"`
            (hold out `training.validation_fraction` of the antibodies) or a split file
            (`subcell_hf.evaluation.splits`).
        num_classifiers: ensemble size; heads use seeds 0..N-1.
        training: how each head is trained (`ClassifierTrainingConfig`).
        embedding_cache: where embeddings are cached (default `<output_dir>/embeddings`); reused when the encoder
            and shards are unchanged.
        embed_options: `subcell_hf.inference.EmbedConfig` fields for the embedding pass (batch size, precision...).
        overwrite: replace an existing `model/`, and recompute an embedding cache made with other settings
            (without it, both are refused).

    Returns the path of the saved model folder (on every process).
    """
    from accelerate.utils import gather_object

    from ..evaluation.embeddings import embed_shards
    from ..evaluation.splits import format_report, resolve_split
    from ..inference import EmbeddingSettingsError
    from ..utils.processes import process_state

    antibody_split = resolve_split(split)  # a bad split file fails before the embedding pass
    state = process_state()
    output_dir = Path(output_dir)
    model_dir = output_dir / MODEL_DIRNAME
    check_output_folder(model_dir, overwrite, "train_classifiers")  # before the long work; replaces only our own
    encoder_model = load_encoder(encoder)
    cache = embedding_cache or output_dir / EMBEDDINGS_DIRNAME
    options = {"progress": show_progress and state.is_main_process, **(embed_options or {})}
    try:
        labelled = embed_shards(encoder_model, shards, cache, **options)
    except EmbeddingSettingsError:
        if not overwrite:
            raise
        # the cache holds another encoder's or other shards' embeddings: with overwrite, compute them afresh
        labelled = embed_shards(encoder_model, shards, cache, **{**options, "overwrite": True})
    class_names = resolve_classes(classes, labelled.locations())
    labels = labelled.labels(class_names)
    labelled_rows = labels.any(axis=1)
    if not labelled_rows.any():
        raise ValueError(f"no cell of {shards!r} has a location among the classes {class_names}")
    if not labelled_rows.all():
        logger.warning(
            "%d of %d cells have no location among the classes: left out", (~labelled_rows).sum(), len(labels)
        )
    antibodies = labelled.antibodies
    rows, validation, split_report = labelled_rows, None, None
    if antibody_split is not None:
        split_report = antibody_split.report(antibodies)
        if state.is_main_process:
            logger.info(format_report(split_report, antibody_split.source))
        train_rows = antibody_split.rows(antibodies, "train")
        valid_rows = antibody_split.rows(antibodies, "valid")
        rows = labelled_rows & (train_rows | valid_rows)
        validation = valid_rows[rows]
    head_config = localization_config(encoder_model.model.config, class_names, num_classifiers)
    seeds = list(range(num_classifiers))[state.process_index :: state.num_processes]
    heads = train_ensemble(
        labelled.embeddings[rows],
        labels[rows],
        antibodies[rows],
        head_config,
        training,
        seeds=seeds,
        device=state.device,
        show_progress=show_progress and state.is_main_process,
        validation=validation,
    )
    heads = sorted(gather_object(heads), key=lambda head: head.seed)
    if state.is_main_process:
        model = attach_ensemble(encoder_model.model.cpu(), heads, class_names)
        _save_atomically(model, encoder_model.processor, model_dir)
        log = _training_log(encoder_model.name, shards, class_names, training, heads, antibodies[rows])
        log["split"] = "random" if antibody_split is None else antibody_split.source
        log["split_report"] = split_report
        log["validation_cells"] = int(validation.sum()) if validation is not None else None
        # inputs that could not be read (their cells are left out): said in the log and the recipe's exit status
        log["failed_inputs"] = labelled.failed_inputs
        log["failures_listed_in"] = str(Path(cache) / "summary.csv") if labelled.failed_inputs else None
        atomic_write_text(output_dir / TRAINING_LOG, json.dumps(log, indent=2) + "\n")
    state.wait_for_everyone()
    return model_dir


def _save_atomically(model, processor, destination: Path) -> None:
    with atomic_directory(destination, command="train_classifiers") as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)


def _training_log(
    encoder: str,
    shards: Any,
    classes: list[str],
    training: ClassifierTrainingConfig,
    heads: list[TrainedClassifier],
    antibodies: np.ndarray,
) -> dict[str, Any]:
    return {
        "encoder": encoder,
        "shards": [str(s) for s in shards] if isinstance(shards, (list, tuple)) else str(shards),
        "classes": classes,
        "num_cells": int(len(antibodies)),
        "num_antibodies": int(len(np.unique(antibodies))),
        "training": asdict(training),
        "heads": [
            {
                "seed": head.seed,
                "best_epoch": head.best_epoch,
                "epochs_run": len(head.history),
                "validation_macro_average_precision": head.validation_macro_average_precision,
                "history": head.history,
            }
            for head in heads
        ],
    }
