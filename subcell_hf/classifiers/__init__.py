"""The localization classifier ensemble: train N heads on frozen SubCell embeddings, then attach them to the
encoder as a `SubCellForProteinLocalization` (see `recipes/train_classifiers.py` for the end-to-end recipe)."""

from .ensemble import attach_ensemble, localization_config
from .fit import CLASS_SETS, TrainClassifiersConfig, load_encoder, resolve_classes, train_localization_model
from .losses import LOSSES, sigmoid_focal_loss
from .training import ClassifierTrainingConfig, TrainedClassifier, split_by_group, train_classifier, train_ensemble

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
