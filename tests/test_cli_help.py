"""`subcell-hf <command> --help` answers without importing torch (it takes seconds): the choices the parsers
offer come from `subcell_hf.options`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import contextlib, io, json, sys
from subcell_hf.cli import main
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main([sys.argv[1], "--help"])
    except SystemExit:
        pass
print(json.dumps({"torch": "torch" in sys.modules, "help": out.getvalue()}))
"""


@pytest.mark.parametrize("command", ["embed", "plot", "synth"])
def test_command_help_does_not_import_torch(command):
    done = subprocess.run([sys.executable, "-c", PROBE, command], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert "usage: subcell-hf " + command in report["help"]
    assert not report["torch"], f"subcell-hf {command} --help imported torch"


def test_precision_names_are_the_dtypes_the_engine_maps():
    import importlib

    from subcell_hf import options

    engine = importlib.import_module("subcell_hf.inference.embed")  # the package exports a function of that name
    assert tuple(engine.PRECISIONS) == options.PRECISION_NAMES
    assert engine.PRECISIONS["bf16"] is importlib.import_module("torch").bfloat16
