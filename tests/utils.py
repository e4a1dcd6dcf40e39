"""Helpers shared by the tests (and by `benchmarks/fault_matrix.py`): tiny model configs, synthetic input files,
pretraining run overrides, in-process command runs. Free of side effects on import (unlike conftest.py, which sets
up the test session's environment); heavy imports happen inside the functions that need them.

Fixtures stay in the conftest.py files and call these.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
TINY_PRESET = RECIPES / "configs" / "tiny.yaml"

#: The encoder of every tiny test model: a 2-layer, 64-wide ViT on 64-px crops (same code paths as ViT-B/16,
#: milliseconds per step).
TINY_ENCODER = dict(
    hidden_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=128,
    image_size=64,
    pool_hidden_size=32,
)


# ------------------------------------------------------------------------------------------------- models
def tiny_config(**overrides):
    """A tiny `SubCellConfig` with 3 small classifier heads."""
    from subcell_hf import SubCellConfig

    return SubCellConfig(**{**TINY_ENCODER, "classifier_hidden_sizes": [32, 16], "num_classifiers": 3, **overrides})


def tiny_pretraining_config(family: str = "mae-cells-prots-pool", **overrides):
    """A tiny `SubCellPreTrainingConfig` of `family`: the tiny encoder, a 1-layer decoder, small projectors."""
    from subcell_hf.pretraining import SubCellPreTrainingConfig

    sizes = dict(
        TINY_ENCODER,
        decoder_hidden_size=32,
        decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4,
        decoder_intermediate_size=64,
        projector_hidden_sizes=[64, 64],
        projector_output_size=32,
    )
    return SubCellPreTrainingConfig.for_family(family, **{**sizes, **overrides})


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op threads set to `count` inside the block (tiny models run ~10x slower with 2 threads when
    other processes share the 2 cores of the test machine)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# --------------------------------------------------------------------------------------------- input files
def write_crop_files(folder: Path, name: str, rng, size: int = 64, suffix: str = "png", dtype=None) -> dict[str, str]:
    """One random crop as one file per channel (`crops/<name>_<channel>.<suffix>`, uint16 unless `dtype`);
    returns channel -> file name relative to `folder`."""
    import numpy as np

    from subcell_hf.data.io import write_image
    from subcell_hf.inference.inputs import WRAPPER_CHANNEL_COLUMNS

    dtype = dtype or np.uint16
    top = np.iinfo(dtype).max
    paths = {}
    for channel in WRAPPER_CHANNEL_COLUMNS:
        relative = f"crops/{name}_{channel}.{suffix}"
        write_image(folder / relative, rng.integers(0, top, (size, size), dtype=dtype))
        paths[channel] = relative
    return paths


def write_wrapper_csv(folder: Path, rows: list[dict[str, str]]) -> Path:
    """`folder/path_list.csv` in the wrapper's format. rows: channel -> path (or "" for blank) plus
    `output_prefix`; a `#` comment line and a blank line follow row 1 (both are skipped by the reader)."""
    from subcell_hf.inference.inputs import WRAPPER_CHANNEL_COLUMNS

    lines = ["r_image,y_image,b_image,g_image,output_prefix"]
    for index, row in enumerate(rows):
        lines.append(",".join(row.get(c, "") for c in WRAPPER_CHANNEL_COLUMNS) + f",{row['output_prefix']}")
        if index == 0:
            lines.append("# a comment line, skipped,,,")
            lines.append("")
    path = folder / "path_list.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def corrupt_shard_record(shard, key: str | None = None) -> str:
    """Overwrite the arrays of one record of a WebDataset shard (the first, or the one named `key`) with bytes that
    do not decode; the rest of the shard stays intact. Returns the record's key."""
    with tarfile.open(shard) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()]
    key = key or members[0][0].name.split(".")[0]
    with tarfile.open(shard, "w") as archive:
        for member, data in members:
            if member.name.startswith(key + ".") and member.name.endswith(".npy"):
                data = b"garbage" * 10
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return key


class PicklePayload:
    """Pickles as a call that creates `marker`: whatever unpickles it without restriction runs that call."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# ------------------------------------------------------------------------------------------- pretraining
def tiny_run_overrides(output_dir: Path, shards: dict, **extra) -> dict:
    """Dotted overrides of the `tiny` preset for a short run on synthetic shards (`shards`: "train" and
    "validation" folders): 2 records per batch, 10 steps (2 of warmup), a checkpoint every 4, no validation."""
    values = {
        "data.shards": str(shards["train"]),
        "data.validation_shards": str(shards["validation"]),
        "data.records_per_batch": 2,
        "optim.max_steps": 10,
        "optim.warmup_steps": 2,
        "train.output_dir": str(output_dir),
        "train.report_to": "none",
        "train.log_every": 1,
        "train.save_every": 4,
        "eval.every": 0,
    }
    values.update(extra)
    return values


def as_cli(overrides: dict) -> list[str]:
    """Overrides as `--section.field=value` arguments."""
    return [f"--{key}={value}" for key, value in overrides.items()]


def free_port() -> int:
    """A free local port for a launched process group's rendezvous (accelerate's default, 29500, may be taken by
    another launch on the machine, which would join it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons, so that the next `Accelerator` / `PartialState` starts afresh."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()


# ---------------------------------------------------------------------------------------------- commands
def load_recipe(name: str):
    """`recipes/<name>.py` as a module (recipes are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"recipe_{name}", RECIPES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_main(main, argv: list[str]) -> tuple[int, str]:
    """`main(argv)` of a command or recipe in this process, as its console script would run it: (exit status,
    stderr + stdout). An exception escapes (a traceback is never an expected outcome)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return int(status or 0), err.getvalue() + out.getvalue()


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`subcell-hf <argv>` in this process: (exit status, stderr + stdout)."""
    from subcell_hf.cli import main

    return run_main(main, argv)


def environment_without(*names: str) -> dict[str, str]:
    """This process's environment less `names` (for a launched process that must not inherit them)."""
    return {key: value for key, value in os.environ.items() if key not in names}
