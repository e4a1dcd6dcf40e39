"""SubCell: a ViT-B/16 encoder with a gated attention pooler, and its localization classifier ensemble.

Only relative imports of the two sibling files are allowed here: this folder is uploaded as remote code.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import ModelOutput, can_return_tuple

from .configuration_subcell import SubCellConfig


def sincos_position_embeddings(hidden_size: int, grid_height: int, grid_width: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position embeddings with a zero CLS row, shape (1, 1 + grid_height * grid_width, hidden).

    The first half of the channels encodes the patch column, the second half its row; each half is
    ``[sin(pos * omega) | cos(pos * omega)]`` with ``omega_k = 1 / 10000 ** (k / (hidden / 4))``
    (docs/model.md, section 1).
    """
    if hidden_size % 4:
        raise ValueError(f"sin-cos position embeddings need hidden_size divisible by 4, found {hidden_size}")
    quarter = hidden_size // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    rows, cols = torch.meshgrid(
        torch.arange(grid_height, dtype=torch.float64), torch.arange(grid_width, dtype=torch.float64), indexing="ij"
    )

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.reshape(-1, 1) * omega
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    patches = torch.cat([encode(cols), encode(rows)], dim=1)
    table = torch.cat([torch.zeros(1, hidden_size, dtype=torch.float64), patches], dim=0)
    return table.unsqueeze(0).float()


@dataclass
class SubCellModelOutput(ModelOutput):
    """Output of `SubCellModel`.

    Args:
        last_hidden_state: (B, 1 + H/16 * W/16, hidden) final-LayerNorm tokens, CLS first.
        pooler_output: (B, pool_num_heads * hidden) the SubCell embedding (1536-d), pooling head 0 first.
        pool_attentions: (B, pool_num_heads, H/16, W/16) the pooler's attention over patches (CLS entry dropped).
        hidden_states: with `output_hidden_states=True`, the embeddings and each layer's output.
        cls_attentions: with `output_attentions=True`, the last layer's attention of the CLS token over the
            patches, (B, num_attention_heads, H/16, W/16), whatever the attention implementation.
        attentions: with `output_attentions=True` and an implementation that returns attention weights (`"eager"`),
            each layer's (B, num_attention_heads, T, T) softmax weights, as transformers' models return them;
            `None` with fused kernels (SDPA, flash).
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    pool_attentions: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    cls_attentions: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class SubCellLocalizationOutput(ModelOutput):
    """Output of `SubCellForProteinLocalization`.

    Args:
        loss: with `labels`, the mean over classifiers of each classifier's multi-label BCE.
        logits: (B, num_labels) `logit(probabilities)`, so that `sigmoid(logits)` is the ensemble's probability.
        probabilities: (B, num_labels) mean over the ensemble of the per-classifier sigmoids.
        ensemble_logits: (B, num_classifiers, num_labels) each classifier's raw logits.
        embeddings: (B, 1536) the SubCell embedding the classifiers read.
        pool_attentions, hidden_states, cls_attentions, attentions: as in `SubCellModelOutput`.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    probabilities: torch.FloatTensor | None = None
    ensemble_logits: torch.FloatTensor | None = None
    embeddings: torch.FloatTensor | None = None
    pool_attentions: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    cls_attentions: torch.FloatTensor | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class SubCellEmbeddings(nn.Module):
    """CLS token + patch embeddings + position embeddings (learned or fixed sin-cos)."""

    def __init__(self, config: SubCellConfig):
        super().__init__()
        self.patch_size = config.patch_size
        self.grid_size = config.image_size // config.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.projection = nn.Conv2d(
            config.num_channels, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size
        )
        num_positions = self.grid_size**2 + 1
        self.position_embeddings = nn.Parameter(
            torch.zeros(1, num_positions, config.hidden_size),
            requires_grad=config.position_embedding_type == "learned",
        )
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def position_embeddings_for(self, grid_height: int, grid_width: int) -> torch.Tensor:
        """Position embeddings for a patch grid; the trained grid is used as is, others are bicubic-interpolated
        (the CLS row is kept), as transformers' ViT does with `interpolate_pos_encoding=True`."""
        if (grid_height, grid_width) == (self.grid_size, self.grid_size):
            return self.position_embeddings
        cls_row, patches = self.position_embeddings[:, :1], self.position_embeddings[:, 1:]
        dim = patches.shape[-1]
        patches = patches.reshape(1, self.grid_size, self.grid_size, dim).permute(0, 3, 1, 2)
        patches = F.interpolate(
            patches.float(), size=(grid_height, grid_width), mode="bicubic", align_corners=False
        ).to(cls_row.dtype)
        patches = patches.permute(0, 2, 3, 1).reshape(1, grid_height * grid_width, dim)
        return torch.cat([cls_row, patches], dim=1)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = pixel_values.shape
        expected = self.projection.in_channels
        if channels != expected:
            raise ValueError(f"pixel_values must have {expected} channels, found {channels}")
        if height < self.patch_size or width < self.patch_size:
            raise ValueError(
                f"pixel_values height and width must be at least {self.patch_size}, found {height}x{width}"
            )
        # any size: the rows and columns past the last whole patch are not seen (the stride-16 convolution drops
        # them), as in the original model, which ran transformers' ViT with interpolated position embeddings
        patches = self.projection(pixel_values).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls_token.expand(batch, -1, -1), patches], dim=1)
        tokens = tokens + self.position_embeddings_for(height // self.patch_size, width // self.patch_size)
        return self.dropout(tokens)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention, with the signature of the functions in transformers' `ALL_ATTENTION_FUNCTIONS`:
    (B, heads, T, head_dim) inputs; returns (B, T, heads, head_dim) and the (B, heads, T, T) weights."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = F.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights


class SubCellAttention(nn.Module):
    """Multi-head self-attention; the kernel is `config._attn_implementation` (`"sdpa"` by default, `"eager"`, or any
    name registered in transformers' `AttentionInterface`), read at every call as transformers' models do."""

    def __init__(self, config: SubCellConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = False
        self.dropout = config.attention_probs_dropout_prob
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.qkv_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self, hidden_states: torch.Tensor, output_cls_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns the attended tokens, the attention weights (None from fused kernels) and, with
        `output_cls_attention`, the CLS token's attention (B, heads, T)."""
        batch, tokens, _ = hidden_states.shape
        shape = (batch, tokens, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(shape).transpose(1, 2)
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self, query, key, value, None, scaling=self.scaling, dropout=self.dropout if self.training else 0.0
        )
        cls_attention = None
        if output_cls_attention:
            # Only the CLS row is needed for the attention map: one (1 x T) softmax per head in float32, the same
            # under every implementation, while the layer itself keeps its fused kernel.
            scores = torch.matmul(query[:, :, :1].float(), key.float().transpose(-1, -2)) * self.scaling
            cls_attention = scores.softmax(dim=-1)[:, :, 0]
        output = self.o_proj(output.reshape(batch, tokens, -1))
        return output, weights, cls_attention


class SubCellMLP(nn.Module):
    def __init__(self, config: SubCellConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation(self.fc1(hidden_states)))


class SubCellLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block."""

    def __init__(self, config: SubCellConfig):
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = SubCellAttention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = SubCellMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self, hidden_states: torch.Tensor, output_cls_attention: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Returns the block's output tokens and the attention's weights and CLS attention (see `SubCellAttention`)."""
        attended, weights, cls_attention = self.attention(self.layernorm_before(hidden_states), output_cls_attention)
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.dropout(self.mlp(self.layernorm_after(hidden_states)))
        return hidden_states, weights, cls_attention


class SubCellGatedAttentionPooler(nn.Module):
    """Gated attention pooling over all tokens (CLS included), one softmax per pooling head (docs/model.md, section 2).

    ``a = softmax_T(W (tanh(V x) * gelu(U x)))``; the embedding is ``a @ x`` flattened head 0 first.
    """

    def __init__(self, config: SubCellConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.pool_dropout)
        self.attention_v = nn.Linear(config.hidden_size, config.pool_hidden_size)
        self.attention_u = nn.Linear(config.hidden_size, config.pool_hidden_size)
        self.attention_weights = nn.Linear(config.pool_hidden_size, config.pool_num_heads)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate_v = torch.tanh(self.attention_v(self.dropout(tokens)))
        gate_u = F.gelu(self.attention_u(self.dropout(tokens)))
        scores = self.attention_weights(gate_v * gate_u)  # (B, T, heads)
        attention = scores.transpose(1, 2).softmax(dim=-1)  # (B, heads, T)
        pooled = torch.matmul(attention, tokens)  # (B, heads, hidden)
        return pooled.flatten(1), attention


class SubCellClassifier(nn.Module):
    """One member of the localization ensemble: Linear-ReLU-(Dropout)-Linear-ReLU-(Dropout)-Linear."""

    def __init__(self, config: SubCellConfig):
        super().__init__()
        sizes = [config.embedding_size, *config.classifier_hidden_sizes]
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.out_proj = nn.Linear(sizes[-1], config.num_labels)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        hidden = embeddings
        for layer in self.hidden:
            hidden = self.dropout(F.relu(layer(hidden)))
        return self.out_proj(hidden)


class SubCellPreTrainedModel(PreTrainedModel):
    config_class = SubCellConfig
    config: SubCellConfig
    base_model_prefix = "subcell"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["SubCellEmbeddings", "SubCellLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # transformers' `initialization` functions leave alone the tensors `from_pretrained` has already loaded
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, SubCellEmbeddings):
            init.trunc_normal_(module.cls_token, std=std)
            if self.config.position_embedding_type == "sincos":
                grid = module.grid_size
                init.copy_(module.position_embeddings, sincos_position_embeddings(self.config.hidden_size, grid, grid))
            else:
                init.trunc_normal_(module.position_embeddings, std=std)


class SubCellModel(SubCellPreTrainedModel):
    """The SubCell encoder: ViT-B/16 + gated attention pooler. `pooler_output` is the 1536-d SubCell embedding."""

    # Loading the encoder alone from a localization (or pretraining) checkpoint drops the heads silently.
    _keys_to_ignore_on_load_unexpected = [r"^classifiers\.", r"^pretraining_heads\."]

    def __init__(self, config: SubCellConfig):
        super().__init__(config)
        self.embeddings = SubCellEmbeddings(config)
        self.layers = nn.ModuleList(SubCellLayer(config) for _ in range(config.num_hidden_layers))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.pooler = SubCellGatedAttentionPooler(config)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embeddings.projection

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        kept_patch_indices: torch.LongTensor | None = None,
        **kwargs,
    ) -> SubCellModelOutput:
        """Encode preprocessed cells.

        Args:
            pixel_values: (B, C, H, W) float crops normalised by `SubCellImageProcessor`; any H, W >= 16 (the
                maps cover the H // 16 x W // 16 whole patches).
            output_hidden_states: also return the embeddings and every layer's output.
            output_attentions: also return the last layer's CLS attention map (computed apart: the layers keep
                their kernel) and, under eager attention, every layer's attention weights.
            kept_patch_indices: (B, K) row-major indices of the only patches to encode (MAE pretraining: the
                visible ones; the CLS token is always kept). The maps then cover those K patches, not the grid:
                `pool_attentions` and `cls_attentions` are (B, heads, K).
            return_dict: `False` gives `to_tuple()` of the output (handled by `can_return_tuple`).
        """
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        height, width = pixel_values.shape[-2:]
        pixel_values = pixel_values.to(self.embeddings.projection.weight.dtype)

        hidden_states = self.embeddings(pixel_values)
        if kept_patch_indices is not None:
            kept = kept_patch_indices[..., None].expand(-1, -1, hidden_states.shape[-1])
            hidden_states = torch.cat([hidden_states[:, :1], torch.gather(hidden_states[:, 1:], 1, kept)], dim=1)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        all_attentions = ()
        cls_attention = None
        for index, layer in enumerate(self.layers):
            is_last = index == len(self.layers) - 1
            hidden_states, weights, cls_attention = layer(
                hidden_states, output_cls_attention=bool(output_attentions and is_last)
            )
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if output_attentions and weights is not None:
                all_attentions += (weights,)

        tokens = self.layernorm(hidden_states)
        embedding, pool_attention = self.pooler(tokens)
        if kept_patch_indices is None:
            grid = (height // self.config.patch_size, width // self.config.patch_size)
        else:
            grid = (kept_patch_indices.shape[1],)
        pool_maps = pool_attention[:, :, 1:].reshape(pool_attention.shape[0], pool_attention.shape[1], *grid)
        cls_maps = None
        if cls_attention is not None:
            cls_maps = cls_attention[:, :, 1:].reshape(cls_attention.shape[0], cls_attention.shape[1], *grid)

        return SubCellModelOutput(
            last_hidden_state=tokens,
            pooler_output=embedding,
            pool_attentions=pool_maps,
            hidden_states=all_hidden_states,
            cls_attentions=cls_maps,
            attentions=all_attentions or None,
        )


class SubCellForProteinLocalization(SubCellPreTrainedModel):
    """SubCell encoder + an ensemble of MLP classifiers for multi-label protein localization.

    `probabilities` is the mean of the classifiers' sigmoids (not the sigmoid of the mean logit); `logits` is its
    logit, so that the `image-classification` pipeline, which applies a sigmoid for multi-label models, reports the
    ensemble's probabilities.
    """

    def __init__(self, config: SubCellConfig):
        super().__init__(config)
        self.subcell = SubCellModel(config)
        self.classifiers = nn.ModuleList(SubCellClassifier(config) for _ in range(config.num_classifiers))
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.subcell.get_input_embeddings()

    def classify(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Ensemble logits (B, N, L), probabilities (B, L) and their logits for precomputed embeddings."""
        ensemble_logits = torch.stack([classifier(embeddings) for classifier in self.classifiers], dim=1)
        probabilities = torch.sigmoid(ensemble_logits.float()).mean(dim=1)
        logits = torch.logit(probabilities, eps=1e-6)
        return ensemble_logits, probabilities, logits

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ) -> SubCellLocalizationOutput:
        """Classify preprocessed cells.

        Args:
            pixel_values: (B, C, H, W) as for `SubCellModel`.
            labels: optional (B, num_labels) multi-hot targets; the loss is the mean over classifiers of their BCE.
            output_hidden_states, output_attentions, return_dict: as for `SubCellModel`.
        """
        encoded = self.subcell(
            pixel_values,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
        )
        ensemble_logits, probabilities, logits = self.classify(encoded.pooler_output)
        loss = None
        if labels is not None:
            targets = labels.to(ensemble_logits.dtype).unsqueeze(1).expand_as(ensemble_logits)
            loss = F.binary_cross_entropy_with_logits(ensemble_logits, targets)
        return SubCellLocalizationOutput(
            loss=loss,
            logits=logits,
            probabilities=probabilities,
            ensemble_logits=ensemble_logits,
            embeddings=encoded.pooler_output,
            pool_attentions=encoded.pool_attentions,
            hidden_states=encoded.hidden_states,
            cls_attentions=encoded.cls_attentions,
            attentions=encoded.attentions,
        )


# `save_pretrained` copies this file (and the configuration it imports) next to the weights and names the classes in
# the config's `auto_map` (remote code); the config names both Auto classes, see `REMOTE_CODE_AUTO_MAP`.
SubCellModel.register_for_auto_class("AutoModel")
SubCellForProteinLocalization.register_for_auto_class("AutoModelForImageClassification")

__all__ = [
    "SubCellForProteinLocalization",
    "SubCellLocalizationOutput",
    "SubCellModel",
    "SubCellModelOutput",
    "SubCellPreTrainedModel",
    "sincos_position_embeddings",
]
