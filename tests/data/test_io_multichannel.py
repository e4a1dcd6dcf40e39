"""Multi-channel files through the one reader: OME-Zarr and OME-TIFF channels found by their names."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from subcell_hf.data.io import ImageReadError, match_channels, read_channels, read_multichannel

MODEL = ["microtubules", "er", "dna", "protein"]
STAINS = ["DAPI", "Tubulin", "Calreticulin", "GFP"]  # stored order: dna, microtubules, er, protein


def _field() -> np.ndarray:
    return (np.random.default_rng(0).random((4, 40, 50)) * 60000).astype(np.uint16)


def test_ome_zarr_channels_by_label(tmp_path):
    writer = pytest.importorskip("ome_zarr.writer")
    stored = _field()
    window = {"start": 0, "end": 65535, "min": 0, "max": 65535}
    omero = {"channels": [{"label": n, "color": "FFFFFF", "window": window} for n in STAINS]}
    writer.write_image(stored, str(tmp_path / "field.ome.zarr"), axes="cyx", scale_factors=(), omero=omero)
    array, names = read_multichannel(tmp_path / "field.ome.zarr")
    assert names == STAINS and array.dtype == np.uint16
    np.testing.assert_array_equal(read_channels(tmp_path / "field.ome.zarr", MODEL), stored[[1, 2, 0, 3]])


def test_ome_tiff_with_singleton_z_and_a_two_channel_model(tmp_path):
    stored = _field()[:, None]  # C, Z=1, Y, X
    path = tmp_path / "field.ome.tif"
    tifffile.imwrite(path, stored, photometric="minisblack", metadata={"axes": "CZYX", "Channel": {"Name": STAINS}})
    np.testing.assert_array_equal(read_channels(path, ["dna", "protein"]), stored[[0, 3], 0])


def test_channel_matching_rules():
    assert match_channels([None] * 4, MODEL) == [0, 1, 2, 3]  # unnamed, same count: in order
    assert match_channels(["a", "b"], ["dna", "protein"], {"dna": "b", "protein": 0}) == [1, 0]
    with pytest.raises(ImageReadError, match=r"expected channels \['microtubules', 'er', 'dna', 'protein'\], found "
                       r"\['DAPI', 'GFP', 'Tubulin'\] \(missing \['er'\]\).*channel_map=\{'er': <name or index>\}"):
        match_channels(["DAPI", "GFP", "Tubulin"], MODEL)
    with pytest.raises(ImageReadError, match="expected a multi-channel"):
        read_multichannel(__file__)
