"""The pretraining loop on the `tiny` preset and synthetic shards: one process in-process, preemption and
resume, two DDP processes, DeepSpeed ZeRO-2 with two processes, and the non-finite-loss stop. Only the multi-process
runs are launched (`accelerate launch`); the rest runs in this process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from accelerate.utils import DeepSpeedPlugin
from safetensors.torch import load_file
from transformers import AutoModel

from subcell_hf.pretraining import SubCellForPreTraining
from subcell_hf.pretraining.checkpoints import list_checkpoints
from subcell_hf.pretraining.config import load_config
from subcell_hf.pretraining.trainer import NonFiniteLossError, configure_deepspeed, train
from tests.utils import (
    ROOT,
    TINY_PRESET,
    as_cli,
    environment_without,
    free_port,
    load_recipe,
    reset_accelerate_state,
    tiny_run_overrides,
)

ACCELERATE_CONFIGS = ROOT / "recipes" / "accelerate"
TOTAL_STEPS = 10


def run_overrides(output_dir: Path, shards: dict, **extra) -> dict:
    return tiny_run_overrides(output_dir, shards, **{"optim.max_steps": TOTAL_STEPS, **extra})


def launch_command(accelerate_config: str, overrides: dict, *launch_options: str) -> list[str]:
    """`accelerate launch --config_file recipes/accelerate/<config> recipes/pretrain.py --config_path tiny ...` on a
    free rendezvous port."""
    return [
        sys.executable, "-m", "accelerate.commands.launch",
        "--config_file", str(ACCELERATE_CONFIGS / accelerate_config), "--main_process_port", str(free_port()), *launch_options,
        str(ROOT / "recipes" / "pretrain.py"), "--config_path", "tiny", *as_cli(overrides),
    ]


def metrics(output_dir: Path) -> list[dict]:
    path = output_dir / "metrics.jsonl"
    text = path.read_text() if path.exists() else ""
    complete = text[: text.rfind("\n") + 1]  # a running process may be in the middle of a line
    return [json.loads(line) for line in complete.splitlines()]


def train_rows(output_dir: Path) -> dict[int, dict]:
    return {row["step"]: row for row in metrics(output_dir) if "train/loss" in row}


def checkpoint_weights(output_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(output_dir / "checkpoints" / f"step_{step:08d}" / "model.safetensors")


@pytest.fixture(scope="module")
def reference_run(synthetic_shards, tmp_path_factory):
    """An uninterrupted in-process run of TOTAL_STEPS steps, validated at the end."""
    output_dir = tmp_path_factory.mktemp("reference")
    config = load_config(TINY_PRESET, run_overrides(output_dir, synthetic_shards, **{"eval.every": TOTAL_STEPS}))
    result = train(config)
    reset_accelerate_state()
    return result


@pytest.mark.slow
def test_single_process_run_logs_checkpoints_validates_and_exports(reference_run):
    output_dir = reference_run.output_dir
    assert reference_run.step == TOTAL_STEPS and not reference_run.preempted
    rows = train_rows(output_dir)
    assert sorted(rows) == list(range(1, TOTAL_STEPS + 1))
    last = rows[TOTAL_STEPS]
    for term in ("reconstruction", "cell_contrastive", "protein_contrastive"):
        assert torch.isfinite(torch.tensor(last[f"train/{term}"]))
    assert last["train/global_batch_cells"] == 2 * 8
    assert last["train/skipped_samples"] == 0  # the broken shards were left out when indexed (complete records kept)
    assert rows[1]["train/learning_rate"] == pytest.approx(1e-3 / 2)  # warmup step 1 of 2
    assert rows[TOTAL_STEPS]["train/learning_rate"] == pytest.approx(1e-6)  # 0.1 % of the peak at the last update
    validation = [row for row in metrics(output_dir) if "eval/knn_accuracy" in row]
    assert len(validation) == 1 and 0 <= validation[0]["eval/knn_accuracy"] <= 1
    assert (output_dir / "figures" / f"reconstruction_step{TOTAL_STEPS:08d}.png").stat().st_size > 0
    assert (output_dir / "figures" / f"attention_step{TOTAL_STEPS:08d}.png").stat().st_size > 0
    assert [p.name for p in list_checkpoints(output_dir)] == ["step_00000008", f"step_{TOTAL_STEPS:08d}"]

    encoder = AutoModel.from_pretrained(reference_run.encoder_dir)
    final = checkpoint_weights(output_dir, TOTAL_STEPS)
    for name, value in encoder.state_dict().items():
        torch.testing.assert_close(value, final[f"subcell.{name}"], msg=name)


@pytest.mark.slow
def test_sigterm_saves_state_and_resume_reproduces_the_run(reference_run, synthetic_shards, tmp_path):
    """`recipes/pretrain.py` gets a real SIGTERM once its first step is logged: exit code 143, state saved; the
    resumed run then equals the uninterrupted one. In process (a subprocess start-up costs ~10-30 s here); a signal
    that came after the run's own handler was gone would be ignored, not end the test session."""
    import threading

    overrides = run_overrides(tmp_path, synthetic_shards)

    def stop_after_the_first_step():
        deadline = time.monotonic() + 120
        while not train_rows(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    stopper = threading.Thread(target=stop_after_the_first_step, daemon=True)
    try:
        stopper.start()
        code = load_recipe("pretrain").main(["--config_path", "tiny", *as_cli(overrides)])
        stopper.join(timeout=130)
    finally:
        signal.signal(signal.SIGTERM, previous)
        reset_accelerate_state()
    assert code == 143
    stopped = list_checkpoints(tmp_path)[-1]
    stopped_step = int(stopped.name.split("_")[1])
    assert 1 <= stopped_step < TOTAL_STEPS

    result = train(load_config(TINY_PRESET, overrides), resume="auto")
    assert result.step == TOTAL_STEPS
    # same loss curve and learning rates after the resume point, same final parameters
    resumed, reference = train_rows(tmp_path), train_rows(reference_run.output_dir)
    for step in range(stopped_step + 1, TOTAL_STEPS + 1):
        for key in ("train/loss", "train/learning_rate", "train/cells_seen"):
            assert resumed[step][key] == pytest.approx(reference[step][key], rel=1e-5), (step, key)
    expected = checkpoint_weights(reference_run.output_dir, TOTAL_STEPS)
    for name, value in checkpoint_weights(tmp_path, TOTAL_STEPS).items():
        torch.testing.assert_close(value, expected[name], rtol=1e-5, atol=1e-6, msg=name)


def test_non_finite_loss_stops_after_saving_the_last_good_state(synthetic_shards, tmp_path, monkeypatch):
    forward = SubCellForPreTraining.forward
    calls = []

    def poisoned(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        calls.append(None)
        if len(calls) == 3:
            output.reconstruction_loss = output.reconstruction_loss * float("nan")
            output.loss = output.loss + output.reconstruction_loss
        return output

    monkeypatch.setattr(SubCellForPreTraining, "forward", poisoned)
    config = load_config(TINY_PRESET, run_overrides(tmp_path, synthetic_shards))
    with pytest.raises(NonFiniteLossError, match=r"step 3 .*term reconstruction") as error:
        train(config)
    assert "step_00000002" in str(error.value)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002"]
    state = torch.load(tmp_path / "checkpoints" / "step_00000002" / "training_state_1.bin", weights_only=True)
    assert state["step"] == 2 and state["micro_batches"] == 2


@pytest.mark.slow
def test_two_process_ddp_run_with_gradient_accumulation(synthetic_shards, tmp_path):
    overrides = run_overrides(
        tmp_path, synthetic_shards,
        **{"optim.max_steps": 3, "optim.warmup_steps": 1, "train.gradient_accumulation_steps": 2},
    )
    completed = subprocess.run(
        launch_command("multi_cpu.yaml", overrides), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert "2 process(es)" in completed.stderr and "distributed MULTI_CPU" in completed.stderr, completed.stderr[-3000:]
    rows = train_rows(tmp_path)
    assert sorted(rows) == [1, 2, 3]
    assert rows[3]["train/global_batch_cells"] == 2 * 2 * 8 * 2  # processes x records x cells x accumulation
    state = torch.load(list_checkpoints(tmp_path)[-1] / "training_state_1.bin", weights_only=True)
    assert state == {"step": 3, "micro_batches": 6, "cells_seen": 3 * 64}
    assert all(k in rows[3] for k in ("train/reconstruction", "train/cell_contrastive", "train/protein_contrastive"))
    checkpoint = list_checkpoints(tmp_path)[-1]
    assert {p.name for p in checkpoint.glob("random_states_*.pkl")} == {"random_states_0.pkl", "random_states_1.pkl"}
    assert AutoModel.from_pretrained(tmp_path / "encoder").config.hidden_size == 64


def _deepspeed_configs() -> list[Path]:
    found = []
    for path in sorted(ACCELERATE_CONFIGS.glob("*.yaml")):
        if yaml.safe_load(path.read_text())["distributed_type"] == "DEEPSPEED":
            found.append(path)
    return found


@pytest.mark.parametrize("accelerate_config", _deepspeed_configs(), ids=lambda p: p.stem)
def test_deepspeed_configs_are_accepted(accelerate_config):
    settings = yaml.safe_load(accelerate_config.read_text())
    processes = settings["num_processes"]
    json_path = ROOT / settings["deepspeed_config"]["deepspeed_config_file"]
    plugin = DeepSpeedPlugin(hf_ds_config=str(json_path))
    assert plugin.zero_stage == 2
    config = load_config(ROOT / "recipes" / "configs" / "mae-cells-prots-pool.yaml")
    configure_deepspeed(plugin, config, processes)
    ds = plugin.deepspeed_config
    # DeepSpeed's rule, with the paper's batch on 8 GPUs per node
    micro, accumulation = ds["train_micro_batch_size_per_gpu"], ds["gradient_accumulation_steps"]
    assert ds["train_batch_size"] == micro * accumulation * processes
    assert ds["train_micro_batch_size_per_gpu"] == 14 * 8 and ds["gradient_clipping"] == 1.0
    assert processes * 14 * 8 in (896, 1792)
    assert "optimizer" not in ds and "scheduler" not in ds  # AdamW comes from the code (no fused_adam build)


@pytest.mark.slow
@pytest.mark.skipif(
    not (shutil.which("c++") or shutil.which("g++")), reason="DeepSpeed's CPU backend compiles a C++ extension"
)
def test_deepspeed_zero2_two_cpu_processes_save_and_resume(synthetic_shards, tmp_path):
    overrides = run_overrides(tmp_path, synthetic_shards, **{"optim.max_steps": 4, "optim.warmup_steps": 1})

    def command(**extra) -> list[str]:  # a fresh rendezvous port for each launch
        return launch_command("deepspeed_zero2.yaml", {**overrides, **extra}, "--num_processes", "2")

    environment = environment_without("ACCELERATE_USE_CPU")  # it would drop DeepSpeed
    first = subprocess.run(command(**{"train.stop_after_steps": 2}), cwd=ROOT, env=environment,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "2 process(es)" in first.stderr and "distributed DEEPSPEED" in first.stderr, first.stderr[-3000:]
    checkpoint = list_checkpoints(tmp_path)[-1]
    assert checkpoint.name == "step_00000002" and (checkpoint / "pytorch_model").is_dir()  # a DeepSpeed checkpoint
    shards = sorted(p.name for p in (checkpoint / "pytorch_model").glob("*optim_states.pt"))
    assert shards == ["zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"]
    second = subprocess.run(command() + ["--resume", "auto"], cwd=ROOT, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    rows = train_rows(tmp_path)
    assert sorted(rows) == [1, 2, 3, 4] and rows[4]["train/global_batch_cells"] == 2 * 2 * 8
    assert rows[3]["train/learning_rate"] < rows[2]["train/learning_rate"]  # the schedule continued
    assert AutoModel.from_pretrained(tmp_path / "encoder").config.hidden_size == 64


def test_only_broken_shards_end_the_run_at_once_naming_them(tmp_path, capsys):
    """Issue: `recipes/pretrain.py --data.shards <only broken shards>` spun at 100 % CPU forever, deaf to SIGTERM.
    Run in-process (a subprocess costs ~10-30 s here) with an alarm so that a hang fails instead of blocking."""
    recipe = load_recipe("pretrain")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "shard-000000.tar").write_bytes(b"not a tar file" * 100)
    (broken / "shard-000001.tar").write_bytes(b"\0" * 5000)
    overrides = run_overrides(tmp_path / "run", {"train": broken, "validation": broken})

    def hung(signum, frame):
        raise AssertionError("the run with only broken shards did not stop within 60 s")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(60)
    try:
        code = recipe.main(["--config_path", "tiny", *as_cli(overrides)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        reset_accelerate_state()
    error = capsys.readouterr().err
    assert code == 2, error
    assert "no readable record in 2 shard file(s)" in error
    assert "shard-000000.tar" in error and "shard-000001.tar: holds no complete record" in error


def test_sigterm_while_waiting_for_data_ends_the_run_within_seconds(synthetic_shards, tmp_path, monkeypatch):
    """A stalled input pipeline must not keep SIGTERM from ending the run: the state is saved and it stops."""
    import threading

    from subcell_hf.pretraining.trainer import Pretrainer

    config = load_config(TINY_PRESET, run_overrides(tmp_path, synthetic_shards))
    trainer = Pretrainer(config)
    real_batches = trainer._batches

    def stalls_after_two_batches():
        batches = real_batches()
        yield next(batches)
        yield next(batches)
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()  # once the wait has begun
        deadline = time.monotonic() + 60  # today's loop would wait forever: give up so that the test fails
        while time.monotonic() < deadline:
            time.sleep(0.01)
        raise AssertionError("the stop signal did not interrupt the wait for data")

    monkeypatch.setattr(trainer, "_batches", stalls_after_two_batches)
    try:
        result = trainer.run()
    finally:
        reset_accelerate_state()
    assert result.preempted and result.step == 2
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000002"]


def test_validation_figures_use_the_cell_masks_for_object_aware_masking(synthetic_shards, tmp_path):
    """Object-aware masking needs each cell's mask: validation hands the validation cells' masks to the figures."""
    config = load_config(
        TINY_PRESET,
        run_overrides(tmp_path, synthetic_shards, **{"optim.max_steps": 2, "optim.warmup_steps": 1, "eval.every": 2}),
    )
    config.model.config_overrides["object_mask_ratio"] = 0.5
    result = train(config)
    assert result.step == 2 and "eval/knn_accuracy" in result.last_metrics
    assert (tmp_path / "figures" / "reconstruction_step00000002.png").is_file()


def test_a_stop_signal_is_never_taken_for_an_unreadable_record(monkeypatch):
    """The loader replaces records whose reading raises `Exception`; the stop raised by a signal while waiting
    must pass through it (caught, it would silently swap the record and change the data)."""
    from subcell_hf.data.loader import PartDraws
    from subcell_hf.pretraining.trainer import StopWhileWaiting

    class Index:
        records = [None, None]

        def __len__(self):
            return 2

    draws = PartDraws(Index())

    def interrupted(record_index, seed):
        raise StopWhileWaiting(signal.SIGTERM)

    monkeypatch.setattr(draws, "read_draw", interrupted)
    with pytest.raises(StopWhileWaiting):
        draws[(0, 0)]
