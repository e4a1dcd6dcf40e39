"""SubCellConfig: typed fields checked when set, values checked together, and config.json files of earlier versions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError

from subcell_hf import LOCALIZATION_CLASSES, SubCellConfig

#: config.json of a tiny classifier written by subcell_hf 0.1.0 before the typed fields (hand-written `__init__`).
FROZEN = Path(__file__).parent / "fixtures" / "config_before_typed_fields.json"


def test_config_json_of_the_previous_version_loads_and_is_written_back_the_same(tmp_path):
    config = SubCellConfig.from_pretrained(FROZEN)
    assert config.channel_names == ["microtubules", "er", "dna", "protein"]
    assert (config.hidden_size, config.num_hidden_layers, config.image_size) == (64, 2, 64)
    assert config.classifier_hidden_sizes == [32, 16] and config.position_embedding_type == "sincos"
    assert config.source_checksums == {"a.pth": "0" * 64}
    assert config.model_variant == "all_channels-mae-cells-prots-pool"
    assert config.id2label[26] == "Nucleoplasm" and config.num_labels == 31
    config.save_pretrained(tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    frozen = json.loads(FROZEN.read_text())
    for document in (written, frozen):
        document.pop("transformers_version")
    assert written == frozen


def test_defaults_are_the_released_model():
    config = SubCellConfig()
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads, config.patch_size) == (
        768, 12, 12, 16
    )
    assert config.num_channels == 4 and config.embedding_size == 1536
    assert list(config.id2label.values()) == list(LOCALIZATION_CLASSES)
    assert config.problem_type == "multi_label_classification"
    assert SubCellConfig(num_labels=3).num_labels == 3
    assert SubCellConfig(channel_names=("dna", "protein")).channel_names == ["dna", "protein"]


@pytest.mark.parametrize(
    "values, error, message",
    [
        ({"hidden_size": "768"}, StrictDataclassFieldValidationError, "'hidden_size' expected int, got str"),
        ({"position_embedding_type": "rope"}, StrictDataclassFieldValidationError,
         "'position_embedding_type' expected one of \\('learned', 'sincos'\\), got rope"),
        ({"classifier_hidden_sizes": [512, "256"]}, StrictDataclassFieldValidationError, "classifier_hidden_sizes"),
        ({"channel_names": ["dna", "er"]}, StrictDataclassClassValidationError,
         r"channel_names must follow the HPA order \['microtubules', 'er', 'dna', 'protein'\], found \['dna', 'er'\]"),
        ({"channel_names": ["nucleus"]}, StrictDataclassClassValidationError, "non-empty subset .* found \\['nucleus'\\]"),
        ({"image_size": 450}, StrictDataclassClassValidationError, "image_size must be a multiple of patch_size=16"),
        ({"hidden_size": 100}, StrictDataclassClassValidationError, "hidden_size \\(100\\) must be divisible by"),
    ],
)
def test_bad_values_name_the_field_the_expected_and_the_found(values, error, message):
    with pytest.raises(error, match=message):
        SubCellConfig(**values)


def test_fields_are_checked_when_set():
    config = SubCellConfig()
    with pytest.raises(StrictDataclassFieldValidationError, match="'num_classifiers' expected int, got float"):
        config.num_classifiers = 2.5
