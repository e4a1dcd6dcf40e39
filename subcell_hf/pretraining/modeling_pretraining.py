"""`SubCellForPreTraining`: the SubCell encoder + pooler with the heads and losses of pretraining
(docs/pretraining.md).

View roles, as the release: with the reconstruction objective on (MAE-CellS-ProtS-Pool), view 1 is encoded from
its visible patches only (MAE masking, ratio 0.25) and is the only view the decoder reconstructs; view 2 is encoded
whole. Without it (ViT-ProtS-Pool) both views are encoded whole. Both views' pooled embeddings feed the
contrastive objectives: each view's embeddings are first gathered from all processes (with gradients), then each
projector runs on each view's global batch separately, so the projectors' BatchNorm statistics are global and per
view. The encoder and pooler are a plain `SubCellModel` under `subcell.`, so `export_encoder` writes a folder that
`AutoModel` loads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from ..utils.atomic_writes import atomic_directory
from ..models import SubCellImageProcessor, SubCellModel, SubCellModelOutput
from ..models.modeling_subcell import SubCellLayer, SubCellPreTrainedModel, sincos_position_embeddings
from . import distributed
from .configuration_pretraining import SubCellPreTrainingConfig
from .losses import masked_patch_mse, nt_xent_loss, supcon_loss
from .masking import PatchMask, cell_patch_fraction, object_aware_patch_mask, patchify, random_patch_mask


@dataclass
class SubCellPreTrainingOutput(ModelOutput):
    """Output of `SubCellForPreTraining`. For V views of B cells, rows are view-major (all of view 1 first).

    Args:
        loss: weighted sum of the enabled terms.
        reconstruction_loss: norm-pix MSE over the hidden patches of view 1, when enabled.
        cell_contrastive_loss: NT-Xent over the global batch, when enabled.
        protein_contrastive_loss: SupCon by antibody id over the global batch, when enabled.
        embeddings: (V * B, pool_num_heads * hidden) pooled embeddings (view 1 of its visible tokens when masked).
        reconstruction: (B, L, p * p * C) decoder predictions for every patch of view 1 (in norm-pix units when
            `norm_pix_loss`), when the reconstruction objective is on.
        patch_mask: (B, L) 1 for the hidden patches of view 1, when the reconstruction objective is on.
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    cell_contrastive_loss: torch.FloatTensor | None = None
    protein_contrastive_loss: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    reconstruction: torch.FloatTensor | None = None
    patch_mask: torch.FloatTensor | None = None

    def loss_terms(self) -> dict[str, torch.Tensor]:
        """The enabled loss terms by name (`reconstruction`, `cell_contrastive`, `protein_contrastive`)."""
        terms = {
            "reconstruction": self.reconstruction_loss,
            "cell_contrastive": self.cell_contrastive_loss,
            "protein_contrastive": self.protein_contrastive_loss,
        }
        return {name: value for name, value in terms.items() if value is not None}


class SubCellProjector(nn.Module):
    """Projection MLP: (Linear + BatchNorm + ReLU) per hidden width, then a Linear without bias."""

    def __init__(self, input_size: int, hidden_sizes: list[int], output_size: int):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden_sizes:
            layers += [nn.Linear(input_size, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            input_size = width
        layers.append(nn.Linear(input_size, output_size, bias=False))
        self.layers = nn.Sequential(*layers)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.layers(embeddings)


class SubCellMAEDecoder(nn.Module):
    """MAE decoder: embed visible tokens, insert mask tokens, add fixed sin-cos positions, transformer blocks,
    predict each patch's p * p * C pixels."""

    def __init__(self, config: SubCellPreTrainingConfig):
        super().__init__()
        decoder_config = config.decoder_config()
        width = config.decoder_hidden_size
        self.embed = nn.Linear(config.hidden_size, width)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, width))
        self.layers = nn.ModuleList(SubCellLayer(decoder_config) for _ in range(config.decoder_num_hidden_layers))
        self.layernorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.prediction = nn.Linear(width, config.patch_size**2 * config.num_channels)
        self._positions: dict[tuple, torch.Tensor] = {}

    def position_embeddings_for(self, grid: tuple[int, int], like: torch.Tensor) -> torch.Tensor:
        key = (*grid, like.device, like.dtype)
        if key not in self._positions:
            table = sincos_position_embeddings(self.mask_token.shape[-1], *grid)
            self._positions[key] = table.to(device=like.device, dtype=like.dtype)
        return self._positions[key]

    def forward(self, latent: torch.Tensor, ids_restore: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """latent: (B, 1 + K, D) encoder tokens (CLS + visible); returns (B, L, p * p * C) predictions."""
        tokens = self.embed(latent)
        batch, num_patches = ids_restore.shape
        masked = self.mask_token.expand(batch, num_patches - (tokens.shape[1] - 1), -1)
        patches = torch.cat([tokens[:, 1:], masked], dim=1)
        patches = torch.gather(patches, 1, ids_restore[..., None].expand(-1, -1, patches.shape[-1]))
        hidden = torch.cat([tokens[:, :1], patches], dim=1) + self.position_embeddings_for(grid, tokens)
        for layer in self.layers:
            hidden = layer(hidden)[0]
        return self.prediction(self.layernorm(hidden))[:, 1:]


class SubCellPreTrainingHeads(nn.Module):
    """The modules that are not part of the released encoder; an objective with weight 0 has no head."""

    def __init__(self, config: SubCellPreTrainingConfig):
        super().__init__()
        objectives = config.objectives
        self.decoder = SubCellMAEDecoder(config) if "reconstruction" in objectives else None
        projector = (config.embedding_size, config.projector_hidden_sizes, config.projector_output_size)
        self.cell_projector = SubCellProjector(*projector) if "cell_contrastive" in objectives else None
        self.protein_projector = SubCellProjector(*projector) if "protein_contrastive" in objectives else None


class SubCellForPreTraining(SubCellPreTrainedModel):
    """SubCell encoder + pooler with the MAE decoder, the NT-Xent and SupCon projectors and their losses."""

    config_class = SubCellPreTrainingConfig
    config: SubCellPreTrainingConfig

    def __init__(self, config: SubCellPreTrainingConfig):
        super().__init__(config)
        self.subcell = SubCellModel(config)
        self.pretraining_heads = SubCellPreTrainingHeads(config)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, SubCellMAEDecoder):
            nn.init.normal_(module.mask_token, std=self.config.initializer_range)
        elif isinstance(module, nn.BatchNorm1d):
            module.reset_parameters()

    def get_input_embeddings(self) -> nn.Module:
        return self.subcell.get_input_embeddings()

    def save_pretrained(self, save_directory, *args, **kwargs):
        """A full pretraining checkpoint (encoder + heads) for `AutoModelForPreTraining` with `subcell_hf`
        installed; unlike the encoder folders, it carries no remote code. Use `export_encoder` to release."""
        return PreTrainedModel.save_pretrained(self, save_directory, *args, **kwargs)

    # ------------------------------------------------------------------------------------------------ encoder
    def encode(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None) -> SubCellModelOutput:
        """The encoder + pooler over all patches, or over the visible patches `ids_keep` (B, K) only."""
        return self.subcell(pixel_values, kept_patch_indices=ids_keep, return_dict=True)

    def sample_patch_mask(self, pixel_values: torch.Tensor, cell_masks: torch.Tensor | None = None) -> PatchMask:
        """Draw the hidden patches of each image (uniform, or object-aware when `object_mask_ratio` is set)."""
        patch = self.config.patch_size
        num_patches = (pixel_values.shape[-2] // patch) * (pixel_values.shape[-1] // patch)
        noise = torch.rand(pixel_values.shape[0], num_patches, device=pixel_values.device)
        if self.config.object_mask_ratio is None:
            return random_patch_mask(noise, self.config.mask_ratio)
        if cell_masks is None:
            raise ValueError("object-aware masking (object_mask_ratio is set) needs the cell masks of each view")
        on_cell = cell_patch_fraction(cell_masks, patch) >= self.config.object_patch_threshold
        return object_aware_patch_mask(noise, on_cell, self.config.mask_ratio, self.config.object_mask_ratio)

    @torch.no_grad()
    def reconstruct(
        self, pixel_values: torch.Tensor, cell_masks: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MAE reconstruction of a batch: decoder predictions (B, L, p * p * C) and the patch mask (B, L)."""
        decoder = self.pretraining_heads.decoder
        if decoder is None:
            raise ValueError("this model has no reconstruction objective (reconstruction_weight is 0)")
        patch_mask = self.sample_patch_mask(pixel_values, cell_masks)
        tokens = self.encode(pixel_values, patch_mask.ids_keep).last_hidden_state
        grid = (pixel_values.shape[-2] // self.config.patch_size, pixel_values.shape[-1] // self.config.patch_size)
        return decoder(tokens, patch_mask.ids_restore, grid), patch_mask.mask

    # ------------------------------------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        second_view_pixel_values: torch.Tensor | None = None,
        antibody_ids: torch.Tensor | None = None,
        cell_masks: torch.Tensor | None = None,
        second_view_cell_masks: torch.Tensor | None = None,
        gather_across_processes: bool = True,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SubCellPreTrainingOutput | tuple:
        """Compute every enabled pretraining loss on a batch of cells.

        Args:
            pixel_values: (B, C, H, W) view 1, normalised as docs/model.md, section 4.
            second_view_pixel_values: (B, C, H, W) view 2 of the same cells (needed by the NT-Xent objective).
            antibody_ids: (B,) integer antibody id of each cell, the same ids on every process (needed by SupCon).
            cell_masks, second_view_cell_masks: (B, 1, H, W) cell masks of each view (needed by object-aware
                masking).
            gather_across_processes: gather projections over all processes before the contrastive losses.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        config, heads = self.config, self.pretraining_heads
        batch = pixel_values.shape[0]
        second = second_view_pixel_values
        gather = distributed.gather_across_processes if gather_across_processes else _identity

        # view 1: MAE-masked when the reconstruction objective is on; view 2: always whole
        patch_mask = self.sample_patch_mask(pixel_values, cell_masks) if heads.decoder is not None else None
        if patch_mask is None and second is not None:
            pooled = self.encode(torch.cat([pixel_values, second])).pooler_output  # same length: one call
            per_view = [pooled[:batch], pooled[batch:]]
        else:
            first = self.encode(pixel_values, patch_mask.ids_keep if patch_mask is not None else None)
            per_view = [first.pooler_output]
            if second is not None:
                per_view.append(self.encode(second).pooler_output)
        output = SubCellPreTrainingOutput(embeddings=torch.cat(per_view))

        if heads.decoder is not None:
            grid = (pixel_values.shape[-2] // config.patch_size, pixel_values.shape[-1] // config.patch_size)
            output.reconstruction = heads.decoder(first.last_hidden_state, patch_mask.ids_restore, grid)
            output.patch_mask = patch_mask.mask
            output.reconstruction_loss = masked_patch_mse(
                output.reconstruction, patchify(pixel_values, config.patch_size), patch_mask.mask, config.norm_pix_loss
            )
        if heads.cell_projector is not None or heads.protein_projector is not None:
            # gather each view's embeddings first, then project each view's global batch on its own
            gathered = [gather(embeddings) for embeddings in per_view]
        if heads.cell_projector is not None:
            if second is None:
                raise ValueError("the cell-specific (NT-Xent) objective needs second_view_pixel_values")
            first_projection, second_projection = (heads.cell_projector(view) for view in gathered)
            output.cell_contrastive_loss = nt_xent_loss(first_projection, second_projection, config.cell_temperature)
        if heads.protein_projector is not None:
            if antibody_ids is None:
                raise ValueError("the protein-specific (SupCon) objective needs antibody_ids")
            projections = torch.cat([heads.protein_projector(view) for view in gathered])
            labels = gather(antibody_ids.to(projections.device)).repeat(len(gathered))
            output.protein_contrastive_loss = supcon_loss(projections, labels, config.protein_temperature)

        weights = {
            "reconstruction": config.reconstruction_weight,
            "cell_contrastive": config.cell_contrastive_weight,
            "protein_contrastive": config.protein_contrastive_weight,
        }
        output.loss = sum(weights[name] * value for name, value in output.loss_terms().items())
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------------------------------------ export
    def encoder_model(self) -> SubCellModel:
        """A standalone float32 `SubCellModel` (plain `SubCellConfig`) with a copy of this model's encoder + pooler."""
        encoder = SubCellModel(self.config.encoder_config())
        encoder.load_state_dict(self.subcell.state_dict())
        return encoder

    def export_encoder(self, save_directory: str | os.PathLike, **save_kwargs) -> Path:
        """Write the encoder + pooler as a `SubCellModel` folder (config, weights, image processor) that
        `AutoModel.from_pretrained` loads; written to a temporary folder first, then moved into place."""
        destination = Path(save_directory)
        encoder = self.encoder_model()
        with atomic_directory(destination, command="export_encoder") as staging:
            encoder.save_pretrained(staging, **save_kwargs)
            SubCellImageProcessor.from_config(encoder.config).save_pretrained(staging)
        return destination

    @classmethod
    def from_encoder(
        cls, pretrained_model_name_or_path: str | os.PathLike, **config_overrides
    ) -> "SubCellForPreTraining":
        """Start pretraining from a released or exported `SubCellModel`: its encoder + pooler weights and
        hyper-parameters, fresh heads configured by `config_overrides` (e.g. the output of
        `SubCellPreTrainingConfig.for_family(...).to_dict()` minus encoder keys)."""
        from ..model_loading import load_subcell

        # a missing encoder tensor would start pretraining from random weights: an error naming it
        encoder = load_subcell(pretrained_model_name_or_path, classifiers=False).model
        values = encoder.config.to_dict()
        for key in ("model_type", "transformers_version", "architectures", "auto_map"):
            values.pop(key, None)
        values.update(config_overrides)
        model = cls(SubCellPreTrainingConfig(**values))
        model.subcell.load_state_dict(encoder.state_dict())
        return model


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


__all__ = [
    "SubCellForPreTraining",
    "SubCellMAEDecoder",
    "SubCellPreTrainingHeads",
    "SubCellPreTrainingOutput",
    "SubCellProjector",
]
