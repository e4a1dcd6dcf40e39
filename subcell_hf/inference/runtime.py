"""One interface over the ways to run a SubCell model: eager PyTorch (optionally `torch.compile`d), ONNX Runtime
(fp32, or int8 with dynamically quantized linear layers) and OpenVINO.

Every runtime maps preprocessed cells (B, C, H, W) to `(embeddings, probabilities or None, pool attention maps)`,
the triple `EmbeddingModel.forward` returns, so `embed` and `LocalizationPredictor` take any of them.

The exported graphs (ONNX Runtime, OpenVINO) are made once per model and crop size with `torch.onnx.export` (the
dynamo exporter; the batch dimension stays free) and cached in the export cache (`export_cache_dir()`), keyed by
the sha256 of the weights and config (`EmbeddingModel.fingerprint`), the crop size, the torch version and the
quantization: a later run, another process, or another crop size of the same model finds its own file. Files are
written atomically under a lock, so concurrent processes never read a half-written graph. Why not `optimum`'s
exporter: `optimum-onnx` requires transformers 4.x, and this package requires transformers 5 (docs/embedding.md).

    >>> from subcell_hf.inference import EmbeddingModel
    >>> from subcell_hf.inference.runtime import build_runtime
    >>> model = EmbeddingModel.from_pretrained("subcell/all_channels-vit-prots-pool")
    >>> runtime = build_runtime("onnx", model)          # exported on the first call for a crop size, then cached
    >>> embeddings, probabilities, attention = runtime(pixel_values)
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..utils.atomic_writes import atomic_path, atomic_write_text
from ..options import RUNTIMES

if TYPE_CHECKING:
    from .embed import EmbeddingModel

logger = logging.getLogger(__name__)

#: "auto" exports graphs for at most this many crop sizes per run; crops of other sizes run eager.
AUTO_MAX_SIZES = 2
#: The runtimes `--runtime` accepts. "auto" is the fastest measured one that keeps fp32 parity on the device
#: (`resolve_runtime`); "onnx-int8" is opt-in: faster, not within 1e-4 of fp32 (see docs/embedding.md).
#: (`RUNTIMES` lives in subcell_hf/options.py, importable without torch.)
#: Runtime -> (package to import, pip requirement that provides it).
RUNTIME_PACKAGES = {
    "onnx": (("onnxruntime", "onnxruntime"), ("onnxscript", "onnxscript"), ("onnx", "onnx")),
    "onnx-int8": (("onnxruntime", "onnxruntime"), ("onnxscript", "onnxscript"), ("onnx", "onnx")),
    "openvino": (("openvino", "openvino"), ("onnxscript", "onnxscript"), ("onnx", "onnx")),
}
OUTPUT_NAMES = ("embeddings", "probabilities", "pool_attentions")
ONNX_OPSET = 18
EXPORT_CACHE_ENV = "SUBCELL_HF_EXPORT_CACHE"


class MissingRuntimeError(ImportError):
    """An optional runtime was asked for, and the package it needs is not installed."""


def missing_packages(runtime: str) -> list[str]:
    """The pip requirements `runtime` needs that are not installed (empty when it can run)."""
    return [pip for module, pip in RUNTIME_PACKAGES.get(runtime, ()) if importlib.util.find_spec(module) is None]


def require_runtime(runtime: str) -> None:
    missing = missing_packages(runtime)
    if missing:
        raise MissingRuntimeError(
            f"runtime {runtime!r} needs {', '.join(missing)}, which is not installed: pip install "
            + " ".join(f"'{m}'" for m in missing)
            + " (or choose another runtime: --runtime eager)"
        )


def export_cache_dir() -> Path:
    """Where exported graphs live: `$SUBCELL_HF_EXPORT_CACHE`, else `$HF_HOME/subcell_hf/exports` (next to the
    Hub cache that holds the models; a model's own folder is never written to)."""
    if os.environ.get(EXPORT_CACHE_ENV):
        return Path(os.environ[EXPORT_CACHE_ENV]).expanduser()
    from huggingface_hub import constants

    return Path(constants.HF_HOME) / "subcell_hf" / "exports"


# ------------------------------------------------------------------------------------------------- runtimes
class Runtime:
    """Runs an `EmbeddingModel`; call it on preprocessed cells (B, C, H, W) on any device."""

    name = "runtime"

    def __init__(self, embedding_model: "EmbeddingModel"):
        self.embedding_model = embedding_model

    def __call__(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """What ran, for the run's metadata."""
        return {"runtime": self.name}


class EagerRuntime(Runtime):
    """The PyTorch model as is (SDPA attention), on `device`, optionally through `torch.compile` (inductor; on CPU
    it generates C++ kernels)."""

    name = "eager"

    def __init__(self, embedding_model: "EmbeddingModel", device: torch.device | str | None = None,
                 compile: bool = False, dtype: torch.dtype | None = None):
        super().__init__(embedding_model)
        if device is not None:
            embedding_model.model.to(device)
        self.device = next(embedding_model.model.parameters()).device
        self.dtype = dtype
        self.compiled = compile
        self.module = torch.compile(embedding_model.model) if compile else embedding_model.model

    def __call__(self, pixel_values):
        pixel_values = pixel_values.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            return self.embedding_model.forward(pixel_values, self.module)

    def describe(self):
        return {"runtime": "eager+compile" if self.compiled else "eager"}


class _ExportedGraphRuntime(Runtime):
    """Common part of the runtimes that run an exported ONNX graph on CPU, one compiled graph per crop size."""

    quantize = False

    def __init__(self, embedding_model: "EmbeddingModel", threads: int | None = None,
                 cache_dir: str | os.PathLike | None = None, max_sizes: int | None = None,
                 fingerprint: str | None = None):
        super().__init__(embedding_model)
        require_runtime(self.name)
        parameter = next(embedding_model.model.parameters())
        if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
            raise ValueError(
                f"runtime {self.name!r} runs fp32 models on the CPU; the model is {parameter.dtype} on "
                f"{parameter.device} (use --runtime eager on a GPU or with another precision)"
            )
        self.threads = threads or torch.get_num_threads()
        self.cache_dir = Path(cache_dir) if cache_dir is not None else export_cache_dir()
        self.max_sizes = max_sizes
        self._fingerprint = fingerprint  # computed on first export when not given
        self._graphs: dict[tuple[int, int], Any] = {}
        self._eager: EagerRuntime | None = None

    def graph_path(self, height: int, width: int) -> Path:
        if self._fingerprint is None:
            self._fingerprint = self.embedding_model.fingerprint()
        return exported_graph(self.embedding_model, height, width, quantize=self.quantize,
                              cache_dir=self.cache_dir, fingerprint=self._fingerprint)

    def __call__(self, pixel_values):
        height, width = pixel_values.shape[-2:]
        graph = self._graphs.get((height, width))
        if graph is None and self.max_sizes is not None and len(self._graphs) >= self.max_sizes:
            return self._eager_fallback(height, width)(pixel_values)
        if graph is None:
            graph = self._graphs[(height, width)] = self.load(self.graph_path(height, width))
        outputs = self.run(graph, pixel_values.detach().to("cpu", torch.float32).contiguous().numpy())
        tensors = [torch.from_numpy(np.asarray(o)) for o in outputs]
        if self.embedding_model.has_classifiers:
            embeddings, probabilities, attention = tensors
            return embeddings, probabilities, attention
        embeddings, attention = tensors
        return embeddings, None, attention

    def _eager_fallback(self, height: int, width: int) -> EagerRuntime:
        """Crops of more sizes than `max_sizes` run eager (same numbers within fp32 rounding) rather than paying
        an export for each size."""
        if self._eager is None:
            logger.warning(
                "crops of more than %d sizes (now %dx%d): those run on the eager runtime instead of exporting a "
                "graph per size; resize every crop to one size (--size) to run them all on %s",
                self.max_sizes, height, width, self.name,
            )
            self._eager = EagerRuntime(self.embedding_model)
        return self._eager

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def run(self, graph: Any, pixel_values: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def describe(self):
        return {"runtime": self.name, "threads": self.threads}


class OnnxRuntime(_ExportedGraphRuntime):
    """ONNX Runtime on CPU, all graph optimisations, `threads` intra-op threads (default: torch's)."""

    name = "onnx"

    def load(self, path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, graph, pixel_values):
        return graph.run(None, {"pixel_values": pixel_values})


class QuantizedOnnxRuntime(OnnxRuntime):
    """ONNX Runtime with the linear layers' weights in int8 and their inputs quantized per batch at run time
    (`onnxruntime.quantization.quantize_dynamic`). Opt-in: faster, but not within 1e-4 of fp32."""

    name = "onnx-int8"
    quantize = True


class OpenVinoRuntime(_ExportedGraphRuntime):
    """OpenVINO on CPU, reading the same exported ONNX graph (fp32 inference precision, so it keeps parity)."""

    name = "openvino"

    def load(self, path):
        import openvino

        core = openvino.Core()
        config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32"}
        return core.compile_model(str(path), "CPU", config)

    def run(self, graph, pixel_values):
        result = graph(pixel_values)
        return [result[output] for output in graph.outputs]


RUNTIME_CLASSES = {"eager": EagerRuntime, "onnx": OnnxRuntime, "onnx-int8": QuantizedOnnxRuntime,
                   "openvino": OpenVinoRuntime}


def resolve_runtime(name: str, device: torch.device | str = "cpu", dtype: torch.dtype | None = None,
                    compile: bool = False) -> str:
    """The runtime `name` stands for on `device`: "auto" is ONNX Runtime for fp32 on CPU (measured fastest at fp32
    parity, benchmarks/results/cpu_inference.md) when it is installed, else eager. Refuses combinations that
    cannot run, with a message naming the options."""
    if name not in RUNTIMES:
        raise ValueError(f"runtime must be one of {RUNTIMES}, found {name!r}")
    device = torch.device(device)
    if name == "auto":
        if device.type == "cpu" and dtype is None and not compile and not missing_packages("onnx"):
            return "onnx"
        return "eager"
    if name != "eager":
        require_runtime(name)
        if device.type != "cpu":
            raise ValueError(f"runtime {name!r} runs on the CPU, the device is {device}: use --runtime eager")
        if dtype is not None:
            raise ValueError(f"runtime {name!r} runs fp32; found precision {dtype}: use --precision fp32")
        if compile:
            raise ValueError(f"--compile applies to the eager runtime, not to {name!r}")
    return name


def build_runtime(name: str, embedding_model: "EmbeddingModel", device: torch.device | str | None = None,
                  dtype: torch.dtype | None = None, compile: bool = False, threads: int | None = None,
                  cache_dir: str | os.PathLike | None = None, fingerprint: str | None = None) -> Runtime:
    """The runtime `name` ("auto" resolved by `resolve_runtime`) over `embedding_model` on `device` (default:
    where the model is). `fingerprint`: `embedding_model.fingerprint()` when the caller has it already (hashing
    ViT-B/16's weights takes about a second); the exported runtimes name their cached graphs by it."""
    if device is None:
        device = next(embedding_model.model.parameters()).device
    resolved = resolve_runtime(name, device, dtype, compile)
    if resolved == "eager":
        return EagerRuntime(embedding_model, device, compile=compile, dtype=dtype)
    embedding_model.model.to(device)
    max_sizes = AUTO_MAX_SIZES if name == "auto" else None
    return RUNTIME_CLASSES[resolved](embedding_model, threads=threads, cache_dir=cache_dir, max_sizes=max_sizes,
                                     fingerprint=fingerprint)


# --------------------------------------------------------------------------------------------------- export
class _GraphOutputs(nn.Module):
    """The model with plain tensor outputs, in `OUTPUT_NAMES` order (no probabilities for an encoder alone)."""

    def __init__(self, embedding_model: "EmbeddingModel"):
        super().__init__()
        self.model = embedding_model.model
        self.has_classifiers = embedding_model.has_classifiers

    def forward(self, pixel_values: torch.Tensor):
        output = self.model(pixel_values)
        if self.has_classifiers:
            return output.embeddings, output.probabilities, output.pool_attentions
        return output.pooler_output, output.pool_attentions


def graph_key(fingerprint: str, height: int, width: int, quantize: bool) -> str:
    """File name stem of an exported graph: weights, crop size, exporter version and quantization."""
    torch_version = torch.__version__.split("+")[0]
    return f"subcell-{fingerprint[:20]}-{height}x{width}-torch{torch_version}-opset{ONNX_OPSET}" + (
        "-int8" if quantize else ""
    )


def exported_graph(embedding_model: "EmbeddingModel", height: int, width: int, quantize: bool = False,
                   cache_dir: str | os.PathLike | None = None, fingerprint: str | None = None) -> Path:
    """The ONNX graph of `embedding_model` for (B, C, height, width) inputs, exported (and quantized) on first use
    and cached; returns its path. Safe with several processes: one exports, the others wait and read it."""
    from filelock import FileLock

    cache_dir = Path(cache_dir) if cache_dir is not None else export_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = fingerprint or embedding_model.fingerprint()
    path = cache_dir / (graph_key(fingerprint, height, width, quantize) + ".onnx")
    with FileLock(str(path) + ".lock"):
        if path.is_file():
            return path
        if quantize:
            fp32 = exported_graph(embedding_model, height, width, False, cache_dir, fingerprint)
            started = time.perf_counter()
            logger.info("quantizing %s to int8 (once per model and crop size)", fp32.name)
            with atomic_path(path) as temporary:
                _quantize_linear_layers(fp32, temporary)
                temporary.chmod(0o644)  # a shared cache: readable by the user's colleagues
        else:
            started = time.perf_counter()
            logger.info("exporting %s at %dx%d to ONNX (once per model and crop size) -> %s",
                        embedding_model.name, height, width, path)
            with atomic_path(path) as temporary:
                _export_onnx(embedding_model, height, width, temporary)
                temporary.chmod(0o644)
        info = {
            "model": embedding_model.name,
            "model_commit": embedding_model.commit or "",
            "model_fingerprint": fingerprint,
            "input_shape": ["batch", int(embedding_model.model.config.num_channels), height, width],
            "outputs": list(OUTPUT_NAMES if embedding_model.has_classifiers else OUTPUT_NAMES[::2]),
            "quantization": "dynamic int8 (MatMul, Gemm)" if quantize else None,
            "torch": torch.__version__,
            "opset": ONNX_OPSET,
            "seconds": round(time.perf_counter() - started, 1),
        }
        atomic_write_text(path.with_suffix(".json"), json.dumps(info, indent=2) + "\n").chmod(0o644)
    return path


def _export_onnx(embedding_model: "EmbeddingModel", height: int, width: int, destination: Path) -> None:
    import warnings

    config = embedding_model.model.config
    example = torch.rand(2, config.num_channels, height, width)
    names = list(OUTPUT_NAMES if embedding_model.has_classifiers else OUTPUT_NAMES[::2])
    module = _GraphOutputs(embedding_model).eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's notes on skipped torchvision ops and deprecations
        program = torch.onnx.export(
            module, (example,), input_names=["pixel_values"], output_names=names,
            dynamic_shapes={"pixel_values": {0: batch}}, opset_version=ONNX_OPSET, dynamo=True,
            external_data=False, verbose=False,
        )
        program.save(str(destination), external_data=False)


def _quantize_linear_layers(source: Path, destination: Path) -> None:
    """Dynamic int8 quantization of the linear layers (MatMul/Gemm with a constant weight: most of the FLOPs),
    weights per output channel on 7 bits (`reduce_range`: CPUs without VNNI multiply u8 x s8 pairs into a
    saturating int16, which 8-bit weights can overflow); the patch convolution, the attention products, LayerNorms
    and softmaxes stay fp32."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(destination), op_types_to_quantize=["MatMul", "Gemm"],
                     weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


__all__ = [
    "EagerRuntime",
    "MissingRuntimeError",
    "OnnxRuntime",
    "OpenVinoRuntime",
    "QuantizedOnnxRuntime",
    "RUNTIMES",
    "Runtime",
    "build_runtime",
    "export_cache_dir",
    "exported_graph",
    "missing_packages",
    "resolve_runtime",
]
