"""Typed configuration of a pretraining run: nested dataclasses, read from a YAML file and overridden from the
command line with dotted names (`--optim.learning_rate 1e-3`, `--train.max_steps=50`).

A YAML file has one mapping per section (`model`, `data`, `optim`, `train`, `eval`); every key is a field below.
Values given on the command line are parsed as YAML scalars or lists (`--optim.betas "[0.9, 0.95]"`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..variants import CHANNEL_VARIANTS, MODEL_FAMILIES
from .configuration_pretraining import SubCellPreTrainingConfig


@dataclass
class ModelConfig:
    """What to train."""

    family: str = field(
        default="mae-cells-prots-pool", metadata={"help": f"one of {sorted(MODEL_FAMILIES)}: objectives and positions"}
    )
    channel_variant: str = field(default="all_channels", metadata={"help": f"one of {sorted(CHANNEL_VARIANTS)}"})
    config_overrides: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "SubCellPreTrainingConfig arguments that replace the paper's (e.g. sizes of a tiny model)"},
    )
    init_from: str | None = field(
        default=None, metadata={"help": "start from this SubCellModel (Hub id or folder) instead of random weights"}
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "sdpa, eager or a transformers kernel name"})
    gradient_checkpointing: bool = field(default=False, metadata={"help": "recompute activations to save memory"})

    def build_config(self) -> SubCellPreTrainingConfig:
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

    shards: str = field(
        default="", metadata={"help": "training shards: a folder of shard-*.tar, a brace pattern or one .tar"}
    )
    validation_shards: str | None = field(
        default=None, metadata={"help": "a small held-out shard set (its first eval.num_cells cells)"}
    )
    records_per_batch: int = field(
        default=14, metadata={"help": "record (part) visits per process per micro-step, one 8-cell draw each"}
    )
    cells_per_record: int = field(default=8, metadata={"help": "cells drawn per record visit (release: 8)"})
    num_workers: int = field(default=8, metadata={"help": "data-loading worker processes per training process"})
    records_per_epoch: int | None = field(
        default=None,
        metadata={"help": "record visits in one epoch (parts x mult); default: the shards' summary.json"},
    )


@dataclass
class OptimConfig:
    """AdamW and the learning-rate schedule (docs/pretraining.md, "Optimisation")."""

    base_learning_rate: float = field(default=1e-4, metadata={"help": "learning rate per 256 cells of global batch"})
    learning_rate: float | None = field(default=None, metadata={"help": "absolute peak rate (skips the scaling)"})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay (see weight_decay_policy)"})
    weight_decay_policy: str = field(
        default="default",
        metadata={
            "help": "default: decay Linear / Conv2d weight matrices only; release: every tensor with ndim > 1 "
            "(CLS and position embeddings too) and the projector heads at 0.01, as the released code"
        },
    )
    betas: tuple[float, float] = field(default=(0.9, 0.95), metadata={"help": "AdamW betas"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient-norm clipping (0 disables)"})
    min_lr_ratio: float = field(
        default=1e-3, metadata={"help": "final rate of the linear decay, as a fraction of the peak"}
    )
    epochs: float | None = field(default=300, metadata={"help": "schedule length in epochs (with records_per_epoch)"})
    warmup_epochs: float | None = field(default=5, metadata={"help": "warmup length in epochs"})
    max_steps: int | None = field(default=None, metadata={"help": "schedule length in optimizer steps (wins)"})
    warmup_steps: int | None = field(default=None, metadata={"help": "warmup length in optimizer steps (wins)"})


@dataclass
class TrainConfig:
    """The loop: output, precision, logging and checkpoints."""

    output_dir: str = field(default="outputs/pretrain", metadata={"help": "checkpoints, logs, figures, export"})
    seed: int = field(default=0, metadata={"help": "model init, data order, views and masks"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-steps per optimizer step"})
    mixed_precision: str | None = field(
        default=None, metadata={"help": "no or bf16; default: what the accelerate config says"}
    )
    log_every: int = field(default=10, metadata={"help": "optimizer steps between log lines"})
    save_every: int = field(default=1000, metadata={"help": "optimizer steps between checkpoints (0: only at end)"})
    keep_checkpoints: int = field(default=3, metadata={"help": "most recent checkpoints kept"})
    report_to: str = field(default="tensorboard", metadata={"help": "tensorboard, trackio or none"})
    stop_after_steps: int | None = field(
        default=None, metadata={"help": "end this session after this many optimizer steps (the schedule is unchanged)"}
    )


@dataclass
class EvalConfig:
    """Periodic validation: a linear probe of the localization labels and kNN, plus PNG figures."""

    every: int = field(default=1000, metadata={"help": "optimizer steps between validations (0 disables)"})
    num_cells: int = field(default=1024, metadata={"help": "validation cells embedded each time"})
    num_figures: int = field(default=8, metadata={"help": "cells shown in the reconstruction / attention PNGs"})


@dataclass
class PretrainRecipeConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.model.family not in MODEL_FAMILIES:
            raise ValueError(f"model.family must be one of {sorted(MODEL_FAMILIES)}, found {self.model.family!r}")
        if self.model.channel_variant not in CHANNEL_VARIANTS:
            raise ValueError(
                f"model.channel_variant must be one of {sorted(CHANNEL_VARIANTS)}, found {self.model.channel_variant!r}"
            )
        if self.train.mixed_precision not in (None, "no", "bf16"):
            raise ValueError(f"train.mixed_precision must be no or bf16, found {self.train.mixed_precision!r}")
        if self.train.report_to not in ("tensorboard", "trackio", "none"):
            raise ValueError(f"train.report_to must be tensorboard, trackio or none, found {self.train.report_to!r}")
        for name in ("records_per_batch", "cells_per_record"):
            if getattr(self.data, name) < 1:
                raise ValueError(f"data.{name} must be >= 1, found {getattr(self.data, name)}")
        if self.optim.weight_decay_policy not in ("default", "release"):
            raise ValueError(
                f"optim.weight_decay_policy must be default or release, found {self.optim.weight_decay_policy!r}"
            )
        if self.train.gradient_accumulation_steps < 1:
            raise ValueError(
                f"train.gradient_accumulation_steps must be >= 1, found {self.train.gradient_accumulation_steps}"
            )

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
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self.to_dict()), sort_keys=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> "PretrainRecipeConfig":
        sections = {}
        known = {f.name: f for f in dataclasses.fields(cls)}
        for section, entries in (values or {}).items():
            if section not in known:
                raise ValueError(f"{source}: unknown section {section!r}; expected one of {sorted(known)}")
            section_type = typing.get_type_hints(cls)[section]
            sections[section] = _build_section(section_type, entries or {}, f"{source}: {section}")
        return cls(**sections)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build_section(section_type: type, entries: dict[str, Any], where: str):
    if not isinstance(entries, dict):
        raise ValueError(f"{where}: expected a mapping of fields, found {type(entries).__name__}")
    hints = typing.get_type_hints(section_type)
    names = [f.name for f in dataclasses.fields(section_type)]
    values = {}
    for key, value in entries.items():
        if key not in hints:
            raise ValueError(f"{where}: unknown field {key!r}; expected one of {names}")
        values[key] = _coerce(value, hints[key], f"{where}.{key}")
    return section_type(**values)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against a field's type hint, converting the YAML spellings that PyYAML leaves as strings
    (e.g. `1e-4`)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        errors = []
        for option in (a for a in arguments if a is not type(None)):
            try:
                return _coerce(value, option, where)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if hint is Any:
        return value
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, found {value!r}")
        item_hint = arguments[0] if arguments else Any
        items = [_coerce(v, item_hint, where) for v in value]
        if origin is tuple and arguments and arguments[-1] is not Ellipsis and len(items) != len(arguments):
            raise ValueError(f"{where}: expected {len(arguments)} values, found {len(items)}")
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, found {value!r}")
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where}: expected true or false, found {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{where}: expected a number, found {value!r}")
        try:
            number = float(value) if hint is float else int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: expected {hint.__name__}, found {value!r}") from None
        if hint is int and isinstance(value, float) and number != value:
            raise ValueError(f"{where}: expected an integer, found {value!r}")
        return number
    if hint is str:
        if isinstance(value, (dict, list)):
            raise ValueError(f"{where}: expected a string, found {value!r}")
        return str(value)
    return value


def build_argument_parser(description: str | None = None) -> argparse.ArgumentParser:
    """`--config FILE` plus one `--section.field` option per field, each documented with its default."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file with the run's settings (sections model, data, optim, train, eval)")
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None,
        help="continue from the latest checkpoint in train.output_dir (or from the given checkpoint folder)",
    )
    defaults = PretrainRecipeConfig()
    for section in dataclasses.fields(PretrainRecipeConfig):
        section_type = typing.get_type_hints(PretrainRecipeConfig)[section.name]
        group = parser.add_argument_group(section.name, section_type.__doc__)
        for item in dataclasses.fields(section_type):
            default = getattr(getattr(defaults, section.name), item.name)
            group.add_argument(
                f"--{section.name}.{item.name}",
                dest=f"{section.name}.{item.name}",
                type=_yaml_value,
                default=argparse.SUPPRESS,
                metavar="VALUE",
                help=f"{item.metadata.get('help', '')} (default: {default!r})",
            )
    return parser


def _read_yaml(path: Path) -> Any:
    """The YAML file's content; a missing file or a syntax error is a `ValueError` naming the file (and line)."""
    if not path.is_file():
        raise ValueError(f"{path}: config file not found (give a YAML file or a preset name of recipes/configs/)")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
        raise ValueError(f"{path}{where}: not valid YAML ({getattr(error, 'problem', None) or error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: unreadable config file ({error})") from None


def _yaml_value(text: str) -> Any:
    """A command-line override read as YAML (so `1e-4`, `[0.9, 0.95]`, `true` have their types)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid YAML value ({error})") from None


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> PretrainRecipeConfig:
    """A `PretrainRecipeConfig` from a YAML file (or the defaults) with `{"section.field": value}` overrides on top."""
    values: dict[str, dict[str, Any]] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        values = _read_yaml(Path(path)) or {}
        if not isinstance(values, dict):
            raise ValueError(f"{source}: expected a mapping of sections, found {type(values).__name__}")
    values = {section: dict(entries or {}) for section, entries in values.items()}
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.partition(".")
        values.setdefault(section, {})[name] = value
    return PretrainRecipeConfig.from_dict(values, source=source)


def parse_args(argv: list[str] | None = None, description: str | None = None) -> tuple[PretrainRecipeConfig, str | None]:
    """Parse a command line into the run's configuration and the `--resume` value."""
    parser = build_argument_parser(description)
    arguments = vars(parser.parse_args(argv))
    path, resume = arguments.pop("config"), arguments.pop("resume")
    try:
        return load_config(path, arguments), resume
    except ValueError as error:
        parser.error(str(error))


__all__ = [
    "DataConfig",
    "EvalConfig",
    "ModelConfig",
    "OptimConfig",
    "PretrainRecipeConfig",
    "TrainConfig",
    "build_argument_parser",
    "load_config",
    "parse_args",
]
