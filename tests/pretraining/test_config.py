"""Typed run configuration (draccus): presets, YAML + dotted command-line overrides, checks with clear messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from subcell_hf.pretraining.config import PretrainRecipeConfig, load_config
from subcell_hf.utils.config_cli import parse_config

PRESETS = Path(__file__).resolve().parents[2] / "recipes" / "configs"


@pytest.mark.parametrize("preset", ["tiny", "vit-prots-pool", "mae-cells-prots-pool"])
def test_presets_load_and_build_their_model_config(preset):
    config = load_config(PRESETS / f"{preset}.yaml")
    model_config = config.model.build_config()
    assert model_config.objectives == (
        ("protein_contrastive",) if preset == "vit-prots-pool" else
        ("reconstruction", "cell_contrastive", "protein_contrastive")
    )
    if preset != "tiny":  # the release: ViT-B/16 at 448 px; 128 records (ViT-ProtS-Pool) or 112 on 8 processes
        cells, rate = (1024, 4e-4) if preset == "vit-prots-pool" else (896, 3.5e-4)
        assert config.cells_per_step(8) == cells and config.records_per_step(8) == cells // 8
        assert config.peak_learning_rate(8) == pytest.approx(rate)
        assert config.optim.weight_decay_policy == "release" and config.optim.min_lr_ratio == 1e-3
        assert model_config.hidden_size == 768 and model_config.image_size == 448
        assert model_config.projector_hidden_sizes == [8192, 8192] and model_config.projector_output_size == 512


def test_cli_overrides_win_and_are_typed():
    config = parse_config(
        PretrainRecipeConfig,
        [
            "--config_path", "tiny",  # a preset name
            "--optim.learning_rate", "2e-4",  # YAML 1.1 reads this as a string: draccus makes it a float
            "--optim.max_steps=7",
            "--optim.betas", "[0.8, 0.9]",
            "--model.channel_variant", "dna-protein",
            "--model.config_overrides", "{hidden_size: 32, num_attention_heads: 2, intermediate_size: 64}",
            "--resume", "auto",
        ],
        presets_dir=PRESETS,
    )
    assert config.resume == "auto" and "resume" not in config.to_dict()  # how the session starts, not the run
    assert config.optim.learning_rate == 2e-4 and config.optim.max_steps == 7 and config.optim.betas == (0.8, 0.9)
    assert config.data.records_per_batch == 4  # from the YAML file
    model_config = config.model.build_config()
    # the command line's mapping is merged into the file's: its other sizes stay
    assert model_config.channel_names == ["dna", "protein"] and model_config.hidden_size == 32
    assert model_config.num_hidden_layers == 2 and model_config.image_size == 64


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"optim.max_stepz": 3}, r"unknown field --optim.max_stepz \(did you mean --optim.max_steps\?\)"),
        ({"optimizer.lr": 3}, r"unknown field --optimizer.lr"),
        ({"optim.max_steps": "many"}, r"^the command line: optim.max_steps: .*Couldn't parse 'many' into an int"),
        ({"optim.betas": [0.9]}, r"optim.betas: Expected 2 items, got 1"),
        ({"train.mixed_precision": "fp16"}, r"^the command line: train.mixed_precision must be no or bf16, found 'fp16'"),
        ({"model.channel_variant": "rgb"}, r"channel_variant must be one of \['all_channels', .*found 'rgb'"),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(PRESETS / "tiny.yaml", overrides)


def test_schedule_from_epochs_and_from_steps():
    config = load_config(
        overrides={"data.records_per_epoch": 1120, "data.records_per_batch": 14, "optim.epochs": 300,
                   "optim.warmup_epochs": 5}
    )
    assert config.schedule_steps(num_processes=8) == (3000, 50)  # 1120 records / 112 per step = 10 steps per epoch
    config.optim.max_steps, config.optim.warmup_steps = 100, 10
    assert config.schedule_steps(8) == (100, 10)
    with pytest.raises(ValueError, match="records_per_epoch"):
        PretrainRecipeConfig().schedule_steps(8)


def test_presets_print_their_batch_arithmetic_from_the_shard_summary(tmp_path):
    """Steps per epoch = record visits (4 parts x mult per antibody, from summary.json) / records per step."""
    import json

    from subcell_hf.pretraining.trainer import records_in_shards

    (tmp_path / "summary.json").write_text(json.dumps({"num_records": 5000, "records_per_epoch": 51200}))
    config = load_config(PRESETS / "vit-prots-pool.yaml", {"data.shards": str(tmp_path)})
    config.data.records_per_epoch = records_in_shards(config.data.shards)
    text = config.describe_batch(num_processes=8)
    assert "8 process(es) x 16 records x 1 accumulation = 128 records x 8 cells = 1024 cells" in text
    assert "peak learning rate: 0.0001 x 1024 / 256 = 0.0004" in text
    assert "epoch: 51200 record visits (parts x mult) / 128 = 400.0 steps" in text
    assert "schedule: 120000 steps (2000 warmup, then linear decay to 0.001)" in text


def test_resolved_config_round_trips_through_yaml(tmp_path):
    config = load_config(PRESETS / "mae-cells-prots-pool.yaml", {"model.channel_variant": "er-dna-protein"})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


HELP_PROBE = """
import contextlib, io, json, runpy, sys
report = {}
for recipe in ("pretrain", "train_classifiers", "evaluate_model"):
    sys.argv = [recipe + ".py", "--help"]
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            runpy.run_path(f"recipes/{recipe}.py", run_name="__main__")
        except SystemExit:
            pass
    report[recipe] = out.getvalue()
report["torch"] = "torch" in sys.modules
print(json.dumps(report))
"""


def test_every_recipe_help_is_derived_from_its_dataclass_without_importing_torch():
    """One subprocess for the three recipes: `--help` lists each field as a flag with the comment above it as help
    and its default, and answers without importing torch (seconds)."""
    import json
    import subprocess
    import sys

    root = PRESETS.parents[1]
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": ""})
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert not report["torch"], "a recipe's --help imported torch"
    flat = {name: " ".join(text.split()) for name, text in report.items() if name != "torch"}
    assert "--optim.warmup_steps [int] warmup length in optimizer steps (wins over warmup_epochs)" in flat["pretrain"]
    assert "--config_path" in flat["pretrain"] and "--resume [str]" in flat["pretrain"]
    assert "--training.max_epochs int most epochs per head (default: 200)" in flat["train_classifiers"]
    assert "--embedding.precision str encoder autocast" in flat["train_classifiers"]
    assert "--protocol.null_size int copairs null-distribution size (default: 10000)" in flat["evaluate_model"]
    assert "--dataset.name str dataset name on the card (default: SubCell shards)" in flat["evaluate_model"]
