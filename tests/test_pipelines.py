"""`pipeline("image-classification")` / `pipeline("image-feature-extraction")` on every input kind a user types,
with no remote-code prompt, and the stock behaviour kept for other models."""

from __future__ import annotations

import builtins
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tifffile
import torch
from transformers import AutoModel, AutoModelForImageClassification, pipeline

from subcell_hf.data.io import write_image
from subcell_hf.pipelines import SubCellImageClassificationPipeline, SubCellImageFeatureExtractionPipeline

CHANNELS = ["microtubules", "er", "dna", "protein"]


@pytest.fixture(scope="module")
def cell_files(tmp_path_factory):
    """One 64-px uint16 cell as an array, four per-channel PNGs and an OME-TIFF whose channels are stored out of
    the model's order under the stain names a microscope writes."""
    root = tmp_path_factory.mktemp("cell")
    cell = (np.random.default_rng(0).random((4, 64, 64)) * 60000).astype(np.uint16)
    paths = [str(write_image(root / f"cell_{name}.png", plane)) for name, plane in zip(CHANNELS, cell)]
    ome = root / "cell.ome.tif"
    stored = cell[[2, 0, 1, 3]]  # DNA, microtubules, ER, protein
    tifffile.imwrite(ome, stored, photometric="minisblack", metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "Tubulin", "Calreticulin", "GFP"]}})
    return cell, paths, str(ome)


@pytest.fixture
def no_prompt(monkeypatch):
    def refuse(*args):
        raise AssertionError(f"transformers asked: {args}")

    monkeypatch.setattr(builtins, "input", refuse)


def test_image_classification_on_every_input_kind(tiny_converted, cell_files, no_prompt):
    cell, paths, ome = cell_files
    classify = pipeline("image-classification", model=str(tiny_converted), top_k=3)
    assert isinstance(classify, SubCellImageClassificationPipeline)
    model = AutoModelForImageClassification.from_pretrained(tiny_converted).eval()
    with torch.no_grad():
        expected = model(**classify.image_processor(cell)).probabilities[0]
    top = expected.argsort(descending=True)[:3]
    want = [{"label": model.config.id2label[int(i)], "score": pytest.approx(float(expected[i]), abs=1e-6)} for i in top]
    assert classify(cell) == want
    assert classify(dict(zip(CHANNELS, cell))) == want
    assert classify(paths) == want  # one file per channel, model order
    assert classify(ome) == want  # channels found by their stain names
    assert classify(torch.from_numpy(cell.astype(np.int32))) == want
    assert classify([cell, ome]) == [want, want]
    assert classify(np.stack([cell, cell])) == [want, want]


def test_image_feature_extraction_gives_the_embedding(tiny_converted, cell_files, no_prompt):
    cell, paths, ome = cell_files
    extract = pipeline("image-feature-extraction", model=str(tiny_converted))
    assert isinstance(extract, SubCellImageFeatureExtractionPipeline)
    model = AutoModel.from_pretrained(tiny_converted).eval()
    with torch.no_grad():
        output = model(**extract.image_processor(cell))
    for inputs in (cell, dict(zip(CHANNELS, paths)), paths, ome):
        np.testing.assert_allclose(np.asarray(extract(inputs)), output.pooler_output.numpy(), atol=1e-6)
    tokens = np.asarray(extract(cell, pool=False))
    assert tokens.shape == tuple(output.last_hidden_state.shape)
    assert np.asarray(extract([cell, cell])).shape == (2, *output.pooler_output.shape)


def test_explicit_channel_map_and_clear_errors(tiny_converted, cell_files, tmp_path, no_prompt):
    cell, paths, _ = cell_files
    unnamed = tmp_path / "other_names.ome.tif"
    tifffile.imwrite(unnamed, cell[[3, 2, 1, 0]], photometric="minisblack", metadata={"axes": "CYX", "Channel": {"Name": ["c0", "c1", "c2", "c3"]}})
    classify = pipeline("image-classification", model=str(tiny_converted), top_k=2)
    with pytest.raises(ValueError, match=r"other_names.ome.tif: expected channels .* found \['c0', 'c1', 'c2', 'c3'\] \(missing \['microtubules'.*channel_map"):
        classify(str(unnamed))
    mapped = classify(str(unnamed), channel_map={"microtubules": 3, "er": "c2", "dna": 1, "protein": "c0"})
    assert mapped == classify(cell)
    with pytest.raises(ValueError, match="expected one file per model channel"):
        classify([paths[0], paths[1]])


def test_no_prompt_in_a_fresh_process(tiny_converted):
    """What a user types, in a process that imported nothing else: stdin closed, so any prompt would fail. The
    modeling module first: transformers' Auto modules then load while it is half-initialised (the registration
    must still happen)."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        import subcell_hf.models.modeling_subcell
        from transformers import pipeline
        print(pipeline("image-classification", model={str(tiny_converted)!r}, top_k=1)(np.ones((4, 32, 32)))[0]["label"])
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "custom code" not in result.stdout + result.stderr
    assert result.stdout.strip().splitlines()[-1] in AutoModelForImageClassification.from_pretrained(tiny_converted).config.id2label.values()
