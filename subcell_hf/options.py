"""The names `subcell-hf` offers as choices, in a module that imports nothing heavy, so that `--help` answers
without importing torch. The modules that implement the choices import them from here (one source of truth)."""

INPUT_KINDS = ("csv", "fields", "shards")  # subcell_hf.inference.inputs
OUTPUT_FORMATS = ("h5ad", "parquet", "npy")  # subcell_hf.inference.outputs
PRECISION_NAMES = ("fp32", "bf16", "fp16")  # subcell_hf.inference.embed.PRECISIONS maps them to dtypes
RUNTIMES = ("auto", "eager", "onnx", "onnx-int8", "openvino")  # subcell_hf.inference.runtime
MAP_METHODS = ("auto", "umap", "pca")  # subcell_hf.inference.plots
DEFAULT_COLOR = "top_1"  # the obs column a map is coloured by
