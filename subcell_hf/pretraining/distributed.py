"""Gathering features across processes for the contrastive losses (docs/pretraining.md, section 7: "Global batch").

Every process gathers the projections of all processes *with gradients* and computes the same global loss. In
backward, each process receives the sum over processes of the gradients of its own features (an all-reduce of the
gathered gradient, then its slice), i.e. `world_size` times the gradient of the global loss; DDP and DeepSpeed
then average gradients over processes, which divides that factor out again. The update is exactly the gradient
of the global loss, as if one process had seen the whole batch.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from ..utils.distributed import rank, world_size


def _all_gather(tensor: torch.Tensor) -> torch.Tensor:
    parts = [torch.empty_like(tensor) for _ in range(world_size(launcher_fallback=False))]
    dist.all_gather(parts, tensor.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        return _all_gather(tensor)

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.contiguous().clone()
        dist.all_reduce(gradient, op=dist.ReduceOp.SUM)  # every process's gradient of every row
        start = rank(launcher_fallback=False) * ctx.rows
        return gradient[start : start + ctx.rows]


def gather_across_processes(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate `tensor` (same shape on every process) from all processes along dim 0, in rank order.

    Differentiable when `tensor` requires grad; a no-op in a single process.
    """
    if world_size(launcher_fallback=False) == 1:  # no process group: nothing to gather
        return tensor
    if tensor.requires_grad:
        return _GatherWithGradient.apply(tensor)
    return _all_gather(tensor)


__all__ = ["gather_across_processes"]
