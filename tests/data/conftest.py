"""Small synthetic fields of view and shards shared by the data tests (256 px fields, 64 px crops -> 32)."""

from __future__ import annotations

import pytest

from subcell_hf.data.crops import CropOptions
from subcell_hf.data.shards import write_shards
from subcell_hf.data.synthetic import generate_dataset

#: The crop geometry of every data test: small enough for milliseconds per field.
CROP = dict(crop=CropOptions(size=64, output_size=32, min_area=100))


@pytest.fixture(scope="session")
def synthetic_manifest(tmp_path_factory):
    """6 fields of 256 x 256 px, 20-30 cells each, 3 antibodies (2 fields each), 16-bit PNG."""
    root = tmp_path_factory.mktemp("synthetic")
    return generate_dataset(
        root, num_fields=6, num_antibodies=3, image_size=256, seed=0, cells_per_field=(20, 30), show_progress=False
    )


@pytest.fixture(scope="session")
def synthetic_shards(synthetic_manifest, tmp_path_factory):
    """Shards of `synthetic_manifest`: 4 parts per antibody (12 records), 4 records per shard."""
    output = tmp_path_factory.mktemp("shards")
    summary = write_shards(
        synthetic_manifest, output, records_per_shard=4, num_workers=0,
        show_progress=False, **CROP,
    )
    return output, summary
