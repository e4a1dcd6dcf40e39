"""The CPU runtimes on a tiny model: fp32 parity of every adopted runtime with eager PyTorch, the export cache
(paid once, keyed by weights and crop size, never half-written), the opt-in int8 path, and clear refusals."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from subcell_hf import LocalizationPredictor, SubCellForProteinLocalization, SubCellImageProcessor, SubCellModel
from subcell_hf.inference import EmbeddingModel, EmbeddingSettingsError, embed
from subcell_hf.inference import runtime as runtime_module
from subcell_hf.inference.runtime import MissingRuntimeError, build_runtime, missing_packages, resolve_runtime

from ..conftest import tiny_config

FP32_RUNTIMES = ["onnx"] + (["openvino"] if not missing_packages("openvino") else [])


def _tiny(with_classifiers: bool = True, seed: int = 0) -> EmbeddingModel:
    torch.manual_seed(seed)
    config = tiny_config()
    model = SubCellForProteinLocalization(config) if with_classifiers else SubCellModel(config)
    return EmbeddingModel(model, SubCellImageProcessor.from_config(config))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """One export cache for the module: each (weights, size) is exported once."""
    return tmp_path_factory.mktemp("exports")


@pytest.mark.parametrize("name", FP32_RUNTIMES)
def test_fp32_runtimes_match_eager_within_1e_5(name, cache_dir):
    model = _tiny()
    runtime = build_runtime(name, model, cache_dir=cache_dir)
    generator = torch.Generator().manual_seed(1)
    for batch in (1, 3):  # the graph was exported at batch 2: the batch dimension is free
        pixels = torch.rand(batch, 4, 64, 64, generator=generator)
        with torch.inference_mode():
            expected = model.forward(pixels)
            found = runtime(pixels)
        assert found[0].shape == expected[0].shape == (batch, 128)
        for got, want in zip(found, expected):
            torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_export_is_cached_per_weights_and_size_and_never_half_written(cache_dir, monkeypatch):
    calls = []
    original = runtime_module._export_onnx

    def counting(*args):
        calls.append(args[1:3])
        return original(*args)

    monkeypatch.setattr(runtime_module, "_export_onnx", counting)
    model = _tiny()
    pixels = torch.rand(2, 4, 48, 48)
    with torch.inference_mode():
        first = build_runtime("onnx", model, cache_dir=cache_dir)(pixels)
        second = build_runtime("onnx", model, cache_dir=cache_dir)(pixels)  # a new runtime (another run): cached
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert calls == [(48, 48)]
    graph = next(cache_dir.glob("*-48x48-*.onnx"))
    assert graph.with_suffix(".json").is_file()
    # other weights (here an encoder alone): another graph, without probabilities
    encoder = _tiny(with_classifiers=False, seed=1)
    with torch.inference_mode():
        embeddings, probabilities, attention = build_runtime("onnx", encoder, cache_dir=cache_dir)(pixels)
        expected = encoder.forward(pixels)
    assert calls == [(48, 48), (48, 48)] and len(list(cache_dir.glob("*-48x48-*.onnx"))) == 2
    assert probabilities is None
    torch.testing.assert_close(embeddings, expected[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(attention, expected[2], rtol=0, atol=1e-5)

    def crash(model, height, width, destination):
        destination.write_bytes(b"half a graph")
        raise KeyboardInterrupt("killed during the export")

    monkeypatch.setattr(runtime_module, "_export_onnx", crash)
    with pytest.raises(KeyboardInterrupt), torch.inference_mode():
        build_runtime("onnx", model, cache_dir=cache_dir)(torch.rand(1, 4, 32, 32))
    assert not [p for p in cache_dir.iterdir() if "32x32" in p.name and not p.name.endswith(".lock")]


def test_int8_is_opt_in_close_to_fp32_but_not_equal(cache_dir):
    model = _tiny()
    pixels = torch.rand(8, 4, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        expected = model.forward(pixels)
        found = build_runtime("onnx-int8", model, cache_dir=cache_dir)(pixels)
    cosine = torch.nn.functional.cosine_similarity(found[0], expected[0], dim=1)
    assert cosine.min() > 0.99
    assert (found[0] - expected[0]).abs().max() > 1e-4  # really quantized, so never the default
    assert list(cache_dir.glob("*-int8.onnx"))
    assert resolve_runtime("auto") != "onnx-int8"


def test_auto_is_onnx_for_fp32_on_cpu_and_eager_otherwise(monkeypatch):
    assert resolve_runtime("auto", "cpu") == "onnx"
    assert resolve_runtime("auto", "cpu", dtype=torch.bfloat16) == "eager"
    assert resolve_runtime("auto", "cpu", compile=True) == "eager"
    assert resolve_runtime("auto", "cuda") == "eager"
    with pytest.raises(ValueError, match="runs on the CPU"):
        resolve_runtime("onnx", "cuda")
    with pytest.raises(ValueError, match="--precision fp32"):
        resolve_runtime("onnx-int8", "cpu", dtype=torch.float16)
    with pytest.raises(ValueError, match="one of"):
        resolve_runtime("tensorrt")
    real = runtime_module.importlib.util.find_spec
    monkeypatch.setattr(runtime_module.importlib.util, "find_spec",
                        lambda name: None if name == "onnxruntime" else real(name))
    assert resolve_runtime("auto", "cpu") == "eager"  # without onnxruntime: still runs


def test_a_missing_optional_runtime_names_the_package(monkeypatch, tiny_converted, wrapper_csv, tmp_path, capsys):
    from subcell_hf.cli import main

    real = runtime_module.importlib.util.find_spec
    monkeypatch.setattr(runtime_module.importlib.util, "find_spec",
                        lambda name: None if name == "openvino" else real(name))
    with pytest.raises(MissingRuntimeError, match="pip install 'openvino'"):
        build_runtime("openvino", _tiny())
    code = main(["embed", "--model", str(tiny_converted), "--inputs", str(wrapper_csv), "--output",
                 str(tmp_path / "out"), "--runtime", "openvino", "--num_workers", "0", "--progress", "false"])
    assert code == 2
    assert "runtime 'openvino' needs openvino" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_embed_and_predictor_on_onnx_match_eager(tiny_converted, wrapper_csv, tmp_path):
    options = dict(num_workers=0, progress=False, batch_size=4)
    eager = embed(tiny_converted, wrapper_csv, tmp_path / "eager", runtime="eager", **options)
    auto = embed(tiny_converted, wrapper_csv, tmp_path / "auto", **options)
    assert auto.table.uns["runtime"] == "onnx" and eager.table.uns["runtime"] == "eager"
    np.testing.assert_allclose(auto.table.embeddings, eager.table.embeddings, rtol=0, atol=1e-5)
    np.testing.assert_allclose(auto.table.probabilities, eager.table.probabilities, rtol=0, atol=1e-5)
    assert list(auto.table.obs["top_1"]) == list(eager.table.obs["top_1"])
    with pytest.raises(EmbeddingSettingsError, match="runtime"):  # a resumed run does not mix runtimes
        embed(tiny_converted, wrapper_csv, tmp_path / "auto", runtime="eager", **options)

    predictor = LocalizationPredictor.from_pretrained(str(tiny_converted))
    reference = LocalizationPredictor.from_pretrained(str(tiny_converted), runtime="eager")
    cell = np.random.default_rng(0).integers(0, 65535, size=(4, 64, 64), dtype=np.uint16)
    torch.testing.assert_close(predictor.probabilities(cell), reference.probabilities(cell), rtol=0, atol=1e-5)
    assert [p["label"] for p in predictor(cell)] == [p["label"] for p in reference(cell)]


def test_auto_exports_few_sizes_and_runs_the_others_eager(cache_dir, caplog):
    model = _tiny()
    runtime = build_runtime("auto", model, cache_dir=cache_dir)
    with torch.inference_mode(), caplog.at_level(logging.WARNING, logger=runtime_module.__name__):
        for size in (64, 48, 32, 32):  # 64 and 48 are in the module's cache already
            pixels = torch.rand(1, 4, size, size)
            torch.testing.assert_close(runtime(pixels)[0], model.forward(pixels)[0], rtol=0, atol=1e-5)
    assert sorted(runtime._graphs) == [(48, 48), (64, 64)]
    assert "--size" in caplog.text and caplog.text.count("crops of more than") == 1


def test_the_default_runtime_comes_from_the_environment(monkeypatch, tiny_converted, wrapper_csv, tmp_path, capsys):
    from subcell_hf.cli import main
    from subcell_hf.inference.embed import EmbedConfig

    assert EmbedConfig().runtime == "auto"
    monkeypatch.setenv("SUBCELL_HF_RUNTIME", "eager")
    assert EmbedConfig().runtime == "eager"
    assert LocalizationPredictor.from_pretrained(str(tiny_converted)).runtime.name == "eager"
    monkeypatch.setenv("SUBCELL_HF_RUNTIME", "onnx-fast")
    status = main(["embed", "--model", str(tiny_converted), "--inputs", str(wrapper_csv), "--output",
                   str(tmp_path / "out"), "--num_workers", "0", "--progress", "false"])
    assert status == 2 and "SUBCELL_HF_RUNTIME='onnx-fast' is not a runtime" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
