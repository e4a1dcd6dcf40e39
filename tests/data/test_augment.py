"""Two-view augmentation: mask/image alignment, cell masking, global min-max, the release's photometric views
(which views, which probabilities, no second min-max), seeds."""

from __future__ import annotations

import pytest
import torch

from subcell_hf.data.augment import TwoViewAugmentation
from subcell_hf.models import min_max_normalize

IDENTITY = dict(flip_probability=0.0, rotation_degrees=0.0, translate=0.0, scale=(1.0, 1.0), perspective_distortion=0.0)


def blob_masks(n=16, size=32, seed=0):
    """Off-centre rectangles of random size, so that any misregistration shows."""
    generator = torch.Generator().manual_seed(seed)
    masks = torch.zeros(n, 1, size, size)
    for k in range(n):
        top, left = torch.randint(2, size // 2, (2,), generator=generator).tolist()
        height, width = torch.randint(4, size // 2, (2,), generator=generator).tolist()
        masks[k, 0, top : top + height, left : left + width] = 1
    return masks


@pytest.mark.parametrize("affine_probability", [1.0, 0.0], ids=["affine", "perspective"])
def test_mask_moves_with_the_image(affine_probability):
    augmentation = TwoViewAugmentation(affine_probability=affine_probability, perspective_probability=1.0)
    masks = blob_masks()
    images = masks.repeat(1, 3, 1, 1)  # an image equal to its mask
    warped, warped_masks = augmentation.geometric(images, masks, torch.Generator().manual_seed(0))
    assert torch.equal((warped >= 0.5).float(), warped_masks.expand_as(warped))
    assert not torch.equal(warped_masks, masks)  # it did move
    assert 0.5 < warped_masks.sum() / masks.sum() < 1.6  # scale 0.8-1.2, some cells pushed partly out


def test_flips_alone_are_exact():
    augmentation = TwoViewAugmentation(**{**IDENTITY, "flip_probability": 1.0})
    images = torch.arange(2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    warped, _ = augmentation.geometric(images, torch.ones(2, 1, 16, 16), torch.Generator().manual_seed(0))
    torch.testing.assert_close(warped, images.flip(-1).flip(-2), rtol=0, atol=1e-3)


def test_half_of_each_record_is_masked_independently_per_view():
    quiet = dict(drop_channel_probability=0.0, protein_rescale_probability=0.0, brightness=0.0, contrast=0.0,
                 noise_probability=0.0, erase_probability=0.0, blur_sigma=(0.1, 0.1),
                 sharpen_probability=0.0)  # view 2 ~ view 1
    augmentation = TwoViewAugmentation(**IDENTITY, **quiet)
    cells = torch.rand(32, 2, 32, 32) * 1000 + 500  # no dark pixels anywhere: masking is visible
    masks = blob_masks(32)
    views = augmentation(cells, masks, cells_per_record=8, generator=torch.Generator().manual_seed(0))
    masked = {}
    for name in ("view1", "view2"):
        outside = (views[name] * (1 - masks)).flatten(1).amax(1)
        assert ((outside < 0.05) | (outside > 0.5)).all()  # masked cells are dark outside, the others are not
        masked[name] = (outside < 0.05).view(4, 8)
        assert masked[name].sum(1).tolist() == [4, 4, 4, 4]
    assert not torch.equal(masked["view1"], masked["view2"])
    assert torch.equal(views["mask1"], masks) and torch.equal(views["mask2"], masks)


def test_views_use_the_global_min_max_not_per_channel():
    augmentation = TwoViewAugmentation(**IDENTITY, masked_fraction=0.0)
    cells = torch.stack([torch.rand(8, 32, 32) * 100, torch.rand(8, 32, 32) * 10_000 + 50], 1)  # (8, 2, 32, 32)
    view1 = augmentation(cells, torch.ones(8, 1, 32, 32), generator=torch.Generator().manual_seed(0))["view1"]
    torch.testing.assert_close(view1, min_max_normalize(cells), rtol=0, atol=1e-5)
    low, high = cells.amin(dim=(1, 2, 3), keepdim=True), cells.amax(dim=(1, 2, 3), keepdim=True)
    torch.testing.assert_close(view1, (cells - low) / (high - low + 1e-6), rtol=0, atol=1e-5)
    assert view1[:, 0].max() < 0.02  # the dim channel stays dim: one scale for all channels


def test_masked_cells_are_masked_before_the_min_max():
    """Released order (docs/pretraining.md, section 7): multiply the raw cell by its mask, then min-max. With a
    camera offset in the background (raw minimum 10), normalising first would leave the masked cell's intensities
    shifted."""
    augmentation = TwoViewAugmentation(**IDENTITY, masked_fraction=1.0)
    cells = torch.full((8, 2, 32, 32), 10.0)
    cells[:, :, 8:24, 8:24] = 40.0
    cells[:, 1, 12:20, 12:20] = 110.0
    masks = torch.zeros(8, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    view1 = augmentation(cells, masks, generator=torch.Generator().manual_seed(0))["view1"]
    torch.testing.assert_close(view1, min_max_normalize(cells * masks), rtol=0, atol=1e-5)
    assert view1[0, 0, 10, 10].item() == pytest.approx(40 / 110, abs=1e-5)  # not (40 - 10) / (110 - 10)


def test_photometric_view_stays_in_range_and_differs():
    augmentation = TwoViewAugmentation()
    cells, masks = torch.rand(16, 4, 32, 32) * 4000, blob_masks()
    views = augmentation(cells, masks, generator=torch.Generator().manual_seed(0))
    for name in ("view1", "view2"):
        view = views[name]
        assert view.dtype == torch.float32 and view.shape == cells.shape and torch.isfinite(view).all()
        assert view.min() >= 0 and view.max() <= 1
    assert views["mask2"].shape == (16, 1, 32, 32)
    assert not torch.allclose(views["view1"], views["view2"])


#: Only the protein rescale acts (to 0.2 / max(cell)): what a view's photometric step did is then plain to see.
PROTEIN_TO_0_2 = dict(
    IDENTITY, masked_fraction=0.0, drop_channel_probability=0.0, protein_rescale_probability=1.0,
    protein_rescale=(0.2, 0.2), brightness=0.0, contrast=0.0, blur_probability=0.0, sharpen_probability=0.0,
    noise_probability=0.0, erase_probability=0.0,
)


def bright_protein_cells(n=8):
    cells = torch.rand(n, 2, 16, 16) * 50
    cells[:, 1, 4:12, 4:12] = 1000.0  # the protein holds the cell's maximum
    return cells


def test_no_second_min_max_after_augmentation():
    """A darkened view stays dark (the release does not rescale the views after augmenting them)."""
    views = TwoViewAugmentation(**PROTEIN_TO_0_2)(bright_protein_cells(), torch.ones(8, 1, 16, 16),
                                                  generator=torch.Generator().manual_seed(0))
    assert views["view2"][:, 1].amax().item() == pytest.approx(0.2, abs=1e-5)
    assert views["view2"].flatten(1).amax(1).max() < 0.25  # not stretched back to 1


@pytest.mark.parametrize(
    ("family", "photometric_views"), [("mae-cells-prots-pool", (2,)), ("vit-prots-pool", (1, 2))]
)
def test_photometric_views_per_family(family, photometric_views):
    """MAE-CellS-ProtS-Pool changes intensities on view 2 only; ViT-ProtS-Pool on both views."""
    augmentation = TwoViewAugmentation.for_family(family, **PROTEIN_TO_0_2)
    assert augmentation.config.photometric_views == photometric_views
    views = augmentation(bright_protein_cells(), torch.ones(8, 1, 16, 16), generator=torch.Generator().manual_seed(0))
    for view in (1, 2):
        peak = views[f"view{view}"][:, 1].amax().item()
        assert peak == pytest.approx(0.2 if view in photometric_views else 1.0, abs=1e-5), view


def test_photometric_probabilities_are_the_releases():
    """Per channel: blur 0.5 x 0.5 (blur branch), sharpen 0.5 x 0.25, erasing 0.25; perspective applies half the
    time once chosen; noise sigma drawn per channel."""
    config = TwoViewAugmentation().config
    assert (config.blur_branch_probability, config.blur_probability, config.sharpen_probability) == (0.5, 0.5, 0.25)
    assert (config.erase_probability, config.perspective_probability, config.noise_probability) == (0.25, 0.5, 0.5)
    only_erasing = dict(
        PROTEIN_TO_0_2, protein_rescale_probability=0.0, erase_scale=(0.1, 0.1),
        erase_probability=config.erase_probability,
    )
    images = torch.rand(2000, 2, 16, 16) * 0.5 + 0.25
    erased = (TwoViewAugmentation(**only_erasing).photometric(images, torch.Generator().manual_seed(0)) == 0)
    assert erased.flatten(2).any(2).float().mean().item() == pytest.approx(0.25, abs=0.03)
    only_blur = dict(only_erasing, erase_probability=0.0, blur_probability=config.blur_probability)
    changed = TwoViewAugmentation(**only_blur).photometric(images, torch.Generator().manual_seed(0)) != images
    assert changed.flatten(2).any(2).float().mean().item() == pytest.approx(0.25, abs=0.03)
    geometric = TwoViewAugmentation(affine_probability=0.0, flip_probability=0.0)
    matrices = geometric.sampling_matrices(4000, torch.Generator().manual_seed(0))
    untouched = torch.isclose(matrices, torch.eye(3, dtype=torch.float64)).flatten(1).all(1)
    assert untouched.double().mean().item() == pytest.approx(0.5, abs=0.03)


def test_dropped_channel_is_never_the_protein():
    augmentation = TwoViewAugmentation(
        drop_channel_probability=1.0, protein_rescale_probability=0.0, brightness=0.0, contrast=0.0,
        noise_probability=0.0, erase_probability=0.0,
    )
    images = torch.rand(64, 4, 16, 16) * 0.5 + 0.25
    out = augmentation.photometric(images, torch.Generator().manual_seed(0))
    dropped = out.flatten(2).amax(2) == 0  # (64, 4)
    assert dropped.sum(1).tolist() == [1] * 64 and not dropped[:, -1].any()
    two_channels = augmentation.photometric(images[:, 2:], torch.Generator().manual_seed(0))
    assert (two_channels.flatten(2).amax(2) > 0).all()  # no dropping with only two channels


def test_seeded_generator_reproduces_views():
    augmentation = TwoViewAugmentation()
    cells, masks = torch.rand(8, 3, 32, 32), blob_masks(8)
    first = augmentation(cells, masks, generator=torch.Generator().manual_seed(5))
    second = augmentation(cells, masks, generator=torch.Generator().manual_seed(5))
    other = augmentation(cells, masks, generator=torch.Generator().manual_seed(6))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not torch.equal(first["view2"], other["view2"])


def test_bad_shapes_and_settings_are_rejected():
    augmentation = TwoViewAugmentation()
    with pytest.raises(ValueError, match="not a multiple of cells_per_record=8"):
        augmentation(torch.rand(12, 2, 16, 16), torch.ones(12, 1, 16, 16))
    with pytest.raises(ValueError, match=r"masks: expected shape \(8, 1, 16, 16\)"):
        augmentation(torch.rand(8, 2, 16, 16), torch.ones(8, 1, 8, 8))
    with pytest.raises(ValueError, match="unknown augmentation settings"):
        TwoViewAugmentation(rotation=3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_accelerator():
    augmentation = TwoViewAugmentation()
    cells, masks = torch.rand(16, 4, 64, 64, device="cuda"), blob_masks(16, 64).cuda()
    views = augmentation(cells, masks, generator=torch.Generator().manual_seed(0))
    assert all(v.device.type == "cuda" for v in views.values())
    again = augmentation(cells, masks, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(views[k], again[k]) for k in views)
