"""A missing config file, a YAML syntax error and a bad override value are messages naming the file (and line),
exit status 2, never tracebacks (issue 10, defect 10)."""

from __future__ import annotations

import pytest

from subcell_hf.pretraining.config import parse_args


def _exit_message(argv, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        parse_args(argv)
    assert stop.value.code == 2
    return capsys.readouterr().err


def test_a_missing_config_file_is_named(tmp_path, capsys):
    missing = tmp_path / "nowhere.yaml"
    assert f"{missing}: config file not found" in _exit_message(["--config", str(missing)], capsys)


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  family: vit-prots-pool\ndata: [unclosed\n")
    message = _exit_message(["--config", str(bad)], capsys)
    assert f"{bad} line" in message and "not valid YAML" in message


def test_a_bad_override_value_is_a_message(capsys):
    assert "is not a valid YAML value" in _exit_message(["--optim.learning_rate", "[1e-4"], capsys)
