"""`SubCellForPreTraining`: objectives per model family, the masked encoder, and the encoder export."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, AutoModelForPreTraining

from subcell_hf import SubCellConfig, SubCellImageProcessor, SubCellModel
from subcell_hf.pretraining import SubCellForPreTraining, SubCellPreTrainingConfig

from tests.utils import tiny_pretraining_config


def _batch(cells: int = 8, channels: int = 4):
    generator = torch.Generator().manual_seed(0)
    views = [torch.rand(cells, channels, 64, 64, generator=generator) for _ in range(2)]
    masks = torch.zeros(cells, 1, 64, 64)
    masks[..., 16:48, 16:48] = 1
    return dict(
        pixel_values=views[0], second_view_pixel_values=views[1], antibody_ids=torch.arange(cells) // 4,
        cell_masks=masks, second_view_cell_masks=masks,
    )


def test_family_presets():
    mae = SubCellPreTrainingConfig.for_family("mae-cells-prots-pool", channel_names=["dna", "protein"])
    vit = SubCellPreTrainingConfig.for_family("vit-prots-pool")
    assert mae.objectives == ("reconstruction", "cell_contrastive", "protein_contrastive")
    assert (mae.reconstruction_weight, mae.cell_contrastive_weight, mae.protein_contrastive_weight) == (1.0, 1.0, 0.1)
    assert mae.position_embedding_type == "sincos" and mae.mask_ratio == 0.25 and mae.num_channels == 2
    assert vit.objectives == ("protein_contrastive",) and vit.position_embedding_type == "learned"
    with pytest.raises(ValueError, match="mask_ratio"):
        SubCellPreTrainingConfig(mask_ratio=0.0, reconstruction_weight=1.0)


def test_all_losses_and_their_weighted_sum(tiny_mae_config):
    model = SubCellForPreTraining(tiny_mae_config)
    output = model(**_batch())
    terms = output.loss_terms()
    assert set(terms) == {"reconstruction", "cell_contrastive", "protein_contrastive"}
    expected = terms["reconstruction"] + terms["cell_contrastive"] + 0.1 * terms["protein_contrastive"]
    torch.testing.assert_close(output.loss, expected)
    assert output.embeddings.shape == (16, 128)
    assert output.reconstruction.shape == (8, 16, 16 * 16 * 4) and output.patch_mask.sum().item() == 8 * 4
    output.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing  # every parameter takes part (DDP needs no find_unused_parameters)


def test_vit_prots_pool_has_only_the_supcon_head():
    model = SubCellForPreTraining(tiny_pretraining_config("vit-prots-pool"))
    heads = model.pretraining_heads
    assert heads.decoder is None and heads.cell_projector is None and heads.protein_projector is not None
    output = model(**_batch())
    assert set(output.loss_terms()) == {"protein_contrastive"} and output.patch_mask is None
    torch.testing.assert_close(output.loss, output.protein_contrastive_loss)


def test_reconstruction_encodes_only_the_visible_patches(tiny_mae_config, monkeypatch):
    model = SubCellForPreTraining(tiny_mae_config).eval()
    seen = []
    forward = model.subcell.forward
    def recording(*args, **kwargs):
        seen.append(kwargs.get("kept_patch_indices"))
        return forward(*args, **kwargs)

    monkeypatch.setattr(model.subcell, "forward", recording)
    pixels = _batch()["pixel_values"]
    _, mask = model.reconstruct(pixels)
    kept = seen[-1]
    assert kept.shape == (8, 16 - round(16 * tiny_mae_config.mask_ratio))  # 16 patches of 16 px in a 64-px crop
    for row, hidden in zip(kept, mask):  # the kept patches are exactly the ones the loss does not score
        assert set(row.tolist()) == set(torch.nonzero(hidden == 0).flatten().tolist())


def test_view_one_is_masked_and_reconstructed_view_two_is_whole(tiny_mae_config, monkeypatch):
    """The release's view roles: only view 1 is MAE-masked and reconstructed; view 2 is encoded whole."""
    model = SubCellForPreTraining(tiny_mae_config).eval()
    seen = []
    forward = model.subcell.forward

    def recording(pixel_values, *args, **kwargs):
        seen.append((pixel_values, kwargs.get("kept_patch_indices")))
        return forward(pixel_values, *args, **kwargs)

    monkeypatch.setattr(model.subcell, "forward", recording)
    batch = _batch()
    torch.manual_seed(0)
    output = model(**batch)
    (first, kept), (second, second_kept) = seen
    assert torch.equal(first, batch["pixel_values"]) and kept.shape == (8, 12)  # 25 % of 16 patches hidden
    assert torch.equal(second, batch["second_view_pixel_values"]) and second_kept is None  # no hidden patch
    other = {**batch, "second_view_pixel_values": torch.rand(8, 4, 64, 64)}
    torch.manual_seed(0)
    changed = model(**other)  # a different view 2 leaves the reconstruction untouched: it reads view 1 only
    torch.testing.assert_close(changed.reconstruction_loss, output.reconstruction_loss)
    torch.testing.assert_close(changed.embeddings[:8], output.embeddings[:8])
    assert not torch.allclose(changed.embeddings[8:], output.embeddings[8:])


def test_projectors_see_each_view_separately():
    """Each projector runs on each view's batch on its own: BatchNorm statistics per view, not of both views."""
    model = SubCellForPreTraining(tiny_pretraining_config())
    batch = _batch()
    projector = model.pretraining_heads.protein_projector
    inputs = []
    projector.layers[1].register_forward_hook(lambda module, args, out: inputs.append(args[0].detach()))
    model(**batch)
    assert [len(x) for x in inputs] == [8, 8]  # two calls of 8 cells, not one of 16
    expected = torch.nn.BatchNorm1d(64)
    for x in inputs:
        expected(x)
    torch.testing.assert_close(projector.layers[1].running_mean, expected.running_mean)


def test_object_aware_masking_uses_the_cell_masks():
    model = SubCellForPreTraining(tiny_pretraining_config(mask_ratio=0.5, object_mask_ratio=1.0))
    batch = _batch()
    output = model(**batch)
    # the cell covers the 4 central patches of the 4 x 4 grid: all of them are hidden, 4 more on background
    on_cell = torch.zeros(4, 4, dtype=torch.bool)
    on_cell[1:3, 1:3] = True
    assert (output.patch_mask[:, on_cell.flatten()] == 1).all()
    assert (output.patch_mask.sum(1) == 8).all()
    with pytest.raises(ValueError, match="cell masks"):
        model(**{k: v for k, v in batch.items() if "masks" not in k})


def test_export_encoder_loads_with_automodel(tiny_mae_config, tmp_path):
    model = SubCellForPreTraining(tiny_mae_config)
    with torch.no_grad():
        model.subcell.pooler.attention_weights.bias.add_(0.5)  # not the initial value
    folder = model.export_encoder(tmp_path / "encoder")
    loaded = AutoModel.from_pretrained(folder)
    assert type(loaded) is SubCellModel and type(loaded.config) is SubCellConfig
    assert loaded.config.position_embedding_type == "sincos" and loaded.config.hidden_size == 64
    assert not hasattr(loaded.config, "mask_ratio")
    processor = SubCellImageProcessor.from_pretrained(folder)
    assert processor.channel_names == tiny_mae_config.channel_names
    pixels = _batch()["pixel_values"]
    torch.testing.assert_close(loaded(pixels).pooler_output, model.eval().subcell(pixels).pooler_output)


def test_full_checkpoint_round_trip(tmp_path):
    model = SubCellForPreTraining(tiny_pretraining_config("vit-prots-pool"))
    model.save_pretrained(tmp_path / "full")
    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "full")
    assert isinstance(reloaded, SubCellForPreTraining)
    for (name, a), b in zip(model.state_dict().items(), reloaded.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # the encoder class alone reads the encoder out of a full checkpoint
    encoder = SubCellModel.from_pretrained(tmp_path / "full")
    torch.testing.assert_close(encoder.pooler.attention_v.weight, model.subcell.pooler.attention_v.weight)


def test_from_encoder_starts_from_released_weights(tiny_subcell_config, tmp_path):
    encoder = SubCellModel(tiny_subcell_config)
    encoder.save_pretrained(tmp_path / "released")
    model = SubCellForPreTraining.from_encoder(
        tmp_path / "released", projector_hidden_sizes=[32], projector_output_size=16,
        reconstruction_weight=0.0, cell_contrastive_weight=0.0, protein_contrastive_weight=1.0,
    )
    torch.testing.assert_close(model.subcell.layers[0].mlp.fc1.weight, encoder.layers[0].mlp.fc1.weight)
    assert model.config.hidden_size == tiny_subcell_config.hidden_size
