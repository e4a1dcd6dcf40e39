"""Reading and writing single-plane microscopy images without losing bits.

PNG goes through Pillow, TIFF through tifffile; 8-bit stays `uint8`, 16-bit stays `uint16` and label masks keep
their integer type. (webdataset's and datasets' image decoders are 8-bit, which is why the shards store `.npy`.)
Writes are atomic: a temporary name in the same folder, then `os.replace`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..atomic import atomic_path

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


__all__ = ["ImageReadError", "read_image", "write_image"]
