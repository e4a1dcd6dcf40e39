"""The model cards: golden renderings, committed cards up to date, Hub metadata, channels and classes, model-index
only from results.

The wording of a card is checked once, byte for byte, by the golden files under `tests/hub/golden/` (two releases,
one per model family, rendered from fixed inputs). After an intended change of the template or the variant table,
regenerate them and review the diff before committing:

    SUBCELL_HF_UPDATE_GOLDEN=1 python -m pytest tests/hub/test_hub_cards.py -k golden
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from subcell_hf import LOCALIZATION_CLASSES
from subcell_hf.hub import cards
from subcell_hf.variants import RELEASES

from hub_test_utils import CARDS_DIR

GOLDEN_DIR = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("SUBCELL_HF_UPDATE_GOLDEN") == "1"

REQUIRED_TAGS = {
    "microscopy", "fluorescence", "cell-biology", "protein-localization", "human-protein-atlas", "vision-transformer"
}


def _section(text: str, heading: str) -> str:
    start = text.index(f"## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _table_rows(section: str) -> list[list[str]]:
    rows = [line for line in section.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows[2:]]  # skip header + rule


def _results(model: str = "subcell/all_channels-vit-prots-pool") -> dict:
    return {
        "model": model,
        "task": {"type": "image-classification", "name": "Protein localization"},
        "dataset": {"name": "HPA single-cell test", "type": "hpa-single-cell", "split": "test"},
        "metrics": [
            {"type": "average_precision", "name": "micro AP", "value": 0.6123},
            {"type": "average_precision", "name": "macro AP", "value": 0.4567},
        ],
        "source": "recipes/evaluate_model.py on 1,000 held-out cells, seed 0",
    }


def _golden_inputs(name: str) -> tuple[dict | None, list | None]:
    """Fixed card inputs: none for the ViT card; made-up source hashes and one measured result for the MAE card."""
    if name == "dna-protein-vit-prots-pool":
        return None, None
    release = RELEASES[name]
    files = [release.encoder_filename, *release.classifier_filenames()]
    sources = {file: hashlib.sha256(file.encode()).hexdigest() for file in files}
    return sources, [_results(release.repo_id())]


@pytest.mark.parametrize("name", ["dna-protein-vit-prots-pool", "all_channels-mae-cells-prots-pool"])
def test_card_rendering_matches_its_golden_file(name):
    sources, results = _golden_inputs(name)
    rendered = str(cards.render_card(RELEASES[name], sources=sources, results=results))
    golden = GOLDEN_DIR / f"{name}.md"
    if UPDATE_GOLDEN:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(rendered, encoding="utf-8")
    expected = golden.read_text(encoding="utf-8")
    if rendered != expected:
        diff = "".join(difflib.unified_diff(
            expected.splitlines(keepends=True), rendered.splitlines(keepends=True), str(golden), "rendered", n=1
        ))
        pytest.fail(f"card differs from {golden} (regenerate with SUBCELL_HF_UPDATE_GOLDEN=1 if intended):\n{diff}")


def test_committed_cards_are_up_to_date():
    assert cards.stale_cards(CARDS_DIR) == [], "run `make cards` (python -m subcell_hf.hub.cards --output hub_cards)"


def test_stale_missing_and_stray_cards_are_reported(tmp_path):
    shutil.copytree(CARDS_DIR, tmp_path / "cards")
    edited = tmp_path / "cards" / "dna-protein-vit-prots-pool.md"
    edited.write_text(edited.read_text().replace("Nucleoplasm", "Nucleoplasma"))
    (tmp_path / "cards" / "all_channels-vit-prots-pool.md").unlink()
    (tmp_path / "cards" / "old-name.md").write_text("---\nlicense: mit\n---\n")
    problems = cards.stale_cards(tmp_path / "cards")
    assert len(problems) == 3
    assert any("dna-protein-vit-prots-pool.md: out of date" in p for p in problems)
    assert any("all_channels-vit-prots-pool.md: missing" in p for p in problems)
    assert any("old-name.md: not the card of any release" in p for p in problems)


def test_cards_command_writes_then_checks(tmp_path, capsys):
    assert cards.main(["--output", str(tmp_path), "--check", "true"]) == 1
    assert cards.main(["--output", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.md")) == sorted(f"{name}.md" for name in RELEASES)
    assert cards.main(["--output", str(tmp_path), "--check", "true"]) == 0
    assert "8 of 8 cards changed" in capsys.readouterr().out
    assert cards.main(["--output", str(tmp_path), "--check", "perhaps"]) == 2
    assert "the command line: check: Couldn't parse 'perhaps' into a bool" in capsys.readouterr().err


@pytest.mark.parametrize("name", list(RELEASES))
def test_card_metadata_parses_and_round_trips(name):
    card = ModelCard.load(CARDS_DIR / f"{name}.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["pipeline_tag"] == "image-feature-extraction"
    assert data["license"] == "mit"
    assert REQUIRED_TAGS <= set(data["tags"])
    assert data["datasets"] == ["human-protein-atlas"]
    has_results = (CARDS_DIR / "results" / f"{name}.json").is_file()
    assert ("model-index" in data) == has_results  # only numbers this project measured
    again = ModelCard(str(card))
    assert again.data.to_dict() == data
    assert str(again) == str(card)


@pytest.mark.parametrize("name", list(RELEASES))
def test_card_names_its_channels_in_order(name):
    release = RELEASES[name]
    text = (CARDS_DIR / f"{name}.md").read_text()
    rows = _table_rows(_section(text, "Images the model expects"))
    assert [row[1].strip("`") for row in rows] == list(release.variant.channels)
    assert [int(row[0]) for row in rows] == list(range(release.variant.num_channels))
    mapping = re.search(r"cell = (\{.*?\})\n", text).group(1)  # the usage snippet's channel dict
    assert re.findall(r'"(\w+)":', mapping) == list(release.variant.channels)


def test_card_lists_the_31_classes_in_order():
    text = (CARDS_DIR / "all_channels-vit-prots-pool.md").read_text()
    cells = [cell for row in _table_rows(_section(text, "Localization classes")) for cell in row]
    pairs = [(int(cells[i]), cells[i + 1]) for i in range(0, len(cells), 2) if cells[i]]
    assert pairs == list(enumerate(LOCALIZATION_CLASSES))


def test_card_parameter_counts_match_spec():
    # docs/model.md, sections 1 and 2: encoder 86,446,848 (C=4) + pooler 788,482; classifier 926,239 x 10.
    assert cards.parameter_counts(("microtubules", "er", "dna", "protein")) == (86_446_848 + 788_482, 9_262_390)
    assert cards.parameter_counts(("dna", "protein")) == (86_053_632 + 788_482, 9_262_390)


def test_results_become_the_model_index(tmp_path):
    release = RELEASES["all_channels-vit-prots-pool"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / f"{release.name}.json").write_text(json.dumps(_results()))
    rendered = cards.render_all(tmp_path)
    card = ModelCard(rendered[f"{release.name}.md"])
    results = card.data.eval_results
    assert card.data.model_name == release.repo_id()
    assert [(r.metric_name, r.metric_value) for r in results] == [("micro AP", 0.6123), ("macro AP", 0.4567)]
    assert {(r.task_type, r.dataset_type, r.dataset_split) for r in results} == {
        ("image-classification", "hpa-single-cell", "test")
    }
    assert ModelCard(str(card)).data.to_dict()["model-index"] == card.data.to_dict()["model-index"]
    other = ModelCard(rendered["dna-protein-vit-prots-pool.md"])
    assert "model-index" not in other.data.to_dict()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["metrics"][1].pop("value"), "field 'metrics[1].value' must be a number, found None"),
        (lambda r: r["metrics"][0].update(value="high"), "field 'metrics[0].value' must be a number, found 'high'"),
        (lambda r: r.update(model="subcell/dna-protein-vit-prots-pool"),
         "field 'model' must name subcell/all_channels-vit-prots-pool"),
        (lambda r: r["dataset"].pop("split"), "field 'dataset.split' must be a non-empty string"),
    ],
)
def test_invalid_results_name_the_file_and_field(tmp_path, edit, message):
    results = _results()
    edit(results)
    path = tmp_path / "all_channels-vit-prots-pool.json"
    path.write_text(json.dumps(results))
    with pytest.raises(ValueError) as error:
        cards.load_results(path, RELEASES["all_channels-vit-prots-pool"])
    assert str(path) in str(error.value) and message in str(error.value)


def test_source_hashes_are_recorded_from_a_conversion(tmp_path):
    release = RELEASES["dna-protein-mae-cells-prots-pool"]
    files = [release.encoder_filename, *release.classifier_filenames()]
    sources = {name: f"{index:064x}" for index, name in enumerate(files)}
    conversion = tmp_path / "conversion.json"
    conversion.write_text(json.dumps({"sources": {n: {"sha256": s, "bytes": 1} for n, s in sources.items()}}))
    recorded = cards.record_sources(conversion, tmp_path / "cards", release)
    assert cards.load_sources(recorded) == sources
    assert cards.release_inputs(tmp_path / "cards", release) == (sources, None)
    with pytest.raises(ValueError, match="sources should be the files of all_channels-vit-prots-pool"):
        cards.record_sources(conversion, tmp_path / "cards", RELEASES["all_channels-vit-prots-pool"])
