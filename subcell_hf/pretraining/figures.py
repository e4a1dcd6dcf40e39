"""PNG figures written during pretraining: sample reconstructions (MAE) and the pooler's attention maps.

Channels are shown as the HPA colour composite: microtubules red, ER yellow, DNA blue, protein green.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ..utils.atomic_writes import atomic_path  # noqa: E402
from .losses import NORM_PIX_EPSILON  # noqa: E402
from .masking import patchify, unpatchify  # noqa: E402

HPA_COLOURS = {
    "microtubules": (1.0, 0.0, 0.0),
    "er": (1.0, 1.0, 0.0),
    "dna": (0.0, 0.0, 1.0),
    "protein": (0.0, 1.0, 0.0),
}


def composite(image: torch.Tensor, channel_names: list[str]) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (H, W, 3) RGB composite in HPA colours."""
    image = image.detach().float().clamp(0, 1).cpu()
    rgb = torch.zeros(3, *image.shape[1:])
    for channel, name in zip(image, channel_names):
        rgb += torch.tensor(HPA_COLOURS[name])[:, None, None] * channel
    return rgb.clamp(0, 1).permute(1, 2, 0).numpy()


def predicted_pixels(
    images: torch.Tensor, reconstruction: torch.Tensor, patch_size: int, norm_pix_loss: bool
) -> torch.Tensor:
    """Decoder output (B, L, P) as images (B, C, H, W); norm-pix predictions are put back in each target patch's
    mean and standard deviation for display."""
    if norm_pix_loss:
        target = patchify(images.float(), patch_size)
        mean, variance = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)
        reconstruction = reconstruction.float() * (variance + NORM_PIX_EPSILON) ** 0.5 + mean
    grid = (images.shape[-2] // patch_size, images.shape[-1] // patch_size)
    return unpatchify(reconstruction.float(), patch_size, grid)


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    try:
        with atomic_path(path) as staging:
            figure.savefig(staging, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path


def save_reconstruction_figure(
    path: str | os.PathLike,
    images: torch.Tensor,
    reconstruction: torch.Tensor,
    patch_mask: torch.Tensor,
    patch_size: int,
    channel_names: list[str],
    norm_pix_loss: bool = True,
) -> Path:
    """One row per cell: the input, what the encoder saw (hidden patches grey), the reconstruction of the hidden
    patches pasted over the visible ones."""
    predicted = predicted_pixels(images, reconstruction, patch_size, norm_pix_loss).cpu()
    images = images.float().cpu()
    grid = (images.shape[-2] // patch_size, images.shape[-1] // patch_size)
    hidden = patch_mask.float().cpu().reshape(-1, 1, *grid)
    hidden = hidden.repeat_interleave(patch_size, -2).repeat_interleave(patch_size, -1)
    figure, axes = plt.subplots(len(images), 3, figsize=(6, 2 * len(images)), squeeze=False)
    for row in range(len(images)):
        shown_hidden = hidden[row, 0].numpy()[..., None] > 0
        original = composite(images[row], channel_names)
        panels = (
            original,
            np.where(shown_hidden, 0.5, original),  # hidden patches in grey
            composite(images[row] * (1 - hidden[row]) + predicted[row] * hidden[row], channel_names),
        )
        for column, (panel, title) in enumerate(zip(panels, ("input", "visible", "reconstruction"))):
            axes[row, column].imshow(panel)
            axes[row, column].set_axis_off()
            if row == 0:
                axes[row, column].set_title(title)
    return _save(figure, path)


def save_attention_figure(
    path: str | os.PathLike, images: torch.Tensor, pool_attentions: torch.Tensor, channel_names: list[str]
) -> Path:
    """One row per cell: the input, then each pooling head's attention over the patches."""
    heads = pool_attentions.shape[1]
    figure, axes = plt.subplots(len(images), 1 + heads, figsize=(2 * (1 + heads), 2 * len(images)), squeeze=False)
    for row, (image, attention) in enumerate(zip(images, pool_attentions.float().cpu())):
        axes[row, 0].imshow(composite(image, channel_names))
        for head in range(heads):
            axes[row, 1 + head].imshow(attention[head].numpy(), cmap="magma")
            if row == 0:
                axes[row, 1 + head].set_title(f"pool head {head}")
        for axis in axes[row]:
            axis.set_axis_off()
    axes[0, 0].set_title("input")
    return _save(figure, path)


__all__ = ["composite", "predicted_pixels", "save_attention_figure", "save_reconstruction_figure"]
