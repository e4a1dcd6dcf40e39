"""The settings of ensemble training (`recipes/train_classifiers.py`): how each head is trained and the run around
it. Plain dataclasses that import nothing heavy (the checks import what they check against), so that the recipe's
`--help` answers without torch; draccus derives the command line. The defaults follow the published heads
(docs/evaluation.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..evaluation.config import EmbeddingPassConfig

#: Named class lists for `classes`: the released ensembles' 31 classes, pretraining's 35, or those the data has.
CLASS_SETS = ("localization", "pretraining", "present")


@dataclass
class ClassifierTrainingConfig:
    """How each head of the ensemble is trained (see the module docstring for where the defaults come from)."""

    # focal (sigmoid focal loss, alpha 0.25, gamma 2) or bce
    loss: str = "focal"
    # AdamW learning rate
    learning_rate: float = 1e-3
    # AdamW weight decay
    weight_decay: float = 0.01
    # embeddings per optimizer step
    batch_size: int = 8192
    # most epochs per head
    max_epochs: int = 200
    # epochs without improvement of the validation macro AP before a head stops
    patience: int = 20
    # epochs without improvement before the learning rate is multiplied by lr_factor
    lr_patience: int = 4
    # learning-rate factor after lr_patience epochs without improvement
    lr_factor: float = 0.5
    # share of the antibodies that validate with the random split
    validation_fraction: float = 0.1
    # seed of the random split
    split_seed: int = 0

    def __post_init__(self):
        from .losses import LOSSES

        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {sorted(LOSSES)}, found {self.loss!r}")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in (0, 1), found {self.validation_fraction}")



@dataclass
class TrainClassifiersConfig:
    """An ensemble training run (`recipes/train_classifiers.py`): N heads on the frozen encoder's embeddings."""

    # required: SubCell encoder folder or Hub id (classifier heads it has are dropped)
    encoder: str
    # required: labelled shards: a folder, a brace pattern, a .tar, or a YAML list of those
    shards: list[str] | str
    # required: output folder: model/, training.json and (by default) embeddings/
    output: str
    # localization (the 31 released classes), pretraining (35), present (those in the data) or a list of names
    classes: list[str] | str = "localization"
    # antibody split: published (the paper's lists: train on train, stop early on valid), random (hold out
    # training.validation_fraction of the antibodies) or a split file (a folder of <split>_antibodies.txt, or a
    # .csv/.tsv with columns antibody,split)
    split: str = "published"
    # ensemble size; heads use seeds 0..N-1
    num_classifiers: int = 10
    training: ClassifierTrainingConfig = field(default_factory=ClassifierTrainingConfig)
    embedding: EmbeddingPassConfig = field(default_factory=EmbeddingPassConfig)
    # replace an existing <output>/model, and recompute an embedding cache made with another encoder or shards
    overwrite: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.classes, str) and self.classes not in CLASS_SETS:
            raise ValueError(f"classes must be one of {CLASS_SETS} or a list of class names, found {self.classes!r}")
