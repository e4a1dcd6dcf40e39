"""Resuming a pretraining run reads its checkpoint back without running code from it, names a damaged file and the
previous checkpoint instead of a traceback, and logs the replayed steps once (issue 10, defects 1, 10 and 11)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from subcell_hf.pretraining.checkpoints import list_checkpoints
from subcell_hf.pretraining.config import load_config
from subcell_hf.pretraining.trainer import InvalidRunError, train
from tests.utils import TINY_PRESET, PicklePayload, reset_accelerate_state, tiny_run_overrides


def overrides(output_dir: Path, shards: dict) -> dict:
    return tiny_run_overrides(output_dir, shards, **{"optim.max_steps": 4, "optim.warmup_steps": 1, "train.save_every": 2})


def run(output_dir: Path, shards: dict, resume: str | None = None):
    try:
        return train(load_config(TINY_PRESET, overrides(output_dir, shards)), resume=resume)
    finally:
        reset_accelerate_state()


@pytest.fixture(scope="module")
def finished_run(pretraining_shards, tmp_path_factory) -> Path:
    output_dir = tmp_path_factory.mktemp("run")
    run(output_dir, pretraining_shards)
    return output_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished_run, copy)
    return copy


def test_planted_pickle_payload_in_a_checkpoint_is_refused_not_run(run_copy, pretraining_shards, tmp_path):
    marker = tmp_path / "payload_ran"
    latest = list_checkpoints(run_copy)[-1]
    for planted in sorted(p for p in latest.iterdir() if p.suffix in (".pkl", ".bin")):  # every pickle-based file
        original = planted.read_bytes()
        torch.save({"step": 4, "payload": PicklePayload(marker)}, planted)
        with pytest.raises(InvalidRunError, match=planted.name) as error:
            run(run_copy, pretraining_shards, resume="auto")
        assert not marker.exists(), f"the payload planted in {planted.name} ran"
        assert "unpickling" in str(error.value) and "step_00000002" in str(error.value)
        planted.write_bytes(original)


def test_truncated_checkpoint_names_the_file_and_the_previous_checkpoint(run_copy, pretraining_shards):
    latest = list_checkpoints(run_copy)[-1]
    weights = latest / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(InvalidRunError, match="model.safetensors") as error:
        run(run_copy, pretraining_shards, resume="auto")
    assert f"--resume {latest.parent / 'step_00000002'}" in str(error.value)


def test_resume_after_a_kill_logs_each_step_once(run_copy, pretraining_shards):
    # as if killed after logging step 4 but before its checkpoint was complete
    shutil.rmtree(list_checkpoints(run_copy)[-1])
    with open(run_copy / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 5, "train/lo')  # and in the middle of a line
    result = run(run_copy, pretraining_shards, resume="auto")
    assert result.step == 4
    rows = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows if "train/loss" in row]
    assert steps == [1, 2, 3, 4]
