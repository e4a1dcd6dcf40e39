"""A missing config file, a YAML syntax error, an unknown field and a bad value are one message naming the file (and
line) or the command line, the field, the expected and the found value: exit status 2, never a traceback (issue 10,
defect 10). The messages come from draccus' errors (`subcell_hf.utils.config_cli`), through `recipes/pretrain.py`."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

PRETRAIN = Path(__file__).resolve().parents[2] / "recipes" / "pretrain.py"


@pytest.fixture(scope="module")
def pretrain():
    return runpy.run_path(str(PRETRAIN), run_name="pretrain_recipe")["main"]


@pytest.fixture
def exit_message(pretrain, capsys):
    def run(argv) -> str:
        with pytest.raises(SystemExit) as stop:
            pretrain(argv)
        assert stop.value.code == 2
        return capsys.readouterr().err.splitlines()[-1]

    return run


def test_a_missing_config_file_is_named(tmp_path, exit_message):
    missing = tmp_path / "nowhere.yaml"
    assert f"{missing}: config file not found" in exit_message(["--config_path", str(missing)])


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path, exit_message):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  family: vit-prots-pool\ndata: [unclosed\n")
    message = exit_message(["--config_path", str(bad)])
    assert f"{bad} line 4 column 1: not valid YAML" in message


def test_an_unknown_field_of_the_file_is_named_with_the_known_ones(tmp_path, exit_message):
    bad = tmp_path / "typo.yaml"
    bad.write_text("model:\n  famly: vit-prots-pool\n")
    message = exit_message(["--config_path", str(bad)])
    assert message.startswith(f"pretrain.py: error: {bad}: model: The fields `famly` are not valid for ModelConfig")
    assert "expected one of ['family', 'channel_variant'," in message


def test_a_wrong_type_in_the_file_names_file_field_expected_and_found(tmp_path, exit_message):
    bad = tmp_path / "wrong.yaml"
    bad.write_text("optim:\n  max_steps: many\ntrain: 3\n")
    assert f"{bad}: optim.max_steps: int: Couldn't parse 'many' into an int" in exit_message(["--config_path", str(bad)])
    bad.write_text("train: 3\n")
    assert f"{bad}: train: expected a mapping of fields, found '3'" in exit_message(["--config_path", str(bad)])


def test_a_failed_check_names_the_field_and_where_it_was_given(exit_message):
    message = exit_message(["--config_path", "tiny", "--train.report_to", "wandb"])
    assert message.endswith("the command line: train.report_to must be tensorboard, trackio or none, found 'wandb'")


def test_a_bad_override_value_is_a_message(exit_message):
    assert "a command-line value is not valid YAML" in exit_message(["--optim.learning_rate", "[1e-4"])
    assert "unknown field --optim.max_stepz (did you mean --optim.max_steps?)" in exit_message(["--optim.max_stepz=3"])
