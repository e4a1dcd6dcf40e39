"""`--overwrite` deletes nothing but a previous output of the same command, and outputs get the user's umask
(issue 10, defects 2 and 5)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from subcell_hf.utils.atomic_writes import atomic_path, atomic_write_text
from subcell_hf.cli import main

RELEASE = "all_channels-vit-prots-pool"
OUTPUT_MARKER = ".subcell_hf_output.json"


def convert(release_dir: Path, output: str | Path, *extra: str) -> int:
    return main(["convert", "--release", RELEASE, "--release_dir", str(release_dir), "--output", str(output), *extra])


@pytest.fixture
def user_folder(tmp_path) -> Path:
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "thesis.tex").write_text("years of work")
    return folder


def test_overwrite_of_the_current_folder_is_refused_and_deletes_nothing(
    tiny_release_dir, user_folder, monkeypatch, capsys
):
    monkeypatch.chdir(user_folder)
    assert convert(tiny_release_dir, ".", "--overwrite", "true") == 2
    assert (user_folder / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in user_folder.iterdir()) == ["thesis.tex"]
    assert "--overwrite refused" in capsys.readouterr().err


def test_overwrite_refuses_home_unmarked_folders_and_parents_of_the_inputs(
    tiny_release_dir, user_folder, monkeypatch, capsys
):
    monkeypatch.setenv("HOME", str(user_folder))
    assert convert(tiny_release_dir, user_folder, "--overwrite", "true") == 2  # the home folder
    monkeypatch.setenv("HOME", "/nonexistent")
    assert convert(tiny_release_dir, user_folder, "--overwrite", "true") == 2  # not empty, no marker
    assert convert(tiny_release_dir, tiny_release_dir.parent, "--overwrite", "true") == 2  # holds the inputs
    assert (user_folder / "thesis.tex").exists() and any(tiny_release_dir.iterdir())
    errors = capsys.readouterr().err
    assert "home" in errors and OUTPUT_MARKER in errors and "holds the input" in errors


def test_overwrite_replaces_a_previous_output_of_the_same_command_only(tiny_release_dir, tmp_path, capsys):
    output = tmp_path / "converted"
    assert convert(tiny_release_dir, output) == 0
    assert (output / OUTPUT_MARKER).is_file()
    assert convert(tiny_release_dir, output) == 2  # exists, no --overwrite
    assert convert(tiny_release_dir, output, "--overwrite", "true") == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left beside it
    (output / OUTPUT_MARKER).write_text('{"command": "embed"}')
    assert convert(tiny_release_dir, output, "--overwrite", "true") == 2
    assert "written by 'embed'" in capsys.readouterr().err


def test_outputs_get_the_users_umask(tiny_release_dir, tmp_path):
    previous = os.umask(0o022)
    try:
        output = tmp_path / "converted"
        assert convert(tiny_release_dir, output) == 0
        text = atomic_write_text(tmp_path / "note.txt", "x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(output.stat().st_mode) == 0o755
    assert stat.S_IMODE((output / "model.safetensors").stat().st_mode) == 0o644
    assert stat.S_IMODE(text.stat().st_mode) == 0o644


def test_temporaries_of_a_killed_write_are_recognisable_and_cleared(tmp_path):
    from subcell_hf.utils.atomic_writes import remove_stale_partials

    target = tmp_path / "cell.png"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as temporary:
            temporary.write_bytes(b"half")
            os.link(temporary, tmp_path / "left_behind")  # what a SIGKILL leaves: the temporary itself
            raise KeyboardInterrupt
    os.replace(tmp_path / "left_behind", temporary)
    assert temporary.name.startswith(".cell.png.") and temporary.suffix == ".png"
    assert remove_stale_partials(tmp_path) == 1
    assert not list(tmp_path.iterdir())
