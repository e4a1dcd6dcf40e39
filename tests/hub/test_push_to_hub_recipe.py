"""`recipes/push_to_hub.py` end to end: command line, dry run, refusal, push; then a cache downloaded from the pushed
repositories by the real client loads by repo id offline, without `subcell_hf` too."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from unittest import mock

import huggingface_hub.constants
import pytest
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

from subcell_hf.utils.hashing import sha256_file
from subcell_hf.hub.publish import RELEASE_FILES
from subcell_hf.variants import DEFAULT_NAMESPACE, RELEASES

from hub_stand_in import download_into_cache
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
def offline_home(prepared_all, tmp_path_factory):
    """An HF_HOME whose hub cache `snapshot_download` filled with the 8 tiny releases, served by the Hub stand-in."""
    home = tmp_path_factory.mktemp("hf_home")
    download_into_cache({p.repo_id(): p.folder for p in prepared_all}, home / "hub")
    return home


def test_help_names_every_option(push_recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        push_recipe.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--release_dir", "--namespace", "--variants", "--dry_run", "--work_dir", "--cards_dir",
                   "--private", "--config_path"):
        assert option in out
    assert push_recipe.PushConfig().namespace == DEFAULT_NAMESPACE


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--release_dir is required"),
        (["--release_dir", "nowhere"], "--release_dir nowhere: not a folder"),
        (["--release_dir", ".", "--variants", "[dna-protein]"], "--variants: unknown ['dna-protein']; expected names"),
        (["--release_dir", ".", "--dry_run", "maybe"], "the command line: dry_run: Couldn't parse 'maybe' into a bool"),
    ],
)
def test_bad_command_lines_exit_2_with_the_reason(push_recipe, argv, message, capsys):
    assert push_recipe.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_yaml_config_gives_the_same_fields_and_flags_override_it(push_recipe, tmp_path):
    config_file = tmp_path / "push.yaml"
    config_file.write_text("release_dir: /data/release\nvariants: [dna-protein-vit-prots-pool]\ndry_run: true\n")
    config = push_recipe.parse_args(["--config_path", str(config_file), "--namespace", "my-lab"])
    assert (str(config.release_dir), config.variants, config.dry_run) == (
        "/data/release", ["dna-protein-vit-prots-pool"], True
    )
    assert config.namespace == "my-lab" and config.private is False


def test_dry_run_lists_the_8_repos_and_their_files(push_recipe, tiny_release_dir, tmp_path, capsys):
    argv = ["--release_dir", str(tiny_release_dir), "--cards_dir", str(tmp_path), "--dry_run", "true"]
    assert push_recipe.main(argv) == 0
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


def test_broken_variants_are_refused_by_name_and_never_reach_the_hub(
    push_recipe, local_hub, broken_release_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", local_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    release_dir, (intact, missing_key, nan_weights) = broken_release_dir
    argv = ["--release_dir", str(release_dir), "--cards_dir", str(tmp_path),
            "--variants", f"[{intact}, {missing_key}, {nan_weights}]"]
    assert push_recipe.main(argv) == 1
    captured = capsys.readouterr()
    assert f"refusing {missing_key}: conversion failed" in captured.err
    assert re.search(rf"refusing {nan_weights}: .*finite_outputs", captured.err)
    assert f"2 of 3 variants not published: {missing_key}, {nan_weights}" in captured.err
    assert list(local_hub.repos) == [f"subcell/{intact}"]  # the refused ones: not even a repository
    assert f"subcell/{intact}: {local_hub.url}/subcell/{intact}/commit/" in captured.out


def test_push_through_the_recipe_is_idempotent(push_recipe, local_hub, tiny_release_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", local_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    argv = ["--release_dir", str(tiny_release_dir), "--cards_dir", str(tmp_path),
            "--variants", "[dna-protein-vit-prots-pool, all_channels-mae-cells-prots-pool]"]
    assert push_recipe.main(argv) == 0
    first = capsys.readouterr().out
    assert first.count(f"{local_hub.url}/subcell/") == 2 and "/commit/" in first
    assert push_recipe.main(argv) == 0
    assert capsys.readouterr().out.count("up to date, no commit") == 2
    assert {repo: len(state.commits) for repo, state in local_hub.repos.items()} == {
        "subcell/dna-protein-vit-prots-pool": 2, "subcell/all_channels-mae-cells-prots-pool": 2
    }


def test_offline_cache_loads_by_repo_id_with_the_auto_classes(offline_home):
    import torch

    cache = offline_home / "hub"
    with mock.patch.object(huggingface_hub.constants, "HF_HUB_OFFLINE", True):
        encoder = AutoModel.from_pretrained("subcell/all_channels-vit-prots-pool", cache_dir=cache)
        classifier = AutoModelForImageClassification.from_pretrained(
            "subcell/dna-protein-mae-cells-prots-pool", cache_dir=cache
        )
        processors = {
            name: AutoImageProcessor.from_pretrained(f"subcell/{name}", cache_dir=cache).channel_names
            for name in RELEASES
        }
        processor = AutoImageProcessor.from_pretrained("subcell/all_channels-vit-prots-pool", cache_dir=cache)
    embedding = encoder(**processor(torch.rand(4, 64, 64) * 1000)).pooler_output
    assert [type(encoder).__name__, encoder.config.num_channels, list(embedding.shape)] == ["SubCellModel", 4, [1, 128]]
    assert [type(classifier).__name__, classifier.config.num_channels, len(classifier.classifiers),
            classifier.config.position_embedding_type] == ["SubCellForProteinLocalization", 2, 10, "sincos"]
    assert processors == {name: list(r.variant.channels) for name, r in RELEASES.items()}


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
