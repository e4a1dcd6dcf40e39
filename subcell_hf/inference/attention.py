"""Per-cell attention pictures: where the SubCell pooler looked, with the cell's outline.

`SubCellModel` returns the gated pooler's attention over the patches, (heads, H/16, W/16) per cell
(docs/model.md, section 2). A cell's picture (`<id>_attention_map.png` of `subcell-hf embed --save-attention`) is
one row of titled panels, each at least `MIN_PANEL` pixels high:

1. the channels as one colour composite (microtubules red, ER yellow, DNA blue, protein green, as the Human
   Protein Atlas shows them), with a colour legend below;
2. one panel per pooling head: that head's attention (upsampled, scaled to its own range) in a colour map over the
   protein channel in grey;

then a colour bar for the attention scale. Where the crop's cell mask is known (fields of view, shards) its
outline is drawn on every panel in `OUTLINE_COLOR`. Drawn with Pillow and NumPy (milliseconds per cell, so a run
can save one picture per cell).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ATTENTION_SUFFIX = "_attention_map.png"
DEFAULT_COLORMAP = "inferno"
#: Smallest panel side in pixels: crops are enlarged by a whole factor (nearest neighbour) up to at least this.
MIN_PANEL = 256
#: The cell outline: pure white, which the attention overlays never take (the colour map's top is pale yellow) and
#: the composite only where every channel is at its brightest.
OUTLINE_COLOR = (255, 255, 255)
#: The composite's colour of each channel (RGB in 0..1).
CHANNEL_COLORS: dict[str, tuple[float, float, float]] = {
    "microtubules": (1.0, 0.0, 0.0),
    "er": (1.0, 1.0, 0.0),
    "dna": (0.0, 0.0, 1.0),
    "protein": (0.0, 1.0, 0.0),
}
_MARGIN, _HEADER, _TITLE, _LEGEND, _BAR = 12, 26, 22, 24, 16


def _rescale(array: np.ndarray) -> np.ndarray:
    low, high = float(array.min()), float(array.max())
    return (array - low) / (high - low) if high > low else np.zeros_like(array)


def _enlarge(array: np.ndarray, factor: int) -> np.ndarray:
    return np.repeat(np.repeat(array, factor, axis=0), factor, axis=1) if factor > 1 else array


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
    """The inner border (`width` pixels) of a boolean mask (H, W), as a boolean array."""
    mask = np.asarray(mask, dtype=bool)
    inner = mask.copy()
    for _ in range(width):
        padded = np.pad(inner, 1, constant_values=False)
        inner = (
            padded[1:-1, 1:-1] & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
        )
    return mask & ~inner


def channel_composite(pixels: np.ndarray, channel_names: Sequence[str]) -> np.ndarray:
    """(H, W, 3) float in 0..1: each channel (scaled to its own range) added in its `CHANNEL_COLORS` colour."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 3 or pixels.shape[0] != len(channel_names):
        raise ValueError(f"pixels: expected ({len(channel_names)}, H, W) for channels {list(channel_names)}, "
                         f"found shape {pixels.shape}")
    composite = np.zeros((*pixels.shape[1:], 3), np.float32)
    for plane, name in zip(pixels, channel_names):
        composite += _rescale(plane)[..., None] * np.asarray(CHANNEL_COLORS.get(name, (1.0, 1.0, 1.0)), np.float32)
    return np.clip(composite, 0, 1)


def attention_panels(
    pixels: np.ndarray,
    attention: np.ndarray,
    channel_names: Sequence[str],
    mask: np.ndarray | None = None,
    alpha: float = 0.55,
    colormap: str = DEFAULT_COLORMAP,
) -> list[np.ndarray]:
    """The picture's panels, RGB uint8 (S, S, 3) each: the channel composite, then one attention overlay per head;
    `S` is the crop side enlarged by a whole factor to at least `MIN_PANEL`, the mask's outline drawn on each.

    Args:
        pixels: (C, H, W) the cell in `channel_names` order (any range; each channel shown scaled to its own).
        attention: (heads, h, w) attention maps on the patch grid.
        mask: (H, W) the cell's own mask in the crop, or None (no outline).
    """
    from matplotlib import colormaps

    attention = np.asarray(attention, dtype=np.float32)
    if attention.ndim != 3:
        raise ValueError(f"attention: expected (heads, h, w), found shape {attention.shape}")
    pixels = np.asarray(pixels, dtype=np.float32)
    factor = max(1, math.ceil(MIN_PANEL / max(pixels.shape[1:])))
    protein = _enlarge(_rescale(pixels[list(channel_names).index("protein") if "protein" in channel_names else -1]),
                       factor)
    grey = np.repeat(protein[..., None], 3, axis=-1)
    upsampled = F.interpolate(  # to the crop's pixels, then enlarged with them
        torch.from_numpy(attention)[None], size=pixels.shape[1:], mode="bilinear", align_corners=False
    )[0].numpy()
    cmap = colormaps[colormap]
    panels = [_enlarge(channel_composite(pixels, channel_names), factor)]
    panels += [
        (1 - alpha) * grey + alpha * _enlarge(cmap(_rescale(head))[..., :3].astype(np.float32), factor)
        for head in upsampled
    ]
    panels = [(np.clip(panel, 0, 1) * 255).round().astype(np.uint8) for panel in panels]
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pixels.shape[1:]:  # a crop resized for the model (`size`): the mask follows, nearest
            rows = np.arange(pixels.shape[1]) * mask.shape[0] // pixels.shape[1]
            columns = np.arange(pixels.shape[2]) * mask.shape[1] // pixels.shape[2]
            mask = mask[rows[:, None], columns[None]]
        border = outline(_enlarge(mask, factor), width=max(1, factor // 2))
        for panel in panels:
            panel[border] = OUTLINE_COLOR
    return panels


@functools.lru_cache(maxsize=None)
def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ValueError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def attention_picture(
    pixels: np.ndarray,
    attention: np.ndarray,
    channel_names: Sequence[str],
    mask: np.ndarray | None = None,
    title: str = "",
    colormap: str = DEFAULT_COLORMAP,
) -> np.ndarray:
    """The labelled picture, RGB uint8: a header (`title`), the titled `attention_panels`, the channel legend
    under the composite and a colour bar for the attention scale."""
    from matplotlib import colormaps
    from PIL import Image, ImageDraw

    panels = attention_panels(pixels, attention, channel_names, mask, colormap=colormap)
    side_h, side_w = panels[0].shape[:2]
    bar_left = _MARGIN + len(panels) * (side_w + _MARGIN)
    width = bar_left + _BAR + 4 * _MARGIN + 24
    top = _HEADER + _TITLE
    height = top + side_h + _LEGEND + _MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    text, small = _font(14), _font(12)
    header = title or "cell"
    if mask is not None:
        header += "  (white line: the cell's outline)"
    draw.text((_MARGIN, 5), header, fill="black", font=text)
    names = ["channels"] + [f"pooler head {k} attention" for k in range(1, len(panels))]
    for index, (panel, name) in enumerate(zip(panels, names)):
        left = _MARGIN + index * (side_w + _MARGIN)
        canvas.paste(Image.fromarray(panel), (left, top))
        draw.text((left, _HEADER + 3), name, fill="black", font=text)
    x = _MARGIN  # the composite's legend: each channel's name in its colour
    for name in channel_names:
        colour = tuple(int(c * (170 if name == "er" else 210)) for c in CHANNEL_COLORS.get(name, (0.5, 0.5, 0.5)))
        draw.text((x, top + side_h + 5), name, fill=colour, font=small)
        x += int(draw.textlength(name, font=small)) + 10
    gradient = colormaps[colormap](np.linspace(1, 0, side_h))[:, :3]  # high at the top
    strip = (np.repeat(gradient[:, None], _BAR, axis=1) * 255).round().astype(np.uint8)
    canvas.paste(Image.fromarray(strip), (bar_left, top))
    draw.rectangle((bar_left, top, bar_left + _BAR - 1, top + side_h - 1), outline="black")
    draw.text((bar_left + _BAR + 4, top - 2), "high", fill="black", font=small)
    draw.text((bar_left + _BAR + 4, top + side_h - 14), "low", fill="black", font=small)
    draw.text((bar_left - 2, top + side_h + 5), "attention", fill="black", font=small)
    return np.asarray(canvas)


def save_attention_png(
    path: str | os.PathLike,
    pixels: np.ndarray,
    attention: np.ndarray,
    channel_names: Sequence[str],
    mask: np.ndarray | None = None,
    title: str = "",
) -> Path:
    """Write `attention_picture(...)` as a PNG, atomically."""
    from PIL import Image

    from ..utils.atomic_writes import atomic_path

    picture = attention_picture(pixels, attention, channel_names, mask, title)
    with atomic_path(path) as temporary:
        Image.fromarray(picture).save(temporary, format="PNG", compress_level=1)  # fast: one picture per cell
    return Path(path)


__all__ = [
    "ATTENTION_SUFFIX",
    "CHANNEL_COLORS",
    "MIN_PANEL",
    "OUTLINE_COLOR",
    "attention_panels",
    "attention_picture",
    "channel_composite",
    "outline",
    "save_attention_png",
]
