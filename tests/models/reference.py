"""An independent plain-torch SubCell forward written from docs/model.md, sections 1-4, reading the ORIGINAL key names.

Deliberately shares no code with `subcell_hf`: eager attention, explicit einsums, functional ops only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reference_normalize(cells: torch.Tensor) -> torch.Tensor:
    cells = cells.float()
    low = cells.amin(dim=(1, 2, 3), keepdim=True)
    high = cells.amax(dim=(1, 2, 3), keepdim=True)
    return (cells - low) / (high - low + 1e-6)


def reference_encoder(sd: dict, pixels: torch.Tensor, num_heads: int, eps: float = 1e-12):
    """Returns (embedding (B, heads*D), pool maps (B, heads, h, w), tokens (B, T, D))."""
    batch, _, height, width = pixels.shape
    weight = sd["encoder.embeddings.patch_embeddings.projection.weight"]
    patch = weight.shape[-1]
    dim = weight.shape[0]
    grid_h, grid_w = height // patch, width // patch
    patches = F.conv2d(pixels, weight, sd["encoder.embeddings.patch_embeddings.projection.bias"], stride=patch)
    tokens = patches.reshape(batch, dim, grid_h * grid_w).permute(0, 2, 1)
    positions = sd["encoder.embeddings.position_embeddings"]
    trained = int(round((positions.shape[1] - 1) ** 0.5))
    if (grid_h, grid_w) != (trained, trained):
        table = positions[0, 1:].reshape(trained, trained, dim).permute(2, 0, 1)[None]
        table = F.interpolate(table, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        positions = torch.cat([positions[:, :1], table[0].permute(1, 2, 0).reshape(1, grid_h * grid_w, dim)], dim=1)
    x = torch.cat([sd["encoder.embeddings.cls_token"].expand(batch, 1, dim), tokens], dim=1) + positions

    head_dim = dim // num_heads
    for i in range(sum(1 for k in sd if k.endswith("layernorm_before.weight"))):
        p = f"encoder.encoder.layer.{i}."
        y = F.layer_norm(x, (dim,), sd[p + "layernorm_before.weight"], sd[p + "layernorm_before.bias"], eps)
        q, k, v = (
            F.linear(y, sd[p + f"attention.attention.{n}.weight"], sd[p + f"attention.attention.{n}.bias"])
            .reshape(batch, -1, num_heads, head_dim)
            for n in ("query", "key", "value")
        )
        scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / head_dim**0.5
        attended = torch.einsum("bhqk,bkhd->bqhd", scores.softmax(dim=-1), v).reshape(batch, -1, dim)
        x = x + F.linear(attended, sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"])
        y = F.layer_norm(x, (dim,), sd[p + "layernorm_after.weight"], sd[p + "layernorm_after.bias"], eps)
        hidden = F.gelu(F.linear(y, sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"]))
        x = x + F.linear(hidden, sd[p + "output.dense.weight"], sd[p + "output.dense.bias"])
    x = F.layer_norm(x, (dim,), sd["encoder.layernorm.weight"], sd["encoder.layernorm.bias"], eps)

    gate_v = torch.tanh(F.linear(x, sd["pool_model.attention_v.1.weight"], sd["pool_model.attention_v.1.bias"]))
    gate_u = F.gelu(F.linear(x, sd["pool_model.attention_u.1.weight"], sd["pool_model.attention_u.1.bias"]))
    weights = F.linear(gate_v * gate_u, sd["pool_model.attention.weight"], sd["pool_model.attention.bias"])
    weights = weights.softmax(dim=1)  # over tokens: (B, T, heads)
    embedding = torch.einsum("bth,btd->bhd", weights, x).reshape(batch, -1)
    maps = weights[:, 1:].permute(0, 2, 1).reshape(batch, -1, grid_h, grid_w)
    return embedding, maps, x


def reference_probabilities(classifier_sds: list[dict], embedding: torch.Tensor) -> torch.Tensor:
    """Mean over the ensemble of sigmoid(MLP(embedding)); MLP = Linear ReLU Linear ReLU Linear (keys 0, 3, 6)."""
    sigmoids = []
    for sd in classifier_sds:
        h = F.relu(F.linear(embedding, sd["0.weight"], sd["0.bias"]))
        h = F.relu(F.linear(h, sd["3.weight"], sd["3.bias"]))
        sigmoids.append(torch.sigmoid(F.linear(h, sd["6.weight"], sd["6.bias"])))
    return torch.stack(sigmoids).mean(dim=0)
