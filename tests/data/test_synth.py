from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell_hf.data.io import read_image
from subcell_hf.data.synthetic import PATTERNS, _centrosomes, draw_protein, draw_reticulum, generate_field, make_layout
from subcell_hf.models import HPA_CHANNELS, PRETRAINING_CLASSES


def test_manifest_has_the_contract_columns(synthetic_manifest):
    table = pd.read_csv(synthetic_manifest)
    assert list(table.columns) == list(HPA_CHANNELS) + [
        "mask", "image_id", "antibody", "gene", "cell_line", "plate", "well", "locations", "pattern",
    ]
    assert len(table) == 6 and table["antibody"].nunique() == 3
    # one pattern (and one annotation) per antibody, annotations from the class list
    assert (table.groupby("antibody")["pattern"].nunique() == 1).all()
    assert (table.groupby("antibody")["locations"].nunique() == 1).all()
    assert set(table["locations"]) <= set(PRETRAINING_CLASSES)


def test_fields_are_16_bit_with_20_to_30_labelled_cells(synthetic_manifest):
    row = pd.read_csv(synthetic_manifest).iloc[0]
    planes = [read_image(row[name]) for name in HPA_CHANNELS]
    assert {p.dtype for p in planes} == {np.dtype(np.uint16)} and {p.shape for p in planes} == {(256, 256)}
    mask = read_image(row["mask"])
    labels = set(np.unique(mask).tolist()) - {0}
    assert 20 <= len(labels) <= 30 and labels == set(range(1, len(labels) + 1))
    dna = planes[2].astype(float)
    assert dna[mask > 0].mean() > 3 * dna[mask == 0].mean()  # nuclei are inside cells, background is dark


def test_eight_bit_tiff_option(tmp_path):
    from subcell_hf.data.synthetic import generate_dataset

    manifest = generate_dataset(
        tmp_path, num_fields=1, num_antibodies=1, image_size=128, bit_depth=8, file_format="tif", show_progress=False
    )
    row = pd.read_csv(manifest).iloc[0]
    assert row["protein"].endswith(".tif") and read_image(row["protein"]).dtype == np.uint8


def test_same_seed_same_field():
    first, mask = generate_field(96, 20, "vesicles", np.random.default_rng(3))
    second, mask_again = generate_field(96, 20, "vesicles", np.random.default_rng(3))
    assert all(np.array_equal(first[name], second[name]) for name in HPA_CHANNELS)
    np.testing.assert_array_equal(mask, mask_again)


NUCLEAR, CYTOPLASMIC = ("nucleoplasm", "nucleoli"), ("cytosol", "mitochondria", "vesicles", "golgi_apparatus")


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_each_pattern_lands_where_its_name_says(pattern):
    rng = np.random.default_rng(0)
    layout = make_layout(192, 20, rng)
    protein = draw_protein(pattern, layout, _centrosomes(layout, rng), draw_reticulum(layout, rng), rng)
    total = protein.sum()
    assert total > 0 and (protein[layout.labels == 0] == 0).all()
    in_nucleus = protein[layout.nucleus].sum() / total
    if pattern in NUCLEAR:
        assert in_nucleus > 0.95
    elif pattern in CYTOPLASMIC:
        assert in_nucleus < 0.05
    elif pattern == "nuclear_membrane":
        near_envelope = np.abs(layout.nuclear_radial - 1) < 0.15
        assert protein[near_envelope].sum() / total > 0.8
    elif pattern == "plasma_membrane":
        assert protein[layout.radial > 0.6].sum() / total > 0.8
