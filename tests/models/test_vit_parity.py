"""The SubCell encoder against transformers' own `ViTModel` (the original SubCell ran HF ViT): the same weights, mapped
to ViT's parameter names by the table below (written here, independent of `subcell_hf`), give the same hidden
states, attention weights and final tokens. Tiny sizes: milliseconds per case."""

from __future__ import annotations

import pytest
import torch
from transformers import ViTConfig, ViTModel

from subcell_hf import SubCellConfig, SubCellModel

SIZES = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, image_size=32, patch_size=8
)
FP32 = {"rtol": 1e-5, "atol": 1e-5}


def vit_state_dict(subcell_state: dict[str, torch.Tensor], num_layers: int) -> dict[str, torch.Tensor]:
    """SubCell encoder tensors under transformers' v5 ViT names (the pooler has no ViT counterpart: dropped)."""
    names = {
        "embeddings.cls_token": "embeddings.cls_token",
        "embeddings.position_embeddings": "embeddings.position_embeddings",
        "embeddings.projection.weight": "embeddings.patch_embeddings.projection.weight",
        "embeddings.projection.bias": "embeddings.patch_embeddings.projection.bias",
        "layernorm.weight": "layernorm.weight",
        "layernorm.bias": "layernorm.bias",
    }
    for i in range(num_layers):
        for ours, theirs in [
            ("layernorm_before", "layernorm_before"),
            ("attention.q_proj", "attention.q_proj"),
            ("attention.k_proj", "attention.k_proj"),
            ("attention.v_proj", "attention.v_proj"),
            ("attention.o_proj", "attention.o_proj"),
            ("layernorm_after", "layernorm_after"),
            ("mlp.fc1", "mlp.fc1"),
            ("mlp.fc2", "mlp.fc2"),
        ]:
            for kind in ("weight", "bias"):
                names[f"layers.{i}.{ours}.{kind}"] = f"layers.{i}.{theirs}.{kind}"
    assert set(subcell_state) - set(names) == {k for k in subcell_state if k.startswith("pooler.")}
    return {theirs: subcell_state[ours] for ours, theirs in names.items()}


@pytest.fixture(scope="module", params=["learned", "sincos"])
def pair(request):
    torch.manual_seed(0)
    config = SubCellConfig(**SIZES, position_embedding_type=request.param, attn_implementation="eager")
    ours = SubCellModel(config).eval()
    with torch.no_grad():  # spread every tensor (biases and LayerNorms start at 0 and 1) so that each one counts
        for name, parameter in ours.named_parameters():
            if name != "embeddings.position_embeddings" or request.param == "learned":
                parameter.add_(torch.randn_like(parameter) * 0.5)
    vit_config = ViTConfig(
        **SIZES, num_channels=config.num_channels, qkv_bias=True, hidden_act="gelu", layer_norm_eps=1e-12,
        attn_implementation="eager",
    )
    vit = ViTModel(vit_config, add_pooling_layer=False).eval()
    vit.load_state_dict(vit_state_dict(ours.state_dict(), config.num_hidden_layers), strict=True)
    return ours, vit


def test_encoder_matches_transformers_vit_layer_by_layer(pair):
    ours, vit = pair
    pixels = torch.rand(3, 4, 32, 32)
    with torch.no_grad():
        expected = vit(pixels, output_hidden_states=True, output_attentions=True)
        output = ours(pixels, output_hidden_states=True, output_attentions=True)
    assert len(output.hidden_states) == len(expected.hidden_states) == 3
    for layer, (mine, theirs) in enumerate(zip(output.hidden_states, expected.hidden_states)):
        torch.testing.assert_close(mine, theirs, **FP32, msg=f"hidden state {layer}")
    assert len(output.attentions) == len(expected.attentions) == 2
    for layer, (mine, theirs) in enumerate(zip(output.attentions, expected.attentions)):
        torch.testing.assert_close(mine, theirs, **FP32, msg=f"attention weights of layer {layer}")
    torch.testing.assert_close(output.last_hidden_state, expected.last_hidden_state, **FP32)
    # the CLS map is the CLS row of ViT's last attention, over the patch grid
    torch.testing.assert_close(output.cls_attentions, expected.attentions[-1][:, :, 0, 1:].reshape(3, 4, 4, 4), **FP32)


def test_sdpa_and_other_sizes_match_transformers_vit(pair):
    """Default (SDPA) attention on both sides, and a non-square size other than the trained one, where ViT runs with
    `interpolate_pos_encoding=True` (bicubic, as the original wrapper called it)."""
    ours, vit = pair
    pixels = torch.rand(2, 4, 40, 48)
    ours.set_attn_implementation("sdpa")
    vit.set_attn_implementation("sdpa")
    try:
        with torch.no_grad():
            torch.testing.assert_close(
                ours(pixels[..., :32, :32]).last_hidden_state, vit(pixels[..., :32, :32]).last_hidden_state, **FP32
            )
            expected = vit(pixels, interpolate_pos_encoding=True).last_hidden_state
            torch.testing.assert_close(ours(pixels).last_hidden_state, expected, **FP32)
    finally:
        ours.set_attn_implementation("eager")
        vit.set_attn_implementation("eager")
