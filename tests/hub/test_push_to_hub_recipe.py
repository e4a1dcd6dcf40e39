"""`recipes/push_to_hub.py` end to end: dry run, refusal, push, and an offline cache that loads by repo id."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import huggingface_hub.constants
import pytest

from subcell_hf.utils.hashing import sha256_file
from subcell_hf.hub.publish import RELEASE_FILES
from subcell_hf.variants import RELEASES

from hub_test_utils import REPO_ROOT

REPO_LINE = re.compile(r"^(\S+/\S+)  \((\d+) files, ([\d,]+) bytes\)$")
FILE_LINE = re.compile(r"^  (\S+) +([\d,]+)  sha256:([0-9a-f]{64})$")


def _run_python(code: str, env: dict, cwd) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON line last."""
    completed = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def _offline_env(hf_home, with_package: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    env.update(HF_HOME=str(hf_home), HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    env.pop("PYTHONPATH", None)
    if with_package:
        env["PYTHONPATH"] = str(REPO_ROOT)
    return env


@pytest.fixture(scope="module")
def offline_home(push_recipe, tiny_release_dir, tmp_path_factory):
    """An HF_HOME whose hub cache the recipe filled with all 8 tiny releases."""
    home = tmp_path_factory.mktemp("hf_home")
    cards = tmp_path_factory.mktemp("no_cards")
    assert push_recipe.main(["--release-dir", str(tiny_release_dir), "--cards-dir", str(cards),
                             "--to-cache", str(home / "hub")]) == 0
    return home


def test_help_names_every_option(push_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        push_recipe.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--release-dir", "--namespace", "--variants", "--dry-run", "--to-cache", "--work-dir", "--private"):
        assert option in out


def test_dry_run_lists_the_8_repos_and_their_files(push_recipe, tiny_release_dir, tmp_path, capsys):
    assert push_recipe.main(["--release-dir", str(tiny_release_dir), "--cards-dir", str(tmp_path), "--dry-run"]) == 0
    listing: dict[str, dict[str, tuple[int, str]]] = {}
    current = None
    for line in capsys.readouterr().out.splitlines():
        if match := REPO_LINE.match(line):
            current = listing.setdefault(match.group(1), {})
        elif match := FILE_LINE.match(line):
            current[match.group(1)] = (int(match.group(2).replace(",", "")), match.group(3))
    assert sorted(listing) == sorted(f"subcell/{name}" for name in RELEASES)
    models = REPO_ROOT / "subcell_hf" / "models"
    for files in listing.values():
        assert set(files) == RELEASE_FILES
        assert all(size > 0 for size, _ in files.values())
        # The remote code is the package's model code, byte for byte.
        assert files["modeling_subcell.py"][1] == sha256_file(models / "modeling_subcell.py")
        assert files["configuration_subcell.py"][1] == sha256_file(models / "configuration_subcell.py")


def test_broken_variants_are_refused_by_name_and_the_rest_goes_on(push_recipe, broken_release_dir, tmp_path, capsys):
    release_dir, (intact, missing_key, nan_weights) = broken_release_dir
    argv = ["--release-dir", str(release_dir), "--cards-dir", str(tmp_path), "--dry-run",
            "--variants", intact, missing_key, nan_weights]
    assert push_recipe.main(argv) == 1
    captured = capsys.readouterr()
    assert f"subcell/{intact}  (8 files" in captured.out
    assert missing_key not in captured.out and nan_weights not in captured.out
    assert f"refusing {missing_key}: conversion failed" in captured.err
    assert re.search(rf"refusing {nan_weights}: .*finite_outputs", captured.err)
    assert f"2 of 3 variants not published: {missing_key}, {nan_weights}" in captured.err


def test_push_through_the_recipe_is_idempotent(push_recipe, local_hub, tiny_release_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", local_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    argv = ["--release-dir", str(tiny_release_dir), "--cards-dir", str(tmp_path),
            "--variants", "dna-protein-vit-prots-pool", "all_channels-mae-cells-prots-pool"]
    assert push_recipe.main(argv) == 0
    first = capsys.readouterr().out
    assert first.count("(8 uploaded, 0 deleted)") == 2
    assert push_recipe.main(argv) == 0
    assert capsys.readouterr().out.count("up to date, no commit") == 2
    assert {repo: len(state.commits) for repo, state in local_hub.repos.items()} == {
        "subcell/dna-protein-vit-prots-pool": 2, "subcell/all_channels-mae-cells-prots-pool": 2
    }


@pytest.mark.slow
def test_offline_cache_loads_by_repo_id_with_the_auto_classes(offline_home, tmp_path):
    result = _run_python(
        """
        import json
        import torch
        import subcell_hf
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification
        from subcell_hf.variants import RELEASES

        encoder = AutoModel.from_pretrained("subcell/all_channels-vit-prots-pool")
        classifier = AutoModelForImageClassification.from_pretrained("subcell/dna-protein-mae-cells-prots-pool")
        processors = {name: AutoImageProcessor.from_pretrained(f"subcell/{name}").channel_names for name in RELEASES}
        processor = AutoImageProcessor.from_pretrained("subcell/all_channels-vit-prots-pool")
        embedding = encoder(**processor(torch.rand(4, 64, 64) * 1000)).pooler_output
        print(json.dumps({
            "encoder": [type(encoder).__name__, encoder.config.num_channels, list(embedding.shape)],
            "classifier": [type(classifier).__name__, classifier.config.num_channels, len(classifier.classifiers),
                           classifier.config.position_embedding_type],
            "processors": processors,
        }))
        """,
        _offline_env(offline_home, with_package=True),
        cwd=tmp_path,
    )
    assert result["encoder"] == ["SubCellModel", 4, [1, 128]]
    assert result["classifier"] == ["SubCellForProteinLocalization", 2, 10, "sincos"]
    assert result["processors"] == {name: list(r.variant.channels) for name, r in RELEASES.items()}


@pytest.mark.slow
def test_offline_cache_loads_with_trust_remote_code_without_subcell_hf(offline_home, tmp_path):
    result = _run_python(
        """
        import json, sys
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        repo = "subcell/dna-protein-mae-cells-prots-pool"
        model = AutoModelForImageClassification.from_pretrained(repo, trust_remote_code=True)
        processor = AutoImageProcessor.from_pretrained(repo, trust_remote_code=True)
        import torch
        probabilities = model(**processor(torch.rand(2, 2, 64, 64))).probabilities
        print(json.dumps({
            "module": type(model).__module__, "heads": len(model.classifiers), "shape": list(probabilities.shape),
            "channels": processor.channel_names, "subcell_hf_imported": "subcell_hf" in sys.modules,
        }))
        """,
        _offline_env(offline_home, with_package=False),
        cwd=tmp_path,
    )
    assert result["module"].startswith("transformers_modules.") and result["module"].endswith(".modeling_subcell")
    assert result == {**result, "heads": 10, "shape": [2, 31], "channels": ["dna", "protein"],
                      "subcell_hf_imported": False}
