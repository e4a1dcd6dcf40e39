"""The converter: explicit key map, loud failures, checksums, atomic writes, CLI."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig

from subcell_hf.hub.convert import (
    CheckpointMismatchError,
    classifier_key_map,
    convert_checkpoint,
    convert_release,
    encoder_key_map,
)
from subcell_hf.data.synthetic import TINY_ARCHITECTURE, original_encoder_state_dict
from subcell_hf.utils.hashing import sha256_file
from subcell_hf.variants import RELEASES

RELEASE = RELEASES["all_channels-vit-prots-pool"]


def test_key_maps_are_explicit_and_complete():
    table = encoder_key_map(12)
    assert len(table) == 204 and len(set(table.values())) == 204
    assert table["encoder.encoder.layer.3.attention.attention.query.weight"] == "layers.3.attention.q_proj.weight"
    assert table["pool_model.attention.weight"] == "pooler.attention_weights.weight"
    assert classifier_key_map() == {
        "0.weight": "hidden.0.weight", "0.bias": "hidden.0.bias", "3.weight": "hidden.1.weight",
        "3.bias": "hidden.1.bias", "6.weight": "out_proj.weight", "6.bias": "out_proj.bias",
    }


def test_conversion_records_checksums_and_converts_every_variant(tiny_release_dir, tmp_path):
    for name, release in RELEASES.items():
        model, report = convert_release(release, tiny_release_dir, tmp_path / name)
        assert report.passed and report.checks["all_tensors_bit_exact"]
        assert model.config.channel_names == list(release.variant.channels)
        assert model.config.position_embedding_type == release.family.position_embedding_type
        assert len(model.classifiers) == 10
    folder = tmp_path / "all_channels-vit-prots-pool"
    encoder_path, classifier_paths = RELEASE.source_paths(tiny_release_dir)
    sidecar = json.loads((folder / "conversion.json").read_text())
    assert sidecar["passed"] is True
    assert sidecar["sources"][RELEASE.encoder_filename]["sha256"] == sha256_file(encoder_path)
    assert len(sidecar["sources"]) == 11
    config = AutoConfig.from_pretrained(folder)
    assert config.source_checksums[f"{RELEASE.classifier_dirname}/classifier_seed_9.pth"] == sha256_file(classifier_paths[9])
    assert config.model_variant == "all_channels-vit-prots-pool"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".subcell_hf_output.json",  # the marker that lets a later --overwrite replace this output
        "config.json", "configuration_subcell.py", "conversion.json", "image_processing_subcell.py",
        "model.safetensors", "modeling_subcell.py", "preprocessor_config.json",
    ]


def test_every_key_problem_is_listed_in_one_error_and_nothing_is_written(tmp_path):
    sd = original_encoder_state_dict(4, arch=TINY_ARCHITECTURE)
    del sd["encoder.encoder.layer.1.attention.attention.key.bias"]
    del sd["pool_model.attention.bias"]
    sd["encoder.layernorm.weight"] = torch.ones(65)
    sd["encoder.pooler.dense.weight"] = torch.ones(2, 2)
    torch.save(sd, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatchError) as error:
        convert_checkpoint(tmp_path / "broken.pth", [], ["microtubules", "er", "dna", "protein"], "learned",
                           output_dir=tmp_path / "out")
    message = str(error.value)
    assert "4 problem(s)" in message
    assert "missing key encoder.encoder.layer.1.attention.attention.key.bias" in message
    assert "missing key pool_model.attention.bias" in message
    assert "wrong shape for encoder.layernorm.weight: expected (64,), found (65,)" in message
    assert "unexpected key encoder.pooler.dense.weight" in message
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_training_only_keys_are_skipped_and_reported_but_lookalikes_are_not(tmp_path):
    sd = original_encoder_state_dict(2, arch=TINY_ARCHITECTURE, training_extras=True)
    torch.save(sd, tmp_path / "train.pth")
    _, report = convert_checkpoint(tmp_path / "train.pth", None, ["dna", "protein"], "learned")
    assert sorted(report.ignored_training_keys) == ["decoder.decoder_embed.weight", "target_encoder.embeddings.cls_token"]
    sd["my_encoder.layer.weight"] = torch.ones(1)  # contains "encoder." but is not a known training key
    torch.save(sd, tmp_path / "train.pth")
    with pytest.raises(CheckpointMismatchError, match="unexpected key my_encoder.layer.weight"):
        convert_checkpoint(tmp_path / "train.pth", None, ["dna", "protein"], "learned")


def test_unsafe_pickles_and_wrong_channel_counts_are_refused(tmp_path):
    torch.save({"weights": torch.ones(1), "optimizer": object()}, tmp_path / "unsafe.pth", _use_new_zipfile_serialization=True)
    with pytest.raises(CheckpointMismatchError, match="unsafe.pth: not a loadable weights-only"):
        convert_checkpoint(tmp_path / "unsafe.pth", None, ["dna", "protein"], "learned")
    torch.save(original_encoder_state_dict(3, arch=TINY_ARCHITECTURE), tmp_path / "c3.pth")
    with pytest.raises(CheckpointMismatchError, match="has 3 input channels, expected 2"):
        convert_checkpoint(tmp_path / "c3.pth", None, ["dna", "protein"], "learned")
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        convert_checkpoint(tmp_path / "missing.pth", None, ["dna", "protein"], "learned")


def test_existing_output_is_not_overwritten_without_permission(tiny_release_dir, tmp_path):
    convert_release(RELEASE, tiny_release_dir, tmp_path / "out")
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_release(RELEASE, tiny_release_dir, tmp_path / "out")
    convert_release(RELEASE, tiny_release_dir, tmp_path / "out", overwrite=True)


def test_cli_converts_and_reports_errors(tiny_release_dir, tmp_path, capsys):
    from subcell_hf.cli import main

    assert main(["convert", "--help"]) == 0 and "--release_dir" in capsys.readouterr().out
    assert main(["convert", "--release", "dna-protein-mae-cells-prots-pool", "--release_dir", str(tiny_release_dir),
                 "--output", str(tmp_path / "dna")]) == 0
    assert json.loads(capsys.readouterr().out)["passed"] is True
    release = RELEASES["dna-protein-mae-cells-prots-pool"]
    encoder, classifiers = release.source_paths(tiny_release_dir)
    given = "[" + ", ".join(map(str, reversed(classifiers))) + "]"  # a YAML list, in any order: sorted by seed
    assert main(["convert", "--encoder", str(encoder), "--classifiers", given, "--channels", "[dna, protein]",
                 "--family", "mae-cells-prots-pool", "--output", str(tmp_path / "x")]) == 0, capsys.readouterr().err
    pattern = str(classifiers[0].parent / "classifier_seed_*.pth")  # or one glob pattern
    assert main(["convert", "--encoder", str(encoder), "--classifiers", pattern, "--channels", "[dna, protein]",
                 "--family", "mae-cells-prots-pool", "--output", str(tmp_path / "glob")]) == 0
    from safetensors.torch import load_file

    reference = load_file(tmp_path / "dna" / "model.safetensors")
    for folder in ("x", "glob"):
        weights = load_file(tmp_path / folder / "model.safetensors")
        for seed in (0, 9):  # the order of the files given does not matter: sorted by seed, 10 after 9
            key = f"classifiers.{seed}.out_proj.weight"
            assert torch.equal(weights[key], reference[key])
    capsys.readouterr()
    assert main(["convert", "--encoder", str(encoder), "--channels", "[er, dna, protein]", "--family",
                 "vit-prots-pool", "--output", str(tmp_path / "bad")]) == 2
    assert "has 2 input channels, expected 3" in capsys.readouterr().err
    assert main(["convert", "--encoder", str(encoder), "--channels", "[dna, nucleus]", "--family", "vit-prots-pool",
                 "--output", str(tmp_path / "bad")]) == 2  # a choice the parser refuses, naming it
    assert "nucleus" in capsys.readouterr().err and not (tmp_path / "bad").exists()
