"""Preprocessing of single-cell crops for SubCell: channel stacking, optional resize, global per-cell min-max.

`min_max_normalize` is the one implementation of docs/model.md, section 4 in this package; the training loader and the
embedding tools call it too. Only relative imports: this folder is uploaded as remote code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers.image_processing_utils import BaseImageProcessor, BatchFeature

from .configuration_subcell import HPA_CHANNELS

MIN_MAX_EPSILON = 1e-6
RESAMPLE_MODES = ("bilinear", "bicubic", "area", "nearest")


def min_max_normalize(cells: torch.Tensor, epsilon: float = MIN_MAX_EPSILON) -> torch.Tensor:
    """Scale each cell of a (B, C, H, W) batch by one min and max over all its channels and pixels, in float32:
    ``(x - min) / (max - min + epsilon)``. Not per channel (docs/model.md, section 4)."""
    if cells.ndim != 4:
        raise ValueError(f"min_max_normalize expects (B, C, H, W), found shape {tuple(cells.shape)}")
    cells = cells.to(torch.float32)
    flat = cells.flatten(1)
    low = flat.amin(dim=1).view(-1, 1, 1, 1)
    high = flat.amax(dim=1).view(-1, 1, 1, 1)
    return (cells - low) / (high - low + epsilon)


def _as_tensor(array: Any, where: str) -> torch.Tensor:
    if isinstance(array, torch.Tensor):
        tensor = array.detach().cpu()
    elif isinstance(array, np.ndarray):
        if array.dtype == np.uint16:  # torch has limited uint16 support: widen losslessly
            array = array.astype(np.int32)
        elif not array.flags.writeable:  # e.g. np.asarray(PIL image); torch.from_numpy warns on read-only memory
            array = array.copy()
        tensor = torch.from_numpy(np.ascontiguousarray(array))
    else:
        raise ValueError(f"{where}: expected a numpy array or torch tensor, found {type(array).__name__}")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{where}: expected uint8, uint16, integer or float pixels, found dtype {tensor.dtype}")
    if tensor.dtype == torch.uint16:
        tensor = tensor.to(torch.int32)
    return tensor


class SubCellImageProcessor(BaseImageProcessor):
    r"""Turns single-cell crops into SubCell `pixel_values`.

    Accepted inputs (uint8, uint16, other integers or floats):
      - an array or tensor (C, H, W) for one cell or (B, C, H, W) for a batch, channels in `channel_names` order;
      - a list of (C, H, W) arrays (same size, or `do_resize=True`);
      - a mapping `{channel name: 2-D array}` for one cell, or a list of such mappings.

    Steps: stack channels -> float32 -> optional resize to `size` (e.g. 896 -> 448) -> global per-cell min-max.

    Args:
        channel_names (`list[str]`): the model's channels, in order (a subset of the HPA channels, protein last).
        do_resize (`bool`, defaults to `False`): resize every crop to `size` x `size`.
        size (`int`, defaults to 448): target side length when resizing.
        resample (`str`, defaults to `"bilinear"`): one of bilinear, bicubic, area, nearest (antialiased when
            downsampling with bilinear or bicubic).
        do_normalize (`bool`, defaults to `True`): apply the global min-max of docs/model.md, section 4.
        epsilon (`float`, defaults to 1e-6): the min-max denominator's epsilon.
        patch_size (`int`, defaults to 16): the smallest output height and width, and what `size` is a multiple of.
    """

    model_input_names = ["pixel_values"]

    def __init__(
        self,
        channel_names: Sequence[str] | None = None,
        do_resize: bool = False,
        size: int = 448,
        resample: str = "bilinear",
        do_normalize: bool = True,
        epsilon: float = MIN_MAX_EPSILON,
        patch_size: int = 16,
        **kwargs,
    ):
        for key in ("image_processor_type", "processor_class", "auto_map", "_processor_class"):
            kwargs.pop(key, None)
        super().__init__(**kwargs)
        channel_names = list(HPA_CHANNELS if channel_names is None else channel_names)
        if not channel_names or any(c not in HPA_CHANNELS for c in channel_names):
            raise ValueError(f"channel_names must be a non-empty subset of {list(HPA_CHANNELS)}, found {channel_names}")
        if resample not in RESAMPLE_MODES:
            raise ValueError(f"resample must be one of {RESAMPLE_MODES}, found {resample!r}")
        if int(size) <= 0 or int(size) % patch_size:
            raise ValueError(f"size must be a positive multiple of patch_size={patch_size}, found {size}")
        self.channel_names = channel_names
        self.do_resize = bool(do_resize)
        self.size = int(size)
        self.resample = resample
        self.do_normalize = bool(do_normalize)
        self.epsilon = float(epsilon)
        self.patch_size = int(patch_size)

    @classmethod
    def from_config(cls, config, **kwargs) -> "SubCellImageProcessor":
        """The processor matching a `SubCellConfig` (its channels and patch size)."""
        return cls(channel_names=config.channel_names, patch_size=config.patch_size, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        output = {
            key: getattr(self, key)
            for key in ("channel_names", "do_resize", "size", "resample", "do_normalize", "epsilon", "patch_size")
        }
        output["image_processor_type"] = type(self).__name__
        auto_map = getattr(self, "_auto_map", None) or getattr(self, "auto_map", None)
        if auto_map:
            output["auto_map"] = auto_map
        return output

    # ----------------------------------------------------------------------------------------------- inputs
    def _stack_mapping(self, cell: Mapping[str, Any], where: str) -> torch.Tensor:
        missing = [c for c in self.channel_names if c not in cell]
        extra = [c for c in cell if c not in self.channel_names]
        if missing or extra:
            raise ValueError(
                f"{where}: expected channels {self.channel_names}, found {list(cell)}"
                + (f" (missing {missing})" if missing else "")
                + (f" (unexpected {extra})" if extra else "")
            )
        planes = []
        for name in self.channel_names:
            plane = _as_tensor(cell[name], f"{where} channel {name!r}")
            if plane.ndim != 2:
                raise ValueError(
                    f"{where} channel {name!r}: expected a 2-D (H, W) array, found shape {tuple(plane.shape)}"
                )
            planes.append(plane)
        shapes = {tuple(p.shape) for p in planes}
        if len(shapes) > 1:
            found = {name: tuple(p.shape) for name, p in zip(self.channel_names, planes)}
            raise ValueError(f"{where}: all channels must have the same (H, W), found {found}")
        return torch.stack([p.to(torch.float32) for p in planes])

    def _as_cells(self, images: Any) -> list[torch.Tensor]:
        """Any accepted input -> list of float32 (C, H, W) tensors, validated."""
        if isinstance(images, Mapping):
            cells = [self._stack_mapping(images, "cell 0")]
        elif isinstance(images, (np.ndarray, torch.Tensor)):
            tensor = _as_tensor(images, "images")
            if tensor.ndim == 3:
                tensor = tensor.unsqueeze(0)
            if tensor.ndim != 4:
                raise ValueError(
                    f"images: expected (C, H, W) or (B, C, H, W) with C={len(self.channel_names)} "
                    f"({', '.join(self.channel_names)}), found shape {tuple(tensor.shape)}"
                )
            cells = list(tensor.to(torch.float32).unbind(0))
        elif isinstance(images, Sequence) and not isinstance(images, (str, bytes)) and len(images) > 0:
            cells = []
            for index, item in enumerate(images):
                if isinstance(item, Mapping):
                    cells.append(self._stack_mapping(item, f"cell {index}"))
                    continue
                tensor = _as_tensor(item, f"cell {index}")
                if tensor.ndim != 3:
                    raise ValueError(
                        f"cell {index}: expected a (C, H, W) array with C={len(self.channel_names)}, "
                        f"found shape {tuple(tensor.shape)}"
                    )
                cells.append(tensor.to(torch.float32))
        else:
            raise ValueError(
                "images: expected an array (C, H, W) / (B, C, H, W), a list of arrays, or a mapping of channel "
                f"name -> 2-D array, found {type(images).__name__}"
            )
        for index, cell in enumerate(cells):
            if cell.shape[0] != len(self.channel_names):
                raise ValueError(
                    f"cell {index}: expected {len(self.channel_names)} channels ({', '.join(self.channel_names)}), "
                    f"found {cell.shape[0]} (shape {tuple(cell.shape)})"
                )
            if not torch.isfinite(cell).all():
                bad = int((~torch.isfinite(cell)).sum())
                raise ValueError(f"cell {index}: expected finite pixel values, found {bad} NaN/inf values")
        return cells

    # ------------------------------------------------------------------------------------------- processing
    def resize(self, cells: torch.Tensor, size: int, resample: str) -> torch.Tensor:
        """Resize a (B, C, H, W) float batch to (B, C, size, size)."""
        if tuple(cells.shape[-2:]) == (size, size):
            return cells
        antialias = resample in ("bilinear", "bicubic") and min(cells.shape[-2:]) > size
        kwargs = {"align_corners": False, "antialias": antialias} if resample in ("bilinear", "bicubic") else {}
        return F.interpolate(cells, size=(size, size), mode=resample, **kwargs)

    def preprocess(
        self,
        images: Any,
        do_resize: bool | None = None,
        size: int | None = None,
        resample: str | None = None,
        do_normalize: bool | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """Preprocess one cell or a batch; returns a `BatchFeature` with `pixel_values` (B, C, H, W) float32."""
        do_resize = self.do_resize if do_resize is None else do_resize
        size = self.size if size is None else int(size)
        resample = self.resample if resample is None else resample
        do_normalize = self.do_normalize if do_normalize is None else do_normalize
        if kwargs:
            raise ValueError(f"Unexpected preprocessing arguments: {sorted(kwargs)}")

        cells = self._as_cells(images)
        if do_resize:
            batch = torch.cat([self.resize(cell.unsqueeze(0), size, resample) for cell in cells])
        else:
            shapes = {tuple(cell.shape[-2:]) for cell in cells}
            if len(shapes) > 1:
                raise ValueError(
                    f"cells of different sizes {sorted(shapes)} cannot form one batch: pass do_resize=True and size="
                )
            batch = torch.stack(cells)
        height, width = batch.shape[-2:]
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(
                f"cells must be at least {self.patch_size}x{self.patch_size} pixels, found {height}x{width}"
            )
        if do_normalize:
            batch = min_max_normalize(batch, self.epsilon)
        if return_tensors == "np":
            return BatchFeature({"pixel_values": batch.numpy()})
        if return_tensors not in (None, "pt"):
            raise ValueError(f"return_tensors must be 'pt', 'np' or None, found {return_tensors!r}")
        return BatchFeature({"pixel_values": batch})

    def __call__(self, images: Any, **kwargs) -> BatchFeature:
        return self.preprocess(images, **kwargs)


# `save_pretrained` copies this file next to preprocessor_config.json and names it in its `auto_map` (remote code).
SubCellImageProcessor.register_for_auto_class("AutoImageProcessor")

__all__ = ["MIN_MAX_EPSILON", "SubCellImageProcessor", "min_max_normalize"]
