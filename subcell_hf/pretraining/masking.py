"""Patches and patch masks for the MAE objective (docs/pretraining.md, section 7: "Reconstruction").

Every cell hides the same number of patches (so the kept tokens stack into one tensor); which patches is random,
either uniformly or object-aware: a chosen fraction of the patches on the cell, the rest of the budget on background.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, H/p * W/p, p * p * C), patches in row-major order, values ordered (row, column, channel)."""
    return rearrange(images, "b c (h p) (w q) -> b (h w) (p q c)", p=patch_size, q=patch_size)


def unpatchify(patches: torch.Tensor, patch_size: int, grid: tuple[int, int]) -> torch.Tensor:
    """Inverse of `patchify`: (B, h * w, p * p * C) -> (B, C, h * p, w * p)."""
    return rearrange(patches, "b (h w) (p q c) -> b c (h p) (w q)", h=grid[0], w=grid[1], p=patch_size, q=patch_size)


def cell_patch_fraction(cell_masks: torch.Tensor, patch_size: int) -> torch.Tensor:
    """(B, 1, H, W) cell masks -> (B, H/p * W/p): the fraction of each patch's pixels inside the cell."""
    return F.avg_pool2d((cell_masks > 0).float(), kernel_size=patch_size).flatten(1)


def num_masked_patches(num_patches: int, mask_ratio: float) -> int:
    """How many of `num_patches` a `mask_ratio` hides (the same for every cell)."""
    return int(round(num_patches * mask_ratio))


@dataclass
class PatchMask:
    """Which patches the encoder sees.

    Attributes:
        ids_keep: (B, K) indices of the visible patches (ascending noise order).
        ids_restore: (B, L) positions that undo the keep-then-hide shuffle (`gather` with it restores patch order).
        mask: (B, L) 1.0 where the patch is hidden, 0.0 where visible.
    """

    ids_keep: torch.Tensor
    ids_restore: torch.Tensor
    mask: torch.Tensor


def _mask_from_hidden(hidden: torch.Tensor, noise: torch.Tensor) -> PatchMask:
    """Shuffle visible patches first (in noise order), then hidden ones; `hidden` has the same count per row."""
    num_keep = int((~hidden[0]).sum())
    ids_shuffle = torch.argsort(hidden.float() * 2.0 + noise, dim=1)  # noise is in [0, 1): visible ones sort first
    return PatchMask(
        ids_keep=ids_shuffle[:, :num_keep],
        ids_restore=torch.argsort(ids_shuffle, dim=1),
        mask=hidden.to(noise.dtype),
    )


def random_patch_mask(noise: torch.Tensor, mask_ratio: float) -> PatchMask:
    """Hide `round(L * mask_ratio)` patches of each row, chosen uniformly by `noise` (B, L) in [0, 1)."""
    num_hidden = num_masked_patches(noise.shape[1], mask_ratio)
    ranks = torch.argsort(torch.argsort(noise, dim=1), dim=1)
    return _mask_from_hidden(ranks >= noise.shape[1] - num_hidden, noise)


def object_aware_patch_mask(
    noise: torch.Tensor, on_cell: torch.Tensor, mask_ratio: float, object_mask_ratio: float
) -> PatchMask:
    """Object-aware masking with the same budget `M = round(L * mask_ratio)` for every cell.

    Of the `n` patches on the cell, `min(round(object_mask_ratio * n), M)` are hidden; the rest of the budget goes
    to background patches. When the background has too few patches, the remainder is taken from the cell, so the
    budget is always spent exactly.

    Args:
        noise: (B, L) uniform [0, 1) scores that order the choice within the cell and within the background.
        on_cell: (B, L) bool, True for patches that lie on the cell.
    """
    num_patches = noise.shape[1]
    budget = num_masked_patches(num_patches, mask_ratio)
    on_cell = on_cell.bool()
    cell_count = on_cell.sum(dim=1)
    background_count = num_patches - cell_count
    hide_on_cell = torch.clamp(torch.round(cell_count * object_mask_ratio).long(), max=budget)
    hide_on_background = torch.minimum(budget - hide_on_cell, background_count)
    hide_on_cell = budget - hide_on_background

    # Rank the patches within each group: cell patches sort first (random order), then background ones.
    order = torch.argsort(noise + (~on_cell).float() * 2.0, dim=1)
    rank = torch.argsort(order, dim=1)
    rank_in_group = torch.where(on_cell, rank, rank - cell_count[:, None])
    hidden = torch.where(on_cell, rank_in_group < hide_on_cell[:, None], rank_in_group < hide_on_background[:, None])
    return _mask_from_hidden(hidden, noise)


__all__ = [
    "PatchMask",
    "cell_patch_fraction",
    "num_masked_patches",
    "object_aware_patch_mask",
    "patchify",
    "random_patch_mask",
    "unpatchify",
]
