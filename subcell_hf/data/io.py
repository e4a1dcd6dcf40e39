"""Reading and writing microscopy images without losing bits: the one reader of the package.

- `read_image`: one 2-D plane from a PNG/JPEG or TIFF (one file per channel, the HPA layout);
- `read_channels`: a multi-channel field of view or crop, (C, H, W) in the model's channel order, from a
  multi-channel TIFF / OME-TIFF (tifffile) or an OME-Zarr image (ome-zarr), channels matched by the names in the
  file's metadata (`match_channels`) or by an explicit mapping;
- `read_cell`: whatever a user hands a pipeline (a path, a list of per-channel paths, a channel dict of paths or
  arrays, an array) -> one (C, H, W) array.

PNG goes through Pillow, TIFF through tifffile; 8-bit stays `uint8`, 16-bit stays `uint16` and label masks keep
their integer type. (webdataset's and datasets' image decoders are 8-bit, which is why the shards store `.npy`.)
Writes are atomic: a temporary name in the same folder, then `os.replace`. tifffile reads OME-TIFF metadata
itself and ome-zarr is the reference OME-Zarr reader: both maintained, light, and with no plugin system to
configure (bioio needs one plugin per format).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..utils.atomic_writes import atomic_path
from .channels import channel_mismatch_message

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


class ImageReadError(ValueError):
    """An image file is missing, unreadable or not a single 2-D plane."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one 2-D plane (H, W) from a PNG/JPEG or TIFF file, keeping its bit depth.

    Singleton axes are dropped (e.g. a (1, H, W) TIFF); an RGB file whose three colours are equal (an 8-bit HPA
    JPEG saved as RGB) gives its first colour. Anything else that is not one plane is an error.
    """
    path = Path(path)
    if path.is_dir():
        raise ImageReadError(f"{path}: is a folder, expected an image file (PNG, JPEG or TIFF)")
    if not path.is_file():
        raise ImageReadError(f"{path}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as image:
                array = _pillow_to_array(image)
    except ImageReadError:
        raise
    except Exception as error:  # any decoder failure: truncated file, wrong format, ...
        raise ImageReadError(f"{path}: unreadable image ({type(error).__name__}: {error})") from error
    array = np.squeeze(array)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        # RGB(A) files of one channel: grey (equal colours) or the signal in one colour (e.g. a green protein
        # channel); the brightest colour of each pixel, as the original wrapper reads them (alpha dropped)
        array = array[..., 0] if _equal_colours(array) else array[..., :3].max(axis=-1)
    if array.ndim != 2:
        raise ImageReadError(f"{path}: expected a single 2-D plane (H, W), found shape {tuple(array.shape)}")
    return np.ascontiguousarray(array)


def _pillow_to_array(image) -> np.ndarray:
    array = np.asarray(image)
    # Pillow opens some 16-bit files in mode "I" (int32): give them back their unsigned 16-bit type.
    if image.mode == "I" and array.size and array.min() >= 0 and array.max() <= np.iinfo(np.uint16).max:
        array = array.astype(np.uint16)
    return array


def _equal_colours(array: np.ndarray) -> bool:
    return bool((array[..., 0] == array[..., 1]).all() and (array[..., 0] == array[..., 2]).all())


def write_image(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write a 2-D uint8/uint16 (PNG or TIFF) or other integer (TIFF only) array atomically."""
    path = Path(path)
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D (H, W) array, found shape {tuple(array.shape)}")
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES + (".png",):
        raise ValueError(f"{path}: expected a .png, .tif or .tiff file name, found {suffix!r}")
    if suffix == ".png" and array.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: PNG holds uint8 or uint16 pixels, found {array.dtype}; use .tif")
    with atomic_path(path) as temporary:
        if suffix == ".png":
            from PIL import Image

            Image.fromarray(array).save(temporary, format="PNG")
        else:
            import tifffile

            tifffile.imwrite(temporary, array)
    return path


# ------------------------------------------------------------------------------------------ multi-channel files
ZARR_SUFFIXES = (".zarr", ".ome.zarr")

#: Names microscopists give each SubCell channel (lower case): stain, target or HPA colour.
CHANNEL_ALIASES: dict[str, tuple[str, ...]] = {
    "microtubules": ("microtubules", "microtubule", "mt", "tubulin", "alpha-tubulin", "red"),
    "er": ("er", "endoplasmic reticulum", "calreticulin", "yellow"),
    "dna": ("dna", "nucleus", "nuclei", "dapi", "hoechst", "blue"),
    "protein": ("protein", "antibody", "target", "gfp", "green"),
}


def is_multichannel_path(path: str | os.PathLike) -> bool:
    """Whether a path names an OME-Zarr image or a TIFF holding several channels (decided by its metadata)."""
    path = Path(path)
    if path.name.lower().endswith(ZARR_SUFFIXES):
        return True
    if path.suffix.lower() not in TIFF_SUFFIXES or not path.is_file():
        return False
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return "C" in tif.series[0].axes or (len(tif.series[0].shape) == 3 and tif.series[0].shape[-1] > 4)
    except Exception:
        return False


def match_channels(
    file_channels: Sequence[str | None],
    model_channels: Sequence[str],
    channel_map: Mapping[str, str | int] | None = None,
    where: str = "image",
) -> list[int]:
    """For each model channel, the index of the file channel that holds it.

    `channel_map` (model channel -> file channel name or index) wins; otherwise names are matched case-insensitively
    against `CHANNEL_ALIASES`; a file without channel names must have exactly the model's channels, in its order.
    """
    names = [None if n is None else str(n).strip().lower() for n in file_channels]
    if not channel_map and not any(names) and len(names) == len(model_channels):
        return list(range(len(model_channels)))  # unnamed channels, as many as the model's: in order
    indices: list[int] = []
    unmatched: dict[str, tuple[str, ...]] = {}
    for channel in model_channels:
        wanted = (channel_map or {}).get(channel)
        if isinstance(wanted, (int, np.integer)):
            if not 0 <= int(wanted) < len(names):
                raise ImageReadError(f"{where}: channel_map[{channel!r}]={wanted} is not a channel index (0..{len(names) - 1})")
            indices.append(int(wanted))
            continue
        candidates = (str(wanted).lower(),) if wanted is not None else CHANNEL_ALIASES.get(channel, (channel,))
        found = [i for i, name in enumerate(names) if name in candidates]
        if len(found) != 1:
            unmatched[channel] = candidates
            continue
        indices.append(found[0])
    if unmatched:
        named = "; ".join(f"{channel!r} (a file channel named {' / '.join(aliases)})"
                          for channel, aliases in unmatched.items())
        example = ", ".join(f"{channel!r}: <name or index>" for channel in unmatched)
        raise ImageReadError(channel_mismatch_message(
            where, list(model_channels), list(file_channels), missing=list(unmatched),
            hint=f"cannot match {named}; pass channel_map={{{example}}}",
        ))
    return indices


def _ome_tiff_channels(tif) -> list[str | None]:
    if not tif.is_ome or not tif.ome_metadata:
        return []
    import tifffile

    pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]
    pixels = (pixels[0] if isinstance(pixels, list) else pixels)["Pixels"]
    channels = pixels.get("Channel", [])
    channels = channels if isinstance(channels, list) else [channels]
    return [c.get("Name") for c in channels]


def _to_cyx(array: np.ndarray, axes: str, path: Path) -> np.ndarray:
    """Any TCZYX-like layout with singleton T/Z (or a Q/S/I page axis standing for channels) -> (C, Y, X)."""
    axes = axes.upper()
    for axis in "TZ":
        if axis in axes:
            index = axes.index(axis)
            if array.shape[index] != 1:
                raise ImageReadError(f"{path}: expected a single {axis} plane, found {array.shape[index]} (axes {axes})")
            array, axes = np.take(array, 0, axis=index), axes.replace(axis, "")
    axes = "".join("C" if a in "QSI" else a for a in axes)
    if axes == "YX":
        array, axes = array[None], "CYX"
    if sorted(axes) != ["C", "X", "Y"]:
        raise ImageReadError(f"{path}: expected channel, Y and X axes, found axes {axes} and shape {array.shape}")
    return np.ascontiguousarray(np.transpose(array, [axes.index(a) for a in "CYX"]))


def read_multichannel(path: str | os.PathLike) -> tuple[np.ndarray, list[str | None]]:
    """A multi-channel TIFF / OME-TIFF or OME-Zarr image as (C, H, W) at full resolution, with its channel names
    (`None` where the file names none)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: file not found")
    if path.name.lower().endswith(ZARR_SUFFIXES):
        return _read_ome_zarr(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ImageReadError(f"{path}: expected a multi-channel .tif/.ome.tif or .ome.zarr, found {path.suffix!r}")
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array, axes = series.asarray(), series.axes
            names = _ome_tiff_channels(tif)
            if not names and tif.is_imagej and tif.imagej_metadata and tif.imagej_metadata.get("Labels"):
                names = list(tif.imagej_metadata["Labels"])
    except Exception as error:
        raise ImageReadError(f"{path}: unreadable TIFF ({type(error).__name__}: {error})") from error
    if axes.upper().endswith("YXS") and array.shape[-1] > 4 or axes.upper() == "YXS":
        array, axes = np.moveaxis(array, -1, 0), "C" + axes[:-1]
    cells = _to_cyx(array, axes, path)
    names = names if len(names) == cells.shape[0] else [None] * cells.shape[0]
    return cells, names


def _read_ome_zarr(path: Path) -> tuple[np.ndarray, list[str | None]]:
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Multiscales, Reader

    location = parse_url(str(path))
    if location is None:
        raise ImageReadError(f"{path}: not an OME-Zarr image")
    try:
        node = next(n for n in Reader(location)() if n.load(Multiscales))
        array = np.asarray(node.data[0])
        axes = "".join(a["name"] if isinstance(a, dict) else a for a in node.metadata.get("axes", ["c", "y", "x"]))
        names = list(node.metadata.get("channel_names") or [])
    except StopIteration:
        raise ImageReadError(f"{path}: no multiscale image found in this OME-Zarr") from None
    except Exception as error:
        raise ImageReadError(f"{path}: unreadable OME-Zarr ({type(error).__name__}: {error})") from error
    cells = _to_cyx(array, axes, path)
    return cells, (names if len(names) == cells.shape[0] else [None] * cells.shape[0])


def read_channels(
    path: str | os.PathLike, channel_names: Sequence[str], channel_map: Mapping[str, str | int] | None = None
) -> np.ndarray:
    """The model's channels, in its order, from a multi-channel file: (len(channel_names), H, W)."""
    array, file_channels = read_multichannel(path)
    return array[match_channels(file_channels, channel_names, channel_map, where=str(path))]


def read_cell(
    cell: Any, channel_names: Sequence[str], channel_map: Mapping[str, str | int] | None = None
) -> np.ndarray | Mapping[str, Any]:
    """One cell as a user hands it over, read from disk where it names files:

    - a path: a multi-channel TIFF / OME-TIFF / OME-Zarr (channels matched by name, see `read_channels`);
    - a list of one path per model channel, in the model's channel order;
    - a mapping channel -> path or 2-D array (returned as a mapping of arrays);
    - an array or tensor, returned as is.
    """
    if isinstance(cell, (str, os.PathLike)):
        return read_channels(cell, channel_names, channel_map)
    if isinstance(cell, Mapping):
        return {k: read_image(v) if isinstance(v, (str, os.PathLike)) else v for k, v in cell.items()}
    if isinstance(cell, Sequence) and cell and all(isinstance(v, (str, os.PathLike)) for v in cell):
        if len(cell) != len(channel_names):
            raise ImageReadError(
                f"expected one file per model channel ({', '.join(channel_names)}), found {len(cell)} files: {list(cell)}"
            )
        planes = [read_image(p) for p in cell]
        shapes = {p.shape for p in planes}
        if len(shapes) > 1:
            raise ImageReadError(f"channel files of different sizes: {dict(zip(map(str, cell), (p.shape for p in planes)))}")
        return np.stack(planes)
    return cell


__all__ = [
    "CHANNEL_ALIASES",
    "ImageReadError",
    "is_multichannel_path",
    "match_channels",
    "read_cell",
    "read_channels",
    "read_image",
    "read_multichannel",
    "write_image",
]
