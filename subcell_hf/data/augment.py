"""The two views of SubCell pretraining (docs/pretraining.md, "Views"), batched: one call per batch, on the batch's
device, with the release's parameters.

`TwoViewAugmentation` turns raw cells into two views:

1. cell masking, per view independently: in every record of `cells_per_record` cells, half of them (chosen at
   random) are multiplied by their own (dilated) segmentation mask; then each cell is min-max scaled to [0, 1]
   (the preprocessing of the released models), so a camera offset in the background does not shift the masked
   cell's intensities;
2. geometric (both views, each cell its own draw): horizontal and vertical flips (p=0.5 each), then, with equal
   probability, either a random affine transform (rotation +-90 degrees, translation up to 20 % of the side,
   scale 0.8-1.2) or a random perspective (corners moved inward by up to 25 % of the half side) that itself
   applies with p=0.5. Image and mask are warped by the same sampling grid in one `grid_sample` call (the mask is
   kept where it is >= 0.5), so the mask moves with the image. Outside the cell crop is zero;
3. photometric, on the views in `photometric_views` (view 2 for MAE-CellS-ProtS-Pool, both views for
   ViT-ProtS-Pool: `for_family`), per cell, in this order: zero one non-protein channel (p=0.25, only with
   more than two channels); multiply the protein channel by U(0, 2) / max(cell) (p=0.25); per channel, brightness
   and contrast factors from U(0.5, 1.5) in random order (ColorJitter, always); then per cell either blur
   (each channel with p=0.5: 7x7 Gaussian, sigma from U(0.1, 2)) or sharpen (each channel with p=0.5 x 0.5:
   sharpness factor 2), with equal probability; Gaussian noise (p=0.5) with sigma from U(0.01, 0.05) drawn per
   channel; per channel with p=0.5 x 0.5 random erasing of a rectangle covering 2-10 % of the crop, aspect ratio
   0.3-3.3. Values are clamped to [0, 1] after each step, as torchvision does for float images.

There is **no second min-max** after augmentation (the release has none): a darkened view stays dark.

All random parameters are drawn from one `torch.Generator`, so a seed reproduces the views exactly on a device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..models.image_processing_subcell import min_max_normalize


@dataclass(frozen=True)
class AugmentationConfig:
    """The augmentation hyper-parameters; the defaults are the release's (MAE-CellS-ProtS-Pool: photometric changes
    on view 2 only; `for_family`)."""

    @classmethod
    def for_family(cls, family: str, **overrides) -> "AugmentationConfig":
        """The release's settings for a model family: ViT-ProtS-Pool applies the photometric changes to both views."""
        views = (1, 2) if family == "vit-prots-pool" else (2,)
        return cls(**{"photometric_views": views, **overrides})


    masked_fraction: float = 0.5
    flip_probability: float = 0.5
    affine_probability: float = 0.5  # affine, else perspective
    rotation_degrees: float = 90.0
    translate: float = 0.2
    scale: tuple[float, float] = (0.8, 1.2)
    perspective_probability: float = 0.5  # RandomPerspective's own p, once chosen
    perspective_distortion: float = 0.25
    photometric_views: tuple[int, ...] = (2,)
    drop_channel_probability: float = 0.25
    protein_rescale_probability: float = 0.25
    protein_rescale: tuple[float, float] = (0.0, 2.0)
    brightness: float = 0.5
    contrast: float = 0.5
    blur_branch_probability: float = 0.5  # per cell: the blur branch, else the sharpen branch
    blur_probability: float = 0.5  # per channel, in the blur branch
    blur_kernel_size: int = 7
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    sharpen_probability: float = 0.25  # per channel, in the sharpen branch (0.5, and RandomAdjustSharpness's 0.5)
    sharpness: float = 2.0
    noise_probability: float = 0.5
    noise_sigma: tuple[float, float] = (0.01, 0.05)  # drawn per channel
    erase_probability: float = 0.25  # per channel (0.5, and RandomErasing's own 0.5)
    erase_scale: tuple[float, float] = (0.02, 0.1)
    erase_ratio: tuple[float, float] = (0.3, 3.3)


class TwoViewAugmentation(nn.Module):
    """Cell masking, geometric and photometric augmentation of SubCell pretraining (module docstring).

    Args:
        config: the hyper-parameters (default: the release's, docs/data.md); keyword overrides replace single
            fields, e.g.
            ``TwoViewAugmentation(noise_probability=0.0)``.

    `forward(cells, masks, cells_per_record=8, generator=None)` takes `cells` (N, C, H, W) raw intensities (any
    numeric dtype) and `masks` (N, 1, H, W) or (N, H, W) in {0, 1}, N a multiple of `cells_per_record` with the
    cells of one record contiguous, and returns float32 tensors on the input's device: `view1`, `view2`
    (N, C, H, W), `mask1`, `mask2` (N, 1, H, W). The protein channel is the last one.
    """

    def __init__(self, config: AugmentationConfig | None = None, **overrides):
        super().__init__()
        known = {f.name for f in fields(AugmentationConfig)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown augmentation settings {unknown}; expected some of {sorted(known)}")
        self.config = replace(config or AugmentationConfig(), **overrides)
        if self.config.blur_kernel_size % 2 != 1:
            raise ValueError(f"blur_kernel_size must be odd, found {self.config.blur_kernel_size}")
        if not set(self.config.photometric_views) <= {1, 2}:
            raise ValueError(f"photometric_views must name views 1 and/or 2, found {self.config.photometric_views}")

    @classmethod
    def for_family(cls, family: str, **overrides) -> "TwoViewAugmentation":
        """The release's augmentation for `mae-cells-prots-pool` or `vit-prots-pool`."""
        return cls(AugmentationConfig.for_family(family), **overrides)

    def extra_repr(self) -> str:
        return repr(self.config)

    # -------------------------------------------------------------------------------------------- forward
    def forward(
        self,
        cells: torch.Tensor,
        masks: torch.Tensor,
        cells_per_record: int = 8,
        generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        if cells.ndim != 4:
            raise ValueError(f"cells: expected (N, C, H, W), found shape {tuple(cells.shape)}")
        if masks.ndim == 3:
            masks = masks.unsqueeze(1)
        if masks.shape != (cells.shape[0], 1) + tuple(cells.shape[2:]):
            raise ValueError(
                f"masks: expected shape {(cells.shape[0], 1) + tuple(cells.shape[2:])}, found {tuple(masks.shape)}"
            )
        if cells.shape[0] % cells_per_record:
            raise ValueError(
                f"the batch holds {cells.shape[0]} cells, not a multiple of cells_per_record={cells_per_record}"
            )
        generator = _cpu_generator(generator)
        images = cells.float()
        masks = masks.to(images.dtype)
        output = {}
        for view in (1, 2):
            # multiply the raw cell by its mask, then min-max (so a camera offset in the background does not shift
            # the masked cell's intensities), then augment
            masked = self.masked_cells(cells.shape[0], cells_per_record, generator).to(images.device)
            view_images = min_max_normalize(torch.where(masked.view(-1, 1, 1, 1), images * masks, images))
            view_images, view_masks = self.geometric(view_images, masks, generator)
            if view in self.config.photometric_views:
                view_images = self.photometric(view_images, generator)
            output[f"view{view}"] = view_images  # no second min-max (the release has none)
            output[f"mask{view}"] = view_masks
        return output

    def masked_cells(self, num_cells: int, cells_per_record: int, generator: torch.Generator) -> torch.Tensor:
        """(N,) bool: which cells to multiply by their mask; exactly `masked_fraction` of each record."""
        num_masked = int(cells_per_record * self.config.masked_fraction)
        ranks = torch.rand(num_cells // cells_per_record, cells_per_record, generator=generator).argsort(dim=1)
        return (ranks < num_masked).flatten()

    # ------------------------------------------------------------------------------------------ geometric
    def geometric(
        self, images: torch.Tensor, masks: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Flip, then affine or perspective; the same sampling grid for images (N, C, H, W) and masks (N, 1, H, W)."""
        n, _, height, width = images.shape
        matrices = self.sampling_matrices(n, generator).to(images.device, torch.float32)
        identity = torch.eye(2, 3, device=images.device).unsqueeze(0)
        base = F.affine_grid(identity, [1, 1, height, width], align_corners=False)  # (1, H, W, 2), x then y
        points = torch.cat([base, torch.ones_like(base[..., :1])], -1)
        projected = torch.einsum("nij,bhwj->nhwi", matrices, points)
        grid = projected[..., :2] / projected[..., 2:]
        warped = F.grid_sample(
            torch.cat([images, masks.to(images.dtype)], 1),
            grid.to(images.dtype),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=False,
        )
        return warped[:, :-1], (warped[:, -1:] >= 0.5).to(images.dtype)

    def sampling_matrices(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(N, 3, 3) float64 maps from output to input coordinates (normalised to [-1, 1], x then y)."""
        c = self.config
        # affine: output = R S input + t  =>  input = S^-1 R^-1 (output - t)
        angle = _uniform(n, -c.rotation_degrees, c.rotation_degrees, generator) * math.pi / 180
        scale = _uniform(n, *c.scale, generator)
        shift = torch.stack([_uniform(n, -2 * c.translate, 2 * c.translate, generator) for _ in range(2)], 1)
        cos, sin = torch.cos(angle), torch.sin(angle)
        linear = torch.stack([torch.stack([cos, sin], 1), torch.stack([-sin, cos], 1)], 1) / scale.view(n, 1, 1)
        affine = torch.zeros(n, 3, 3, dtype=torch.float64)
        affine[:, :2, :2] = linear
        affine[:, :2, 2] = -torch.einsum("nij,nj->ni", linear, shift)
        affine[:, 2, 2] = 1

        # perspective: the corners of the output, moved inward, come from the corners of the input
        corners = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]], dtype=torch.float64)
        corners = corners.expand(n, 4, 2)
        inward = -corners * _uniform(n * 8, 0, c.perspective_distortion, generator).view(n, 4, 2)
        perspective = _homography(corners + inward, corners)

        use_affine = (torch.rand(n, generator=generator) < c.affine_probability).view(n, 1, 1)
        apply_perspective = (torch.rand(n, generator=generator) < c.perspective_probability).view(n, 1, 1)
        identity = torch.eye(3, dtype=torch.float64).expand(n, 3, 3)
        matrices = torch.where(use_affine, affine, torch.where(apply_perspective, perspective, identity))
        # flips act first on the image, so last on the output -> input map
        flips = torch.where(torch.rand(n, 2, generator=generator) < c.flip_probability, -1.0, 1.0).double()
        flip_matrices = torch.diag_embed(torch.cat([flips, torch.ones(n, 1, dtype=torch.float64)], 1))
        return flip_matrices @ matrices

    # ---------------------------------------------------------------------------------------- photometric
    def photometric(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The intensity changes on [0, 1] images (N, C, H, W); protein is the last channel."""
        c = self.config
        n, channels, height, width = images.shape
        device = images.device

        def draw(*size, low=0.0, high=1.0):
            return (torch.rand(*size, generator=generator, dtype=torch.float64) * (high - low) + low).to(
                device, images.dtype
            )

        if channels > 2:  # drop one non-protein channel
            drop = draw(n) < c.drop_channel_probability
            which = torch.randint(0, channels - 1, (n,), generator=generator).to(device)
            dropped = F.one_hot(which, channels).bool() & drop.view(n, 1)
            images = images.masked_fill(dropped.view(n, channels, 1, 1), 0.0)

        rescale = draw(n) < c.protein_rescale_probability
        target = draw(n, low=c.protein_rescale[0], high=c.protein_rescale[1])
        peak = images.amax(dim=(1, 2, 3)).clamp_min(1e-6)  # the cell's maximum
        factor = torch.where(rescale, target / peak, torch.ones_like(peak)).view(n, 1, 1, 1)
        images = torch.cat([images[:, :-1], (images[:, -1:] * factor).clamp(0, 1)], 1)

        # ColorJitter(brightness, contrast) per channel: both, in random order
        brightness = draw(n, channels, low=1 - c.brightness, high=1 + c.brightness).view(n, channels, 1, 1)
        contrast = draw(n, channels, low=1 - c.contrast, high=1 + c.contrast).view(n, channels, 1, 1)
        brightness_first = (draw(n, channels) < 0.5).view(n, channels, 1, 1)

        def adjust_contrast(x):
            return (contrast * x + (1 - contrast) * x.mean(dim=(2, 3), keepdim=True)).clamp(0, 1)

        first = adjust_contrast((images * brightness).clamp(0, 1))
        second = (adjust_contrast(images) * brightness).clamp(0, 1)
        images = torch.where(brightness_first, first, second)

        sigma = draw(n * channels, low=c.blur_sigma[0], high=c.blur_sigma[1])
        blur_branch = (draw(n) < c.blur_branch_probability).view(n, 1, 1, 1)
        blur = blur_branch & (draw(n, channels) < c.blur_probability).view(n, channels, 1, 1)
        sharpen = ~blur_branch & (draw(n, channels) < c.sharpen_probability).view(n, channels, 1, 1)
        images = torch.where(blur, _gaussian_blur(images, sigma, c.blur_kernel_size), images)
        images = torch.where(sharpen, _sharpen(images, c.sharpness), images)

        noisy = (draw(n) < c.noise_probability).view(n, 1, 1, 1)
        noise_sigma = draw(n, channels, low=c.noise_sigma[0], high=c.noise_sigma[1]).view(n, channels, 1, 1)
        noise = torch.randn(images.shape, generator=_device_generator(generator, device), device=device)
        images = torch.where(noisy, (images + noise.to(images.dtype) * noise_sigma).clamp(0, 1), images)

        erase = _erasing_mask(n, channels, height, width, c, generator).to(device)
        erase &= (draw(n, channels) < c.erase_probability).view(n, channels, 1, 1)
        return images.masked_fill(erase, 0.0)


# ------------------------------------------------------------------------------------------------ helpers
def _cpu_generator(generator: torch.Generator | None) -> torch.Generator:
    """The CPU generator all parameters are drawn from: the caller's, one seeded from it, or from torch's RNG."""
    if generator is not None and generator.device.type == "cpu":
        return generator
    seed_source = {"generator": generator, "device": generator.device} if generator is not None else {}
    seed = int(torch.randint(0, 2**62, (1,), **seed_source))
    return torch.Generator().manual_seed(seed)


def _device_generator(generator: torch.Generator, device: torch.device) -> torch.Generator:
    """A generator on `device` seeded from the CPU generator (for full-size noise drawn where it is used)."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator(device=device).manual_seed(seed)


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low


def _homography(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) projective maps taking the 4 `source` points (N, 4, 2) to the 4 `target` points."""
    x, y = source[..., 0], source[..., 1]
    u, v = target[..., 0], target[..., 1]
    zeros, ones = torch.zeros_like(x), torch.ones_like(x)
    rows_u = torch.stack([x, y, ones, zeros, zeros, zeros, -u * x, -u * y], -1)
    rows_v = torch.stack([zeros, zeros, zeros, x, y, ones, -v * x, -v * y], -1)
    system = torch.cat([rows_u, rows_v], 1)  # (N, 8, 8)
    solution = torch.linalg.solve(system, torch.cat([u, v], 1))  # (N, 8)
    return torch.cat([solution, torch.ones_like(solution[:, :1])], 1).view(-1, 3, 3)


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Per-(cell, channel) separable Gaussian blur, `sigma` (N*C,), reflect padding (as torchvision)."""
    n, channels, height, width = images.shape
    offsets = torch.arange(kernel_size, device=images.device, dtype=images.dtype) - kernel_size // 2
    kernel = torch.exp(-0.5 * (offsets.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (N*C, k)
    flat = images.reshape(1, n * channels, height, width)
    pad = kernel_size // 2
    groups = n * channels  # one kernel per (cell, channel): a grouped convolution
    flat = F.conv2d(F.pad(flat, (pad, pad, 0, 0), mode="reflect"), kernel.view(-1, 1, 1, kernel_size), groups=groups)
    flat = F.conv2d(F.pad(flat, (0, 0, pad, pad), mode="reflect"), kernel.view(-1, 1, kernel_size, 1), groups=groups)
    return flat.view(n, channels, height, width)


def _sharpen(images: torch.Tensor, factor: float) -> torch.Tensor:
    """torchvision's adjust_sharpness: blend with a 3x3 smoothed copy whose border pixels are the original's."""
    n, channels, height, width = images.shape
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]], device=images.device) / 13
    kernel = kernel.to(images.dtype).expand(n * channels, 1, 3, 3)
    flat = images.reshape(1, n * channels, height, width)  # grouped: much faster than a batch of 1-channel maps
    smooth = F.conv2d(flat, kernel, groups=n * channels).view(n, channels, height - 2, width - 2)
    degenerate = images.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return (factor * images + (1 - factor) * degenerate).clamp(0, 1)


def _erasing_mask(
    n: int, channels: int, height: int, width: int, config: AugmentationConfig, generator: torch.Generator
) -> torch.Tensor:
    """(N, C, H, W) bool: one random rectangle per (cell, channel), area and aspect ratio as torchvision's."""
    count = n * channels
    area = _uniform(count, *config.erase_scale, generator) * height * width
    log_ratio = _uniform(count, math.log(config.erase_ratio[0]), math.log(config.erase_ratio[1]), generator)
    ratio = torch.exp(log_ratio)
    box_height = torch.sqrt(area * ratio).round().clamp(1, height).long()
    box_width = torch.sqrt(area / ratio).round().clamp(1, width).long()
    top = (torch.rand(count, generator=generator, dtype=torch.float64) * (height - box_height + 1)).long()
    left = (torch.rand(count, generator=generator, dtype=torch.float64) * (width - box_width + 1)).long()
    rows = torch.arange(height).view(1, height, 1)
    columns = torch.arange(width).view(1, 1, width)
    inside = (
        (rows >= top.view(-1, 1, 1))
        & (rows < (top + box_height).view(-1, 1, 1))
        & (columns >= left.view(-1, 1, 1))
        & (columns < (left + box_width).view(-1, 1, 1))
    )
    return inside.view(n, channels, height, width)


__all__ = ["AugmentationConfig", "TwoViewAugmentation"]
