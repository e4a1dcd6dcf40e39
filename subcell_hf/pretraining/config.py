"""Typed configuration of a pretraining run: nested dataclasses that draccus reads from a YAML file and the command
line (`--config_path recipes/configs/tiny.yaml --optim.learning_rate 1e-3 --train.max_steps=50`).

A YAML file has one mapping per section (`model`, `data`, `optim`, `train`, `eval`); every key is a field below.
Command-line values are read as YAML (`--optim.betas "[0.9, 0.95]"`). The comment above each field is its
`--help` text. This module imports neither torch nor transformers, so that `recipes/pretrain.py --help` is fast.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import draccus

if TYPE_CHECKING:
    from .configuration_pretraining import SubCellPreTrainingConfig


@dataclass
class ModelConfig:
    """What to train."""

    # the model family (objectives and positions): vit-prots-pool or mae-cells-prots-pool
    family: str = "mae-cells-prots-pool"
    # the input channels: all_channels, er-dna-protein, microtubules-dna-protein or dna-protein
    channel_variant: str = "all_channels"
    # SubCellPreTrainingConfig arguments that replace the paper's (e.g. the sizes of a tiny model)
    config_overrides: dict[str, Any] = field(default_factory=dict)
    # start from this SubCellModel (Hub id or folder) instead of random weights
    init_from: str | None = None
    # sdpa, eager or a transformers kernel name
    attn_implementation: str = "sdpa"
    # recompute activations in the backward pass to save memory
    gradient_checkpointing: bool = False

    def build_config(self) -> SubCellPreTrainingConfig:
        from ..variants import CHANNEL_VARIANTS
        from .configuration_pretraining import SubCellPreTrainingConfig

        config = SubCellPreTrainingConfig.for_family(
            self.family,
            channel_names=list(CHANNEL_VARIANTS[self.channel_variant].channels),
            **self.config_overrides,
        )
        config._attn_implementation = self.attn_implementation
        return config


@dataclass
class DataConfig:
    """Where cells come from and how many per step."""

    # training shards: a folder of shard-*.tar, a brace pattern or one .tar
    shards: str = ""
    # a small held-out shard set (its first eval.num_cells cells are validated)
    validation_shards: str | None = None
    # record (part) visits per process per micro-step, one draw of cells_per_record cells each
    records_per_batch: int = 14
    # cells drawn per record visit (release: 8)
    cells_per_record: int = 8
    # data-loading worker processes per training process
    num_workers: int = 8
    # record visits in one epoch (parts x mult); default: the shards' summary.json
    records_per_epoch: int | None = None


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule (docs/pretraining.md, "Optimisation")."""

    # learning rate per 256 cells of global batch
    base_learning_rate: float = 1e-4
    # absolute peak learning rate (skips the batch scaling)
    learning_rate: float | None = None
    # AdamW weight decay (see weight_decay_policy)
    weight_decay: float = 0.05
    # default: decay Linear / Conv2d weight matrices only; release: every tensor with ndim > 1 (CLS and position
    # embeddings too) and the projector heads at 0.01, as the released code
    weight_decay_policy: str = "default"
    # AdamW betas
    betas: tuple[float, float] = (0.9, 0.95)
    # gradient-norm clipping (0 disables)
    max_grad_norm: float = 1.0
    # final rate of the linear decay, as a fraction of the peak
    min_lr_ratio: float = 1e-3
    # schedule length in epochs (needs data.records_per_epoch or the shards' summary.json)
    epochs: float | None = 300
    # warmup length in epochs
    warmup_epochs: float | None = 5
    # schedule length in optimizer steps (wins over epochs)
    max_steps: int | None = None
    # warmup length in optimizer steps (wins over warmup_epochs)
    warmup_steps: int | None = None


@dataclass
class TrainConfig:
    """The loop: output, precision, logging and checkpoints."""

    # checkpoints, logs, figures and the exported encoder
    output_dir: str = "outputs/pretrain"
    # model init, data order, views and masks
    seed: int = 0
    # micro-steps per optimizer step
    gradient_accumulation_steps: int = 1
    # no or bf16; default: what the accelerate config says
    mixed_precision: str | None = None
    # optimizer steps between log lines
    log_every: int = 10
    # optimizer steps between checkpoints (0: only at the end)
    save_every: int = 1000
    # most recent checkpoints kept
    keep_checkpoints: int = 3
    # tensorboard, trackio or none
    report_to: str = "tensorboard"
    # end this session after this many optimizer steps (the schedule is unchanged)
    stop_after_steps: int | None = None


@dataclass
class EvalConfig:
    """Periodic validation: a linear probe of the localization labels and kNN, plus PNG figures."""

    # optimizer steps between validations (0 disables)
    every: int = 1000
    # validation cells embedded each time
    num_cells: int = 1024
    # cells shown in the reconstruction / attention PNGs
    num_figures: int = 8


@dataclass
class PretrainRecipeConfig:
    """A pretraining run (`recipes/pretrain.py`): the sections below, from a YAML file and the command line."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # continue a run: auto (the latest complete checkpoint in train.output_dir) or a checkpoint folder; not
    # written to the run's config.yaml
    resume: str | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        from ..variants import CHANNEL_VARIANTS, MODEL_FAMILIES

        def check(ok: bool, name: str, expected: str, found: Any) -> None:
            if not ok:
                raise ValueError(f"{name} must be {expected}, found {found!r}")

        check(self.model.family in MODEL_FAMILIES, "model.family", f"one of {sorted(MODEL_FAMILIES)}",
              self.model.family)
        check(self.model.channel_variant in CHANNEL_VARIANTS, "model.channel_variant",
              f"one of {sorted(CHANNEL_VARIANTS)}", self.model.channel_variant)
        check(self.train.mixed_precision in (None, "no", "bf16"), "train.mixed_precision", "no or bf16",
              self.train.mixed_precision)
        check(self.train.report_to in ("tensorboard", "trackio", "none"), "train.report_to",
              "tensorboard, trackio or none", self.train.report_to)
        for name in ("records_per_batch", "cells_per_record"):
            check(getattr(self.data, name) >= 1, f"data.{name}", ">= 1", getattr(self.data, name))
        check(self.optim.weight_decay_policy in ("default", "release"), "optim.weight_decay_policy",
              "default or release", self.optim.weight_decay_policy)
        check(self.train.gradient_accumulation_steps >= 1, "train.gradient_accumulation_steps", ">= 1",
              self.train.gradient_accumulation_steps)

    @property
    def cells_per_micro_batch(self) -> int:
        """Cells one process feeds the model per micro-step (DeepSpeed's `train_micro_batch_size_per_gpu`)."""
        return self.data.records_per_batch * self.data.cells_per_record

    def records_per_step(self, num_processes: int) -> int:
        return self.data.records_per_batch * num_processes * self.train.gradient_accumulation_steps

    def cells_per_step(self, num_processes: int) -> int:
        """The global batch in cells: per-process batch x processes x accumulation (896 in the paper)."""
        return self.cells_per_micro_batch * num_processes * self.train.gradient_accumulation_steps

    def schedule_steps(self, num_processes: int) -> tuple[int, int]:
        """(total optimizer steps, warmup steps): explicit steps win; epochs need `data.records_per_epoch`."""
        optim = self.optim

        def from_epochs(epochs: float | None, name: str) -> int:
            if epochs is None or not self.data.records_per_epoch:
                raise ValueError(
                    f"set optim.{name}_steps, or optim.{name}s together with data.records_per_epoch "
                    f"(found {name}s={epochs}, records_per_epoch={self.data.records_per_epoch})"
                )
            return math.ceil(epochs * self.data.records_per_epoch / self.records_per_step(num_processes))

        total = optim.max_steps if optim.max_steps is not None else from_epochs(optim.epochs, "epoch")
        warmup = (
            optim.warmup_steps if optim.warmup_steps is not None else from_epochs(optim.warmup_epochs, "warmup_epoch")
        )
        if total < 1 or not 0 <= warmup < total:
            raise ValueError(f"need 0 <= warmup steps < total steps, found warmup={warmup}, total={total}")
        return total, warmup

    def describe_batch(self, num_processes: int) -> str:
        """The run's batch arithmetic, steps per epoch and total steps, in words (logged when a run starts)."""
        data, optim = self.data, self.optim
        records = self.records_per_step(num_processes)
        lines = [
            f"global batch: {num_processes} process(es) x {data.records_per_batch} records x "
            f"{self.train.gradient_accumulation_steps} accumulation = {records} records x {data.cells_per_record} "
            f"cells = {self.cells_per_step(num_processes)} cells",
        ]
        if optim.learning_rate is not None:
            lines.append(f"peak learning rate: {optim.learning_rate:.3g} (absolute)")
        else:
            lines.append(
                f"peak learning rate: {optim.base_learning_rate:.3g} x {self.cells_per_step(num_processes)} / 256 = "
                f"{self.peak_learning_rate(num_processes):.3g}"
            )
        if data.records_per_epoch:
            lines.append(
                f"epoch: {data.records_per_epoch} record visits (parts x mult) / {records} = "
                f"{data.records_per_epoch / records:.1f} steps"
            )
        try:
            total, warmup = self.schedule_steps(num_processes)
            lines.append(f"schedule: {total} steps ({warmup} warmup, then linear decay to {optim.min_lr_ratio:.3g})")
        except ValueError as error:
            lines.append(f"schedule: {error}")
        return "\n".join(lines)

    def peak_learning_rate(self, num_processes: int) -> float:
        from .optim import scaled_learning_rate

        if self.optim.learning_rate is not None:
            return self.optim.learning_rate
        return scaled_learning_rate(self.optim.base_learning_rate, self.cells_per_step(num_processes))

    def to_dict(self) -> dict[str, Any]:
        """The run's settings (the sections; `resume` says how this session started, not what the run is)."""
        values = draccus.encode(self)
        values.pop("resume", None)
        return values

    def to_yaml(self) -> str:
        """YAML that `--config_path` (and `load_config`) read back into an equal config."""
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PretrainRecipeConfig:
    """A `PretrainRecipeConfig` from a YAML file (or the defaults) with `{"section.field": value}` overrides on top,
    read exactly as `recipes/pretrain.py --config_path path --section.field value` reads them. A bad file or value is
    a `ValueError` naming the file, the field, the expected and the found value."""
    from ..utils.config_cli import parse_config

    argv = [] if path is None else ["--config_path", str(path)]
    argv += [f"--{name}={json.dumps(value)}" for name, value in (overrides or {}).items()]  # JSON is YAML
    return parse_config(PretrainRecipeConfig, argv, exit_on_error=False)


__all__ = [
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainRecipeConfig",
    "TrainConfig",
    "load_config",
]
