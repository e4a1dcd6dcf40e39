"""`subcell-hf <command> --help` answers without importing torch (it takes seconds) and shows, for every field of
the command's config, its flag, help text, default and choices; the choices come from `subcell_hf.options`."""

from __future__ import annotations

import dataclasses
import importlib
import json
import subprocess
import sys
import typing
from pathlib import Path

from subcell_hf.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
#: one interpreter for every command (a fresh one: the test session has torch loaded already)
PROBE = """
import contextlib, io, json, sys
from subcell_hf.cli import COMMANDS, main
helps = {}
for name in ["", *COMMANDS]:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        status = main([name, "--help"] if name else ["--help"])
    helps[name] = (status, out.getvalue())
print(json.dumps({"heavy": sorted({"torch", "transformers"} & set(sys.modules)), "helps": helps}))
"""


def _flags(config: type, prefix: str = "") -> dict[str, dataclasses.Field]:
    """Every leaf field of a config dataclass under its flag name (`--crop.size` for nested sections)."""
    hints = typing.get_type_hints(config)
    flags = {}
    for field in dataclasses.fields(config):
        if dataclasses.is_dataclass(hints[field.name]):
            flags.update(_flags(hints[field.name], f"{prefix}{field.name}."))
        else:
            flags[f"--{prefix}{field.name}"] = (field, hints[field.name])
    return flags


def test_every_command_help_is_light_and_shows_help_defaults_and_choices():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "", "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["heavy"] == [], f"--help imported {report['heavy']}"
    status, overview = report["helps"][""]
    assert status == 0 and all(name in overview for name in COMMANDS)
    for name, (module_name, _) in COMMANDS.items():
        status, text = report["helps"][name]
        assert status == 0 and text.startswith(f"usage: subcell-hf {name}"), (name, text[:200])
        config = importlib.import_module(f"subcell_hf.commands.{module_name}").Config
        text = text[text.index("\noptions:"):]  # the option list, after the usage and the description
        for flag, (field, hint) in _flags(config).items():
            line = next((line for line in text.splitlines() if line.strip().startswith(flag + " ")), "")
            assert line, f"subcell-hf {name} --help lacks {flag}"
            entry = text[text.index(line):].split("\n  --", 1)[0]  # the flag's line and its wrapped help
            assert len(entry.split()) > 2, f"{flag} has no help text"
            default = field.default if field.default is not dataclasses.MISSING else (
                field.default_factory() if field.default_factory is not dataclasses.MISSING else None)
            if default is not None:
                assert f"(default: {default})" in " ".join(entry.split()), (flag, entry)
            for choice in _choices(hint):
                assert str(choice) in line, f"{flag}: choice {choice!r} not shown"


def _choices(hint) -> list:
    if typing.get_origin(hint) is typing.Literal:
        return list(typing.get_args(hint))
    return [choice for arg in typing.get_args(hint) for choice in _choices(arg)]


def test_the_copies_for_help_match_their_sources():
    from subcell_hf import options
    from subcell_hf.commands import shards as shards_command
    from subcell_hf.data import shards
    from subcell_hf.models import HPA_CHANNELS
    from subcell_hf.variants import MODEL_FAMILIES, RELEASES

    assert options.HPA_CHANNELS == HPA_CHANNELS
    assert options.RELEASE_NAMES == tuple(sorted(RELEASES))
    assert options.MODEL_FAMILY_NAMES == tuple(sorted(MODEL_FAMILIES))
    assert shards_command.DEFAULT_PARTS_PER_ANTIBODY == shards.DEFAULT_PARTS_PER_ANTIBODY
    assert shards_command.DEFAULT_RECORDS_PER_SHARD == shards.DEFAULT_RECORDS_PER_SHARD


def test_precision_names_are_the_dtypes_the_engine_maps():
    from subcell_hf import options

    engine = importlib.import_module("subcell_hf.inference.embed")  # the package exports a function of that name
    assert tuple(engine.PRECISIONS) == options.PRECISION_NAMES
    assert engine.PRECISIONS["bf16"] is importlib.import_module("torch").bfloat16
