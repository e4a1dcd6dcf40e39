"""Fixtures for the embedding tests: wrapper CSVs of random 64-px crops, a tiny synthetic field dataset + shards."""

from __future__ import annotations

import numpy as np
import pytest

from subcell_hf.data.crops import CropOptions
from subcell_hf.data.io import write_image
from tests.utils import write_crop_files, write_wrapper_csv  # noqa: F401  (also imported from here)

CROP = 64  # the tiny converted model's image size


@pytest.fixture
def wrapper_csv(tmp_path):
    """Six good rows: 16-bit PNG, 8-bit PNG and TIFF crops."""
    rng = np.random.default_rng(0)
    rows = []
    for index in range(6):
        suffix, dtype = [("png", np.uint16), ("png", np.uint8), ("tif", np.uint16)][index % 3]
        rows.append({**write_crop_files(tmp_path, f"cell{index}", rng, suffix=suffix, dtype=dtype),
                     "output_prefix": f"cell{index}"})
    return write_wrapper_csv(tmp_path, rows)


@pytest.fixture
def broken_csv(tmp_path):
    """Five rows: good, missing file, channel of another size, good, unreadable file."""
    rng = np.random.default_rng(1)
    good = [write_crop_files(tmp_path, f"good{i}", rng) for i in range(2)]
    small = write_crop_files(tmp_path, "small", rng)
    write_image(tmp_path / small["er"], rng.integers(0, 65535, (48, 48), dtype=np.uint16))
    (tmp_path / "crops" / "garbage.png").write_bytes(b"not a png")
    rows = [
        {**good[0], "output_prefix": "good0"},
        {**good[0], "protein": "crops/nowhere.png", "output_prefix": "missing"},
        {**small, "output_prefix": "other_size"},
        {**good[1], "output_prefix": "good1"},
        {**good[1], "dna": "crops/garbage.png", "output_prefix": "garbage"},
    ]
    return write_wrapper_csv(tmp_path, rows)


@pytest.fixture(scope="session")
def synthetic_fields(tmp_path_factory):
    """Two synthetic 256-px fields of view (cells ~35 px) and their manifest."""
    from subcell_hf.data.synthetic import generate_dataset

    root = tmp_path_factory.mktemp("fields")
    return generate_dataset(root, num_fields=2, num_antibodies=2, image_size=256, seed=0, show_progress=False)


FIELD_OPTIONS = dict(crop=CropOptions(size=64, output_size=64, min_area=100))
