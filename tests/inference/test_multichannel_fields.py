"""A manifest naming one multi-channel file per field (OME-TIFF, `image` column) gives the same cells, crops and
embeddings as the same field given as one file per channel, for `embed` and for `write_shards`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile

from subcell_hf.data.io import read_image, write_image
from subcell_hf.data.manifest import ManifestError, read_manifest
from subcell_hf.inference import embed
from subcell_hf.models import HPA_CHANNELS

from .conftest import FIELD_OPTIONS

FAST = dict(num_workers=0, progress=False, runtime="eager", formats=())  # the table, no h5ad to write
#: the OME-TIFF's channels in another order than the model's, named as a microscope would name them
STAINS = {"protein": "GFP", "dna": "DAPI", "microtubules": "Tubulin", "er": "Calreticulin"}


def _manifests(synthetic_fields, folder):
    """(per-channel manifest, OME-TIFF manifest, unnamed-TIFF manifest with a channel_map) of a quarter of the
    first field (a few cells: the test stays fast)."""
    per_channel = pd.read_csv(synthetic_fields, dtype=str, keep_default_na=False).iloc[:1]
    row = per_channel.iloc[0]
    quarter = (slice(0, 128), slice(0, 128))
    planes = {channel: read_image(row[channel])[quarter] for channel in HPA_CHANNELS}
    for column, plane in [*planes.items(), ("mask", read_image(row["mask"])[quarter])]:
        per_channel[column] = write_image(folder / f"field_{column}.png", plane).name
    named = folder / "field.ome.tif"
    tifffile.imwrite(named, np.stack([planes[c] for c in STAINS]), photometric="minisblack",
                     metadata={"axes": "CYX", "Channel": {"Name": list(STAINS.values())}})
    unnamed = folder / "field_pages.tif"  # a plain multi-page TIFF: channel order from the manifest's channel_map
    tifffile.imwrite(unnamed, np.stack([planes[c] for c in reversed(HPA_CHANNELS)]), photometric="minisblack")
    multichannel = per_channel.drop(columns=list(HPA_CHANNELS)).assign(image=named.name)
    mapped = multichannel.assign(image=unnamed.name, channel_map="microtubules=3;er=2;dna=1;protein=0")
    paths = [folder / name for name in ("per_channel.csv", "ome.csv", "mapped.csv")]
    for table, path in zip((per_channel, multichannel, mapped), paths):
        table.to_csv(path, index=False)
    return paths


def test_one_multichannel_file_per_field_embeds_and_shards_like_per_channel_files(
    tiny_converted, synthetic_fields, tmp_path
):
    from subcell_hf.data.shards import iter_records, list_shards, write_shards

    per_channel, ome, mapped = _manifests(synthetic_fields, tmp_path)
    results = [embed(tiny_converted, m, tmp_path / m.stem, **FIELD_OPTIONS, **FAST) for m in (per_channel, ome, mapped)]
    reference = results[0]
    assert all(r.ok for r in results) and reference.num_cells >= 3
    for result in results[1:]:
        assert list(result.table.obs.index) == list(reference.table.obs.index)
        np.testing.assert_array_equal(result.table.embeddings, reference.table.embeddings)
        np.testing.assert_array_equal(result.table.probabilities, reference.table.probabilities)
        assert "image" not in result.table.obs and "channel_map" not in result.table.obs  # paths, not metadata
    cells = []
    for manifest in (per_channel, ome):
        write_shards(manifest, tmp_path / f"shards_{manifest.stem}", num_workers=0, show_progress=False,
                     **FIELD_OPTIONS)
        records = list(iter_records(list_shards(tmp_path / f"shards_{manifest.stem}")))
        cells.append(np.concatenate([record["cells"] for record in records]))
    assert cells[0].shape[0] == reference.num_cells
    np.testing.assert_array_equal(cells[1], cells[0])


def test_multichannel_manifest_errors_name_the_file_and_the_channels(tiny_converted, synthetic_fields, tmp_path):
    per_channel, ome, _ = _manifests(synthetic_fields, tmp_path)
    table = pd.read_csv(ome, dtype=str, keep_default_na=False)
    table.assign(channel_map="nucleus=DAPI").to_csv(tmp_path / "bad_map.csv", index=False)
    with pytest.raises(ManifestError, match=r"bad_map.csv \(image_id .*\): channel_map: 'nucleus' is not a SubCell"):
        read_manifest(tmp_path / "bad_map.csv")
    table.drop(columns=["image"]).to_csv(tmp_path / "no_channels.csv", index=False)
    with pytest.raises(ManifestError, match=r"expected channels \['microtubules', 'er', 'dna', 'protein'\], found "
                                            r"\[\].*'image' column"):
        read_manifest(tmp_path / "no_channels.csv")
    # a file whose channels cannot be matched: the field fails, named with the file, expected and found channels
    tifffile.imwrite(tmp_path / "field.ome.tif", np.zeros((2, 8, 8), np.uint16), photometric="minisblack",
                     metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}})
    result = embed(tiny_converted, ome, tmp_path / "out", **FIELD_OPTIONS, **FAST)
    assert result.num_cells == 0 and len(result.failures) == 1
    error = result.failures[0]["error"]
    assert "field.ome.tif: expected channels ['microtubules', 'er', 'dna', 'protein'], found ['DAPI', 'GFP']" in error
