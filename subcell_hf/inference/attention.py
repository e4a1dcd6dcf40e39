"""Attention-map pictures: where the SubCell pooler looked, over the protein channel.

`SubCellModel` returns the gated pooler's attention over the patches, (heads, H/16, W/16) per cell
(docs/model.md, section 2).
A picture is one row of panels, as wide as the crop is high: the protein channel in grey, then one panel per pooling
head with that head's attention (upsampled, scaled to its own range) in a colour map over the grey protein.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ATTENTION_SUFFIX = "_attention_map.png"
DEFAULT_COLORMAP = "inferno"


def _rescale(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def attention_overlay(
    protein: np.ndarray, attention: np.ndarray, alpha: float = 0.55, colormap: str = DEFAULT_COLORMAP
) -> np.ndarray:
    """An RGB uint8 picture (H, W * (1 + heads), 3): protein, then each head's attention over the protein.

    Args:
        protein: (H, W) the protein channel of the cell (any range; shown scaled to its own min and max).
        attention: (heads, h, w) attention maps on the patch grid.
    """
    from matplotlib import colormaps

    protein = _rescale(np.asarray(protein, dtype=np.float32))
    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 3:
        raise ValueError(f"attention: expected (heads, h, w), found shape {attention.shape}")
    height, width = protein.shape
    upsampled = F.interpolate(
        torch.from_numpy(attention)[None], size=(height, width), mode="bilinear", align_corners=False
    )[0].numpy()
    grey = np.repeat(protein[..., None], 3, axis=-1)
    panels = [grey]
    cmap = colormaps[colormap]
    for head in upsampled:
        heat = cmap(_rescale(head))[..., :3].astype(np.float32)
        panels.append((1 - alpha) * grey + alpha * heat)
    return (np.clip(np.concatenate(panels, axis=1), 0, 1) * 255).round().astype(np.uint8)


def save_attention_png(path: str | os.PathLike, protein: np.ndarray, attention: np.ndarray) -> Path:
    """Write `attention_overlay(protein, attention)` as a PNG, atomically."""
    from PIL import Image

    from ..utils.atomic_writes import atomic_path

    with atomic_path(path) as temporary:
        Image.fromarray(attention_overlay(protein, attention)).save(temporary, format="PNG")
    return Path(path)


__all__ = ["ATTENTION_SUFFIX", "attention_overlay", "save_attention_png"]
