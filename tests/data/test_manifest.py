from __future__ import annotations

import pandas as pd
import pytest

from subcell_hf.data.manifest import ManifestError, antibody_id, multi_hot, parse_locations, read_manifest
from subcell_hf.models import LOCALIZATION_CLASSES, PRETRAINING_CLASSES


def test_locations_are_canonical_and_unknown_names_fail():
    assert parse_locations("nucleoli; Cytosol;;nucleoli") == ["Nucleoli", "Cytosol"]
    assert parse_locations("") == [] and parse_locations(None) == []
    with pytest.raises(ValueError, match="unknown location 'Nucleus'"):
        parse_locations("Nucleus")


def test_multi_hot_over_both_class_lists():
    names = ["Nucleoli", "Rods & Rings"]
    labels_35 = multi_hot(names, PRETRAINING_CLASSES)
    labels_31 = multi_hot(names, LOCALIZATION_CLASSES)
    assert len(labels_35) == 35 and len(labels_31) == 31
    assert [PRETRAINING_CLASSES[i] for i, v in enumerate(labels_35) if v] == ["Nucleoli", "Rods & Rings"]
    assert [LOCALIZATION_CLASSES[i] for i, v in enumerate(labels_31) if v] == ["Nucleoli"]  # no 31-class twin


def test_antibody_id_is_stable_and_int64():
    assert antibody_id("HPA000123") == antibody_id("HPA000123") == 3644146428972507531  # blake2b-64, top bit cleared
    assert antibody_id("HPA000123") != antibody_id("HPA000124")
    assert 0 <= antibody_id("x" * 100) < 2**63


def test_read_manifest_resolves_paths_and_fills_metadata(tmp_path):
    pd.DataFrame(
        {
            "dna": ["a/dna.png"],
            "protein": ["/abs/protein.png"],
            "mask": ["a/mask.png"],
            "image_id": [7],
            "antibody": ["X"],
        }
    ).to_csv(tmp_path / "m.csv", index=False)
    table = read_manifest(tmp_path / "m.csv", ["dna", "protein"])
    assert table.loc[0, "dna"] == str(tmp_path / "a/dna.png")
    assert table.loc[0, "protein"] == "/abs/protein.png"
    assert table.loc[0, "image_id"] == "7" and table.loc[0, "cell_line"] == "" and table.loc[0, "locations"] == ""


def test_read_manifest_names_missing_columns(tmp_path):
    pd.DataFrame({"dna": ["d.png"], "mask": ["m.png"], "image_id": ["a"], "antibody": ["X"]}).to_parquet(
        tmp_path / "m.parquet"
    )
    assert len(read_manifest(tmp_path / "m.parquet", ["dna"])) == 1
    with pytest.raises(ManifestError, match=r"m.parquet \(channel columns\): expected channels \['dna', 'protein'\], "
                       r"found \['dna'\] \(missing \['protein'\]\)"):
        read_manifest(tmp_path / "m.parquet", ["dna", "protein"])
    pd.DataFrame({"dna": ["d", "e"], "mask": ["m", "n"], "image_id": ["a", "a"], "antibody": ["X", "Y"]}).to_csv(
        tmp_path / "dup.csv", index=False
    )
    with pytest.raises(ManifestError, match=r"image_id must be unique, found repeated values \['a'\]"):
        read_manifest(tmp_path / "dup.csv", ["dna"])


def test_a_multichannel_image_column_replaces_the_channel_columns(tmp_path):
    from subcell_hf.data.manifest import parse_channel_map

    pd.DataFrame(
        {"image": ["f.ome.tif"], "channel_map": ["dna = Hoechst;protein=2"], "mask": ["m.png"], "image_id": ["a"],
         "antibody": ["X"]}
    ).to_csv(tmp_path / "m.csv", index=False)
    table = read_manifest(tmp_path / "m.csv")
    assert table.loc[0, "image"] == str(tmp_path / "f.ome.tif")
    assert parse_channel_map(table.loc[0, "channel_map"]) == {"dna": "Hoechst", "protein": 2}
    assert parse_channel_map("") == {}
    with pytest.raises(ValueError, match="expected model_channel=file_channel pairs"):
        parse_channel_map("dna")
