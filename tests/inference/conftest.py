"""Fixtures for the embedding tests: wrapper CSVs of random 64-px crops, a tiny synthetic field dataset + shards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from subcell_hf.data.crops import CropOptions
from subcell_hf.data.io import write_image
from subcell_hf.inference.inputs import WRAPPER_CHANNEL_COLUMNS

CROP = 64  # the tiny converted model's image size


def write_crop_files(folder: Path, name: str, rng: np.random.Generator, size: int = CROP, suffix: str = "png",
                     dtype=np.uint16) -> dict[str, str]:
    """One crop as one file per channel; returns channel -> file name (relative to `folder`)."""
    top = np.iinfo(dtype).max
    paths = {}
    for channel in WRAPPER_CHANNEL_COLUMNS:
        relative = f"crops/{name}_{channel}.{suffix}"
        write_image(folder / relative, rng.integers(0, top, (size, size), dtype=dtype))
        paths[channel] = relative
    return paths


def write_wrapper_csv(folder: Path, rows: list[dict[str, str]], header_comment: bool = False) -> Path:
    """rows: channel -> path (or "" for blank) plus `output_prefix`; a `#` comment line is added after row 1."""
    lines = ["r_image,y_image,b_image,g_image,output_prefix"]
    for index, row in enumerate(rows):
        lines.append(",".join(row.get(c, "") for c in WRAPPER_CHANNEL_COLUMNS) + f",{row['output_prefix']}")
        if index == 0:
            lines.append("# a comment line, skipped,,,")
            lines.append("")
    path = folder / "path_list.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


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
