"""SubCellModel / SubCellForProteinLocalization behaviour on tiny configs (and parameter counts at full size)."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel
from transformers.utils import logging as hf_logging

from subcell_hf import SubCellConfig, SubCellForProteinLocalization, SubCellModel
from subcell_hf.models import modeling_subcell
from subcell_hf.models.modeling_subcell import sincos_position_embeddings

from ..conftest import tiny_config


@pytest.mark.parametrize(
    "channels, encoder_params",
    [
        (["microtubules", "er", "dna", "protein"], 86_446_848),
        (["microtubules", "dna", "protein"], 86_250_240),
        (["dna", "protein"], 86_053_632),
    ],
)
def test_parameter_counts_match_the_spec(channels, encoder_params):
    with torch.device("meta"):
        model = SubCellModel(SubCellConfig(channel_names=channels))
    pooler = sum(p.numel() for p in model.pooler.parameters())
    assert pooler == 788_482
    assert sum(p.numel() for p in model.parameters()) - pooler == encoder_params
    with torch.device("meta"):
        classifier = SubCellForProteinLocalization(SubCellConfig(channel_names=channels))
    per_head = (1536 * 512 + 512) + (512 * 256 + 256) + (256 * 31 + 31)
    assert sum(p.numel() for p in classifier.classifiers.parameters()) == 10 * per_head


def test_output_shapes_and_defaults():
    model = SubCellModel(tiny_config()).eval()
    output = model(torch.rand(3, 4, 64, 64))
    assert output.last_hidden_state.shape == (3, 17, 64)
    assert output.pooler_output.shape == (3, 128)
    assert output.pool_attentions.shape == (3, 2, 4, 4)
    # each pooling head's attention over all tokens sums to one; the maps drop only the CLS entry
    assert torch.all(output.pool_attentions.sum(dim=(2, 3)) <= 1 + 1e-6)
    assert model.config._attn_implementation == "sdpa"


def test_embedding_is_the_attention_weighted_sum_of_tokens_head_zero_first():
    model = SubCellModel(tiny_config()).eval()
    output = model(torch.rand(2, 4, 64, 64))
    tokens = output.last_hidden_state
    _, attention = model.pooler(tokens)  # (B, heads, T)
    expected = torch.cat([torch.einsum("bt,btd->bd", attention[:, h], tokens) for h in range(2)], dim=1)
    torch.testing.assert_close(output.pooler_output, expected)
    torch.testing.assert_close(output.pool_attentions, attention[:, :, 1:].reshape(2, 2, 4, 4))


def test_kept_patch_indices_encode_only_those_patches_at_their_own_positions():
    """MAE pretraining encodes the visible patches only. Position embeddings are added before the selection, so the
    order of the kept patches does not matter (attention and the pooler are permutation-equivariant/invariant), and
    a subset is encoded as if the other patches did not exist."""
    model = SubCellModel(tiny_config()).eval()
    pixels = torch.rand(2, 4, 64, 64)
    full = model(pixels, output_attentions=True)
    reversed_order = torch.arange(15, -1, -1).expand(2, 16)
    shuffled = model(pixels, kept_patch_indices=reversed_order, output_attentions=True)
    torch.testing.assert_close(shuffled.pooler_output, full.pooler_output, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        shuffled.last_hidden_state[:, 1:], full.last_hidden_state[:, 1:].flip(1), rtol=1e-5, atol=1e-6
    )
    assert shuffled.pool_attentions.shape == (2, 2, 16) and shuffled.cls_attentions.shape == (2, 4, 16)
    torch.testing.assert_close(shuffled.pool_attentions, full.pool_attentions.flatten(2).flip(2), rtol=1e-5, atol=1e-6)

    kept = torch.tensor([[0, 5, 10, 15], [3, 2, 1, 0]])
    subset = model(pixels, kept_patch_indices=kept)
    assert subset.last_hidden_state.shape == (2, 5, 64) and subset.pool_attentions.shape == (2, 2, 4)
    # the same as encoding a sequence that only has those tokens: run the layers by hand on the gathered tokens
    tokens = model.embeddings(pixels)
    tokens = torch.cat([tokens[:, :1], torch.stack([tokens[b, 1:][kept[b]] for b in range(2)])], dim=1)
    for layer in model.layers:
        tokens = layer(tokens)[0]
    torch.testing.assert_close(subset.last_hidden_state, model.layernorm(tokens))
    assert not torch.allclose(subset.pooler_output, full.pooler_output, atol=1e-3)


def test_attention_maps_do_not_make_the_model_eager(monkeypatch):
    """The CLS map is one extra (1 x T) softmax per head: the layers stay on their fused kernel (SDPA = eager and
    the eager weights are checked in test_modeling_common.py)."""
    sdpa = SubCellModel(tiny_config()).eval()
    pixels = torch.rand(2, 4, 64, 64)

    calls = []
    original = modeling_subcell.eager_attention_forward
    monkeypatch.setattr(
        modeling_subcell, "eager_attention_forward", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    out_sdpa = sdpa(pixels, output_attentions=True)
    assert calls == [], "asking for attention maps must not run eager attention"
    assert out_sdpa.attentions is None
    sdpa.set_attn_implementation("eager")
    sdpa(pixels)
    assert len(calls) == sdpa.config.num_hidden_layers
    sdpa.set_attn_implementation("sdpa")

    # the CLS map equals the CLS row of the last layer's full softmax attention
    layer = sdpa.layers[-1]
    hidden = sdpa(pixels, output_hidden_states=True).hidden_states[-2]
    normed = layer.layernorm_before(hidden)
    q = layer.attention.q_proj(normed).view(2, 17, 4, 16).transpose(1, 2)
    k = layer.attention.k_proj(normed).view(2, 17, 4, 16).transpose(1, 2)
    full = (q @ k.transpose(-1, -2) / 4.0).softmax(dim=-1)
    torch.testing.assert_close(out_sdpa.cls_attentions, full[:, :, 0, 1:].reshape(2, 4, 4, 4))


def test_position_embeddings_are_unchanged_at_the_trained_size_and_interpolated_otherwise():
    model = SubCellModel(tiny_config()).eval()
    embeddings = model.embeddings
    assert embeddings.position_embeddings_for(4, 4) is embeddings.position_embeddings
    table = embeddings.position_embeddings_for(6, 5)
    assert table.shape == (1, 31, 64)
    torch.testing.assert_close(table[:, :1], embeddings.position_embeddings[:, :1])
    patches = embeddings.position_embeddings[:, 1:].reshape(1, 4, 4, 64).permute(0, 3, 1, 2)
    expected = F.interpolate(patches, size=(6, 5), mode="bicubic", align_corners=False)
    torch.testing.assert_close(table[:, 1:], expected.permute(0, 2, 3, 1).reshape(1, 30, 64))
    output = model(torch.rand(1, 4, 96, 80))
    assert output.pool_attentions.shape == (1, 2, 6, 5)
    # other sizes, as the original wrapper fed them: the pixels past the last whole patch are not seen
    pixels = torch.rand(1, 4, 70, 75)
    ragged = model(pixels)
    whole = model(pixels[..., :64, :64])
    torch.testing.assert_close(ragged.pooler_output, whole.pooler_output)
    assert ragged.pool_attentions.shape == (1, 2, 4, 4)
    with pytest.raises(ValueError, match="at least 16, found 15x64"):
        model(torch.rand(1, 4, 15, 64))
    with pytest.raises(ValueError, match="must have 4 channels, found 3"):
        model(torch.rand(1, 3, 64, 64))


def test_sincos_table_follows_the_spec_formula():
    table = sincos_position_embeddings(768, 28, 28)
    assert table.shape == (1, 785, 768)
    assert torch.all(table[0, 0] == 0)
    row, col = 5, 11
    token = table[0, 1 + row * 28 + col].double()
    omega = 1.0 / 10000 ** (torch.arange(192, dtype=torch.float64) / 192)
    torch.testing.assert_close(token[:192], torch.sin(col * omega).float().double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(token[192:384], torch.cos(col * omega).float().double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(token[384:576], torch.sin(row * omega).float().double(), atol=1e-6, rtol=0)
    torch.testing.assert_close(token[576:], torch.cos(row * omega).float().double(), atol=1e-6, rtol=0)
    model = SubCellModel(tiny_config(position_embedding_type="sincos"))
    assert not model.embeddings.position_embeddings.requires_grad
    torch.testing.assert_close(model.embeddings.position_embeddings.data, sincos_position_embeddings(64, 4, 4))


def test_localization_ensemble_outputs_and_loss():
    model = SubCellForProteinLocalization(tiny_config()).eval()
    with torch.no_grad():  # spread the logits so that the two ways of averaging differ measurably
        for parameter in model.classifiers.parameters():
            parameter.normal_(std=1.0)
    pixels = torch.rand(2, 4, 64, 64)
    labels = torch.zeros(2, 31)
    labels[0, 26] = labels[1, 7] = 1
    output = model(pixels, labels=labels)
    heads = torch.stack([head(output.embeddings) for head in model.classifiers], dim=1)
    torch.testing.assert_close(output.ensemble_logits, heads)
    torch.testing.assert_close(output.probabilities, torch.sigmoid(heads).mean(dim=1))
    assert not torch.allclose(output.probabilities, torch.sigmoid(heads.mean(dim=1)))  # mean of sigmoids, not sigmoid of mean
    torch.testing.assert_close(torch.sigmoid(output.logits), output.probabilities, atol=1e-6, rtol=1e-5)
    expected_loss = torch.stack(
        [F.binary_cross_entropy_with_logits(heads[:, k], labels) for k in range(heads.shape[1])]
    ).mean()
    torch.testing.assert_close(output.loss, expected_loss)
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label[26] == "Nucleoplasm" and model.config.num_labels == 31


def test_training_mode_uses_dropout():
    model = SubCellForProteinLocalization(tiny_config(pool_dropout=0.5)).train()
    pixels = torch.rand(2, 4, 64, 64)
    first, second = model(pixels).probabilities, model(pixels).probabilities
    assert not torch.allclose(first, second)


def test_encoder_loads_from_a_classifier_checkpoint_without_warnings(tmp_path, caplog):
    model = SubCellForProteinLocalization(tiny_config(position_embedding_type="sincos")).eval()
    model.save_pretrained(tmp_path)
    pixels = torch.rand(2, 4, 64, 64)

    hf_logging.enable_propagation()
    try:
        with caplog.at_level(logging.INFO, logger="transformers"):
            encoder, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    finally:
        hf_logging.disable_propagation()
    assert isinstance(encoder, SubCellModel)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not any("missing" in w.lower() or "unexpected" in w.lower() or "not used" in w.lower() for w in warnings)
    torch.testing.assert_close(encoder.eval()(pixels).pooler_output, model(pixels).embeddings, rtol=0, atol=0)
