"""Optimiser and learning-rate schedule of pretraining (docs/pretraining.md, "Optimisation").

- AdamW, betas (0.9, 0.95). Two weight-decay policies:
  `default`: decay only the weight matrices of `nn.Linear` and `nn.Conv2d` layers, never biases, norms, CLS /
  mask tokens or position embeddings (the usual practice);
  `release`: what the released code did: every encoder / decoder tensor with ndim > 1 (CLS token and position
  embeddings included) at `weight_decay`, the rest (biases, norms) at 0, and every projector-head parameter at
  AdamW's default 0.01.
- Peak learning rate scaled with the global batch: ``base_lr * cells_per_step / 256``.
- Linear warmup, then **linear** decay to `min_lr_ratio` (0.1 %) of the peak at the last update, as the release.
  Optimizer update `k` (0-based) uses `learning_rate_factor(k)`: the factor is in place *before* the update it
  belongs to (the original applied each value one step late).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

REFERENCE_BATCH_CELLS = 256
#: AdamW's default weight decay, which the release left on its projector heads.
RELEASE_HEAD_WEIGHT_DECAY = 0.01
WEIGHT_DECAY_POLICIES = ("default", "release")


def scaled_learning_rate(base_lr: float, cells_per_step: int, reference: int = REFERENCE_BATCH_CELLS) -> float:
    """The linear scaling rule: `base_lr` is the rate for a global batch of `reference` cells."""
    return base_lr * cells_per_step / reference


def parameter_groups(model: nn.Module, weight_decay: float, policy: str = "default") -> list[dict]:
    """AdamW groups. `default`: the weight matrices of Linear / Conv2d layers (decayed) and everything else (not).
    `release`: ndim > 1 tensors outside the projectors (decayed), other tensors outside them (not), and all
    projector parameters at 0.01 (module docstring)."""
    if policy not in WEIGHT_DECAY_POLICIES:
        raise ValueError(f"weight decay policy must be one of {WEIGHT_DECAY_POLICIES}, found {policy!r}")
    if policy == "release":
        return _release_groups(model, weight_decay)
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


def _release_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    groups = {"decay": [], "no_decay": [], "heads": []}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if any(part.endswith("_projector") for part in name.split(".")):
            groups["heads"].append(parameter)
        else:
            groups["decay" if parameter.ndim > 1 else "no_decay"].append(parameter)
    return [
        {"params": groups["decay"], "weight_decay": weight_decay, "name": "decay"},
        {"params": groups["no_decay"], "weight_decay": 0.0, "name": "no_decay"},
        {"params": groups["heads"], "weight_decay": RELEASE_HEAD_WEIGHT_DECAY, "name": "projector_heads"},
    ]


def build_optimizer(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.05,
    betas: tuple[float, float] = (0.9, 0.95),
    policy: str = "default",
) -> torch.optim.AdamW:
    groups = [group for group in parameter_groups(model, weight_decay, policy) if group["params"]]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=tuple(betas))


def learning_rate_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 1e-3) -> float:
    """Multiplier of the peak rate for optimizer update `step` (0-based).

    Warmup: ``(step + 1) / warmup_steps`` (the first update already moves). Then a straight line from 1 at update
    `warmup_steps` to `min_lr_ratio` at the last update `total_steps - 1`; it stays there if training runs longer.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - 1 - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return 1.0 - (1.0 - min_lr_ratio) * progress


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
    "WEIGHT_DECAY_POLICIES",
    "build_lr_scheduler",
    "build_optimizer",
    "learning_rate_factor",
    "parameter_groups",
    "scaled_learning_rate",
]
