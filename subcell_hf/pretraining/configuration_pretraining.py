"""Configuration of `SubCellForPreTraining`: a `SubCellConfig` (the encoder and pooler) plus the pretraining heads
and objectives of docs/pretraining.md, section 7.

`SubCellPreTrainingConfig.for_family("mae-cells-prots-pool", channel_names=...)` gives the paper's settings for
either released model family; `encoder_config()` gives back the plain `SubCellConfig` the exported encoder carries.
"""

from __future__ import annotations

import dataclasses

from transformers import PreTrainedConfig

from ..models import SubCellConfig
from ..variants import MODEL_FAMILIES

#: Objective settings that distinguish the two released model families (docs/pretraining.md, section 7: "Weights").
FAMILY_OBJECTIVES: dict[str, dict[str, float]] = {
    "vit-prots-pool": dict(
        reconstruction_weight=0.0, cell_contrastive_weight=0.0, protein_contrastive_weight=1.0, mask_ratio=0.0
    ),
    "mae-cells-prots-pool": dict(
        reconstruction_weight=1.0, cell_contrastive_weight=1.0, protein_contrastive_weight=0.1, mask_ratio=0.25
    ),
}
assert set(FAMILY_OBJECTIVES) == set(MODEL_FAMILIES)

_ENCODER_ARGUMENTS = tuple(
    field.name
    for field in dataclasses.fields(SubCellConfig)
    if field.name not in {base.name for base in dataclasses.fields(PreTrainedConfig)}
)


class SubCellPreTrainingConfig(SubCellConfig):
    r"""Configuration of `SubCellForPreTraining`. All `SubCellConfig` arguments describe the encoder; the rest
    describe the pretraining heads. An objective whose weight is 0 has no head at all (no unused parameters).

    Args:
        decoder_hidden_size, decoder_num_hidden_layers, decoder_num_attention_heads, decoder_intermediate_size:
            the MAE decoder (512, 8, 16, 2048 in the paper).
        mask_ratio (`float`, defaults to 0.25): fraction of patches hidden from the encoder when the
            reconstruction objective is on.
        object_mask_ratio (`float`, *optional*): object-aware masking: hide this fraction of the patches that lie
            on the cell and spend the rest of the `mask_ratio` budget on background patches. `None`: uniform.
        object_patch_threshold (`float`, defaults to 0.5): a patch lies on the cell when at least this fraction of
            its pixels is inside the cell mask.
        norm_pix_loss (`bool`, defaults to `True`): standardise each target patch over all its values (eps 1e-6).
        projector_hidden_sizes (`list[int]`, defaults to `[8192, 8192]`): hidden widths of each projector
            (Linear + BatchNorm + ReLU each).
        projector_output_size (`int`, defaults to 512): output width (last Linear, no bias).
        cell_temperature, protein_temperature (`float`, defaults to 0.1): NT-Xent and SupCon temperatures.
        reconstruction_weight, cell_contrastive_weight, protein_contrastive_weight (`float`): loss weights
            (1.0 / 1.0 / 0.1 for MAE-CellS-ProtS-Pool, 0 / 0 / 1.0 for ViT-ProtS-Pool).
    """

    model_type = "subcell-pretraining"
    _auto_class = None  # registered with the local Auto classes only: not uploaded as remote code

    def __init__(
        self,
        decoder_hidden_size: int = 512,
        decoder_num_hidden_layers: int = 8,
        decoder_num_attention_heads: int = 16,
        decoder_intermediate_size: int = 2048,
        mask_ratio: float = 0.25,
        object_mask_ratio: float | None = None,
        object_patch_threshold: float = 0.5,
        norm_pix_loss: bool = True,
        projector_hidden_sizes: list[int] | tuple[int, ...] = (8192, 8192),
        projector_output_size: int = 512,
        cell_temperature: float = 0.1,
        protein_temperature: float = 0.1,
        reconstruction_weight: float = 1.0,
        cell_contrastive_weight: float = 1.0,
        protein_contrastive_weight: float = 0.1,
        **kwargs,
    ):
        if not 0.0 <= mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), found {mask_ratio}")
        if object_mask_ratio is not None and not 0.0 <= object_mask_ratio <= 1.0:
            raise ValueError(f"object_mask_ratio must be in [0, 1] or None, found {object_mask_ratio}")
        if reconstruction_weight > 0 and mask_ratio == 0:
            raise ValueError("the reconstruction objective needs mask_ratio > 0 (nothing would be reconstructed)")
        weights = (reconstruction_weight, cell_contrastive_weight, protein_contrastive_weight)
        if min(weights) < 0 or max(weights) == 0:
            raise ValueError(
                "loss weights must be >= 0 with at least one > 0, found "
                f"reconstruction={weights[0]}, cell_contrastive={weights[1]}, protein_contrastive={weights[2]}"
            )
        if decoder_hidden_size % decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size ({decoder_hidden_size}) must be divisible by decoder_num_attention_heads "
                f"({decoder_num_attention_heads})"
            )
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.mask_ratio = mask_ratio
        self.object_mask_ratio = object_mask_ratio
        self.object_patch_threshold = object_patch_threshold
        self.norm_pix_loss = norm_pix_loss
        self.projector_hidden_sizes = list(projector_hidden_sizes)
        self.projector_output_size = projector_output_size
        self.cell_temperature = cell_temperature
        self.protein_temperature = protein_temperature
        self.reconstruction_weight = reconstruction_weight
        self.cell_contrastive_weight = cell_contrastive_weight
        self.protein_contrastive_weight = protein_contrastive_weight
        super().__init__(**kwargs)

    @classmethod
    def for_family(
        cls, family: str, channel_names: list[str] | tuple[str, ...] | None = None, **overrides
    ) -> "SubCellPreTrainingConfig":
        """The paper's settings for a released model family (`"vit-prots-pool"` or `"mae-cells-prots-pool"`):
        position embeddings, loss weights and mask ratio; `overrides` win over them."""
        if family not in MODEL_FAMILIES:
            raise ValueError(f"unknown model family {family!r}; expected one of {sorted(MODEL_FAMILIES)}")
        values: dict = dict(FAMILY_OBJECTIVES[family])
        values["position_embedding_type"] = MODEL_FAMILIES[family].position_embedding_type
        values.update(overrides)
        return cls(channel_names=channel_names, **values)

    @property
    def objectives(self) -> tuple[str, ...]:
        """The enabled loss terms, in the order of `SubCellPreTrainingOutput`."""
        weights = {
            "reconstruction": self.reconstruction_weight,
            "cell_contrastive": self.cell_contrastive_weight,
            "protein_contrastive": self.protein_contrastive_weight,
        }
        return tuple(name for name, weight in weights.items() if weight > 0)

    def encoder_config(self) -> SubCellConfig:
        """The plain `SubCellConfig` of the encoder + pooler (what the exported `SubCellModel` carries)."""
        return SubCellConfig(**{name: getattr(self, name) for name in _ENCODER_ARGUMENTS})

    def decoder_config(self) -> SubCellConfig:
        """A `SubCellConfig` describing the MAE decoder's transformer blocks (they are `SubCellLayer`s)."""
        implementation = getattr(self, "_attn_implementation", None)
        return SubCellConfig(
            channel_names=self.channel_names,
            hidden_size=self.decoder_hidden_size,
            num_hidden_layers=self.decoder_num_hidden_layers,
            num_attention_heads=self.decoder_num_attention_heads,
            intermediate_size=self.decoder_intermediate_size,
            hidden_act=self.hidden_act,
            layer_norm_eps=self.layer_norm_eps,
            qkv_bias=self.qkv_bias,
            image_size=self.image_size,
            patch_size=self.patch_size,
            **({"attn_implementation": implementation} if implementation else {}),
        )


__all__ = ["FAMILY_OBJECTIVES", "SubCellPreTrainingConfig"]
