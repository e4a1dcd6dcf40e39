"""Multi-label losses for the localization heads: binary cross-entropy or sigmoid focal loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def sigmoid_focal_loss(
    logits: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Mean focal loss (Lin et al., 2017) of independent sigmoids: `alpha_t * (1 - p_t) ** gamma * BCE`.

    `alpha` weighs the positives (`1 - alpha` the negatives); `alpha < 0` turns the weighting off. With `gamma = 0`
    and no weighting this is the plain BCE.
    """
    targets = targets.to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probabilities = torch.sigmoid(logits)
    p_t = probabilities * targets + (1 - probabilities) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss.mean()


def binary_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, targets.to(logits.dtype))


#: Loss name -> `loss(logits, targets)`; the focal loss uses the published heads' alpha 0.25, gamma 2.
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "bce": binary_cross_entropy,
    "focal": sigmoid_focal_loss,
}
