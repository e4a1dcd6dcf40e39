"""SubCell model configuration.

This file is also the single source of truth for the facts every other part of ``subcell_hf`` needs: the HPA
channel order and the localization class names. It imports nothing from the rest of the package because the
``models/`` folder is uploaded as remote code for ``trust_remote_code=True`` users.
"""

from __future__ import annotations

from transformers import PretrainedConfig

#: All HPA channels, in the order SubCell stacks them (docs/model.md, section 4). The protein channel is always last.
HPA_CHANNELS: tuple[str, ...] = ("microtubules", "er", "dna", "protein")

#: The 31 localization classes of the released classifier ensembles, in output order (docs/model.md, section 3).
LOCALIZATION_CLASSES: tuple[str, ...] = (
    "Actin filaments",
    "Aggresome",
    "Cell Junctions",
    "Centriolar satellite",
    "Centrosome",
    "Cytokinetic bridge",
    "Cytoplasmic bodies",
    "Cytosol",
    "Endoplasmic reticulum",
    "Endosomes",
    "Focal adhesion sites",
    "Golgi apparatus",
    "Intermediate filaments",
    "Lipid droplets",
    "Lysosomes",
    "Microtubules",
    "Midbody",
    "Mitochondria",
    "Mitotic chromosome",
    "Mitotic spindle",
    "Nuclear bodies",
    "Nuclear membrane",
    "Nuclear speckles",
    "Nucleoli",
    "Nucleoli fibrillar center",
    "Nucleoli rim",
    "Nucleoplasm",
    "Peroxisomes",
    "Plasma membrane",
    "Vesicles",
    "Negative",
)

#: The 35 classes of pretraining's online probe: the 34 HPA annotations in alphabetical order, then Negative.
PRETRAINING_CLASSES: tuple[str, ...] = tuple(
    sorted(
        [c for c in LOCALIZATION_CLASSES if c != "Negative"]
        + ["Cleavage furrow", "Microtubule ends", "Midbody ring", "Rods & Rings"],
        key=str.lower,
    )
) + ("Negative",)

POSITION_EMBEDDING_TYPES = ("learned", "sincos")


class SubCellConfig(PretrainedConfig):
    r"""Configuration of a SubCell model: a ViT-B/16 encoder, a gated attention pooler and an optional ensemble of
    MLP localization classifiers.

    Args:
        channel_names (`list[str]`, defaults to all four HPA channels):
            The input channels in stacking order (a subset of `HPA_CHANNELS`, in that order, protein last).
            `num_channels` is derived from it.
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act, layer_norm_eps,
        qkv_bias, hidden_dropout_prob, attention_probs_dropout_prob, initializer_range:
            ViT hyper-parameters (ViT-B/16 defaults of the released models).
        image_size (`int`, defaults to 448): the training crop size; other sizes are handled by interpolating
            the position embeddings to the whole patches of the input.
        patch_size (`int`, defaults to 16).
        position_embedding_type (`str`, defaults to `"learned"`): `"learned"` (ViT-ProtS-Pool) or `"sincos"`
            (fixed 2-D sin-cos, MAE-CellS-ProtS-Pool).
        pool_hidden_size (`int`, defaults to 512): width of the gated attention pooler.
        pool_num_heads (`int`, defaults to 2): number of pooling heads; the embedding has
            `pool_num_heads * hidden_size` dimensions (1536).
        pool_dropout (`float`, defaults to 0.2): dropout on the pooler's gate inputs during training.
        classifier_hidden_sizes (`list[int]`, defaults to `[512, 256]`): hidden widths of each MLP classifier.
        classifier_dropout (`float`, defaults to 0.5): dropout after each classifier ReLU during training.
        num_classifiers (`int`, defaults to 10): size of the localization ensemble.
        model_variant (`str`, *optional*): free-form name of the release (e.g. `"all_channels-vit-prots-pool"`).
        source_checksums (`dict[str, str]`, *optional*): sha256 of every original file a converted model came
            from, keyed by file name.
    """

    model_type = "subcell"

    def __init__(
        self,
        channel_names: list[str] | tuple[str, ...] | None = None,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.0,
        attention_probs_dropout_prob: float = 0.0,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        qkv_bias: bool = True,
        image_size: int = 448,
        patch_size: int = 16,
        position_embedding_type: str = "learned",
        pool_hidden_size: int = 512,
        pool_num_heads: int = 2,
        pool_dropout: float = 0.2,
        classifier_hidden_sizes: list[int] | tuple[int, ...] = (512, 256),
        classifier_dropout: float = 0.5,
        num_classifiers: int = 10,
        model_variant: str | None = None,
        source_checksums: dict[str, str] | None = None,
        **kwargs,
    ):
        channel_names = list(HPA_CHANNELS if channel_names is None else channel_names)
        unknown = [c for c in channel_names if c not in HPA_CHANNELS]
        if unknown or not channel_names:
            raise ValueError(f"channel_names must be a non-empty subset of {list(HPA_CHANNELS)}, found {channel_names}")
        if sorted(channel_names, key=HPA_CHANNELS.index) != channel_names:
            raise ValueError(
                f"channel_names must follow the HPA order {list(HPA_CHANNELS)}, found {channel_names}"
            )
        if position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, found {position_embedding_type!r}"
            )
        if image_size % patch_size:
            raise ValueError(f"image_size must be a multiple of patch_size={patch_size}, found {image_size}")
        if hidden_size % num_attention_heads:
            raise ValueError(
                f"hidden_size ({hidden_size}) must be divisible by num_attention_heads ({num_attention_heads})"
            )
        self.channel_names = channel_names
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.qkv_bias = qkv_bias
        self.image_size = image_size
        self.patch_size = patch_size
        self.position_embedding_type = position_embedding_type
        self.pool_hidden_size = pool_hidden_size
        self.pool_num_heads = pool_num_heads
        self.pool_dropout = pool_dropout
        self.classifier_hidden_sizes = list(classifier_hidden_sizes)
        self.classifier_dropout = classifier_dropout
        self.num_classifiers = num_classifiers
        self.model_variant = model_variant
        self.source_checksums = dict(source_checksums or {})

        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["id2label"] = dict(enumerate(LOCALIZATION_CLASSES))
        kwargs.setdefault("problem_type", "multi_label_classification")
        super().__init__(**kwargs)

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def embedding_size(self) -> int:
        """Size of the SubCell embedding (`pool_num_heads * hidden_size`, 1536 for the released models)."""
        return self.pool_num_heads * self.hidden_size


__all__ = ["HPA_CHANNELS", "LOCALIZATION_CLASSES", "PRETRAINING_CLASSES", "SubCellConfig"]
