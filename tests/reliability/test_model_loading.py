"""A folder whose weights lack tensors its config.json names never embeds with random heads; an encoder-only
folder gives no probabilities; a missing Hub repo offline is named with the cache searched (issue 10, defects 3
and 12)."""

from __future__ import annotations

import shutil

import pytest
from safetensors.torch import load_file, save_file

from subcell_hf.inference.embed import EmbeddingModel


def _rewrite_weights(folder, keep):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    save_file({k: v for k, v in tensors.items() if keep(k)}, path, metadata={"format": "pt"})


@pytest.fixture
def localization_copy(tiny_converted, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(tiny_converted, copy)
    return copy


def test_weights_with_fewer_classifiers_than_the_config_are_an_error_naming_the_tensors(localization_copy):
    _rewrite_weights(localization_copy, lambda name: not name.startswith("classifiers.9."))
    with pytest.raises(ValueError, match=r"missing tensors.*classifiers\.9\."):
        EmbeddingModel.from_pretrained(str(localization_copy))


def test_weights_without_classifiers_embed_with_the_encoder_alone(localization_copy):
    _rewrite_weights(localization_copy, lambda name: not name.startswith("classifiers."))
    loaded = EmbeddingModel.from_pretrained(str(localization_copy))
    assert not loaded.has_classifiers and loaded.class_names == []


def test_unexpected_tensors_are_an_error(localization_copy):
    import torch

    path = localization_copy / "model.safetensors"
    tensors = load_file(path)
    tensors["classifiers.10.out_proj.weight"] = torch.zeros(3, 3)
    save_file(tensors, path, metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"unexpected tensors.*classifiers\.10\.out_proj\.weight"):
        EmbeddingModel.from_pretrained(str(localization_copy))


def test_offline_missing_repo_names_the_repo_and_the_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OSError) as error:
        EmbeddingModel.from_pretrained("subcell-test/not-in-the-cache")
    message = str(error.value)
    assert "subcell-test/not-in-the-cache" in message and constants.HF_HUB_CACHE in message and "OFFLINE" in message


def test_pretraining_from_an_encoder_missing_tensors_is_an_error(localization_copy):
    from subcell_hf.pretraining import SubCellForPreTraining

    _rewrite_weights(localization_copy, lambda name: "layers.1." not in name and "encoder.layer.1." not in name)
    with pytest.raises(ValueError, match=r"missing tensors"):
        SubCellForPreTraining.from_encoder(str(localization_copy))


def test_load_subcell_gives_model_processor_and_channels_checked_to_agree(localization_copy):
    import json

    import torch

    from subcell_hf.model_loading import ModelLoadingError, load_subcell
    from subcell_hf.models import SubCellForProteinLocalization, SubCellModel

    full = load_subcell(localization_copy)
    assert isinstance(full.model, SubCellForProteinLocalization)
    assert full.channel_names == list(full.processor.channel_names) == ["microtubules", "er", "dna", "protein"]
    encoder = load_subcell(localization_copy, classifiers=False).model  # the encoder alone, read out of the folder
    assert type(encoder) is SubCellModel
    for (name, a), b in zip(encoder.state_dict().items(), full.model.subcell.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    settings = localization_copy / "preprocessor_config.json"
    settings.write_text(json.dumps({**json.loads(settings.read_text()), "channel_names": ["dna", "protein"]}))
    with pytest.raises(ModelLoadingError) as error:
        load_subcell(localization_copy)
    assert str(error.value).startswith(
        f"{localization_copy}: preprocessor_config.json: expected channels ['microtubules', 'er', 'dna', 'protein'], "
        "found ['dna', 'protein'] (missing ['microtubules', 'er'])"
    )


def test_load_subcell_refuses_an_encoder_where_a_localization_model_is_needed(tiny_release_dir, tmp_path):
    from subcell_hf import LocalizationPredictor
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.model_loading import ModelLoadingError
    from subcell_hf.variants import RELEASES

    encoder_dir = tmp_path / "encoder"
    convert_release(RELEASES["dna-protein-mae-cells-prots-pool"], tiny_release_dir, encoder_dir, with_classifiers=False)
    with pytest.raises(ModelLoadingError, match=r"encoder: expected a localization model .* found architectures"):
        LocalizationPredictor.from_pretrained(str(encoder_dir), runtime="eager")
