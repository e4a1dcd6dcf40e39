"""Optimiser and learning-rate schedule of SPEC section 7 ("Optimisation").

- AdamW, betas (0.9, 0.95); weight decay only on the weight matrices of `nn.Linear` and `nn.Conv2d` layers, never
  on biases, norms, CLS / mask tokens or position embeddings (the original silently decayed some of those).
- Peak learning rate scaled with the global batch: ``base_lr * cells_per_step / 256``.
- Linear warmup, then cosine decay to `min_lr_ratio` (0.1 %) of the peak. Optimizer update `k` (0-based) uses
  `learning_rate_factor(k)`: the factor is in place *before* the update it belongs to (the original applied each
  value one step late).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

REFERENCE_BATCH_CELLS = 256


def scaled_learning_rate(base_lr: float, cells_per_step: int, reference: int = REFERENCE_BATCH_CELLS) -> float:
    """The linear scaling rule: `base_lr` is the rate for a global batch of `reference` cells."""
    return base_lr * cells_per_step / reference


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: the weight matrices of Linear / Conv2d layers (decayed) and everything else (not)."""
    matrices = {
        id(module.weight)
        for module in model.modules()
        if isinstance(module, (nn.Linear, nn.Conv2d)) and module.weight.requires_grad
    }
    decay, no_decay = [], []
    for parameter in model.parameters():
        if parameter.requires_grad:
            (decay if id(parameter) in matrices else no_decay).append(parameter)
    return [
        {"params": decay, "weight_decay": weight_decay, "name": "decay"},
        {"params": no_decay, "weight_decay": 0.0, "name": "no_decay"},
    ]


def build_optimizer(
    model: nn.Module, learning_rate: float, weight_decay: float = 0.05, betas: tuple[float, float] = (0.9, 0.95)
) -> torch.optim.AdamW:
    return torch.optim.AdamW(parameter_groups(model, weight_decay), lr=learning_rate, betas=tuple(betas))


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 1e-3) -> float:
    """Multiplier of the peak rate for optimizer update `step` (0-based).

    Warmup: ``(step + 1) / warmup_steps`` (the first update already moves). Then a half cosine from 1 at update
    `warmup_steps` to `min_lr_ratio` at the last update `total_steps - 1`; it stays there if training runs longer.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float = 1e-3
) -> LambdaLR:
    """`LambdaLR` over `learning_rate_factor`: call `.step()` once after each optimizer update (not per
    micro-batch and not once per process, which is why it is not passed to `accelerator.prepare`)."""
    if total_steps < 1 or warmup_steps < 0:
        raise ValueError(f"need total_steps >= 1 and warmup_steps >= 0, found {total_steps} and {warmup_steps}")
    return LambdaLR(optimizer, lambda step: learning_rate_factor(step, warmup_steps, total_steps, min_lr_ratio))


__all__ = [
    "REFERENCE_BATCH_CELLS",
    "build_lr_scheduler",
    "build_optimizer",
    "learning_rate_factor",
    "parameter_groups",
    "scaled_learning_rate",
]
