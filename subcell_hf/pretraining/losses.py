"""The three pretraining objectives of docs/pretraining.md, section 7, as plain functions of tensors.

All of them compute in float32 whatever the input dtype (bf16 similarity logits lose too much precision), and all
expect the *global* batch: gather features across processes (see `distributed.py`) before calling them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

NORM_PIX_EPSILON = 1e-6


def _similarities(features: torch.Tensor, temperature: float) -> torch.Tensor:
    features = F.normalize(features.float(), dim=-1)
    logits = features @ features.T / temperature
    self_pairs = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
    return logits.masked_fill(self_pairs, float("-inf"))


def nt_xent_loss(first_view: torch.Tensor, second_view: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent (SimCLR) over 2N features: the only positive of a cell's view is its other view; every other of the
    2N - 2 views is a negative. Mean over all 2N anchors.

    Args:
        first_view, second_view: (N, D) projections of the same N cells, row i of each from cell i (L2-normalised
            here).
    """
    if first_view.shape != second_view.shape:
        raise ValueError(
            f"both views need the same shape, found {tuple(first_view.shape)} and {tuple(second_view.shape)}"
        )
    count = first_view.shape[0]
    logits = _similarities(torch.cat([first_view, second_view]), temperature)
    targets = torch.cat([torch.arange(count, 2 * count), torch.arange(count)]).to(logits.device)
    return F.cross_entropy(logits, targets)


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the "L_out" form): for each anchor, the mean over its
    positives (all *other* features with the same label) of ``-log softmax`` over all other features. Mean over the
    anchors that have at least one positive.

    Args:
        features: (M, D) projections (both views stacked; L2-normalised here).
        labels: (M,) integer labels (the antibody id).
    """
    if labels.shape != features.shape[:1]:
        raise ValueError(f"labels must have shape ({features.shape[0]},), found {tuple(labels.shape)}")
    logits = _similarities(features, temperature)
    log_probabilities = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = labels[:, None] == labels[None, :]
    positives.fill_diagonal_(False)
    counts = positives.sum(dim=1)
    has_positive = counts > 0
    if not has_positive.any():
        raise ValueError("supcon_loss needs at least one pair of features with the same label")
    positive_log_probabilities = log_probabilities.masked_fill(~positives, 0.0).sum(dim=1)
    return -(positive_log_probabilities[has_positive] / counts[has_positive]).mean()


def normalize_patches(patches: torch.Tensor, epsilon: float = NORM_PIX_EPSILON) -> torch.Tensor:
    """Standardise each patch over all its values: ``(x - mean) / sqrt(var + eps)`` (unbiased variance, as MAE)."""
    patches = patches.float()
    mean = patches.mean(dim=-1, keepdim=True)
    variance = patches.var(dim=-1, keepdim=True)
    return (patches - mean) / (variance + epsilon) ** 0.5


def masked_patch_mse(
    predictions: torch.Tensor, target_patches: torch.Tensor, mask: torch.Tensor, norm_pix_loss: bool = True
) -> torch.Tensor:
    """MAE reconstruction loss: per-patch mean squared error, averaged over the hidden patches only.

    Args:
        predictions: (B, L, P) decoder outputs.
        target_patches: (B, L, P) `patchify`-ed input pixels (standardised per patch when `norm_pix_loss`).
        mask: (B, L) 1 for hidden patches, 0 for visible ones.
    """
    target = normalize_patches(target_patches) if norm_pix_loss else target_patches.float()
    per_patch = (predictions.float() - target).pow(2).mean(dim=-1)
    mask = mask.float()
    return (per_patch * mask).sum() / mask.sum().clamp_min(1.0)


__all__ = ["masked_patch_mse", "normalize_patches", "nt_xent_loss", "supcon_loss"]
