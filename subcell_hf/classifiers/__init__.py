"""The localization classifier ensemble: train N heads on frozen SubCell embeddings, then attach them to the
encoder as a `SubCellForProteinLocalization` (see `recipes/train_classifiers.py` for the end-to-end recipe).

The names below load on first use, so that reading the settings (`subcell_hf.classifiers.config`, what
`recipes/train_classifiers.py --help` shows) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy_exports import lazy_exports

#: public name -> submodule that defines it (imported on first access)
_LAZY_NAMES = {
    "CLASS_SETS": ".config",
    "ClassifierTrainingConfig": ".config",
    "TrainClassifiersConfig": ".config",
    "attach_ensemble": ".ensemble",
    "localization_config": ".ensemble",
    "load_encoder": ".fit",
    "resolve_classes": ".fit",
    "train_localization_model": ".fit",
    "LOSSES": ".losses",
    "sigmoid_focal_loss": ".losses",
    "TrainedClassifier": ".training",
    "split_by_group": ".training",
    "train_classifier": ".training",
    "train_ensemble": ".training",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import CLASS_SETS, ClassifierTrainingConfig, TrainClassifiersConfig
    from .ensemble import attach_ensemble, localization_config
    from .fit import load_encoder, resolve_classes, train_localization_model
    from .losses import LOSSES, sigmoid_focal_loss
    from .training import TrainedClassifier, split_by_group, train_classifier, train_ensemble


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES)


__all__ = [
    "CLASS_SETS",
    "LOSSES",
    "ClassifierTrainingConfig",
    "TrainClassifiersConfig",
    "TrainedClassifier",
    "attach_ensemble",
    "load_encoder",
    "localization_config",
    "resolve_classes",
    "sigmoid_focal_loss",
    "split_by_group",
    "train_classifier",
    "train_ensemble",
    "train_localization_model",
]
