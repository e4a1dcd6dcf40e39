"""The checks transformers runs on its own models (its `ModelTesterMixin`), written for both SubCell model classes on
a tiny configuration: save/load, half-precision loading, SDPA = eager, batching invariance, weight initialisation,
output shapes and tuples, gradient checkpointing."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModel, AutoModelForImageClassification

from subcell_hf import SubCellForProteinLocalization, SubCellModel

from ..conftest import tiny_config

MODEL_CLASSES = [SubCellModel, SubCellForProteinLocalization]
IDS = [cls.__name__ for cls in MODEL_CLASSES]
FP32 = {"rtol": 1e-5, "atol": 1e-5}
TOKENS = 1 + 4 * 4  # CLS + the 4 x 4 patches of a 64-px crop


def main_outputs(output) -> dict[str, torch.Tensor]:
    names = ["last_hidden_state", "pooler_output", "pool_attentions", "logits", "probabilities", "embeddings"]
    return {name: output[name] for name in names if name in output}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved tiny classifier (sin-cos positions, dropout everywhere) and its fp32 outputs on fixed pixels."""
    torch.manual_seed(0)
    model = SubCellForProteinLocalization(tiny_config(position_embedding_type="sincos")).eval()
    folder = tmp_path_factory.mktemp("saved")
    model.save_pretrained(folder)
    return folder, model


@pytest.fixture(scope="module")
def loaded(saved):
    """`loaded(model_class, attn_implementation)`: the saved classifier loaded as that class, once per module."""
    cache = {}

    def load(model_class, implementation="sdpa"):
        if (model_class, implementation) not in cache:
            model = model_class.from_pretrained(saved[0], attn_implementation=implementation).eval()
            cache[model_class, implementation] = model
        return cache[model_class, implementation]

    return load


@pytest.fixture(scope="module")
def pixels():
    return torch.rand(3, 4, 64, 64, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_save_load_round_trip_gives_identical_outputs_and_writes_the_remote_code(model_class, tmp_path, pixels):
    torch.manual_seed(0)
    model = model_class(tiny_config()).eval()
    model.save_pretrained(tmp_path)
    auto_class = AutoModel if model_class is SubCellModel else AutoModelForImageClassification
    reloaded = auto_class.from_pretrained(tmp_path).eval()
    assert type(reloaded) is model_class
    assert reloaded.config.to_diff_dict() == model.config.to_diff_dict()
    with torch.no_grad():
        expected, found = main_outputs(model(pixels)), main_outputs(reloaded(pixels))
    assert found.keys() == expected.keys()
    for name in expected:
        assert torch.equal(found[name], expected[name]), name
    # register_for_auto_class: the code travels with the weights, and either folder loads as either class
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_subcell.SubCellConfig",
        "AutoModel": "modeling_subcell.SubCellModel",
        "AutoModelForImageClassification": "modeling_subcell.SubCellForProteinLocalization",
    }
    assert {"configuration_subcell.py", "modeling_subcell.py"} <= {p.name for p in tmp_path.iterdir()}


@pytest.mark.parametrize(
    "model_class, argument, dtype",
    [(SubCellModel, "dtype", torch.bfloat16), (SubCellForProteinLocalization, "torch_dtype", torch.float16)],
    ids=["SubCellModel-bf16", "SubCellForProteinLocalization-fp16"],
)
def test_from_pretrained_in_half_precision_runs_on_float32_pixels(saved, pixels, model_class, argument, dtype):
    folder, reference = saved
    model = model_class.from_pretrained(folder, **{argument: dtype}).eval()
    assert {p.dtype for p in model.parameters()} == {dtype}
    with torch.no_grad():
        output = model(pixels)
        expected = reference(pixels)
    embedding = output.pooler_output if model_class is SubCellModel else output.embeddings
    assert embedding.dtype == dtype
    cosine = torch.nn.functional.cosine_similarity(embedding.float(), expected.embeddings, dim=1)
    assert cosine.min() > 0.999, cosine  # measured: >= 0.99999 (bf16), >= 0.999999 (fp16)
    if model_class is SubCellForProteinLocalization:
        assert output.probabilities.dtype == torch.float32  # the ensemble mean is taken in float32
        torch.testing.assert_close(output.probabilities, expected.probabilities, rtol=0, atol=2e-2)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_sdpa_and_eager_agree_and_eager_returns_the_attention_weights(loaded, pixels, model_class):
    sdpa, eager = loaded(model_class), loaded(model_class, "eager")
    assert (sdpa.config._attn_implementation, eager.config._attn_implementation) == ("sdpa", "eager")
    with torch.no_grad():
        fused, plain = sdpa(pixels, output_attentions=True), eager(pixels, output_attentions=True)
    for name, value in main_outputs(fused).items():
        torch.testing.assert_close(value, main_outputs(plain)[name], **FP32, msg=name)
    assert fused.attentions is None  # fused kernels return no weights; the CLS map is computed apart under both
    torch.testing.assert_close(fused.cls_attentions, plain.cls_attentions, **FP32)
    assert len(plain.attentions) == 2
    for weights in plain.attentions:
        assert weights.shape == (3, 4, TOKENS, TOKENS)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, TOKENS))
    torch.testing.assert_close(plain.cls_attentions, plain.attentions[-1][:, :, 0, 1:].reshape(3, 4, 4, 4), **FP32)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_batching_invariance(loaded, pixels, model_class):
    model = loaded(model_class)
    with torch.no_grad():
        batch = main_outputs(model(pixels))
        alone = [main_outputs(model(pixels[i : i + 1])) for i in range(len(pixels))]
    for name, value in batch.items():
        torch.testing.assert_close(value, torch.cat([a[name] for a in alone]), **FP32, msg=name)


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_init_weights_covers_every_parameter(model_class):
    config = tiny_config(position_embedding_type="sincos")
    model = model_class(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(float("nan"))
    model.apply(model._init_weights)
    left = [name for name, parameter in model.named_parameters() if not torch.isfinite(parameter).all()]
    assert not left, f"_init_weights leaves {left} uninitialised"


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_hidden_states_attentions_and_tuple_outputs(loaded, model_class, pixels):
    model = loaded(model_class, "eager")
    config = model.config
    with torch.no_grad():
        output = model(pixels, output_hidden_states=True, output_attentions=True)
        as_tuple = model(pixels, output_hidden_states=True, output_attentions=True, return_dict=False)
        without = model(pixels)
    assert len(output.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (3, TOKENS, config.hidden_size) for h in output.hidden_states)
    assert [w.shape for w in output.attentions] == [(3, 4, TOKENS, TOKENS)] * config.num_hidden_layers
    assert output.cls_attentions.shape == (3, 4, 4, 4) and output.pool_attentions.shape == (3, 2, 4, 4)
    assert without.hidden_states is None and without.attentions is None and without.cls_attentions is None
    # can_return_tuple: return_dict=False is `to_tuple()` (the None fields left out), also from the config
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(output.to_tuple())
    for found, expected in zip(as_tuple, output.to_tuple()):
        assert type(found) is type(expected)
    model.config.return_dict = False
    try:
        with torch.no_grad():
            first = model(pixels)[0]
    finally:
        model.config.return_dict = True
    assert torch.equal(first, output.to_tuple()[0])


@pytest.mark.parametrize("model_class", MODEL_CLASSES, ids=IDS)
def test_gradient_checkpointing_gives_the_same_gradients(model_class, pixels):
    no_dropout = dict(pool_dropout=0.0, classifier_dropout=0.0)
    torch.manual_seed(0)
    model = model_class(tiny_config(**no_dropout)).train()
    assert model.supports_gradient_checkpointing

    def gradients():
        model.zero_grad()
        output = model(pixels)
        (output.pooler_output if model_class is SubCellModel else output.probabilities).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    plain = gradients()
    model.activation_checkpointing_enable()
    layers = model.layers if model_class is SubCellModel else model.subcell.layers
    assert all(layer.gradient_checkpointing for layer in layers)
    checkpointed = gradients()
    assert checkpointed.keys() == plain.keys() and "embeddings.projection.weight" in "".join(plain)
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-5, atol=1e-7, msg=name)
