"""`EmbedConfig`, the settings of an embedding run: what `subcell_hf.inference.embed` takes and what
`subcell-hf embed` parses its flags and YAML presets into (the command adds the model, inputs and output folder).

Kept apart from the engine, and light (no torch), so that `subcell-hf embed --help` answers at once. Each field's
docstring is its `--help` line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from ..data.crops import CropOptions
from ..options import (
    INPUT_KINDS,
    OUTPUT_FORMATS,
    PRECISION_NAMES,
    RUNTIMES,
    InputKindChoice,
    OutputFormat,
    PrecisionChoice,
    RuntimeName,
    default_runtime,
)


@dataclass
class EmbedConfig:
    """Settings of an embedding run. `formats`: a `summary.csv` (per cell: top-3 classes; per failed input: the
    error) is always written besides them. Batches never mix chunks or crop sizes."""

    input_kind: InputKindChoice = "auto"
    """csv (the original wrapper's CSV), fields (manifest of fields of view + masks), shards (from `subcell-hf
    shards`), or auto: from the file names and columns"""
    formats: Union[tuple[OutputFormat, ...], OutputFormat] = ("h5ad",)
    """outputs to write: h5ad, parquet, npy (per-cell <id>_embedding.npy / <id>_probabilities.npy); one name or a list,
    e.g. [h5ad, parquet]"""
    batch_size: int = 64
    """cells per forward pass"""
    num_workers: int = 2
    """DataLoader worker processes reading and preprocessing images while the model runs"""
    chunk_size: Optional[int] = None
    """input items (CSV rows, fields, shards) per resumable chunk; default: about a 16th of the items, at least one
    batch of rows, at most 256 rows, 8 fields or 1 shard"""
    precision: PrecisionChoice = "auto"
    """autocast dtype; auto = bf16 on a GPU that has it, else fp32"""
    compile: bool = False
    """run the model through torch.compile (eager runtime)"""
    runtime: RuntimeName = field(default_factory=default_runtime)
    """auto = ONNX Runtime for fp32 on CPU (exported once per model and crop size, cached; the measured fastest at
    fp32 parity), eager PyTorch otherwise; onnx-int8 is faster, not fp32-exact; openvino needs openvino. The
    default is $SUBCELL_HF_RUNTIME when set"""
    save_attention: bool = False
    """write <id>_attention_map.png per cell (pooler attention over the protein channel)"""
    size: Optional[int] = None
    """resize every crop to size x size (a multiple of 16) before the model (the processor's do_resize); default:
    as is"""
    device: Optional[str] = None
    """torch device; default: the process's device under accelerate launch, else cuda if present, else CPU"""
    revision: Optional[str] = None
    """Hub revision (branch, tag or commit) of the model"""
    overwrite: bool = False
    """discard chunks of an earlier run instead of resuming (needed when settings changed)"""
    progress: bool = True
    """show a progress bar (rank 0 only)"""
    crop: CropOptions = field(default_factory=CropOptions)
    """how cells are cut from fields of view (manifest input): the options of `subcell-hf shards`"""
    mask_cells: bool = False
    """zero the pixels outside each cell: its crop.mask_dilation-dilated mask for fields, the stored mask for shards"""

    def __post_init__(self):
        self.formats = (self.formats,) if isinstance(self.formats, str) else tuple(self.formats)
        unknown = [f for f in self.formats if f not in OUTPUT_FORMATS]
        if unknown:
            raise ValueError(f"unknown output formats {unknown}; expected any of {OUTPUT_FORMATS}")
        if self.input_kind not in ("auto", *INPUT_KINDS):
            raise ValueError(f"input_kind must be one of {('auto', *INPUT_KINDS)}, found {self.input_kind!r}")
        if self.precision not in ("auto", *PRECISION_NAMES):
            raise ValueError(f"precision must be one of {('auto', *PRECISION_NAMES)}, found {self.precision!r}")
        if self.runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, found {self.runtime!r}")
        if self.batch_size < 1 or self.num_workers < 0:
            raise ValueError(
                f"batch_size must be >= 1 and num_workers >= 0, found {self.batch_size} and {self.num_workers}"
            )
        for name in ("size", "chunk_size"):  # 0 or negative: refused, never silently the default
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer when given, found {value!r}")
        if not isinstance(self.crop, CropOptions):
            raise ValueError(f"crop: expected a subcell_hf.data.crops.CropOptions, found {self.crop!r}")


__all__ = ["EmbedConfig"]
