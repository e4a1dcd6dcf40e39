"""Auto-class resolution with the package, and trust_remote_code loading in a process that never imports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import torch
from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from subcell_hf import (
    LocalizationPredictor,
    SubCellConfig,
    SubCellForProteinLocalization,
    SubCellImageProcessor,
    SubCellModel,
)


def test_auto_classes_resolve_for_a_saved_folder(tiny_converted):
    assert isinstance(AutoConfig.from_pretrained(tiny_converted), SubCellConfig)
    assert isinstance(AutoModel.from_pretrained(tiny_converted), SubCellModel)
    assert isinstance(AutoModelForImageClassification.from_pretrained(tiny_converted), SubCellForProteinLocalization)
    assert isinstance(AutoImageProcessor.from_pretrained(tiny_converted), SubCellImageProcessor)


def test_command_line_one_liner_resolves_the_auto_classes(tiny_converted):
    code = (
        "import subcell_hf, transformers as t, sys; p = sys.argv[1]; "
        "print(type(t.AutoConfig.from_pretrained(p)).__name__, type(t.AutoModel.from_pretrained(p)).__name__, "
        "type(t.AutoModelForImageClassification.from_pretrained(p)).__name__, "
        "type(t.AutoImageProcessor.from_pretrained(p)).__name__)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tiny_converted)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "SubCellConfig", "SubCellModel", "SubCellForProteinLocalization", "SubCellImageProcessor"
    ]


def test_trust_remote_code_load_without_the_package(tiny_converted, tmp_path):
    cell = np.random.default_rng(0).integers(0, 65535, size=(4, 64, 64), dtype=np.uint16)
    np.save(tmp_path / "cell.npy", cell)
    predictor = LocalizationPredictor.from_pretrained(str(tiny_converted), runtime="eager")
    expected = predictor.probabilities(cell)
    script = textwrap.dedent(
        """
        import json, sys
        sys.modules["subcell_hf"] = None  # any attempt to import the package now fails
        import numpy as np, torch
        from transformers import AutoImageProcessor, AutoModel, AutoModelForImageClassification
        folder = sys.argv[1]
        processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
        model = AutoModelForImageClassification.from_pretrained(folder, trust_remote_code=True).eval()
        encoder = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
        pixels = processor(np.load(sys.argv[2]))["pixel_values"]
        with torch.inference_mode():
            out = model(pixels)
            emb = encoder(pixels).pooler_output
        print(json.dumps({
            "classes": [type(model).__module__, type(model).__name__, type(encoder).__name__, type(processor).__name__],
            "probabilities": out.probabilities[0].tolist(),
            "same_embedding": bool(torch.equal(emb, out.embeddings)),
            "loaded_package": any(m.startswith("subcell_hf") for m in sys.modules if sys.modules[m] is not None),
        }))
        """
    )
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script, str(tiny_converted), str(tmp_path / "cell.npy")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["classes"][0].startswith("transformers_modules.")
    assert report["classes"][1:] == ["SubCellForProteinLocalization", "SubCellModel", "SubCellImageProcessor"]
    assert report["same_embedding"] and not report["loaded_package"]
    torch.testing.assert_close(torch.tensor(report["probabilities"]), expected[0], rtol=0, atol=1e-7)


def test_predictor_gives_sorted_top_k_names(tiny_converted):
    predictor = LocalizationPredictor.from_pretrained(str(tiny_converted))
    cell = {c: np.random.default_rng(i).random((64, 64)) for i, c in enumerate(["microtubules", "er", "dna", "protein"])}
    top = predictor(cell, top_k=5)
    probabilities = predictor.probabilities(cell)[0]
    assert [t["label"] for t in top] == [predictor.model.config.id2label[int(i)] for i in probabilities.argsort(descending=True)[:5]]
    assert [t["score"] for t in top] == sorted((t["score"] for t in top), reverse=True)
    batch = predictor(np.stack([np.stack(list(cell.values()))] * 2), top_k=2)
    assert len(batch) == 2 and batch[0] == batch[1]
