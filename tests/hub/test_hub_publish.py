"""Preparing releases for the Hub: conversion, checks, card, refusal (nothing here talks to a Hub)."""

from __future__ import annotations

import json
import shutil

from huggingface_hub import ModelCard

from subcell_hf.utils.hashing import sha256_file
from subcell_hf.hub.publish import (
    RELEASE_FILES,
    check_release_folder,
    dry_run_listing,
    prepare_release_folder,
    prepare_releases,
)
from subcell_hf.variants import RELEASES


def test_every_release_folder_holds_only_safetensors_configs_and_remote_code(prepared_all, tiny_release_dir):
    assert [p.release.name for p in prepared_all] == list(RELEASES)
    for prepared in prepared_all:
        assert prepared.ready, prepared.problems
        assert {f.path_in_repo for f in prepared.files} == RELEASE_FILES
        assert not [f for f in prepared.files if f.path_in_repo.endswith((".bin", ".pth", ".pt", ".ckpt"))]
        config = json.loads((prepared.folder / "config.json").read_text())
        assert config["num_classifiers"] == 10 and config["channel_names"] == list(prepared.release.variant.channels)
        assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForImageClassification"}
        processor = json.loads((prepared.folder / "preprocessor_config.json").read_text())
        assert processor["auto_map"] == {"AutoImageProcessor": "image_processing_subcell.SubCellImageProcessor"}


def test_release_card_records_the_converted_source_hashes(prepared_all, tiny_release_dir):
    prepared = prepared_all[0]
    card = ModelCard.load(prepared.folder / "README.md")
    encoder_path, _ = prepared.release.source_paths(tiny_release_dir)
    assert f"| `{encoder_path.name}` | `{sha256_file(encoder_path)}` |" in card.text
    assert "recorded at conversion" not in card.text
    assert card.data.to_dict()["library_name"] == "transformers"


def test_conversion_failures_refuse_only_the_broken_variants(broken_release_dir, tmp_path):
    release_dir, (intact, missing_key, nan_weights) = broken_release_dir
    releases = [RELEASES[n] for n in (intact, missing_key, nan_weights)]
    prepared = {p.release.name: p for p in prepare_releases(release_dir, tmp_path / "out", releases, progress=False)}
    assert prepared[intact].ready
    assert not prepared[missing_key].ready and not prepared[nan_weights].ready
    assert "missing key pool_model.attention.bias" in prepared[missing_key].refusal()
    assert prepared[missing_key].refusal().startswith(f"refusing {missing_key}: conversion failed")
    assert "finite_outputs" in prepared[nan_weights].refusal()
    listing = dry_run_listing(prepared.values())
    assert f"subcell/{intact}" in listing and missing_key not in listing and nan_weights not in listing


def test_source_hashes_recorded_with_the_cards_must_match(tiny_release_dir, tmp_path):
    release = RELEASES["dna-protein-vit-prots-pool"]
    recorded = {name: "0" * 64 for name in [release.encoder_filename, *release.classifier_filenames()]}
    (tmp_path / "cards" / "sources").mkdir(parents=True)
    (tmp_path / "cards" / "sources" / f"{release.name}.json").write_text(
        json.dumps({name: {"sha256": sha, "bytes": 0} for name, sha in recorded.items()})
    )
    prepared = prepare_release_folder(release, tiny_release_dir, tmp_path / "out", cards_dir=tmp_path / "cards")
    assert not prepared.ready
    assert len(prepared.problems) == 11
    assert f"source {release.encoder_filename}: sha256" in prepared.problems[0]
    assert f"recorded in sources/{release.name}.json" in prepared.problems[0]


def test_stray_weights_missing_code_and_wrong_configs_are_refused(prepared_all, tmp_path):
    prepared = prepared_all[1]
    folder = tmp_path / prepared.release.name
    shutil.copytree(prepared.folder, folder)
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    assert check_release_folder(folder, prepared.release) == [
        "unexpected file pytorch_model.bin (a repository holds only safetensors weights, configs and remote code)"
    ]
    (folder / "pytorch_model.bin").unlink()
    (folder / "modeling_subcell.py").rename(tmp_path / "modeling_subcell.py")
    assert check_release_folder(folder, prepared.release) == ["missing file modeling_subcell.py"]
    (tmp_path / "modeling_subcell.py").rename(folder / "modeling_subcell.py")
    config = json.loads((folder / "config.json").read_text())
    config["num_classifiers"] = 9
    del config["auto_map"]["AutoModelForImageClassification"]
    (folder / "config.json").write_text(json.dumps(config))
    problems = check_release_folder(folder, prepared.release)
    assert "config.json num_classifiers: expected 10, found 9" in problems
    assert any("auto_map lacks ['AutoModelForImageClassification']" in p for p in problems)
    assert check_release_folder(folder, RELEASES["dna-protein-vit-prots-pool"])  # another variant's channels
