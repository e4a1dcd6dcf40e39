"""The names `subcell-hf` offers as choices, in a module that imports nothing heavy, so that `--help` answers
without importing torch. The modules that implement the choices import them from here (one source of truth), except
for three facts whose home is elsewhere and which are repeated here for `--help` alone: the HPA channel names
(`subcell_hf.models`, uploaded as remote code, so it imports nothing of ours), and the release and model-family
names (`subcell_hf.variants`); tests/test_cli_help.py checks that the copies match.

The `Literal` aliases are the types of the command configs' fields: draccus turns them into the choices and the
checks of the command line and of YAML presets.
"""

from typing import Literal

INPUT_KINDS = ("csv", "fields", "shards")  # subcell_hf.inference.inputs
OUTPUT_FORMATS = ("h5ad", "parquet", "npy")  # subcell_hf.inference.outputs
PRECISION_NAMES = ("fp32", "bf16", "fp16")  # subcell_hf.inference.embed.PRECISIONS maps them to dtypes
RUNTIMES = ("auto", "eager", "onnx", "onnx-int8", "openvino")  # subcell_hf.inference.runtime
#: environment variable that sets the default runtime of every entry point (e.g. `eager` on a cluster node where
#: exported graphs are unwanted, or for many short runs that would each pay an export)
RUNTIME_VARIABLE = "SUBCELL_HF_RUNTIME"
MAP_METHODS = ("auto", "umap", "pca")  # subcell_hf.inference.plots
DEFAULT_COLOR = "top_1"  # the obs column a map is coloured by

#: copies for `--help` (see the module docstring): subcell_hf.models.HPA_CHANNELS, subcell_hf.variants
HPA_CHANNELS = ("microtubules", "er", "dna", "protein")
MODEL_FAMILY_NAMES = ("mae-cells-prots-pool", "vit-prots-pool")
RELEASE_NAMES = tuple(
    sorted(f"{variant}-{family}" for variant in ("all_channels", "mt-dna-protein", "er-dna-protein", "dna-protein")
           for family in MODEL_FAMILY_NAMES)
)

InputKindChoice = Literal[("auto", *INPUT_KINDS)]
OutputFormat = Literal[OUTPUT_FORMATS]
PrecisionChoice = Literal[("auto", *PRECISION_NAMES)]
RuntimeName = Literal[RUNTIMES]
MapMethod = Literal[MAP_METHODS]
ChannelName = Literal[HPA_CHANNELS]
ModelFamilyName = Literal[MODEL_FAMILY_NAMES]
ReleaseName = Literal[RELEASE_NAMES]


def default_runtime() -> str:
    """The runtime used when none is given: `$SUBCELL_HF_RUNTIME`, else "auto"."""
    import os

    name = os.environ.get(RUNTIME_VARIABLE, "").strip() or "auto"
    if name not in RUNTIMES:
        raise ValueError(f"{RUNTIME_VARIABLE}={name!r} is not a runtime: expected one of {', '.join(RUNTIMES)}")
    return name
