"""Synthetic release files in the exact original format (docs/model.md, section 6), for tests, the demo and benchmarks.

Random tensors with the published key names and shapes (or a smaller architecture with the same key layout),
saved as plain pickled state dicts, laid out like the published release folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .models.modeling_subcell import sincos_position_embeddings
from .variants import RELEASES, Release


@dataclass(frozen=True)
class OriginalArchitecture:
    """Sizes of an original-format checkpoint; the defaults are the published ViT-B/16."""

    hidden_size: int = 768
    num_layers: int = 12
    intermediate_size: int = 3072
    patch_size: int = 16
    grid_size: int = 28
    pool_hidden_size: int = 512
    pool_num_heads: int = 2
    classifier_hidden_sizes: tuple[int, ...] = (512, 256)
    num_classes: int = 31


#: A small architecture with the published key layout, for fast tests (64-px crops, 2 layers).
TINY_ARCHITECTURE = OriginalArchitecture(
    hidden_size=64, num_layers=2, intermediate_size=128, grid_size=4, pool_hidden_size=32,
    classifier_hidden_sizes=(32, 16),
)


def original_encoder_state_dict(
    num_channels: int,
    position_embedding_type: str = "learned",
    arch: OriginalArchitecture = OriginalArchitecture(),
    seed: int = 0,
    training_extras: bool = False,
) -> dict[str, torch.Tensor]:
    """Random encoder weights under the original 198 + 6 key names. Scales keep activations well-conditioned."""
    g = torch.Generator().manual_seed(seed)
    h, p = arch.hidden_size, arch.patch_size

    def rand(*shape: int, scale: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "encoder.embeddings.cls_token": rand(1, 1, h),
        "encoder.embeddings.position_embeddings": (
            sincos_position_embeddings(h, arch.grid_size, arch.grid_size)
            if position_embedding_type == "sincos"
            else rand(1, arch.grid_size**2 + 1, h)
        ),
        "encoder.embeddings.patch_embeddings.projection.weight": rand(h, num_channels, p, p, scale=0.05),
        "encoder.embeddings.patch_embeddings.projection.bias": rand(h),
    }
    for i in range(arch.num_layers):
        layer = f"encoder.encoder.layer.{i}"
        for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                     "attention.output.dense"):
            sd[f"{layer}.{name}.weight"] = rand(h, h, scale=h**-0.5)
            sd[f"{layer}.{name}.bias"] = rand(h)
        sd[f"{layer}.intermediate.dense.weight"] = rand(arch.intermediate_size, h, scale=h**-0.5)
        sd[f"{layer}.intermediate.dense.bias"] = rand(arch.intermediate_size)
        sd[f"{layer}.output.dense.weight"] = rand(h, arch.intermediate_size, scale=arch.intermediate_size**-0.5)
        sd[f"{layer}.output.dense.bias"] = rand(h)
        for norm in ("layernorm_before", "layernorm_after"):
            sd[f"{layer}.{norm}.weight"] = 1 + rand(h, scale=0.1)
            sd[f"{layer}.{norm}.bias"] = rand(h, scale=0.1)
    sd["encoder.layernorm.weight"] = 1 + rand(h, scale=0.1)
    sd["encoder.layernorm.bias"] = rand(h, scale=0.1)
    for gate in ("attention_v", "attention_u"):
        sd[f"pool_model.{gate}.1.weight"] = rand(arch.pool_hidden_size, h, scale=h**-0.5)
        sd[f"pool_model.{gate}.1.bias"] = rand(arch.pool_hidden_size)
    sd["pool_model.attention.weight"] = rand(arch.pool_num_heads, arch.pool_hidden_size, scale=1.0)
    sd["pool_model.attention.bias"] = rand(arch.pool_num_heads)
    if training_extras:  # what some training checkpoints carry beside the released encoder
        sd["target_encoder.embeddings.cls_token"] = rand(1, 1, h)
        sd["decoder.decoder_embed.weight"] = rand(8, h)
    return sd


def original_classifier_state_dict(arch: OriginalArchitecture = OriginalArchitecture(), seed: int = 0):
    """Random classifier weights under the original `nn.Sequential` indices 0, 3, 6."""
    g = torch.Generator().manual_seed(10_000 + seed)
    sizes = [arch.pool_num_heads * arch.hidden_size, *arch.classifier_hidden_sizes, arch.num_classes]
    sd = {}
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        sd[f"{3 * index}.weight"] = torch.randn(fan_out, fan_in, generator=g) * fan_in**-0.5
        sd[f"{3 * index}.bias"] = torch.randn(fan_out, generator=g) * 0.1
    return sd


def write_release_files(
    release_dir: str | Path,
    releases: list[Release] | None = None,
    arch: OriginalArchitecture = OriginalArchitecture(),
    num_classifiers: int = 10,
    seed: int = 0,
) -> dict[str, tuple[Path, list[Path]]]:
    """Write encoder and classifier files for `releases` (default: all 8) in the published layout."""
    release_dir = Path(release_dir)
    written = {}
    for offset, release in enumerate(releases or list(RELEASES.values())):
        encoder_path, classifier_paths = release.source_paths(release_dir, num_classifiers)
        encoder_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            original_encoder_state_dict(
                release.variant.num_channels, release.model_type.position_embedding_type, arch, seed + offset
            ),
            encoder_path,
        )
        classifier_paths[0].parent.mkdir(parents=True, exist_ok=True)
        for k, path in enumerate(classifier_paths):
            torch.save(original_classifier_state_dict(arch, seed=100 * offset + k), path)
        written[release.name] = (encoder_path, classifier_paths)
    return written
