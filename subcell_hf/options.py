"""The names `subcell-hf` offers as choices, in a module that imports nothing heavy, so that `--help` answers
without importing torch. The modules that implement the choices import them from here (one source of truth)."""

INPUT_KINDS = ("csv", "fields", "shards")  # subcell_hf.inference.inputs
OUTPUT_FORMATS = ("h5ad", "parquet", "npy")  # subcell_hf.inference.outputs
PRECISION_NAMES = ("fp32", "bf16", "fp16")  # subcell_hf.inference.embed.PRECISIONS maps them to dtypes
RUNTIMES = ("auto", "eager", "onnx", "onnx-int8", "openvino")  # subcell_hf.inference.runtime
#: environment variable that sets the default runtime of every entry point (e.g. `eager` on a cluster node where
#: exported graphs are unwanted, or for many short runs that would each pay an export)
RUNTIME_VARIABLE = "SUBCELL_HF_RUNTIME"
MAP_METHODS = ("auto", "umap", "pca")  # subcell_hf.inference.plots
DEFAULT_COLOR = "top_1"  # the obs column a map is coloured by


def default_runtime() -> str:
    """The runtime used when none is given: `$SUBCELL_HF_RUNTIME`, else "auto"."""
    import os

    name = os.environ.get(RUNTIME_VARIABLE, "").strip() or "auto"
    if name not in RUNTIMES:
        raise ValueError(f"{RUNTIME_VARIABLE}={name!r} is not a runtime: expected one of {', '.join(RUNTIMES)}")
    return name
