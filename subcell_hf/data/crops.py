"""Single-cell crops from a field of view and its cell-label mask.

Geometry (the published SubCell crops are 896 px native, downsampled to 448):

- each labelled cell has a half-open bounding box ``(top, left, bottom, right)`` in field pixels;
- its crop is the ``crop_size`` x ``crop_size`` window whose top-left corner is
  ``(top + bottom) // 2 - crop_size // 2, (left + right) // 2 - crop_size // 2``; the parts of the window outside
  the field are zeros;
- the window is downsampled to ``output_size`` by area averaging (the exact block mean when ``crop_size`` is a
  multiple of ``output_size``), rounded back to the field's dtype;
- the cell's own mask is ``label == cell_id`` over the same window, optionally dilated by ``mask_dilation``
  pixels at native resolution (a disk; the pretraining shards use 7 px as the released writer did, so that the
  masked cell keeps its outline), then downsampled the same way and kept where at least half of the block
  belongs to the cell.

Skipped cells (the documented rule): a cell with fewer than ``min_area`` pixels (native resolution), and, when
``skip_border`` is set, a cell with any pixel on the first or last row or column of the field (it is cut off,
so its shape and protein pattern are incomplete). Cells larger than the window are kept, clipped to it.

These five numbers are one `CropOptions` object, validated once and handed as a whole to the shard writer
(`subcell_hf.data.shards.write_shards`) and to the embedding of fields of view (`subcell_hf.inference`), so that a
cell cropped on the fly is the cell a shard stores. The module imports only numpy at load time (the options are
a section of the `subcell-hf shards` / `embed` configs, whose `--help` must not import torch).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import ImageReadError, read_channels, read_image

DEFAULT_CROP_SIZE = 896
DEFAULT_OUTPUT_SIZE = 448
#: Smallest cell kept, in native pixels. HPA cells at 2048 px are ~10^4-10^5 px; this drops segmentation debris.
DEFAULT_MIN_AREA = 500
#: Dilation (native pixels) of each cell's own mask, as the released shard writer did: the masked cell keeps its
#: outline.
DEFAULT_MASK_DILATION = 7


@dataclass(frozen=True)
class CropOptions:
    """How cells are cut from a field of view (the module docstring gives the geometry).

    One object for the shard writer and for embedding fields of view, validated when it is made: a bad value is a
    `ValueError` naming the field, what is expected and what was found.
    """

    size: int = DEFAULT_CROP_SIZE
    """side of the square window cut around each cell, in native field pixels"""
    output_size: int | None = None
    """side the window is downsampled to (area averaging); default: 448, or `size` when that is smaller"""
    min_area: int = DEFAULT_MIN_AREA
    """cells with fewer pixels (native resolution) are skipped as segmentation debris"""
    skip_border: bool = True
    """skip cells touching the first or last row or column of the field (they are cut off)"""
    mask_dilation: int = DEFAULT_MASK_DILATION
    """grow each cell's own mask by this many native pixels (a disk) before downsampling; 0 keeps it exact"""

    def __post_init__(self):
        for name, smallest in (("size", 1), ("min_area", 0), ("mask_dilation", 0)):
            _check_integer(name, getattr(self, name), smallest)
        if not isinstance(self.skip_border, bool):
            raise ValueError(f"CropOptions.skip_border: expected true or false, found {self.skip_border!r}")
        if self.output_size is None:
            object.__setattr__(self, "output_size", min(DEFAULT_OUTPUT_SIZE, self.size))
        _check_integer("output_size", self.output_size, 1)
        if self.output_size > self.size:
            raise ValueError(
                f"CropOptions.output_size: expected at most size ({self.size}): the window is only downsampled, "
                f"found {self.output_size}"
            )

    def to_dict(self) -> dict[str, int | bool]:
        """The options under the names the shard records and run settings use (`crop_size` for `size`)."""
        return {
            "crop_size": self.size, "output_size": self.output_size, "min_area": self.min_area,
            "skip_border": self.skip_border, "mask_dilation": self.mask_dilation,
        }


def _check_integer(name: str, value: object, smallest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < smallest:
        raise ValueError(f"CropOptions.{name}: expected an integer >= {smallest}, found {value!r}")


class FieldError(ValueError):
    """A field of view cannot be read: a missing or unreadable file, or images that do not fit together."""


@dataclass(frozen=True)
class CellBox:
    """Where a cell lies in its field of view."""

    cell_id: int
    bbox: tuple[int, int, int, int]  # (top, left, bottom, right), half-open, field pixels
    centroid: tuple[float, float]  # (row, column), field pixels
    area: int  # pixels, native resolution


@dataclass(frozen=True)
class CellCrop:
    """One cell: its channels and its own mask, centred on its bounding box."""

    cell_id: int
    image: np.ndarray  # (C, output_size, output_size), the field's dtype
    mask: np.ndarray  # (output_size, output_size) bool, True on this cell only
    bbox: tuple[int, int, int, int]
    centroid: tuple[float, float]
    area: int = 0  # pixels, native resolution


@dataclass
class CellSelection:
    """The cells of a field that are kept, and how many were skipped by each rule."""

    cells: list[CellBox] = field(default_factory=list)
    skipped_border: int = 0
    skipped_small: int = 0


def find_cells(mask: np.ndarray, min_area: int = DEFAULT_MIN_AREA, skip_border: bool = True) -> CellSelection:
    """Bounding box, centroid and area of every labelled cell, minus the skipped ones (module docstring; callers
    with a `CropOptions` pass its `min_area` and `skip_border`)."""
    mask = _check_mask(mask)
    areas = np.bincount(mask.ravel())
    on_border = set()
    if skip_border:
        edges = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
        on_border = set(np.unique(edges).tolist()) - {0}

    from scipy import ndimage

    selection = CellSelection()
    for index, slices in enumerate(ndimage.find_objects(mask)):
        cell_id = index + 1
        if slices is None:  # label not present
            continue
        if cell_id in on_border:
            selection.skipped_border += 1
            continue
        area = int(areas[cell_id])
        if area < min_area:
            selection.skipped_small += 1
            continue
        rows, columns = np.nonzero(mask[slices] == cell_id)
        bbox = (slices[0].start, slices[1].start, slices[0].stop, slices[1].stop)
        centroid = (slices[0].start + float(rows.mean()), slices[1].start + float(columns.mean()))
        selection.cells.append(CellBox(cell_id, tuple(int(v) for v in bbox), centroid, area))
    return selection


def crop_window(bbox: tuple[int, int, int, int], crop_size: int) -> tuple[int, int]:
    """Top-left corner (row, column) of the `crop_size` window centred on a half-open bounding box."""
    top, left, bottom, right = bbox
    return (top + bottom) // 2 - crop_size // 2, (left + right) // 2 - crop_size // 2


def crop_cell(channels: np.ndarray, mask: np.ndarray, cell: CellBox, options: CropOptions = CropOptions()) -> CellCrop:
    """Crop one cell (see the module docstring for the geometry): the `options.size` window, downsampled to
    `options.output_size`, with the cell's own mask grown by `options.mask_dilation` native pixels."""
    size, output_size = options.size, options.output_size
    row, column = crop_window(cell.bbox, size)
    image = _padded_window(channels, row, column, size)
    own_mask = _padded_window(mask[None], row, column, size)[0] == cell.cell_id
    if options.mask_dilation > 0:
        own_mask = dilate(own_mask, options.mask_dilation)
    if output_size != size:
        image = _area_downsample(image, output_size)
        own_mask = _area_downsample(own_mask[None], output_size)[0]
    return CellCrop(cell.cell_id, image, own_mask, cell.bbox, cell.centroid, cell.area)


def crop_cells(channels: np.ndarray, mask: np.ndarray, options: CropOptions = CropOptions()) -> list[CellCrop]:
    """Crops of every kept cell of a field: `channels` (C, H, W) in channel order, `mask` (H, W) integer labels."""
    channels = np.asarray(channels)
    if channels.ndim != 3:
        raise ValueError(f"channels: expected a (C, H, W) array, found shape {channels.shape}")
    if tuple(mask.shape) != tuple(channels.shape[1:]):
        raise ValueError(f"mask: expected shape {tuple(channels.shape[1:])} (the channels' H, W), found {mask.shape}")
    selection = find_cells(mask, min_area=options.min_area, skip_border=options.skip_border)
    return [crop_cell(channels, mask, cell, options) for cell in selection.cells]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """A boolean mask grown by `radius` pixels: every pixel within Euclidean distance `radius` of the mask."""
    from scipy import ndimage

    offsets = np.arange(-radius, radius + 1)
    disk = offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2
    rows, columns = np.nonzero(mask)
    if not len(rows):
        return mask.copy()
    # dilate only the cell's bounding box grown by the radius (a whole 896 px window costs ~50x more)
    top, left = max(rows.min() - radius, 0), max(columns.min() - radius, 0)
    bottom, right = rows.max() + radius + 1, columns.max() + radius + 1
    grown = np.zeros_like(mask, dtype=bool)
    grown[top:bottom, left:right] = ndimage.binary_dilation(mask[top:bottom, left:right], structure=disk)
    return grown


def _check_mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask: expected a 2-D (H, W) label image, found shape {mask.shape}")
    if mask.dtype.kind == "f":
        if not np.all(np.mod(mask, 1) == 0):
            raise ValueError("mask: expected integer cell labels, found non-integer values")
        mask = mask.astype(np.int64)
    if mask.dtype.kind not in "iu":
        raise ValueError(f"mask: expected an integer label image, found dtype {mask.dtype}")
    if mask.size and mask.min() < 0:
        raise ValueError(f"mask: expected labels >= 0, found {int(mask.min())}")
    return mask.astype(np.intp, copy=False)


def _padded_window(array: np.ndarray, row: int, column: int, size: int) -> np.ndarray:
    """`array[:, row:row+size, column:column+size]` with zeros where the window leaves the array."""
    height, width = array.shape[-2:]
    window = np.zeros((array.shape[0], size, size), dtype=array.dtype)
    top, left = max(row, 0), max(column, 0)
    bottom, right = min(row + size, height), min(column + size, width)
    if bottom > top and right > left:
        window[:, top - row : bottom - row, left - column : right - column] = array[:, top:bottom, left:right]
    return window


def _area_downsample(array: np.ndarray, size: int) -> np.ndarray:
    """(C, H, W) -> (C, size, size) by area averaging, back in the input dtype (integers rounded); bool input
    gives True where at least half of the area is True.

    NumPy only (no torch), so that forked cropping workers never touch an OpenMP pool.
    """
    channels, height, width = array.shape
    if height % size == 0 and height == width:  # the exact block mean, as a sum of strided views (fast)
        factor = height // size
        source = array.astype(np.uint32 if array.dtype.kind in "bu" and array.itemsize <= 2 else np.float64)
        total = sum(source[:, i::factor, j::factor] for i in range(factor) for j in range(factor))
        if array.dtype == bool:
            return 2 * total >= factor * factor
        resized = total / (factor * factor)
    else:
        rows, columns = _area_weights(height, size), _area_weights(width, size)
        resized = rows @ array.astype(np.float64) @ columns.T
        if array.dtype == bool:
            return resized >= 0.5
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        return np.clip(np.rint(resized), info.min, info.max).astype(array.dtype)
    return resized.astype(array.dtype)


def _area_weights(length: int, size: int) -> np.ndarray:
    """(size, length) matrix: output pixel i averages input [i * length / size, (i + 1) * length / size)."""
    edges = np.arange(size + 1) * (length / size)
    starts, stops = edges[:-1, None], edges[1:, None]
    pixels = np.arange(length)[None]
    overlap = np.clip(np.minimum(stops, pixels + 1) - np.maximum(starts, pixels), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------- fields of view
def read_field(
    row: Mapping[str, object],
    channel_names: Sequence[str] | None = None,
    root: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Read one manifest row: the channels stacked (C, H, W) in `channel_names` order (default: the four HPA
    channels) and the label mask (H, W).

    The channels come from the row's multi-channel `image` file when it names one (matched by name, or by the
    row's `channel_map`), else from one file per channel. Relative paths are resolved against `root` (default:
    the working directory; `read_manifest` already makes them absolute). Raises `FieldError` naming the file
    with the expected and found values.
    """
    from ..models.configuration_subcell import HPA_CHANNELS  # here: importing the crop options stays light
    from .manifest import IMAGE_COLUMN, MASK_COLUMN

    channel_names = HPA_CHANNELS if channel_names is None else channel_names
    image = row.get(IMAGE_COLUMN)  # a dict or a pandas row
    if image is not None and str(image) not in ("", "nan"):
        channels = _read_multichannel_field(row, channel_names, root)
    else:
        channels = _read_channel_files(row, channel_names, root)
    mask_path = _row_path(row, MASK_COLUMN, root)
    mask = _read(mask_path, MASK_COLUMN)
    expected = channels.shape[1:]
    if mask.shape != expected:
        raise FieldError(f"mask ({mask_path}): expected shape {expected} (the channels' size), found {mask.shape}")
    try:
        mask = _check_mask(mask)
    except ValueError as error:
        raise FieldError(f"mask ({mask_path}): {error}") from error
    return channels, mask


def _read_multichannel_field(row, channel_names: Sequence[str], root: str | os.PathLike | None) -> np.ndarray:
    from .manifest import CHANNEL_MAP_COLUMN, IMAGE_COLUMN, parse_channel_map

    path = _row_path(row, IMAGE_COLUMN, root)
    try:
        channel_map = parse_channel_map(row.get(CHANNEL_MAP_COLUMN))
        channels = read_channels(path, channel_names, channel_map or None)
    except (ImageReadError, ValueError) as error:
        raise FieldError(f"{IMAGE_COLUMN}: {error}") from error
    if channels.dtype == bool or channels.dtype.kind not in "uif":
        raise FieldError(f"{IMAGE_COLUMN} ({path}): expected integer or float pixels, found dtype {channels.dtype}")
    return channels


def _read_channel_files(row, channel_names: Sequence[str], root: str | os.PathLike | None) -> np.ndarray:
    planes = []
    for name in channel_names:
        path = _row_path(row, name, root)
        plane = _read(path, name)
        if plane.dtype == bool or plane.dtype.kind not in "uif":
            raise FieldError(f"channel {name!r} ({path}): expected integer or float pixels, found dtype {plane.dtype}")
        if planes and plane.shape != planes[0][1].shape:
            raise FieldError(
                f"channel {name!r} ({path}): shape {plane.shape} differs from channel "
                f"{planes[0][0]!r} ({planes[0][1].shape}); all channels of a field must have the same size"
            )
        if planes and plane.dtype != planes[0][1].dtype:
            raise FieldError(
                f"channel {name!r} ({path}): dtype {plane.dtype} differs from channel {planes[0][0]!r} "
                f"({planes[0][1].dtype}); all channels of a field must have the same bit depth"
            )
        planes.append((name, plane))
    return np.stack([plane for _, plane in planes])


def _row_path(row: Mapping[str, object], column: str, root: str | os.PathLike | None) -> Path:
    try:
        value = row[column]
    except KeyError:
        raise FieldError(f"manifest row has no {column!r} column") from None
    if value is None or str(value) in ("", "nan"):
        raise FieldError(f"column {column!r}: no path given")
    path = Path(str(value)).expanduser()
    if not path.is_absolute() and root is not None:
        path = Path(root) / path
    return path


def _read(path: Path, column: str) -> np.ndarray:
    try:
        return read_image(path)
    except ImageReadError as error:
        raise FieldError(f"{column}: {error}") from error


__all__ = [
    "DEFAULT_CROP_SIZE",
    "DEFAULT_MIN_AREA",
    "DEFAULT_OUTPUT_SIZE",
    "CellBox",
    "CellCrop",
    "CellSelection",
    "CropOptions",
    "FieldError",
    "crop_cell",
    "dilate",
    "crop_cells",
    "crop_window",
    "find_cells",
    "read_field",
]
