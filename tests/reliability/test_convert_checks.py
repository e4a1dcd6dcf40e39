"""The converter checks every classifier file against the released architecture and names the file that differs
(issue 10, defect 6)."""

from __future__ import annotations

import shutil

import pytest
import torch

from subcell_hf.hub.convert import CheckpointMismatchError, convert_release
from subcell_hf.variants import RELEASES

RELEASE = RELEASES["all_channels-vit-prots-pool"]


@pytest.fixture
def release_copy(tiny_release_dir, tmp_path):
    encoder, classifiers = RELEASE.source_paths(tiny_release_dir)
    root = tmp_path / "release"
    for path in [encoder, *classifiers]:
        target = root / path.relative_to(tiny_release_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    return root


def _edit_classifier(release_dir, seed, edit):
    path = RELEASE.source_paths(release_dir)[1][seed]
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    return path


def test_a_classifier_without_its_last_layer_is_refused_naming_the_file(release_copy, tmp_path):
    def drop_last(state):
        del state["6.weight"], state["6.bias"]

    for seed in range(10):
        _edit_classifier(release_copy, seed, drop_last)
    bad = RELEASE.source_paths(release_copy)[1][3]
    with pytest.raises(CheckpointMismatchError, match=rf"{bad.name}: 2 Linear layers and 16 classes"):
        convert_release(RELEASE, release_copy, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_one_classifier_with_an_extra_layer_is_blamed_not_seed_0(release_copy, tmp_path):
    def add_layer(state):
        state["9.weight"], state["9.bias"] = torch.zeros(31, 31), torch.zeros(31)

    odd = _edit_classifier(release_copy, 4, add_layer)
    with pytest.raises(CheckpointMismatchError) as error:
        convert_release(RELEASE, release_copy, tmp_path / "out", released_classifiers=False)
    message = str(error.value)
    assert odd.name in message and "classifier_seed_0.pth" not in message


def test_an_empty_classifier_file_is_an_error_naming_it(release_copy, tmp_path, capsys):
    from subcell_hf.cli import main

    path = RELEASE.source_paths(release_copy)[1][0]
    torch.save({}, path)
    status = main(["convert", "--release", RELEASE.name, "--release_dir", str(release_copy), "--output",
                   str(tmp_path / "out"), "--any_classifier_architecture", "true"])
    assert status == 2 and f"{path}: holds no classifier layer" in capsys.readouterr().err


def test_a_read_only_output_folder_is_a_message(release_copy, tmp_path, monkeypatch, capsys):
    import tempfile

    from subcell_hf.cli import main

    def refused(*args, **kwargs):  # what a read-only folder does (simulated: tests may run as root)
        raise PermissionError(13, "Permission denied", kwargs.get("dir"))

    monkeypatch.setattr(tempfile, "mkdtemp", refused)
    status = main(["convert", "--release", RELEASE.name, "--release_dir", str(release_copy), "--output",
                   str(tmp_path / "out")])
    assert status == 2 and "Permission denied" in capsys.readouterr().err
