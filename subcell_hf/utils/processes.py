"""The `accelerate` process state shared by every entry point that can run in several processes.

`accelerate launch --multi_gpu --num_processes N` (or `torchrun`) on machines without CUDA starts N processes that
join one torch process group, but `Accelerator` / `PartialState` treat them as a distributed run (MULTI_CPU: gloo
barriers, reductions, DDP) only when created with `cpu=True`. Without it every process sees distributed type NO:
`wait_for_everyone` and `reduce` do nothing and the model is not wrapped in DDP, so the processes would train and
write files independently of each other. The accelerate config key `use_cpu` does not reach the multi-GPU
launcher, and `ACCELERATE_USE_CPU=1` is only read by `Accelerator`, so the choice is made here, once.
"""

from __future__ import annotations

import os

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedType, parse_flag_from_env

from .distributed import launched_world_size


def use_cpu_processes(device: str | None = None) -> bool:
    """Whether this process should join a CPU (gloo) process group: asked for (`ACCELERATE_USE_CPU=1` or
    `device="cpu"`) or implied (no CUDA). Never for DeepSpeed launches, which set up their own group and which
    `cpu=True` would silently turn off."""
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED"):
        return False
    return parse_flag_from_env("ACCELERATE_USE_CPU") or device == "cpu" or not torch.cuda.is_available()


def process_state(device: str | None = None) -> PartialState:
    """This run's `PartialState` (a singleton: everything that asks for it later gets the same one), checked with
    `check_distributed`."""
    state = PartialState(cpu=use_cpu_processes(device))
    check_distributed(state)
    return state


def check_distributed(accelerator: Accelerator | PartialState) -> None:
    """Refuse a launch whose processes would not talk to each other (several processes, distributed type NO)."""
    launched = launched_world_size()
    if launched > 1 and accelerator.distributed_type == DistributedType.NO:
        raise RuntimeError(
            f"{launched} processes were launched (WORLD_SIZE={launched}) but accelerate set up no process group "
            "between them (distributed type NO), so each would run alone; on CPU machines launch with "
            "ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N"
        )


def quiet_deepspeed_probe() -> None:
    """accelerate imports deepspeed (when installed) while preparing or unwrapping models; on a machine without CUDA
    deepspeed then prints an accelerator-detection warning on stdout, which would corrupt command output. Naming
    the CPU accelerator up front silences it (it is what deepspeed falls back to); GPU machines are untouched."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")


__all__ = ["check_distributed", "process_state", "quiet_deepspeed_probe", "use_cpu_processes"]
