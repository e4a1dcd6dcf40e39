"""Exact conversion: full-size synthetic original checkpoints (published key names and shapes) -> converted model,
checked against the independent plain-torch forward of `reference.py` at the trained size and at 640 px."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification

from subcell_hf.hub.convert import encoder_key_map, load_original_state_dict
from subcell_hf.data.synthetic import write_release_files
from subcell_hf.variants import CHANNEL_VARIANTS, MODEL_FAMILIES, Release

from .reference import reference_encoder, reference_normalize, reference_probabilities

# C = 4, 3, 2, alternating the two position-embedding kinds so both are covered at full size.
CASES = [
    ("all_channels", "vit-prots-pool"),
    ("er-dna-protein", "mae-cells-prots-pool"),
    ("dna-protein", "vit-prots-pool"),
]


@pytest.fixture(scope="module", params=CASES, ids=["-".join(c) for c in CASES])
def converted_full_size(request, tmp_path_factory):
    from subcell_hf.hub.convert import convert_release

    release = Release(CHANNEL_VARIANTS[request.param[0]], MODEL_FAMILIES[request.param[1]])
    root = tmp_path_factory.mktemp(release.name)
    (encoder_path, classifier_paths), = write_release_files(root / "release", [release]).values()
    _, report = convert_release(release, root / "release", root / "converted")
    assert report.passed, report.checks
    return release, encoder_path, classifier_paths, root / "converted"


@pytest.mark.slow
def test_original_files_have_the_published_layout(converted_full_size):
    release, encoder_path, classifier_paths, _ = converted_full_size
    sd = load_original_state_dict(encoder_path)
    assert len(sd) == 204
    assert set(sd) == set(encoder_key_map(12))
    assert sd["encoder.embeddings.position_embeddings"].shape == (1, 785, 768)
    assert sd["encoder.embeddings.patch_embeddings.projection.weight"].shape == (768, release.variant.num_channels, 16, 16)
    assert len(classifier_paths) == 10
    head = load_original_state_dict(classifier_paths[0])
    assert {k: tuple(v.shape) for k, v in head.items()} == {
        "0.weight": (512, 1536), "0.bias": (512,), "3.weight": (256, 512), "3.bias": (256,),
        "6.weight": (31, 256), "6.bias": (31,),
    }


@pytest.mark.slow
@pytest.mark.parametrize("size", [448, 640])
def test_converted_model_matches_reference(converted_full_size, size):
    release, encoder_path, classifier_paths, folder = converted_full_size
    # the reference runs in float64 (the exact result); the float32 model must agree to 1e-5 (absolute + relative)
    encoder_sd = {k: v.double() for k, v in load_original_state_dict(encoder_path).items()}
    classifier_sds = [{k: v.double() for k, v in load_original_state_dict(p).items()} for p in classifier_paths]

    rng = np.random.default_rng(size)
    batch = 1
    raw = rng.integers(0, 65535, size=(batch, release.variant.num_channels, size, size), dtype=np.uint16)
    processor = AutoImageProcessor.from_pretrained(folder)
    assert processor.channel_names == list(release.variant.channels)
    pixels = processor(raw)["pixel_values"]
    expected_pixels = reference_normalize(torch.from_numpy(raw.astype(np.float32)))
    assert torch.equal(pixels, expected_pixels)

    model = AutoModelForImageClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        output = model(pixels)
        ref_embedding, ref_maps, _ = reference_encoder(encoder_sd, expected_pixels.double(), num_heads=12)
        ref_probabilities = reference_probabilities(classifier_sds, ref_embedding)

    grid = size // 16
    assert output.embeddings.shape == (batch, 1536)
    assert output.pool_attentions.shape == (batch, 2, grid, grid)
    assert output.ensemble_logits.shape == (batch, 10, 31)
    parity = {"rtol": 1e-5, "atol": 1e-5}  # measured: at most 4.1e-6 absolute on embeddings of magnitude up to 3.8
    torch.testing.assert_close(output.embeddings.double(), ref_embedding, **parity)
    torch.testing.assert_close(output.probabilities.double(), ref_probabilities, **parity)
    torch.testing.assert_close(output.pool_attentions.double(), ref_maps, **parity)

    if size == 448:  # the encoder alone, through AutoModel, gives the same embedding
        encoder = AutoModel.from_pretrained(folder).eval()
        with torch.inference_mode():
            embedding = encoder(pixels).pooler_output
        torch.testing.assert_close(embedding.double(), ref_embedding, **parity)
