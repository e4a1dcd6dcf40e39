"""Checkpoints of a pretraining run and the signals that ask for one.

A checkpoint is an `accelerator.save_state` folder `<output_dir>/checkpoints/step_<N>` (model, optimizer, LR
schedule, RNG states and the `TrainingState` counters). It is written under a temporary name and renamed when
complete, so a folder named `step_<N>` is always whole; `--resume` takes the highest such N.
"""

from __future__ import annotations

import re
import shutil
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import Accelerator

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
    "PreemptionWatcher",
    "TrainingState",
    "checkpoint_dir",
    "list_checkpoints",
    "resolve_resume",
    "save_checkpoint",
]
