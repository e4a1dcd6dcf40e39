"""SubCellImageProcessor: input forms, dtypes, the global min-max, resize and error messages."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from subcell_hf import SubCellImageProcessor, min_max_normalize

CHANNELS = ["microtubules", "er", "dna", "protein"]


def test_min_max_is_global_over_channels_and_pixels_not_per_channel():
    cell = torch.tensor([[[0.0, 10.0]], [[20.0, 40.0]]]).unsqueeze(0)  # (1, 2, 1, 2): channel maxima 10 and 40
    normalized = min_max_normalize(cell)
    expected = torch.tensor([[[0.0, 10.0]], [[20.0, 40.0]]]) / (40.0 + 1e-6)
    torch.testing.assert_close(normalized[0], expected)
    assert normalized.dtype == torch.float32
    flat = torch.full((1, 2, 2, 2), 7.0)  # a constant cell maps to zeros, not NaN
    assert torch.all(min_max_normalize(flat) == 0)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64, np.int32])
def test_array_and_mapping_inputs_give_identical_pixel_values(dtype):
    rng = np.random.default_rng(0)
    high = 255 if dtype == np.uint8 else 65535
    cell = rng.integers(0, high, size=(4, 32, 48)).astype(dtype)
    processor = SubCellImageProcessor()
    from_array = processor(cell)["pixel_values"]
    from_mapping = processor(dict(zip(CHANNELS, cell)))["pixel_values"]
    from_torch = processor(torch.from_numpy(cell.astype(np.float64)))["pixel_values"]
    assert from_array.shape == (1, 4, 32, 48) and from_array.dtype == torch.float32
    assert torch.equal(from_array, from_mapping)
    assert torch.equal(from_array, from_torch)
    expected = (cell.astype(np.float32) - cell.min()) / (np.float32(cell.max()) - np.float32(cell.min()) + np.float32(1e-6))
    np.testing.assert_allclose(from_array[0].numpy(), expected, rtol=1e-6, atol=1e-7)
    assert from_array.min() == 0 and from_array.max() <= 1


def test_batches_lists_and_numpy_output():
    processor = SubCellImageProcessor(channel_names=["dna", "protein"])
    batch = np.random.default_rng(1).integers(0, 65535, size=(3, 2, 16, 16), dtype=np.uint16)
    out = processor(batch, return_tensors="np")["pixel_values"]
    assert isinstance(out, np.ndarray) and out.shape == (3, 2, 16, 16)
    as_list = processor(list(batch))["pixel_values"]
    np.testing.assert_array_equal(as_list.numpy(), out)
    for i in range(3):  # each cell is scaled by its own min and max
        assert out[i].min() == 0 and out[i].max() == pytest.approx(1, abs=1e-5)


def test_resize_896_to_448_is_off_by_default_and_happens_before_normalisation():
    processor = SubCellImageProcessor()
    big = np.random.default_rng(2).integers(0, 4096, size=(4, 896, 896), dtype=np.uint16)
    assert processor(big)["pixel_values"].shape == (1, 4, 896, 896)
    resized = processor(big, do_resize=True, size=448)["pixel_values"]
    assert resized.shape == (1, 4, 448, 448)
    assert resized.min() == 0 and resized.max() == pytest.approx(1, abs=1e-5)
    # a constant block survives antialiased 2x downsampling as a constant block
    block = np.zeros((4, 64, 64), dtype=np.uint16)
    block[:, 16:48, 16:48] = 1000
    small = SubCellImageProcessor(do_resize=True, size=32)(block)["pixel_values"][0]
    assert torch.all(small[:, 10:22, 10:22] == small[0, 16, 16]) and small[0, 16, 16] > 0.99


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((3, 32, 32)), "expected 4 channels .*found 3"),
        (np.zeros((2, 5, 32, 32)), "expected 4 channels .*found 5"),
        (np.zeros((32, 32)), r"expected \(C, H, W\) or \(B, C, H, W\)"),
        ({"microtubules": np.zeros((8, 8)), "er": np.zeros((8, 8)), "dna": np.zeros((8, 8))}, "missing \\['protein'\\]"),
        ({c: np.zeros((8, 8, 2)) for c in CHANNELS}, "expected a 2-D .*found shape \\(8, 8, 2\\)"),
        ({**{c: np.zeros((16, 16)) for c in CHANNELS}, "dna": np.zeros((16, 32))}, "same \\(H, W\\)"),
        ({**{c: np.zeros((16, 16)) for c in CHANNELS}, "nucleus": np.zeros((16, 16))}, "unexpected \\['nucleus'\\]"),
        (np.full((4, 16, 16), np.nan), "finite .*found 1024 NaN/inf"),
        (np.zeros((4, 12, 20)), "at least 16x16 pixels, found 12x20"),
        ([np.zeros((4, 16, 16)), np.zeros((4, 32, 32))], "different sizes"),
        (np.zeros((4, 16, 16), dtype=bool), "found dtype torch.bool"),
        ("cell.png", "expected an array"),
    ],
)
def test_bad_inputs_raise_clear_value_errors(images, message):
    with pytest.raises(ValueError, match=message):
        SubCellImageProcessor()(images)


def test_save_load_round_trip(tmp_path):
    processor = SubCellImageProcessor(channel_names=["er", "dna", "protein"], do_resize=True, size=224, resample="bicubic")
    processor.save_pretrained(tmp_path)
    loaded = SubCellImageProcessor.from_pretrained(tmp_path)
    settings = ("channel_names", "do_resize", "size", "resample", "do_normalize", "epsilon", "patch_size")
    assert {k: loaded.to_dict()[k] for k in settings} == {k: processor.to_dict()[k] for k in settings}
    cell = np.random.default_rng(3).integers(0, 255, size=(3, 64, 64), dtype=np.uint8)
    assert torch.equal(loaded(cell)["pixel_values"], processor(cell)["pixel_values"])
    with pytest.raises(ValueError, match="subset of"):
        SubCellImageProcessor(channel_names=["dapi"])
