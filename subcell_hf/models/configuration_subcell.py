"""SubCell model configuration.

This file is also the single source of truth for the facts every other part of ``subcell_hf`` needs: the HPA
channel order and the localization class names. It imports nothing from the rest of the package because the
``models/`` folder is uploaded as remote code for ``trust_remote_code=True`` users.
"""

from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

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

#: The Auto classes a saved SubCell folder names in its `auto_map`, for users who load it with
#: `trust_remote_code=True` without `subcell_hf`: the encoder and the classifier share this configuration and one
#: modeling file, so either folder loads as either model.
REMOTE_CODE_AUTO_MAP: dict[str, str] = {
    "AutoConfig": "configuration_subcell.SubCellConfig",
    "AutoModel": "modeling_subcell.SubCellModel",
    "AutoModelForImageClassification": "modeling_subcell.SubCellForProteinLocalization",
}


@strict
class SubCellConfig(PreTrainedConfig):
    r"""Configuration of a SubCell model: a ViT-B/16 encoder, a gated attention pooler and an optional ensemble of
    MLP localization classifiers.

    A typed dataclass, as transformers' own configurations: every field is checked against its annotation when set
    (a wrong type raises `StrictDataclassFieldValidationError` naming the field, the expected type and the value
    found), and the `validate_*` methods check the values together after `__init__` and before saving
    (`StrictDataclassClassValidationError`).

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

    Without `id2label` or `num_labels`, the labels are the 31 `LOCALIZATION_CLASSES`; `problem_type` defaults to
    multi-label classification.
    """

    model_type = "subcell"

    channel_names: list[str] | tuple[str, ...] | None = None
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True
    image_size: int = 448
    patch_size: int = 16
    position_embedding_type: Literal["learned", "sincos"] = "learned"
    pool_hidden_size: int = 512
    pool_num_heads: int = 2
    pool_dropout: float | int = 0.2
    classifier_hidden_sizes: list[int] | tuple[int, ...] = (512, 256)
    classifier_dropout: float | int = 0.5
    num_classifiers: int = 10
    model_variant: str | None = None
    source_checksums: dict[str, str] | None = None
    problem_type: Literal["regression", "single_label_classification", "multi_label_classification"] | None = (
        "multi_label_classification"
    )

    def __post_init__(self, **kwargs):
        self.channel_names = list(HPA_CHANNELS if self.channel_names is None else self.channel_names)
        self.classifier_hidden_sizes = list(self.classifier_hidden_sizes)
        self.source_checksums = dict(self.source_checksums or {})
        if self.id2label is None and kwargs.get("num_labels") is None:
            self.id2label = dict(enumerate(LOCALIZATION_CLASSES))
        if self._auto_class is not None and "auto_map" not in kwargs:  # subclasses that are not remote code opt out
            kwargs["auto_map"] = dict(REMOTE_CODE_AUTO_MAP)
        super().__post_init__(**kwargs)

    def validate_channel_names(self):
        if not self.channel_names or any(c not in HPA_CHANNELS for c in self.channel_names):
            raise ValueError(
                f"channel_names must be a non-empty subset of {list(HPA_CHANNELS)}, found {self.channel_names}"
            )
        if sorted(self.channel_names, key=HPA_CHANNELS.index) != list(self.channel_names):
            raise ValueError(f"channel_names must follow the HPA order {list(HPA_CHANNELS)}, found {self.channel_names}")

    def validate_architecture(self):
        super().validate_architecture()
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size must be a multiple of patch_size={self.patch_size}, found {self.image_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads ({self.num_attention_heads})"
            )

    @property
    def num_channels(self) -> int:
        return len(self.channel_names)

    @property
    def embedding_size(self) -> int:
        """Size of the SubCell embedding (`pool_num_heads * hidden_size`, 1536 for the released models)."""
        return self.pool_num_heads * self.hidden_size


# `save_pretrained` copies this file next to config.json and names it in `auto_map` (remote code).
SubCellConfig.register_for_auto_class()

__all__ = ["HPA_CHANNELS", "LOCALIZATION_CLASSES", "PRETRAINING_CLASSES", "REMOTE_CODE_AUTO_MAP", "SubCellConfig"]
