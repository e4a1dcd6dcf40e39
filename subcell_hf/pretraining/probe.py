"""Online validation of pretraining: how well the embeddings already encode the localization labels.

- a linear probe (multi-label logistic regression, full-batch L-BFGS) trained on the cells of half the antibodies
  of each localization pattern and scored on the other half with `localization_metrics` (micro / macro AP ...):
  the probe must generalise to unseen antibodies, as a localization classifier does;
- kNN: the fraction of cells whose nearest neighbour *from another antibody* has the same set of labels
  (`nearest_neighbor_accuracy`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from ..data.shards import iter_records
from ..evaluation.functional import localization_metrics, nearest_neighbor_accuracy
from ..models import SubCellModel, min_max_normalize


@torch.no_grad()
def embed_cells(encoder: SubCellModel, cells: torch.Tensor, batch_size: int = 64) -> np.ndarray:
    """SubCell embeddings (N, 1536) of raw cell crops (N, C, H, W), normalised as in docs/model.md
    (section 4), in eval mode."""
    was_training = encoder.training
    encoder.eval()
    device = encoder.embeddings.projection.weight.device
    dtype = encoder.embeddings.projection.weight.dtype
    parts = []
    for start in range(0, len(cells), batch_size):
        pixels = min_max_normalize(cells[start : start + batch_size].to(device)).to(dtype)
        parts.append(encoder(pixels).pooler_output.float().cpu())
    encoder.train(was_training)
    return torch.cat(parts).numpy()


def antibody_split(antibody_ids: np.ndarray, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Boolean mask of the training cells: for each set of labels, a random half of its antibodies (at least one),
    so that every localization pattern seen at test time was also seen in training, by other antibodies."""
    rng = np.random.default_rng(seed)
    antibodies, first = np.unique(antibody_ids, return_index=True)
    by_pattern: dict[bytes, list] = {}
    for antibody, index in zip(antibodies, first):
        by_pattern.setdefault(np.asarray(labels[index]).tobytes(), []).append(antibody)
    chosen = []
    for group in by_pattern.values():
        chosen += list(rng.permutation(group)[: max(1, len(group) // 2)])
    return np.isin(antibody_ids, chosen)


def fit_linear_probe(
    train_embeddings: np.ndarray,
    train_labels: np.ndarray,
    test_embeddings: np.ndarray,
    l2: float = 1e-3,
    max_iterations: int = 200,
) -> np.ndarray:
    """Multi-label logistic regression on standardised embeddings; returns test probabilities (N_test, L)."""
    x_train = torch.as_tensor(train_embeddings, dtype=torch.float64)
    x_test = torch.as_tensor(test_embeddings, dtype=torch.float64)
    mean, std = x_train.mean(0), x_train.std(0).clamp_min(1e-6)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train = torch.as_tensor(train_labels, dtype=torch.float64)
    weight = torch.zeros(x_train.shape[1], y_train.shape[1], dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(y_train.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=max_iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = F.binary_cross_entropy_with_logits(x_train @ weight + bias, y_train) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return torch.sigmoid(x_test @ weight + bias).numpy()


def probe_metrics(
    embeddings: np.ndarray, labels: np.ndarray, antibody_ids: np.ndarray, seed: int = 0
) -> dict[str, float]:
    """`knn_accuracy` and the linear-probe metrics (`probe_micro_average_precision`, ...) of embeddings; empty
    when no localization pattern has two antibodies or more (nothing to generalise to).

    Args:
        embeddings: (N, D); labels: (N, L) multi-hot localization labels; antibody_ids: (N,) integer ids.
    """
    labels = np.asarray(labels).round().astype(np.int64)
    antibody_ids = np.asarray(antibody_ids)
    label_sets = np.asarray(["".join(map(str, row)) for row in labels])
    shared = [s for s in np.unique(label_sets) if len(np.unique(antibody_ids[label_sets == s])) > 1]
    if not shared:  # no localization pattern has two antibodies: nothing to retrieve or to test a probe on
        return {}
    metrics = {
        "knn_accuracy": nearest_neighbor_accuracy(embeddings, label_sets, exclude=antibody_ids)
    }
    train = antibody_split(antibody_ids, labels, seed)
    scores = fit_linear_probe(embeddings[train], labels[train], embeddings[~train])
    metrics.update({f"probe_{name}": value for name, value in localization_metrics(labels[~train], scores).items()})
    return metrics


class ValidationCells(NamedTuple):
    """Raw crops (N, C, H, W) float32, 35-class labels (N, 35), antibody ids (N,), cell masks (N, 1, H, W)."""

    cells: torch.Tensor
    labels: np.ndarray
    antibody_ids: np.ndarray
    masks: torch.Tensor


def load_validation_cells(shards: str, channel_names: list[str], num_cells: int) -> ValidationCells:
    """The first `num_cells` cells of the validation shards."""
    cells, labels, antibodies, masks = [], [], [], []
    for record in iter_records(shards):
        channels = [record["channels"].index(name) for name in channel_names]
        cells.append(torch.from_numpy(record["cells"][:, channels].astype(np.float32)))
        masks.append(torch.from_numpy(record["masks"][:, None].astype(np.float32)))
        labels += [cell["labels"] for cell in record["metadata"]]
        antibodies += [record["antibody_id"]] * len(record["cells"])
        if len(antibodies) >= num_cells:
            break
    if not cells:
        raise ValueError(f"validation shards {shards}: no records")
    return ValidationCells(
        torch.cat(cells)[:num_cells],
        np.asarray(labels[:num_cells], dtype=np.float32),
        np.asarray(antibodies[:num_cells]),
        torch.cat(masks)[:num_cells],
    )


__all__ = [
    "ValidationCells", "antibody_split", "embed_cells", "fit_linear_probe", "load_validation_cells", "probe_metrics",
]
