"""Loss terms and patch masks against values computed by hand on tiny inputs (docs/pretraining.md, section 7)."""

from __future__ import annotations

import math

import pytest
import torch

from subcell_hf.pretraining.losses import masked_patch_mse, normalize_patches, nt_xent_loss, supcon_loss
from subcell_hf.pretraining.masking import (
    cell_patch_fraction,
    object_aware_patch_mask,
    patchify,
    random_patch_mask,
    unpatchify,
)


def test_nt_xent_two_orthogonal_cells():
    # Views identical: each anchor's positive has similarity 1, its two negatives 0.
    views = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert nt_xent_loss(views, views, temperature=1.0).item() == pytest.approx(math.log(1 + 2 / math.e), abs=1e-6)
    assert nt_xent_loss(views, views, temperature=0.5).item() == pytest.approx(math.log(1 + 2 * math.e**-2), abs=1e-6)


def test_nt_xent_asymmetric_views_and_scale_invariance():
    first = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normalised inside: (1, 0), (0, 1)
    second = torch.tensor([[0.6, 0.8], [-1.0, 0.0]])
    # anchor -> (similarity to positive, similarities to the two negatives), temperature 1
    cases = {
        "a1": (0.6, [0.0, -1.0]),  # a1=(1,0): b1=(0,1) 0, b2=(-1,0) -1; positive a2=(0.6,0.8)
        "b1": (0.0, [0.0, 0.8]),  # b1=(0,1): a1 0, a2 0.8; positive b2 0
        "a2": (0.6, [0.8, -0.6]),  # a2: a1 0.6 (positive), b1 0.8, b2 -0.6
        "b2": (0.0, [-1.0, -0.6]),  # b2=(-1,0): b1 0 (positive), a1 -1, a2 -0.6
    }
    expected = sum(math.log(math.exp(p) + sum(math.exp(n) for n in neg)) - p for p, neg in cases.values()) / 4
    assert nt_xent_loss(first, second, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_supcon_by_hand():
    features = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])  # the last feature has no positive: it is not an anchor
    z0 = math.exp(0) + math.exp(1) + math.exp(-1)
    anchor0 = math.log(z0) - 0.5  # positives: feature 1 (similarity 0) and 2 (similarity 1)
    anchor1 = math.log(3.0)  # all three similarities are 0
    expected = (2 * anchor0 + anchor1) / 3
    assert supcon_loss(features, labels, temperature=1.0).item() == pytest.approx(expected, abs=1e-6)


def test_supcon_reduces_to_nt_xent_with_one_label_per_pair():
    torch.manual_seed(0)
    first, second = torch.randn(5, 8), torch.randn(5, 8)
    labels = torch.arange(5).repeat(2)
    torch.testing.assert_close(
        supcon_loss(torch.cat([first, second]), labels, 0.1), nt_xent_loss(first, second, 0.1)
    )


def test_norm_pix_mse_on_masked_patches_only():
    targets = torch.tensor([[[0.0, 1.0, 2.0, 3.0], [5.0, 5.0, 5.0, 5.0]]])
    predictions = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]])
    # patch 0: mean 1.5, unbiased variance 5/3 -> squared standardised values sum to 3 -> MSE 3/4.
    # patch 1: constant -> standardised to 0 -> MSE against ones is 1.
    first = (5 / (5 / 3 + 1e-6)) / 4
    assert masked_patch_mse(predictions, targets, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(first, abs=1e-6)
    assert masked_patch_mse(predictions, targets, torch.tensor([[0.0, 1.0]])).item() == pytest.approx(1.0, abs=1e-6)
    both = masked_patch_mse(predictions, targets, torch.tensor([[1.0, 1.0]])).item()
    assert both == pytest.approx((first + 1.0) / 2, abs=1e-6)
    raw = masked_patch_mse(predictions, targets, torch.tensor([[1.0, 0.0]]), norm_pix_loss=False).item()
    assert raw == pytest.approx((0 + 1 + 4 + 9) / 4)
    assert normalize_patches(targets)[0, 0].mean().abs().item() < 1e-6


def test_patchify_layout_and_round_trip():
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    patches = patchify(images, 2)
    assert patches.shape == (2, 4, 12)
    # patch 1 = rows 0-1, columns 2-3; values ordered (row, column, channel)
    assert patches[0, 1, :3].tolist() == images[0, :, 0, 2].tolist()
    assert patches[0, 1, 3:6].tolist() == images[0, :, 0, 3].tolist()
    torch.testing.assert_close(unpatchify(patches, 2, (2, 2)), images)


def _counts(mask, on_cell):
    hidden = mask.mask.bool()
    return (hidden & on_cell).sum(1).tolist(), (hidden & ~on_cell).sum(1).tolist()


def test_random_mask_counts_and_restore():
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    mask = random_patch_mask(noise, 0.25)
    assert mask.mask.sum(1).tolist() == [4.0, 4.0, 4.0]
    assert mask.ids_keep.shape == (3, 12)
    # the kept indices are exactly the visible patches, and ids_restore undoes the keep-then-hide order
    visible = torch.zeros(3, 16).scatter_(1, mask.ids_keep, 1.0)
    torch.testing.assert_close(visible, 1 - mask.mask)
    shuffle = torch.argsort(mask.ids_restore, dim=1)  # visible patches first, then hidden ones
    assert (shuffle[:, :12] == mask.ids_keep).all()
    assert (torch.gather(shuffle, 1, mask.ids_restore) == torch.arange(16)).all()


@pytest.mark.parametrize(
    "cell_patches, mask_ratio, object_ratio, expected_cell, expected_background",
    [
        (6, 0.5, 0.5, 3, 5),  # budget 8: half of the 6 cell patches, the other 5 on background
        (12, 0.5, 0.25, 4, 4),  # 3 wanted on the cell, but only 4 background patches: the cell takes the rest
        (12, 0.5, 1.0, 8, 0),  # all cell patches wanted, capped by the budget
        (0, 0.25, 0.5, 0, 4),  # empty mask: everything on background
    ],
)
def test_object_aware_mask_counts(cell_patches, mask_ratio, object_ratio, expected_cell, expected_background):
    on_cell = torch.zeros(4, 16, dtype=torch.bool)
    on_cell[:, :cell_patches] = True
    on_cell = on_cell[:, torch.randperm(16, generator=torch.Generator().manual_seed(1))]
    noise = torch.rand(4, 16, generator=torch.Generator().manual_seed(2))
    mask = object_aware_patch_mask(noise, on_cell, mask_ratio, object_ratio)
    cell, background = _counts(mask, on_cell)
    assert cell == [expected_cell] * 4 and background == [expected_background] * 4
    assert mask.ids_keep.shape == (4, 16 - expected_cell - expected_background)


def test_cell_patch_fraction_threshold():
    masks = torch.zeros(1, 1, 32, 32)
    masks[..., :16, :16] = 1  # patch 0 fully on the cell
    masks[..., :8, 16:] = 1  # patch 1 half on the cell
    masks[..., 16:20, :16] = 1  # patch 2 a quarter on the cell
    fraction = cell_patch_fraction(masks, 16)
    assert fraction.tolist() == [[1.0, 0.5, 0.25, 0.0]]
