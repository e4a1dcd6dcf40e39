"""Every entry point's command line, derived by draccus from its config dataclass, with errors a user can act on.

Every `subcell-hf` command (`subcell_hf/commands/*.py`: `Config`), every recipe (`recipes/pretrain.py`,
`recipes/train_classifiers.py`, `recipes/evaluate_model.py`, `recipes/push_to_hub.py`) and
`python -m subcell_hf.hub.cards` is one dataclass;
draccus turns it into the command line: `--config_path FILE.yaml` loads a YAML file of the same shape, and every
field is a flag named after it (`--field value`, nested sections as `--section.field value`; names keep their
underscores). Values are read as YAML: `1e-4`, `true`, `[0.9, 0.95]`, `{hidden_size: 64}`. Field help comes from
the comment above (or beside) each field.

What this module adds to `draccus.parse`, and nothing else:
- `--config_path` also takes a preset name, the stem of a YAML file in the recipe's preset folder
  (`--config_path tiny` for `recipes/configs/tiny.yaml`), resolved before draccus reads the command line;
- a help that shows each field's help, type, choices and default once (`_help_formatter`);
- draccus' errors (a missing or malformed YAML file, an unknown field, a value of the wrong type, a check of the
  dataclass) become one line that names the YAML file, the field, what was expected and what was found, and the
  process exits with status 2, as argparse does.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import yaml
from draccus.argparsing import ArgumentParser
from draccus.help_formatter import SimpleHelpFormatter
from draccus.utils import DecodingError, DraccusException

T = TypeVar("T")

CONFIG_FLAG = "--config_path"


def resolve_preset(argv: Sequence[str], presets_dir: str | Path | None) -> tuple[list[str], str | None]:
    """`argv` with a preset name after `--config_path` replaced by its file in `presets_dir`, and the config path
    (None without `--config_path`). A value that names an existing file, or no preset, is left as it is."""
    argv = list(argv)
    for index, argument in enumerate(argv):
        inline = argument.startswith(CONFIG_FLAG + "=")
        if argument != CONFIG_FLAG and not inline:
            continue
        position = index if inline else index + 1
        if position >= len(argv):
            return argv, None  # draccus says the value is missing
        value = argv[position].split("=", 1)[1] if inline else argv[position]
        preset = Path(presets_dir) / f"{value}.yaml" if presets_dir is not None else None
        if preset is not None and not Path(value).exists() and preset.is_file():
            value = str(preset)
            argv[position] = f"{CONFIG_FLAG}={value}" if inline else value
        return argv, value
    return argv, None


def parse_config(
    config_class: type[T],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
    presets_dir: str | Path | None = None,
    exit_on_error: bool = True,
) -> T:
    """`draccus.parse(config_class, args=argv)`, plus preset names and readable errors: printed with the usage and
    exit status 2 (or, with `exit_on_error=False`, raised as a `ValueError` with the same message)."""
    argv, config_path = resolve_preset(sys.argv[1:] if argv is None else argv, presets_dir)
    # draccus raises instead of exiting, so that every error goes through `describe_error`
    try:  # building the parser computes the defaults: a bad default from the environment is a usage error too
        parser = ArgumentParser(
            config_class=config_class, prog=prog, description=description, exit_on_error=False,
            formatter_class=_help_formatter(),
        )
    except (ValueError, TypeError) as error:
        if not exit_on_error:
            raise ValueError(str(error)) from None
        print(f"{prog or sys.argv[0]}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None

    def fail(message: str):
        if exit_on_error:
            parser.parser.error(message)
        raise ValueError(message)

    if config_path is not None and not Path(config_path).is_file():
        hint = f" (give a YAML file or a preset name of {presets_dir})" if presets_dir is not None else ""
        fail(f"{config_path}: config file not found{hint}")
    try:
        return parser.parse_args(argv)
    except argparse.ArgumentError as error:  # a flag without its value
        fail(str(error))
    except DraccusException as error:
        unknown = str(error).partition("unrecognized arguments: ")[2]
        if unknown:
            fail(_unknown_flags(unknown.split(), config_class))
        fail(describe_error(error, config_class, config_path, argv))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError, OSError) as error:
        fail(describe_error(error, config_class, config_path, argv))


def describe_error(error: Exception, config_class: type, config_path: str | None, argv: Sequence[str]) -> str:
    """One line for a draccus (or dataclass check) error: where the value came from, the field, expected, found."""

    def where(field_name: str) -> str:
        """The command line when the field was given there (or there is no file), else the YAML file."""
        flags = [argument.split("=", 1)[0] for argument in argv if argument.startswith("--")]
        given = field_name and any(flag == f"--{field_name}" or flag.endswith(f".{field_name}") for flag in flags)
        return "the command line" if given or config_path is None else config_path

    cause = _root_cause(error)
    if isinstance(cause, yaml.YAMLError):
        mark = getattr(cause, "problem_mark", None)
        problem = getattr(cause, "problem", None) or cause
        if mark is not None and mark.name and mark.name != "<unicode string>":
            return f"{config_path} line {mark.line + 1} column {mark.column + 1}: not valid YAML ({problem})"
        return f"a command-line value is not valid YAML ({problem}; quote lists as '[a, b]')"
    if isinstance(cause, DecodingError):
        field_name = ".".join(cause.key_path)
        message = cause.message
        if message.startswith("Could not decode the value into any of the given types:"):  # a union: each reason
            message = "; ".join(line.strip() for line in message.splitlines()[1:] if line.strip())
        elif message.startswith("Missing required field"):
            message += " (give them as flags or in the --config_path file)"
        elif "are not valid for" in message:
            message += f"; expected one of {_field_names(config_class, cause.key_path)}"
        elif message.startswith("Failed when parsing value=") and dataclasses.is_dataclass(
            _field_type(config_class, cause.key_path)
        ):
            found = re.match(r"Failed when parsing value=(.*?) into field", message)
            message = f"expected a mapping of fields, found {found.group(1) if found else 'something else'}"
        return f"{where(field_name)}: {field_name + ': ' if field_name else ''}{message}"
    if isinstance(cause, (ValueError, TypeError)):  # a check in a dataclass's __post_init__: it names the field
        return f"{where(str(cause).split(' ', 1)[0])}: {cause}"
    if isinstance(cause, AttributeError):  # draccus meets a YAML scalar or list where the sections belong
        return f"{config_path or 'the command line'}: expected a mapping of sections and fields ({cause})"
    return f"{config_path or 'the command line'}: {cause}"


def _help_formatter() -> type[argparse.HelpFormatter]:
    """draccus' help (field docstrings, types, choices, defaults) without its repetitions: a section's
    `--crop str` line once, choices as {a,b} rather than Literal[a,b], and no "(default: None)" where None only means
    "not given" (the help says what then)."""
    class HelpFormatter(SimpleHelpFormatter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._seen: set[tuple[str, ...]] = set()

        def _format_args(self, action: argparse.Action, default_metavar: str) -> str:
            return re.sub(r"Literal\[([^\]]*)\]", r"{\1}", super()._format_args(action, default_metavar))

        def _get_help_string(self, action: argparse.Action) -> str:
            if action.default is None:
                return action.help or ""
            return super()._get_help_string(action)

        def add_argument(self, action: argparse.Action) -> None:
            key = tuple(action.option_strings)
            if key and key in self._seen:
                return
            self._seen.add(key)
            super().add_argument(action)

    return HelpFormatter


def _field_type(config_class: type, key_path: Sequence[str]):
    """The type of the field at `key_path` (None when there is none)."""
    current = config_class
    for name in key_path:
        if not dataclasses.is_dataclass(current):
            return None
        current = typing.get_type_hints(current).get(name)
    return current


def _flags(config_class: type, prefix: str = "--") -> list[str]:
    """Every field's flag, nested sections as `--section.field`."""
    hints = typing.get_type_hints(config_class)
    flags = []
    for item in dataclasses.fields(config_class):
        if dataclasses.is_dataclass(hints[item.name]):
            flags += _flags(hints[item.name], f"{prefix}{item.name}.")
        else:
            flags.append(prefix + item.name)
    return flags


def _unknown_flags(arguments: list[str], config_class: type) -> str:
    known = _flags(config_class)
    flags = [argument.split("=", 1)[0] for argument in arguments if argument.startswith("--")]
    if not flags:
        return f"unexpected values {arguments} (a list is one YAML value: '[a, b]')"
    hints = []
    for flag in flags:
        underscored = "--" + flag[2:].replace("-", "_")  # the argparse spelling of earlier versions
        close = [underscored] if underscored in known else difflib.get_close_matches(flag, known, n=1)
        hints.append(f"{flag}" + (f" (did you mean {close[0]}?)" if close else ""))
    return f"unknown field {', '.join(hints)}; run with --help for the fields"


def _root_cause(error: BaseException) -> BaseException:
    """The innermost error draccus wrapped (its own `DecodingError`s name the field and stop the walk)."""
    while not isinstance(error, DecodingError) and error.__cause__ is not None:
        error = error.__cause__
    return error


def _field_names(config_class: type, key_path: Sequence[str]) -> list[str]:
    section = _field_type(config_class, key_path)
    return [item.name for item in dataclasses.fields(section)] if dataclasses.is_dataclass(section) else []


__all__ = ["describe_error", "parse_config", "resolve_preset"]
