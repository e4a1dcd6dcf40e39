"""The pretraining loop (docs/pretraining.md) on Accelerate: one code path for a CPU smoke run, one GPU, DDP and
DeepSpeed ZeRO-2 on several nodes; only the `accelerate launch` configuration changes.

Per optimizer step, each of `gradient_accumulation_steps` micro-steps takes this process's `records_per_batch`
record visits (one 8-cell draw each) of the epoch plan (docs/data.md), builds the two views on the device, and
runs `SubCellForPreTraining`, which
gathers projections from all processes before the contrastive losses. Then, once per optimizer update: clip,
step, advance the LR schedule, log, validate, checkpoint.

Reproducibility: all randomness of a micro-step (views, masks, dropout) is seeded from (seed, process, micro-step
index), and the data from (seed, epoch, position); so a run resumed from a checkpoint repeats the uninterrupted run,
and starts reading where it stopped at no cost.

Signals: SIGTERM / SIGUSR1 during a step finish the step, save and stop (exit 143); while the loop waits for data,
they stop it at once (the half-done step is dropped and the state of the last complete step saved), so a stalled
input pipeline never keeps a run from ending.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.logging import get_logger
from accelerate.utils import InitProcessGroupKwargs, ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from ..data.augment import TwoViewAugmentation
from ..data.loader import ShardIndex, ShardReadError, build_pretraining_loader
from ..data.shards import SUMMARY_FILE, list_shards
from ..utils.distributed import launched_world_size
from ..utils.processes import check_distributed, use_cpu_processes
from .checkpoints import (
    CheckpointError,
    PreemptionWatcher,
    TrainingState,
    checkpoint_dir,
    list_checkpoints,
    load_checkpoint,
    register_training_states,
    resolve_resume,
    save_checkpoint,
    trim_log,
)
from .config import PretrainRecipeConfig
from .figures import save_attention_figure, save_reconstruction_figure
from .modeling_pretraining import SubCellForPreTraining
from .optim import build_lr_scheduler, build_optimizer
from .probe import embed_cells, load_validation_cells, probe_metrics

logger = get_logger(__name__)

PROJECT_NAME = "subcell-pretraining"
ENCODER_DIRNAME = "encoder"
METRICS_FILENAME = "metrics.jsonl"


class InvalidRunError(ValueError):
    """The run cannot start: missing shards, an impossible schedule, a checkpoint that is not there."""


class NonFiniteLossError(RuntimeError):
    """A loss term became NaN or infinite; the last good state was saved before raising."""


class StopWhileWaiting(BaseException):
    """A stop signal arrived while the loop was waiting for data. A `BaseException` (as `KeyboardInterrupt`), so
    that no `except Exception` on the way (e.g. the loader's replacement of unreadable records) swallows it."""


@dataclass
class TrainingResult:
    """What a call to `train` did."""

    step: int
    output_dir: Path
    checkpoint: Path | None = None
    encoder_dir: Path | None = None
    preempted: bool = False
    last_metrics: dict[str, float] = field(default_factory=dict)


def build_accelerator(config: PretrainRecipeConfig) -> Accelerator:
    output_dir = Path(config.train.output_dir)
    handlers = []
    if not torch.cuda.is_available() and launched_world_size() > 1:
        # Several CPU processes (tests, smoke runs): DeepSpeed otherwise picks a backend that sees a world of one.
        handlers.append(InitProcessGroupKwargs(backend="gloo"))
    accelerator = Accelerator(
        cpu=use_cpu_processes(),
        gradient_accumulation_steps=config.train.gradient_accumulation_steps,
        mixed_precision=config.train.mixed_precision,
        log_with=None if config.train.report_to == "none" else config.train.report_to,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        kwargs_handlers=handlers,
    )
    try:
        check_distributed(accelerator)
    except RuntimeError as error:
        raise InvalidRunError(str(error)) from None
    return accelerator


def build_model(config: PretrainRecipeConfig) -> SubCellForPreTraining:
    model_config = config.model.build_config()
    if config.model.init_from:
        encoder_keys = model_config.encoder_config().to_dict()
        overrides = {k: v for k, v in model_config.to_dict().items() if k not in encoder_keys}
        model = SubCellForPreTraining.from_encoder(config.model.init_from, **overrides)
    else:
        model = SubCellForPreTraining(model_config)
    if config.model.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return model


def configure_deepspeed(plugin, config: PretrainRecipeConfig, num_processes: int) -> None:
    """Fill the DeepSpeed values that Accelerate cannot infer because the loader is not `prepare`d (it splits by rank
    itself, see docs/data.md): train_batch_size = micro batch x accumulation x processes (DeepSpeed checks this
    rule), and our clipping."""
    settings = plugin.deepspeed_config
    if "optimizer" in settings or "scheduler" in settings:
        raise ValueError(
            "the DeepSpeed config must not define an optimizer or scheduler: pretraining passes AdamW with its "
            "parameter groups and steps its own schedule"
        )
    micro = config.cells_per_micro_batch
    accumulation = config.train.gradient_accumulation_steps
    settings["train_micro_batch_size_per_gpu"] = micro
    settings["gradient_accumulation_steps"] = accumulation
    settings["train_batch_size"] = micro * accumulation * num_processes
    settings["gradient_clipping"] = config.optim.max_grad_norm


def micro_step_seeds(seed: int, process_index: int, micro_batch: int) -> tuple[int, int]:
    """Two independent seeds (views, then masks + dropout) for one micro-step of one process."""
    first, second = np.random.SeedSequence([seed, process_index, micro_batch]).generate_state(2)
    return int(first), int(second)


class Pretrainer:
    """Holds what a run needs; `run()` trains until the schedule ends, the session limit, a preemption signal or a
    non-finite loss."""

    def __init__(self, config: PretrainRecipeConfig, accelerator: Accelerator | None = None):
        self.config = config
        check_shards("data.shards", config.data.shards)
        if config.data.validation_shards:
            check_shards("data.validation_shards", config.data.validation_shards)
        self.accelerator = accelerator or build_accelerator(config)
        self.output_dir = Path(config.train.output_dir)
        self.num_processes = self.accelerator.num_processes
        try:
            self.shard_index = ShardIndex(config.data.shards)
        except ShardReadError as error:
            raise InvalidRunError(f"data.shards={config.data.shards}: {error}") from None
        if config.data.records_per_epoch is None:
            config.data.records_per_epoch = records_in_shards(config.data.shards) or self.shard_index.visits_per_epoch
        try:
            self.total_steps, self.warmup_steps = config.schedule_steps(self.num_processes)
        except ValueError as error:
            raise InvalidRunError(str(error)) from None
        self.peak_learning_rate = config.peak_learning_rate(self.num_processes)
        self.cells_per_step = config.cells_per_step(self.num_processes)

        set_seed(config.train.seed)  # identical initial weights on every process
        model = build_model(config)
        self.model_config = model.config
        self.loss_names = ("loss",) + model.config.objectives
        optimizer = build_optimizer(
            model, self.peak_learning_rate, config.optim.weight_decay, tuple(config.optim.betas),
            policy=config.optim.weight_decay_policy,
        )
        self.scheduler = build_lr_scheduler(
            optimizer, self.warmup_steps, self.total_steps, config.optim.min_lr_ratio
        )
        if self.accelerator.state.deepspeed_plugin is not None:
            configure_deepspeed(self.accelerator.state.deepspeed_plugin, config, self.num_processes)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.state = TrainingState()
        register_training_states(self.accelerator, self.scheduler, self.state)  # read back without unpickling code
        self.augmentation = TwoViewAugmentation.for_family(config.model.family).to(self.accelerator.device)
        self._window: list[np.ndarray] = []
        self._window_start = time.perf_counter()

    # ---------------------------------------------------------------------------------------------- data
    def _batches(self) -> Iterator[dict]:
        """This process's micro-batches of the epoch plan, from micro-batch `state.micro_batches` on (exact resume:
        the plan is a function of the position, nothing is replayed)."""
        data = self.config.data
        self.loader = build_pretraining_loader(
            data.shards,
            batch_records=data.records_per_batch,
            cells_per_record=data.cells_per_record,
            channel_names=list(self.model_config.channel_names),
            num_workers=data.num_workers,
            seed=self.config.train.seed,
            start=self.state.micro_batches,
            rank=self.accelerator.process_index,
            world_size=self.num_processes,
            index=self.shard_index,
        )
        return iter(self.loader)

    def _next_batch(self, batches: Iterator[dict]) -> dict:
        """The next micro-batch; a stop signal while waiting for it raises `StopWhileWaiting` at once."""
        with _stop_signals_interrupt(self._watcher):
            try:
                return next(batches)
            except ShardReadError as error:
                raise InvalidRunError(f"data.shards={self.config.data.shards}: {error}") from None

    # ---------------------------------------------------------------------------------------------- steps
    def _micro_step(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward one micro-batch; returns the loss to back-propagate and the process-averaged
        [loss, *terms, stop] report."""
        device = self.accelerator.device
        view_seed, model_seed = micro_step_seeds(
            self.config.train.seed, self.accelerator.process_index, self.state.micro_batches
        )
        self.state.micro_batches += 1
        views = self.augmentation(
            batch["cells"].to(device, non_blocking=True),
            batch["masks"].to(device, non_blocking=True),
            cells_per_record=self.config.data.cells_per_record,
            generator=torch.Generator().manual_seed(view_seed),
        )
        torch.manual_seed(model_seed)
        output = self.model(
            pixel_values=views["view1"],
            second_view_pixel_values=views["view2"],
            antibody_ids=batch["antibody_id"].to(device),
            cell_masks=views["mask1"],
            second_view_cell_masks=views["mask2"],
        )
        terms = output.loss_terms()
        values = [output.loss] + [terms[name] for name in self.loss_names[1:]]
        stop = torch.tensor(float(bool(self._watcher and self._watcher.requested)), device=device)
        report = torch.stack([value.detach().float() for value in values] + [stop])
        return output.loss, self.accelerator.reduce(report, reduction="mean")

    def _optimizer_step(self, batches: Iterator[dict]) -> tuple[np.ndarray, dict, bool]:
        """One optimizer update over `gradient_accumulation_steps` micro-batches. Returns the mean reported terms,
        the learning rate and gradient norm of the update, and whether any process saw a stop signal."""
        accelerator = self.accelerator
        start_micro_batches = self.state.micro_batches
        reports, grad_norm = [], None
        for index in range(self.config.train.gradient_accumulation_steps):
            try:
                batch = self._next_batch(batches)
            except StopWhileWaiting:
                self.state.micro_batches = start_micro_batches  # the step is dropped; redone after resume
                self.optimizer.zero_grad(set_to_none=True)
                raise
            with accelerator.accumulate(self.model):
                loss, report = self._micro_step(batch)
                if not torch.isfinite(report[:-1]).all():
                    self.state.micro_batches = start_micro_batches
                    self._fail_non_finite(report, index)
                accelerator.backward(loss)
                if accelerator.sync_gradients and self.config.optim.max_grad_norm > 0:
                    grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), self.config.optim.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
            reports.append(report.cpu().numpy())
        learning_rate = float(self.scheduler.get_last_lr()[0])  # the rate this update used
        self.scheduler.step()
        self.state.step += 1
        self.state.cells_seen += self.cells_per_step
        mean_report = np.mean(reports, axis=0)
        stop = bool(np.max([r[-1] for r in reports]) > 0)
        grad_norm = None if grad_norm is None else float(grad_norm)
        return mean_report[:-1], {"learning_rate": learning_rate, "grad_norm": grad_norm}, stop

    def _fail_non_finite(self, report: torch.Tensor, micro_index: int) -> None:
        """Save the last good state (parameters before this step) and raise, naming the step and the term."""
        values = dict(zip(self.loss_names, report[:-1].tolist()))
        bad = [name for name, value in values.items() if name != "loss" and not math.isfinite(value)] or ["loss"]
        existing = checkpoint_dir(self.output_dir, self.state.step)
        saved = existing if existing.is_dir() else save_checkpoint(self.accelerator, self.output_dir, self.state.step)
        described = ", ".join(f"{name}={value:.6g}" for name, value in values.items())
        raise NonFiniteLossError(
            f"non-finite loss at step {self.state.step + 1} (micro-batch {micro_index + 1} of "
            f"{self.config.train.gradient_accumulation_steps}): term {', '.join(bad)} ({described}); "
            f"the last good state (after step {self.state.step}) is in {saved}"
        )

    # ---------------------------------------------------------------------------------------------- logging
    def _log(self, losses: np.ndarray, update: dict, progress: tqdm) -> dict[str, float]:
        self._window.append(losses)
        metrics = {f"train/{name}": float(value) for name, value in zip(self.loss_names, losses)}
        metrics.update({f"train/{name}": value for name, value in update.items() if value is not None})
        progress.update(1)
        progress.set_postfix(loss=f"{losses[0]:.4f}", lr=f"{metrics['train/learning_rate']:.2e}")
        if self.state.step % self.config.train.log_every and self.state.step != self.total_steps:
            return metrics
        elapsed = time.perf_counter() - self._window_start
        window = np.mean(self._window, axis=0)
        metrics.update({f"train/{name}": float(value) for name, value in zip(self.loss_names, window)})
        metrics["train/cells_per_second"] = len(self._window) * self.cells_per_step / max(elapsed, 1e-9)
        metrics["train/global_batch_cells"] = self.cells_per_step
        metrics["train/cells_seen"] = self.state.cells_seen
        skipped = torch.tensor(float(self.loader.num_skipped), device=self.accelerator.device)
        metrics["train/skipped_samples"] = int(self.accelerator.reduce(skipped, reduction="sum").item())
        self._window, self._window_start = [], time.perf_counter()
        self._record(metrics)
        if self.accelerator.is_main_process:
            shown = " ".join(f"{k.split('/', 1)[1]}={v:.4g}" for k, v in metrics.items())
            progress.write(f"step {self.state.step}/{self.total_steps} {shown}")
        return metrics

    def _record(self, metrics: dict[str, float]) -> None:
        self.accelerator.log(metrics, step=self.state.step)
        if self.accelerator.is_main_process:
            with open(self.output_dir / METRICS_FILENAME, "a") as handle:
                handle.write(json.dumps({"step": self.state.step, **metrics}) + "\n")

    # ---------------------------------------------------------------------------------------------- validation
    def validate(self) -> dict[str, float]:
        """Linear probe + kNN of the localization labels on validation cells, and PNG figures (main process)."""
        metrics: dict[str, float] = {}
        if self.accelerator.is_main_process and self.config.data.validation_shards:
            model = self.accelerator.unwrap_model(self.model)
            validation = load_validation_cells(
                self.config.data.validation_shards, self.model_config.channel_names, self.config.eval.num_cells
            )
            embeddings = embed_cells(model.subcell, validation.cells)
            scores = probe_metrics(embeddings, validation.labels, validation.antibody_ids)
            metrics = {f"eval/{k}": v for k, v in scores.items()}
            figures = self.config.eval.num_figures
            self._figures(model, validation.cells[:figures], validation.masks[:figures])
            self._record(metrics)
            shown = " ".join(f"{name}={value:.4f}" for name, value in metrics.items())
            tqdm.write(f"validation at step {self.state.step}: {shown}")
        self.accelerator.wait_for_everyone()
        return metrics

    @torch.no_grad()
    def _figures(self, model: SubCellForPreTraining, cells: torch.Tensor, masks: torch.Tensor) -> None:
        if not len(cells):
            return
        from ..models import min_max_normalize

        was_training = model.training
        model.eval()
        device = self.accelerator.device
        pixels = min_max_normalize(cells.to(device)).to(model.subcell.embeddings.projection.weight.dtype)
        figures = self.output_dir / "figures"
        channels = self.model_config.channel_names
        attentions = model.subcell(pixels).pool_attentions
        save_attention_figure(figures / f"attention_step{self.state.step:08d}.png", pixels, attentions, channels)
        if model.pretraining_heads.decoder is not None:
            reconstruction, patch_mask = model.reconstruct(pixels, masks.to(device))  # object-aware masking needs them
            save_reconstruction_figure(
                figures / f"reconstruction_step{self.state.step:08d}.png", pixels, reconstruction, patch_mask,
                self.model_config.patch_size, channels, self.model_config.norm_pix_loss,
            )
        model.train(was_training)

    # ---------------------------------------------------------------------------------------------- run
    def run(self, resume: str | None = None) -> TrainingResult:
        accelerator, config = self.accelerator, self.config
        try:
            checkpoint = resolve_resume(self.output_dir, resume)
        except FileNotFoundError as error:
            raise InvalidRunError(str(error)) from None
        if checkpoint is not None:
            try:
                load_checkpoint(accelerator, checkpoint)
            except CheckpointError as error:
                raise InvalidRunError(str(error)) from None
            if accelerator.is_main_process:
                trim_log(self.output_dir / METRICS_FILENAME, self.state.step)  # the replayed steps are logged again
            logger.info(f"resumed from {checkpoint} at step {self.state.step}", main_process_only=True)
        self._start()
        end_step = self.total_steps
        if config.train.stop_after_steps is not None:
            end_step = min(end_step, self.state.step + config.train.stop_after_steps)

        batches = self._batches()
        progress = tqdm(
            total=self.total_steps, initial=self.state.step, desc="pretraining", unit="step",
            disable=not accelerator.is_main_process, dynamic_ncols=True,
        )
        metrics: dict[str, float] = {}
        result = TrainingResult(step=self.state.step, output_dir=self.output_dir)
        stopped_waiting = False
        self.model.train()
        try:
            with PreemptionWatcher() as self._watcher:
                while self.state.step < end_step:
                    try:
                        losses, update, stop = self._optimizer_step(batches)
                    except StopWhileWaiting:
                        result.preempted = stopped_waiting = True
                        break
                    metrics = self._log(losses, update, progress)
                    step = self.state.step
                    if config.eval.every and (step % config.eval.every == 0 or step == self.total_steps):
                        metrics.update(self.validate())
                    if stop:
                        result.preempted = True
                        logger.warning(f"stop signal received: saving state at step {step}", main_process_only=True)
                        break
                    if config.train.save_every and step % config.train.save_every == 0 and step < end_step:
                        save_checkpoint(accelerator, self.output_dir, step, config.train.keep_checkpoints)
        finally:
            self._watcher = None
            progress.close()

        result.step = self.state.step
        result.last_metrics = metrics
        if stopped_waiting and self.num_processes > 1:
            # the other processes may be inside a collective: saving (a collective too) could hang; the last
            # periodic checkpoint stands
            saved = list_checkpoints(self.output_dir)
            result.checkpoint = saved[-1] if saved else None
            logger.warning(f"stop signal while waiting for data: stopping without saving at step {result.step}")
            return result
        if stopped_waiting:
            logger.warning(f"stop signal while waiting for data: saving state at step {result.step}")
        result.checkpoint = save_checkpoint(
            accelerator, self.output_dir, self.state.step, config.train.keep_checkpoints
        )
        if self.state.step >= self.total_steps:
            result.encoder_dir = self.export()
        accelerator.end_training()
        return result

    def _start(self) -> None:
        """Write the resolved config, start the trackers, log the batch arithmetic."""
        self._watcher = None
        accelerator, config = self.accelerator, self.config
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            (self.output_dir / "config.yaml").write_text(config.to_yaml())
        flat = _flatten(config.to_dict())
        accelerator.init_trackers(
            PROJECT_NAME, config={k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in flat.items()}
        )
        index = self.shard_index
        problems = ""
        if index.problems:
            problems = f"; {len(index.problems)} shard(s) unreadable in part: {sorted(index.problems)[:3]}"
        logger.info(
            f"{config.describe_batch(self.num_processes)}\n"
            f"shards: {len(index)} records, {index.visits_per_epoch} visits per epoch{problems}\n"
            f"objectives {self.loss_names[1:]}; weight decay policy {config.optim.weight_decay_policy}; "
            f"distributed {accelerator.distributed_type.value}",
            main_process_only=True,
        )
        self._window_start = time.perf_counter()

    def export(self) -> Path:
        """Write the encoder + pooler as a `SubCellModel` folder under `output_dir/encoder` (main process)."""
        destination = self.output_dir / ENCODER_DIRNAME
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            self.accelerator.unwrap_model(self.model).export_encoder(destination)
        self.accelerator.wait_for_everyone()
        return destination


def train(config: PretrainRecipeConfig, resume: str | None = None) -> TrainingResult:
    """Run (or continue, with `resume="auto"` or a checkpoint path) a pretraining run."""
    return Pretrainer(config).run(resume)


# -------------------------------------------------------------------------------------------------- helpers
def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and value and key != "config_overrides":
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def check_shards(name: str, shards: str) -> None:
    """Fail early, naming the setting, when local shards are missing (remote URLs are left to webdataset)."""
    if not shards:
        raise InvalidRunError(f"{name} is not set: give a shard folder, brace pattern or list of .tar files")
    try:
        urls = list_shards(shards)
    except (FileNotFoundError, ValueError) as error:
        raise InvalidRunError(f"{name}={shards}: {error}") from None
    missing = [url for url in urls if "://" not in url and not url.startswith("pipe:") and not Path(url).is_file()]
    if not urls or missing:
        raise InvalidRunError(f"{name}={shards}: no such shard file(s): {missing[:3] or urls}")


def records_in_shards(shards: str) -> int | None:
    """Record visits per epoch (parts x mult) in the `summary.json` next to a shard folder, if there is one."""
    summary = Path(shards) / SUMMARY_FILE
    if not summary.is_file():
        return None
    values = json.loads(summary.read_text())
    return int(values.get("records_per_epoch") or values["num_records"])


@contextmanager
def _stop_signals_interrupt(watcher: PreemptionWatcher | None):
    """While inside, SIGTERM / SIGUSR1 are recorded on `watcher` and raise `StopWhileWaiting` at once (main thread
    only; elsewhere the signals keep their handlers)."""
    if watcher is None:
        yield
        return

    def interrupt(signum, frame):
        watcher.received = signum
        raise StopWhileWaiting(signum)

    previous = {}
    try:
        for signum in PreemptionWatcher.SIGNALS:
            previous[signum] = signal.signal(signum, interrupt)
    except ValueError:  # not the main thread
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = [
    "InvalidRunError",
    "NonFiniteLossError",
    "Pretrainer",
    "TrainingResult",
    "build_accelerator",
    "build_model",
    "configure_deepspeed",
    "micro_step_seeds",
    "train",
]
