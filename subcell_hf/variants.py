"""The published SubCell releases: 4 channel variants x 2 model families = 8 Hub repos (docs/model.md, section 5).

One table, read by the converter, the Hub cards, the push recipe, the CLI and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .data.channels import ChannelMismatchError, channel_mismatch_message
from .models.configuration_subcell import HPA_CHANNELS

DEFAULT_NAMESPACE = "subcell"
CLASSIFIER_FILE_TEMPLATE = "classifier_seed_{seed}.pth"
NUM_RELEASED_CLASSIFIERS = 10

#: Human-readable channel names and the HPA stain colour of each channel.
CHANNEL_DESCRIPTIONS = {
    "microtubules": "microtubules (anti-tubulin, HPA red channel)",
    "er": "endoplasmic reticulum (anti-calreticulin, HPA yellow channel)",
    "dna": "nucleus (DAPI/Hoechst DNA stain, HPA blue channel)",
    "protein": "protein of interest (antibody stain, HPA green channel)",
}


@dataclass(frozen=True)
class ChannelVariant:
    """A set of input channels the models were trained on."""

    name: str  # e.g. "all_channels", used in Hub repo names
    channels: tuple[str, ...]  # in HPA order, protein last
    file_prefix: str  # prefix of the original release files

    @property
    def num_channels(self) -> int:
        return len(self.channels)


@dataclass(frozen=True)
class ModelFamily:
    """A training recipe of the released models."""

    name: str  # e.g. "vit-prots-pool", used in Hub repo names
    original_name: str  # e.g. "ViT-ProtS-Pool", used in original file names
    classifier_tag: str  # "ViT" or "MAE", used in the original classifier folder name
    position_embedding_type: str  # "learned" or "sincos"
    objectives: tuple[str, ...]


CHANNEL_VARIANTS: dict[str, ChannelVariant] = {
    v.name: v
    for v in (
        ChannelVariant("all_channels", ("microtubules", "er", "dna", "protein"), "all_channels"),
        ChannelVariant("mt-dna-protein", ("microtubules", "dna", "protein"), "MT-DNA-Protein"),
        ChannelVariant("er-dna-protein", ("er", "dna", "protein"), "ER-DNA-Protein"),
        ChannelVariant("dna-protein", ("dna", "protein"), "DNA-Protein"),
    )
}

MODEL_FAMILIES: dict[str, ModelFamily] = {
    t.name: t
    for t in (
        ModelFamily("vit-prots-pool", "ViT-ProtS-Pool", "ViT", "learned", ("protein-specific contrastive (SupCon)",)),
        ModelFamily(
            "mae-cells-prots-pool",
            "MAE-CellS-ProtS-Pool",
            "MAE",
            "sincos",
            (
                "masked-autoencoder reconstruction",
                "cell-specific contrastive (NT-Xent)",
                "protein-specific contrastive (SupCon)",
            ),
        ),
    )
}

for _variant in CHANNEL_VARIANTS.values():
    assert all(c in HPA_CHANNELS for c in _variant.channels) and _variant.channels[-1] == "protein"


@dataclass(frozen=True)
class Release:
    """One published model: a channel variant trained with one model family."""

    variant: ChannelVariant
    family: ModelFamily

    @property
    def name(self) -> str:
        """Hub repo name without namespace, e.g. `all_channels-vit-prots-pool`."""
        return f"{self.variant.name}-{self.family.name}"

    def repo_id(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        return f"{namespace}/{self.name}"

    @property
    def encoder_filename(self) -> str:
        return f"{self.variant.file_prefix}_{self.family.original_name}.pth"

    @property
    def classifier_dirname(self) -> str:
        return f"{self.variant.file_prefix}_{self.family.classifier_tag}_MLP_classifier"

    def classifier_filenames(self, count: int = NUM_RELEASED_CLASSIFIERS) -> list[str]:
        return [f"{self.classifier_dirname}/{CLASSIFIER_FILE_TEMPLATE.format(seed=k)}" for k in range(count)]

    def source_paths(self, release_dir: str | Path, count: int = NUM_RELEASED_CLASSIFIERS) -> tuple[Path, list[Path]]:
        """The encoder file and classifier files of this release in a folder with the published layout."""
        root = Path(release_dir)
        return root / self.encoder_filename, [root / name for name in self.classifier_filenames(count)]


RELEASES: dict[str, Release] = {
    r.name: r for r in (Release(v, t) for v in CHANNEL_VARIANTS.values() for t in MODEL_FAMILIES.values())
}


def get_release(name: str) -> Release:
    """A release by its Hub repo name (with or without namespace)."""
    key = name.split("/")[-1]
    if key not in RELEASES:
        raise ValueError(f"unknown SubCell release {name!r}; expected one of {sorted(RELEASES)}")
    return RELEASES[key]


def variant_for_channels(channels: list[str] | tuple[str, ...]) -> ChannelVariant:
    """The channel variant with exactly these channels, in order."""
    for variant in CHANNEL_VARIANTS.values():
        if tuple(channels) == variant.channels:
            return variant
    raise ChannelMismatchError(channel_mismatch_message(
        "SubCell channel variant", f"one of {[list(v.channels) for v in CHANNEL_VARIANTS.values()]}", list(channels)
    ))
