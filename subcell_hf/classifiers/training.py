"""Train the localization ensemble on frozen SubCell embeddings.

Each head is a `SubCellClassifier` (Linear-ReLU-Dropout(0.5)-Linear-ReLU-Dropout(0.5)-Linear) trained with its own
seed on the same data; the ensemble is the N heads of seeds 0..N-1. Early stopping watches the macro average
precision on a validation split that holds out whole antibodies (the published split's `valid` list, or a random
share), so that no antibody (staining) is on both sides; several antibodies of one gene may still fall on both
sides with a random split.
The defaults follow the published heads' training (docs/evaluation.md): AdamW at 1e-3, sigmoid focal loss (alpha
0.25, gamma 2), batches of 8192 embeddings, the learning rate halved after 4 epochs without improvement, stop after
20, at most 200 epochs.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.model_selection import GroupShuffleSplit
from tqdm.auto import tqdm

from ..evaluation.functional import macro_average_precision
from ..models import SubCellConfig
from ..models.modeling_subcell import SubCellClassifier
from .config import ClassifierTrainingConfig
from .losses import LOSSES


@dataclass
class TrainedClassifier:
    """One trained head: its weights at the best validation epoch and how it got there."""

    seed: int
    state_dict: dict[str, torch.Tensor]
    best_epoch: int
    validation_macro_average_precision: float
    history: list[dict[str, float]] = field(default_factory=list)


def split_by_group(groups: Sequence, validation_fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, validation) with every group (antibody) entirely on one side."""
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 2:
        raise ValueError(f"a validation split by antibody needs at least 2 antibodies, found {np.unique(groups)}")
    splitter = GroupShuffleSplit(n_splits=1, test_size=validation_fraction, random_state=seed)
    train_index, validation_index = next(splitter.split(np.zeros(len(groups)), groups=groups))
    return train_index, validation_index


def train_classifier(
    head_config: SubCellConfig,
    train: tuple[torch.Tensor, torch.Tensor],
    validation: tuple[torch.Tensor, torch.Tensor],
    seed: int,
    training: ClassifierTrainingConfig = ClassifierTrainingConfig(),
    device: str | torch.device = "cpu",
) -> TrainedClassifier:
    """Train one head from seed `seed` (its initialisation, batch order and dropout) and keep its best epoch.

    Args:
        head_config: the architecture (`embedding_size`, `classifier_hidden_sizes`, `classifier_dropout`,
            `num_labels`).
        train, validation: (embeddings (N, D) float, multi-hot targets (N, L)).
    """
    loss_fn = LOSSES[training.loss]
    device = torch.device(device)
    train_x, train_y = (t.to(device) for t in train)
    validation_x = validation[0].to(device)
    validation_y = validation[1].cpu().numpy()
    forked = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked):  # the caller's random state is left as it was
        torch.manual_seed(seed)
        head = SubCellClassifier(head_config).to(device)
        order = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.AdamW(head.parameters(), lr=training.learning_rate, weight_decay=training.weight_decay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", patience=training.lr_patience, factor=training.lr_factor
        )
        best = TrainedClassifier(seed, _cpu_copy(head), best_epoch=0, validation_macro_average_precision=-1.0)
        for epoch in range(1, training.max_epochs + 1):
            head.train()
            total, batches = 0.0, 0
            for batch in torch.randperm(len(train_x), generator=order).split(training.batch_size):
                batch = batch.to(device)
                loss = loss_fn(head(train_x[batch]), train_y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, batches = total + loss.item(), batches + 1
            score = macro_average_precision(validation_y, _predict(head, validation_x))
            scheduler.step(score)
            best.history.append(
                {
                    "epoch": epoch,
                    "train_loss": total / batches,
                    "validation_macro_average_precision": score,
                    "learning_rate": optimizer.param_groups[0]["lr"],
                }
            )
            if score > best.validation_macro_average_precision:
                best.state_dict, best.best_epoch, best.validation_macro_average_precision = (
                    _cpu_copy(head),
                    epoch,
                    score,
                )
            elif epoch - best.best_epoch >= training.patience:
                break
    return best


def train_ensemble(
    embeddings: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    groups: Sequence,
    head_config: SubCellConfig,
    training: ClassifierTrainingConfig = ClassifierTrainingConfig(),
    seeds: Iterable[int] | None = None,
    device: str | torch.device = "cpu",
    show_progress: bool = True,
    validation: np.ndarray | None = None,
) -> list[TrainedClassifier]:
    """Train one head per seed (default `range(head_config.num_classifiers)`) on the same antibody-held-out split.

    Args:
        embeddings: (N, D) frozen SubCell embeddings, D = `head_config.embedding_size`.
        labels: (N, L) multi-hot targets in `head_config.id2label` order.
        groups: N antibody ids; the validation split holds out whole antibodies.
        validation: optional (N,) boolean mask of the validation rows (e.g. the published split's `valid`
            antibodies); without it, `training.validation_fraction` of the antibodies are held out at random
            (`split_by_group`, seed `training.split_seed`).
    """
    embeddings = torch.as_tensor(np.asarray(embeddings), dtype=torch.float32)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape[1] != head_config.embedding_size:
        raise ValueError(
            f"embeddings must have shape (N, {head_config.embedding_size}) for this config, "
            f"found {tuple(embeddings.shape)}"
        )
    if labels.shape != (len(embeddings), head_config.num_labels):
        raise ValueError(
            f"labels must have shape ({len(embeddings)}, {head_config.num_labels}) (one column per class of "
            f"id2label), found {tuple(labels.shape)}"
        )
    if validation is None:
        train_index, validation_index = split_by_group(groups, training.validation_fraction, training.split_seed)
    else:
        validation = np.asarray(validation, dtype=bool)
        if validation.shape != (len(embeddings),) or validation.all() or not validation.any():
            raise ValueError(
                f"validation must be a boolean mask of {len(embeddings)} rows with both training and validation "
                f"rows, found shape {validation.shape} with {int(validation.sum())} validation rows"
            )
        train_index, validation_index = np.flatnonzero(~validation), np.flatnonzero(validation)
    if not labels[validation_index].any():
        raise ValueError(
            f"the validation split ({len(validation_index)} cells) has no positive label: "
            f"raise validation_fraction (now {training.validation_fraction}) or add antibodies"
        )
    train = (embeddings[train_index], labels[train_index])
    validation = (embeddings[validation_index], labels[validation_index])
    seeds = list(range(head_config.num_classifiers) if seeds is None else seeds)
    trained = []
    for seed in tqdm(seeds, desc="training classifiers", unit="head", disable=not show_progress):
        trained.append(train_classifier(head_config, train, validation, seed, training, device))
    return trained


@torch.no_grad()
def _predict(head: SubCellClassifier, embeddings: torch.Tensor, batch_size: int = 65536) -> np.ndarray:
    head.eval()
    return torch.cat([torch.sigmoid(head(x)).cpu() for x in embeddings.split(batch_size)]).numpy()


def _cpu_copy(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in module.state_dict().items()}
