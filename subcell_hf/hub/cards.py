"""Model cards for the 8 SubCell Hub repositories, rendered from ONE template and the variant table.

Everything a card states about a release comes from `subcell_hf.variants` (channels, model family, objectives,
position embeddings, source file names), the model defaults in `SubCellConfig`, the class list
`LOCALIZATION_CLASSES` and two optional per-release inputs kept next to the generated cards:

- ``<cards_dir>/results/<repo-name>.json``: metrics this project measured (written by ``recipes/evaluate_model.py``);
  the only source of the card's ``model-index``. Schema (one object or a list): see
  `subcell_hf.evaluation.model_index`.
- ``<cards_dir>/sources/<repo-name>.json``: the sha256 of the original release files, as the ``sources`` block of
  the ``conversion.json`` written at conversion (see `record_sources`). Without it a card says the hashes are
  recorded in ``conversion.json``.

Regenerate the committed cards with ``python -m subcell_hf.hub.cards --output hub_cards`` (``make cards``);
``--check true`` exits non-zero when a committed card is out of date. Nothing here talks to the network.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import torch
from huggingface_hub import ModelCard, ModelCardData

from ..evaluation.model_index import model_index_from_results, validate_results
from ..models import LOCALIZATION_CLASSES, SubCellConfig, SubCellForProteinLocalization
from ..models.image_processing_subcell import MIN_MAX_EPSILON
from ..variants import CHANNEL_DESCRIPTIONS, DEFAULT_NAMESPACE, NUM_RELEASED_CLASSIFIERS, RELEASES, Release, get_release
from ..utils.atomic_writes import atomic_write_text

TEMPLATE_PATH = Path(__file__).parent / "templates" / "model_card.md"
DEFAULT_CARDS_DIR = Path("hub_cards")
RESULTS_DIRNAME = "results"
SOURCES_DIRNAME = "sources"

LICENSE = "mit"
PIPELINE_TAG = "image-feature-extraction"
#: Training data as named in the card metadata. The HPA images are not a Hub dataset; this is a plain name.
DATASETS = ("human-protein-atlas",)
TAGS = (
    "microscopy",
    "fluorescence",
    "fluorescence-microscopy",
    "cell-biology",
    "single-cell",
    "protein-localization",
    "human-protein-atlas",
    "vision-transformer",
    "self-supervised-learning",
    "multi-label-classification",
    "subcell",
)
#: Tags per training objective (keys are `ModelFamily.objectives` entries).
OBJECTIVE_TAGS = {
    "protein-specific contrastive (SupCon)": "contrastive-learning",
    "cell-specific contrastive (NT-Xent)": "contrastive-learning",
    "masked-autoencoder reconstruction": "masked-autoencoder",
}
#: One sentence per training objective for the card (keys are `ModelFamily.objectives` entries).
OBJECTIVE_EXPLANATIONS = {
    "protein-specific contrastive (SupCon)": "crops of cells stained with the same antibody are pulled together, "
    "crops of other antibodies pushed apart, so the embedding captures the protein's localization pattern.",
    "cell-specific contrastive (NT-Xent)": "two augmented views of the same cell are pulled together and away from "
    "every other cell, so the embedding keeps what identifies the cell itself.",
    "masked-autoencoder reconstruction": "the encoder sees a part of the image patches and a small decoder "
    "predicts the hidden ones.",
}
POSITION_EMBEDDINGS = {
    "learned": "learned (trained with the encoder)",
    "sincos": "fixed 2-D sin-cos (not trained)",
}
#: Side of the single-cell crops cut from HPA images at native resolution, downsampled 2x for training
#: (docs/model.md, section 4).
PUBLISHED_NATIVE_CROP_SIZE = 896
#: Channel names as written in card titles.
_CHANNEL_LABELS = {"microtubules": "microtubules", "er": "ER", "dna": "DNA", "protein": "protein"}
#: Short variable names used in the card's usage snippets.
#: the HPA file colour of each channel, for the usage snippets' file names (cell_red.png, ...)
_SNIPPET_FILES = {"microtubules": "cell_red.png", "er": "cell_yellow.png", "dna": "cell_blue.png", "protein": "cell_green.png"}


# ------------------------------------------------------------------------------------------------- inputs
def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def load_results(path: str | Path, release: Release) -> list[dict]:
    """Read a results file (one object or a list), validated by `subcell_hf.evaluation`'s schema check and
    checked to name `release`; errors name the file, the entry and the field."""
    path = Path(path)
    data = _read_json(path)
    entries = [
        validate_results(entry, origin=f"{path} entry {index}")
        for index, entry in enumerate(data if isinstance(data, list) else [data])
    ]
    for index, entry in enumerate(entries):
        if entry["model"].split("/")[-1] != release.name:
            raise ValueError(
                f"{path} entry {index}: field 'model' must name {release.repo_id()}, found {entry['model']!r}"
            )
    return entries


def load_sources(path: str | Path) -> dict[str, str]:
    """File name -> sha256 from a recorded sources file (the `sources` block of `conversion.json`, or the whole
    `conversion.json`)."""
    path = Path(path)
    data = _read_json(path)
    data = data.get("sources", data) if isinstance(data, dict) else data
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "sha256" in v for v in data.values()):
        raise ValueError(f"{path}: expected {{file name: {{'sha256': ..., 'bytes': ...}}}}, found {str(data)[:200]}")
    return {name: info["sha256"] for name, info in data.items()}


def release_inputs(cards_dir: str | Path | None, release: Release) -> tuple[dict[str, str] | None, list[dict] | None]:
    """The recorded sources and the measured results of `release` under `cards_dir`, each None when absent."""
    if cards_dir is None:
        return None, None
    sources_path = Path(cards_dir) / SOURCES_DIRNAME / f"{release.name}.json"
    results_path = Path(cards_dir) / RESULTS_DIRNAME / f"{release.name}.json"
    sources = load_sources(sources_path) if sources_path.is_file() else None
    results = load_results(results_path, release) if results_path.is_file() else None
    return sources, results


def record_sources(conversion_json: str | Path, cards_dir: str | Path, release: Release) -> Path:
    """Keep the sha256 of the original files of `release` (from its `conversion.json`) with the cards."""
    sources = _read_json(Path(conversion_json)).get("sources")
    if not sources:
        raise ValueError(f"{conversion_json}: no 'sources' block")
    expected = {release.encoder_filename, *release.classifier_filenames()}
    if set(sources) != expected:
        raise ValueError(
            f"{conversion_json}: sources should be the files of {release.name} {sorted(expected)}, "
            f"found {sorted(sources)}"
        )
    target = Path(cards_dir) / SOURCES_DIRNAME / f"{release.name}.json"
    atomic_write_text(target, json.dumps(sources, indent=2, sort_keys=True) + "\n")
    return target


# ---------------------------------------------------------------------------------------------- rendering
@lru_cache(maxsize=None)
def parameter_counts(channels: tuple[str, ...]) -> tuple[int, int]:
    """(encoder + pooler, classifier ensemble) parameter counts of a released model, counted on the meta device."""
    config = SubCellConfig(channel_names=list(channels), num_classifiers=NUM_RELEASED_CLASSIFIERS)
    with torch.device("meta"):
        model = SubCellForProteinLocalization(config)
    encoder = sum(p.numel() for p in model.subcell.parameters())
    return encoder, sum(p.numel() for p in model.parameters()) - encoder


def card_data(release: Release, results: list[dict] | None = None) -> ModelCardData:
    """The card's YAML metadata. `model-index` only from measured `results`."""
    tags = list(TAGS) + sorted({OBJECTIVE_TAGS[o] for o in release.family.objectives})
    model_index = {"model-index": model_index_from_results(results)} if results else {}
    return ModelCardData(
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        license=LICENSE,
        tags=tags,
        datasets=list(DATASETS),
        **model_index,
    )


def _template_context(release: Release, namespace: str, sources: dict[str, str] | None, results) -> dict:
    variant, family = release.variant, release.family
    config = SubCellConfig(channel_names=list(variant.channels))
    encoder_parameters, ensemble_parameters = parameter_counts(variant.channels)
    channel_names = list(variant.channels)
    files = [release.encoder_filename, *release.classifier_filenames()]
    return {
        "repo_id": release.repo_id(namespace),
        "variant": variant,
        "family": family,
        "channel_phrase": " + ".join(_CHANNEL_LABELS[c] for c in channel_names),
        "channel_names": channel_names,
        "channels": [
            {"index": i, "name": name, "description": CHANNEL_DESCRIPTIONS[name]}
            for i, name in enumerate(channel_names)
        ],
        "channel_mapping": "{" + ", ".join(f'"{c}": read_image("{_SNIPPET_FILES[c]}")' for c in channel_names) + "}",
        "channel_files": ", ".join(f'"{_SNIPPET_FILES[c]}"' for c in channel_names),
        "all_releases": [
            {
                "repo_id": other.repo_id(namespace),
                "channels": ", ".join(other.variant.channels),
                "family": other.family.original_name,
                "is_this": other.name == release.name,
            }
            for other in RELEASES.values()
        ],
        "objectives": [{"name": o, "explanation": OBJECTIVE_EXPLANATIONS[o]} for o in family.objectives],
        "position_embeddings": POSITION_EMBEDDINGS[family.position_embedding_type],
        "num_classifiers": NUM_RELEASED_CLASSIFIERS,
        "config": config,
        "encoder_parameters": f"{encoder_parameters:,}",
        "ensemble_parameters": f"{ensemble_parameters:,}",
        "native_crop_size": PUBLISHED_NATIVE_CROP_SIZE,
        "epsilon": f"{MIN_MAX_EPSILON:g}",
        "classes": [{"index": i, "name": name} for i, name in enumerate(LOCALIZATION_CLASSES)],
        "sources": [{"file": name, "sha256": (sources or {}).get(name)} for name in files],
        "results": results,
    }


@lru_cache(maxsize=1)
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined
    )
    return environment.from_string(TEMPLATE_PATH.read_text(encoding="utf-8"))


def render_card(
    release: Release | str,
    namespace: str = DEFAULT_NAMESPACE,
    sources: dict[str, str] | None = None,
    results: list[dict] | None = None,
) -> ModelCard:
    """The model card of one release.

    Args:
        release: a `Release` or its repo name.
        namespace: Hub namespace used in the card's repo ids.
        sources: original file name -> sha256 (from `conversion.json`); unknown hashes say where they are recorded.
        results: validated entries of a results file (`load_results`); without them the card has no model-index.
    """
    release = get_release(release) if isinstance(release, str) else release
    data = card_data(release, results)
    text = _template().render(card_data=data.to_yaml(), **_template_context(release, namespace, sources, results))
    return ModelCard(text)


def render_all(cards_dir: str | Path | None = DEFAULT_CARDS_DIR, namespace: str = DEFAULT_NAMESPACE) -> dict[str, str]:
    """Card file name (`<repo-name>.md`) -> text for all 8 releases, with the inputs recorded under `cards_dir`."""
    cards = {}
    for release in RELEASES.values():
        sources, results = release_inputs(cards_dir, release)
        cards[card_filename(release)] = str(render_card(release, namespace, sources, results))
    return cards


def card_filename(release: Release) -> str:
    return f"{release.name}.md"


def stale_cards(cards_dir: str | Path = DEFAULT_CARDS_DIR, namespace: str = DEFAULT_NAMESPACE) -> list[str]:
    """Card files under `cards_dir` that differ from a fresh rendering, are missing, or belong to no release."""
    cards_dir = Path(cards_dir)
    expected = render_all(cards_dir, namespace)
    problems = []
    for name, text in expected.items():
        path = cards_dir / name
        if not path.is_file():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: out of date with {TEMPLATE_PATH.name} and the variant table")
    strays = [path for path in sorted(cards_dir.glob("*.md")) if path.name not in expected]
    problems += [f"{path}: not the card of any release" for path in strays]
    return problems


def write_cards(cards_dir: str | Path = DEFAULT_CARDS_DIR, namespace: str = DEFAULT_NAMESPACE) -> list[Path]:
    """(Re)write the 8 cards under `cards_dir`; returns the files that changed."""
    cards_dir = Path(cards_dir)
    changed = []
    for name, text in render_all(cards_dir, namespace).items():
        path = cards_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


# -------------------------------------------------------------------------------------------------- CLI
@dataclass
class CardsConfig:
    """Render the model cards of the 8 SubCell Hub repositories from the one template (docs/hub.md, "Cards")."""

    # Cards folder; its results/<repo>.json (measured metrics) and sources/<repo>.json (sha256 of the original
    # files) are read when present.
    output: Path = DEFAULT_CARDS_DIR
    # Hub namespace used in the cards' repository ids.
    namespace: str = DEFAULT_NAMESPACE
    # Write nothing; exit 1 if a card is out of date.
    check: bool = False
    # First copy the source sha256 from <record_sources>/<repo>/conversion.json into <output>/sources/.
    record_sources: Path | None = None


def main(argv: list[str] | None = None) -> int:
    from ..utils.config_cli import parse_config

    try:
        args = parse_config(CardsConfig, argv, prog="python -m subcell_hf.hub.cards", exit_on_error=False)
    except ValueError as error:  # a value of the wrong type, an unknown YAML field ...
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        if args.check:
            problems = stale_cards(args.output, args.namespace)
            for problem in problems:
                print(problem, file=sys.stderr)
            if problems:
                print("run `make cards` (python -m subcell_hf.hub.cards --output hub_cards)", file=sys.stderr)
            return 1 if problems else 0
        if args.record_sources:
            for release in RELEASES.values():
                conversion = Path(args.record_sources) / release.name / "conversion.json"
                if conversion.is_file():
                    print(f"recorded {record_sources(conversion, args.output, release)}")
        changed = write_cards(args.output, args.namespace)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{len(changed)} of {len(RELEASES)} cards changed under {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
