"""AdamW parameter groups (default and release policies) and the step-exact warmup + linear decay schedule."""

from __future__ import annotations

import pytest
import torch

from subcell_hf.pretraining import SubCellForPreTraining
from subcell_hf.pretraining.optim import (
    build_lr_scheduler,
    build_optimizer,
    learning_rate_factor,
    parameter_groups,
    scaled_learning_rate,
)

from tests.utils import tiny_pretraining_config


def test_weight_decay_only_on_weight_matrices():
    model = SubCellForPreTraining(tiny_pretraining_config(position_embedding_type="learned"))
    decay, no_decay = build_optimizer(model, learning_rate=1e-3, weight_decay=0.05).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    kept = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "subcell.embeddings.projection.weight" in decayed  # the patch-embedding conv
    assert "subcell.layers.0.attention.q_proj.weight" in decayed
    assert "pretraining_heads.cell_projector.layers.0.weight" in decayed
    for name in (
        "subcell.embeddings.cls_token",
        "subcell.embeddings.position_embeddings",
        "pretraining_heads.decoder.mask_token",
        "subcell.layers.0.attention.q_proj.bias",
        "subcell.layernorm.weight",
        "pretraining_heads.cell_projector.layers.1.weight",  # BatchNorm
    ):
        assert name in kept, name
    assert all(name.endswith("weight") and "norm" not in name for name in decayed)
    assert len(decayed) + len(kept) == sum(1 for p in model.parameters() if p.requires_grad)


def test_sincos_positions_are_not_trained():
    model = SubCellForPreTraining(tiny_pretraining_config())
    trained = {id(p) for group in parameter_groups(model, 0.05) for p in group["params"]}
    assert id(model.subcell.embeddings.position_embeddings) not in trained


def test_schedule_values():
    assert scaled_learning_rate(1e-4, 896) == pytest.approx(3.5e-4)
    factors = [learning_rate_factor(k, warmup_steps=4, total_steps=14, min_lr_ratio=1e-3) for k in range(16)]
    assert factors[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])  # the first update already moves
    assert factors[4] == pytest.approx(1.0)
    assert factors[13] == pytest.approx(1e-3) and factors[15] == pytest.approx(1e-3)  # the last update, and beyond
    # the release's schedule: a straight line from the peak to 0.1 % (today's cosine bends: its steps differ)
    steps = [a - b for a, b in zip(factors[4:13], factors[5:14])]
    assert steps == pytest.approx([(1 - 1e-3) / 9] * 9)
    assert factors[9] == pytest.approx(1 - (1 - 1e-3) * 5 / 9)


def test_release_weight_decay_policy_reproduces_the_released_groups():
    model = SubCellForPreTraining(tiny_pretraining_config(position_embedding_type="learned"))
    optimizer = build_optimizer(model, learning_rate=1e-3, weight_decay=0.05, policy="release")
    names = {id(p): n for n, p in model.named_parameters()}
    groups = {g["name"]: (g["weight_decay"], {names[id(p)] for p in g["params"]}) for g in optimizer.param_groups}
    assert {name: decay for name, (decay, _) in groups.items()} == {
        "decay": 0.05, "no_decay": 0.0, "projector_heads": 0.01
    }
    decayed, kept, heads = groups["decay"][1], groups["no_decay"][1], groups["projector_heads"][1]
    for name in ("subcell.embeddings.cls_token", "subcell.embeddings.position_embeddings",
                 "subcell.embeddings.projection.weight", "pretraining_heads.decoder.mask_token",
                 "subcell.layers.0.attention.q_proj.weight"):
        assert name in decayed, name
    assert "subcell.layernorm.weight" in kept and "subcell.layers.0.attention.q_proj.bias" in kept
    assert "pretraining_heads.cell_projector.layers.0.bias" in heads  # all head parameters, BatchNorm too
    assert "pretraining_heads.protein_projector.layers.1.weight" in heads
    assert all("projector" not in name for name in decayed | kept)
    assert len(decayed) + len(kept) + len(heads) == sum(1 for p in model.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="weight decay policy must be one of"):
        build_optimizer(model, 1e-3, policy="timm")


def test_scheduler_sets_the_rate_before_each_update():
    parameter = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.AdamW([parameter], lr=1.0)
    scheduler = build_lr_scheduler(optimizer, warmup_steps=2, total_steps=5)
    used = []
    for _ in range(5):
        used.append(optimizer.param_groups[0]["lr"])  # what update k uses
        optimizer.step()
        scheduler.step()
    assert used == pytest.approx([learning_rate_factor(k, 2, 5) for k in range(5)])
    # a restored scheduler continues at the same place
    restored = build_lr_scheduler(torch.optim.AdamW([parameter], lr=1.0), warmup_steps=2, total_steps=5)
    restored.load_state_dict(scheduler.state_dict())
    assert restored.last_epoch == 5
