"""Checkpoints of a pretraining run and the signals that ask for one.

A checkpoint is an `accelerator.save_state` folder `<output_dir>/checkpoints/step_<N>` (model, optimizer, RNG
states) plus the LR schedule and the `TrainingState` counters. It is written under a temporary name and renamed
when complete, so a folder named `step_<N>` is always whole; `--resume` takes the highest such N.

Reading a checkpoint back never runs code from it: Accelerate unpickles registered objects
(`custom_checkpoint_*.pkl`) without restriction, so the training states are saved and loaded here instead
(`training_state_<i>.bin`), and
every pickle-based file of the folder is first read with `torch.load(weights_only=True)` (numpy's RNG state types,
and DeepSpeed's own state types, are the only classes allowed). A file that needs more, or is damaged, stops the
resume with `CheckpointError` naming it and the previous checkpoint (docs/reliability.md).
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import signal
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import SafetensorError, safe_open

from ..utils.atomic_writes import atomic_write_text

CHECKPOINT_DIRNAME = "checkpoints"
_CHECKPOINT_PATTERN = re.compile(r"^step_(\d+)$")


@dataclass
class TrainingState:
    """Counters saved with every checkpoint (registered with `accelerator.register_for_checkpointing`).

    Attributes:
        step: optimizer steps completed.
        micro_batches: micro-batches this process has drawn from its loader (the data position).
        cells_seen: cells in all processes' completed steps.
    """

    step: int = 0
    micro_batches: int = 0
    cells_seen: int = 0

    def state_dict(self) -> dict[str, int]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, int]) -> None:
        for name, value in state.items():
            setattr(self, name, int(value))


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed safely: a file needs unrestricted unpickling, or is damaged."""


# The classes numpy's RNG state (`np.random.get_state()`, saved in Accelerate's random_states_*.pkl) pickles into.
_NUMPY_CORE = getattr(np, "_core", None) or np.core
_NUMPY_STATE_GLOBALS = [np.ndarray, np.dtype, np.dtypes.UInt32DType, _NUMPY_CORE.multiarray._reconstruct]
_PICKLE_SUFFIXES = (".pkl", ".bin", ".pt", ".pth")
_TRAINING_STATES: "weakref.WeakKeyDictionary[Accelerator, tuple]" = weakref.WeakKeyDictionary()


def _deepspeed_state_globals() -> list:
    """Classes DeepSpeed writes into its ZeRO checkpoint files (loss scaler, stage enum, fragment addresses)."""
    try:
        from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
        from deepspeed.runtime.zero.config import ZeroStageEnum
        from deepspeed.utils.tensor_fragment import fragment_address
    except ImportError:
        return []
    return [DynamicLossScaler, LossScaler, ZeroStageEnum, fragment_address]


def safe_torch_load(path: str | Path, extra_globals: list | None = None):
    """`torch.load(path, weights_only=True)` (tensors, containers, numbers, strings, and `extra_globals`), on the
    CPU. Raises `CheckpointError` naming the file when it holds anything else (nothing in it is executed) or is
    damaged."""
    path = Path(path)
    try:
        with torch.serialization.safe_globals(list(extra_globals or [])):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise CheckpointError(
            f"{path}: refused, it needs unrestricted unpickling, which could run code ({first_line.strip()}); "
            "only tensors, numbers, strings and containers are read back"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: damaged or truncated ({type(error).__name__}: {error})") from None


def verify_checkpoint(checkpoint: str | Path) -> None:
    """Read every file of `checkpoint` the way a resume will, without running code: safetensors headers and
    sizes, pickle-based files with `weights_only=True`. Raises `CheckpointError` naming the first bad file."""
    checkpoint = Path(checkpoint)
    deepspeed_globals = None
    for path in sorted(p for p in checkpoint.rglob("*") if p.is_file()):
        if path.suffix == ".safetensors":
            try:
                with safe_open(path, framework="pt") as handle:
                    for name in handle.keys():
                        handle.get_slice(name)
            except (SafetensorError, OSError, ValueError) as error:
                raise CheckpointError(f"{path}: damaged or truncated ({error})") from None
        elif path.suffix in _PICKLE_SUFFIXES:
            extra = list(_NUMPY_STATE_GLOBALS)
            if path.suffix in (".pt", ".pth"):
                if deepspeed_globals is None:
                    deepspeed_globals = _deepspeed_state_globals()
                extra += deepspeed_globals
            safe_torch_load(path, extra)


def register_training_states(accelerator: Accelerator, *objects) -> None:
    """Objects with `state_dict` / `load_state_dict` (the LR schedule, `TrainingState`) that `save_checkpoint`
    writes and `load_checkpoint` restores, in this order. Use instead of `accelerator.register_for_checkpointing`,
    whose loader unpickles without restriction."""
    _TRAINING_STATES[accelerator] = tuple(objects)


def _state_file(checkpoint: Path, index: int) -> Path:
    return checkpoint / f"training_state_{index}.bin"


def load_checkpoint(accelerator: Accelerator, checkpoint: str | Path) -> None:
    """Restore a checkpoint written by `save_checkpoint`, after `verify_checkpoint`; the registered training
    states are read with `weights_only=True`. Raises `CheckpointError` (naming the file, and the previous
    checkpoint to resume from instead) when a file is unsafe, damaged or missing."""
    checkpoint = Path(checkpoint)
    try:
        verify_checkpoint(checkpoint)
        objects = _TRAINING_STATES.get(accelerator, ())
        states = []
        for index, _ in enumerate(objects):
            path = _state_file(checkpoint, index)
            if not path.is_file():
                raise CheckpointError(f"{path}: missing (the checkpoint holds {len(objects)} training states)")
            states.append(safe_torch_load(path))
        rng_files = sorted(checkpoint.glob("random_states_*.pkl"))
        if not rng_files:
            raise CheckpointError(f"{checkpoint}: no random_states_*.pkl, the resumed run would not repeat the run")
    except CheckpointError as error:
        raise CheckpointError(f"{error}{_previous_hint(checkpoint)}") from None
    accelerator.load_state(str(checkpoint))
    for obj, state in zip(objects, states):
        obj.load_state_dict(state)


def _previous_hint(checkpoint: Path) -> str:
    match = _CHECKPOINT_PATTERN.match(checkpoint.name)
    if not match:
        return ""
    earlier = [p for p in list_checkpoints(checkpoint.parent.parent) if p != checkpoint]
    earlier = [p for p in earlier if int(_CHECKPOINT_PATTERN.match(p.name).group(1)) < int(match.group(1))]
    if not earlier:
        return "; no earlier checkpoint to resume from"
    return f"; resume from the previous checkpoint with --resume {earlier[-1]}"


def trim_log(path: str | Path, step: int) -> None:
    """Drop the rows of a JSON-lines log (`metrics.jsonl`) logged after `step`, and a half-written last line: a
    run resumed from the checkpoint of `step` logs the replayed steps again, once."""
    path = Path(path)
    if not path.is_file():
        return
    text = path.read_text(encoding="utf-8")
    kept = []
    for line in text[: text.rfind("\n") + 1].splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if int(row.get("step", 0)) <= step:
            kept.append(line + "\n")
    if "".join(kept) != text:
        atomic_write_text(path, "".join(kept))


def checkpoint_dir(output_dir: str | Path, step: int) -> Path:
    return Path(output_dir) / CHECKPOINT_DIRNAME / f"step_{step:08d}"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(output_dir) / CHECKPOINT_DIRNAME
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT_PATTERN.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT_PATTERN.match(p.name).group(1)))


def resolve_resume(output_dir: str | Path, resume: str | None) -> Path | None:
    """The checkpoint `--resume` names: `"auto"` is the latest one in `output_dir` (None when there is none yet,
    so that a re-queued job can always pass `--resume`); anything else must be a checkpoint folder."""
    if resume is None:
        return None
    if resume == "auto":
        checkpoints = list_checkpoints(output_dir)
        return checkpoints[-1] if checkpoints else None
    path = Path(resume)
    if not path.is_dir():
        raise FileNotFoundError(f"--resume {resume}: no such checkpoint folder")
    return path


def save_checkpoint(accelerator: Accelerator, output_dir: str | Path, step: int, keep: int | None = None) -> Path:
    """`accelerator.save_state` into `checkpoints/step_<step>` (all processes take part), atomically; keeps the
    `keep` most recent checkpoints. Needs a filesystem shared by all nodes, as DeepSpeed checkpoints do."""
    final = checkpoint_dir(output_dir, step)
    staging = final.with_name(final.name + ".partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        for index, obj in enumerate(_TRAINING_STATES.get(accelerator, ())):
            torch.save(obj.state_dict(), _state_file(staging, index))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if final.exists():
            shutil.rmtree(final)
        staging.rename(final)
        if keep:
            for old in list_checkpoints(output_dir)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


class PreemptionWatcher:
    """Records SIGTERM / SIGUSR1 (schedulers send these before killing a job) instead of dying at once, so that the
    loop can finish its step and save state. Use as a context manager; the previous handlers come back after."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.received = signum

    @property
    def requested(self) -> bool:
        return self.received is not None

    def __enter__(self) -> "PreemptionWatcher":
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay with their previous handlers
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


__all__ = [
    "CHECKPOINT_DIRNAME",
    "CheckpointError",
    "load_checkpoint",
    "register_training_states",
    "safe_torch_load",
    "trim_log",
    "verify_checkpoint",
    "PreemptionWatcher",
    "TrainingState",
    "checkpoint_dir",
    "list_checkpoints",
    "resolve_resume",
    "save_checkpoint",
]
