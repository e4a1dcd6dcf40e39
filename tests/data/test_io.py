from __future__ import annotations

import numpy as np
import pytest

from subcell_hf.utils.atomic_writes import atomic_write_text
from subcell_hf.data.io import ImageReadError, read_image, write_image


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_images_round_trip_without_losing_bits(tmp_path, suffix, dtype):
    array = (np.arange(40 * 30).reshape(40, 30) * 53 % (np.iinfo(dtype).max + 1)).astype(dtype)
    array[0, 0] = np.iinfo(dtype).max
    path = write_image(tmp_path / f"plane{suffix}", array)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind


def test_label_masks_above_uint16_need_tiff(tmp_path):
    labels = np.arange(12, dtype=np.int32).reshape(3, 4) * 100_000
    with pytest.raises(ValueError, match="use .tif"):
        write_image(tmp_path / "mask.png", labels)
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "mask.tif", labels)), labels)


def test_rgb_files_read_as_one_plane_like_the_original_wrapper(tmp_path):
    from PIL import Image

    plane = np.arange(64, dtype=np.uint8).reshape(8, 8)
    Image.fromarray(np.stack([plane] * 3, -1)).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_image(tmp_path / "grey.png"), plane)
    zeros = np.zeros_like(plane)
    Image.fromarray(np.stack([zeros, plane, zeros], -1)).save(tmp_path / "green.png")  # a protein channel in green
    np.testing.assert_array_equal(read_image(tmp_path / "green.png"), plane)
    Image.fromarray(np.stack([plane, zeros, plane[::-1], np.full_like(plane, 255)], -1)).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), np.maximum(plane, plane[::-1]))  # alpha ignored
    import tifffile

    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 8, 8), np.uint8))  # two planes: not one channel
    expected = r"stack.tif: expected a single 2-D plane \(H, W\), found shape \(2, 8, 8\)"
    with pytest.raises(ImageReadError, match=expected):
        read_image(tmp_path / "stack.tif")


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="nothere.png: file not found"):
        read_image(tmp_path / "nothere.png")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ImageReadError, match="broken.tif: unreadable image"):
        read_image(tmp_path / "broken.tif")


def test_atomic_write_text_replaces_whole_file(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "summary.json", "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]
