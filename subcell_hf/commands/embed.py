"""Embed cells with a SubCell model: embeddings, localization probabilities and, optionally, attention maps.

Inputs (the kind is detected from the file; force it with --input-kind):
  - the original wrapper's CSV: r_image,y_image,b_image,g_image,output_prefix (one crop per row, # comments);
  - a manifest of fields of view + cell masks (as written by the data tools), cropped on the fly;
  - WebDataset shards written by `subcell-hf shards` (files, a brace pattern or their folder).

    subcell-hf embed --model subcell/all_channels-vit-prots-pool path_list.csv --output results
    subcell-hf embed --model ./converted manifest.csv --output results --format h5ad parquet --save-attention
    accelerate launch -m subcell_hf.cli embed --model ./converted 'shards/shard-{000000..000099}.tar' --output results

Writes results/embeddings.h5ad (X = embeddings, obsm["probabilities"], obs = ids, metadata and top-3 classes,
uns = model, revision and preprocessing), optional embeddings.parquet and per-cell <id>_embedding.npy /
<id>_probabilities.npy / <id>_attention_map.png, and summary.csv (per cell: top-3 classes; per failed input: why).
A rerun with the same settings resumes: finished chunks in results/chunks/ are skipped.
Exit status: 0 when every input was embedded, 1 when some inputs failed (the rest is written), 2 on a fatal error
or when every input failed (nothing embedded; the reason is printed once when it is the same for all).
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import INPUT_KINDS, OUTPUT_FORMATS, PRECISION_NAMES, RUNTIME_VARIABLE, RUNTIMES  # no torch: --help

    parser.add_argument("inputs", nargs="+", help="wrapper CSV, field manifest (CSV/Parquet), or shard files/pattern")
    parser.add_argument("--model", required=True, help="Hub id or local folder of a SubCell model (any variant)")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit) of the model")
    parser.add_argument("--input-kind", default="auto", choices=("auto", *INPUT_KINDS), help="default: detect")
    parser.add_argument("--format", nargs="+", default=["h5ad"], choices=OUTPUT_FORMATS, dest="formats",
                        help="outputs to write (default: h5ad); summary.csv is always written")
    parser.add_argument("--save-attention", action="store_true", help="write <id>_attention_map.png per cell")
    parser.add_argument("--batch-size", type=int, default=64, help="cells per forward pass (default: 64)")
    parser.add_argument("--num-workers", type=int, default=2, help="DataLoader workers reading images (default: 2)")
    parser.add_argument("--chunk-size", type=int, help="input items per resumable chunk (default: per input kind)")
    parser.add_argument("--precision", default="auto", choices=("auto", *PRECISION_NAMES),
                        help="autocast dtype; auto = bf16 on a GPU that has it, else fp32")
    parser.add_argument("--compile", action="store_true", help="run the model through torch.compile (eager runtime)")
    parser.add_argument("--runtime", choices=RUNTIMES,
                        help="auto = ONNX Runtime for fp32 on CPU (exported once per model and crop size, cached), "
                             "eager PyTorch otherwise; onnx-int8 is faster, not fp32-exact; openvino needs openvino "
                             f"(default: ${RUNTIME_VARIABLE}, else auto)")
    parser.add_argument("--size", type=int, help="resize every crop to SIZE x SIZE (a multiple of 16) first")
    parser.add_argument("--device", help="torch device (default: the process's accelerator, else CPU)")
    parser.add_argument("--overwrite", action="store_true", help="discard chunks of an earlier run, start afresh")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    fields = parser.add_argument_group("fields of view (manifest input)")
    fields.add_argument("--crop-size", type=int, help="native crop window around each cell (default: 896)")
    fields.add_argument("--output-size", type=int, help="crop size given to the model (default: 448)")
    fields.add_argument("--min-area", type=int, help="skip cells smaller than this, in native pixels (default: 500)")
    fields.add_argument("--keep-border-cells", action="store_true", help="keep cells touching the field's edge")
    fields.add_argument("--mask-cells", action="store_true", help="zero pixels outside each cell (fields, shards)")


def run(args: argparse.Namespace) -> int:
    from ..inference import EmbedConfig, EmbeddingSettingsError, embed
    from ..inference.runtime import MissingRuntimeError
    from ..options import default_runtime

    inputs = args.inputs[0] if len(args.inputs) == 1 else args.inputs
    try:
        config = EmbedConfig(
            input_kind=args.input_kind,
            formats=tuple(args.formats),
            batch_size=args.batch_size,
            num_workers=args.num_workers,
            chunk_size=args.chunk_size,
            precision=args.precision,
            compile=args.compile,
            runtime=args.runtime or default_runtime(),
            save_attention=args.save_attention,
            size=args.size,
            device=args.device,
            revision=args.revision,
            overwrite=args.overwrite,
            progress=not args.no_progress,
            crop_size=args.crop_size,
            output_size=args.output_size,
            min_area=args.min_area,
            skip_border=not args.keep_border_cells,
            mask_cells=args.mask_cells,
        )
        result = embed(args.model, inputs, args.output, config)
    except (EmbeddingSettingsError, MissingRuntimeError, FileNotFoundError, ValueError, OSError) as error:
        print(f"subcell-hf embed: error: {error}", file=sys.stderr)
        return 2
    if not result.outputs:  # a non-zero rank under accelerate launch: rank 0 reports
        return 0
    for failure in result.failures[:20]:
        print(f"subcell-hf embed: failed: {failure['source']}: {failure['error']}", file=sys.stderr)
    if len(result.failures) > 20:
        print(f"subcell-hf embed: ... {len(result.failures) - 20} more failures in summary.csv", file=sys.stderr)
    report = {
        "outputs": {name: str(path) for name, path in result.outputs.items()},
        "cells": result.num_cells,
        "failed_inputs": len(result.failures),
        "chunks_computed": result.chunks_computed,
        "chunks_skipped": result.chunks_skipped,
    }
    print(json.dumps(report, indent=2))
    if result.failures and not result.num_cells:
        reasons = sorted({_reason(failure["error"]) for failure in result.failures})
        print(
            f"subcell-hf embed: error: nothing embedded: all {len(result.failures)} inputs failed"
            + (f" for the same reason: {reasons[0]}" if len(reasons) == 1 else " (see summary.csv)"),
            file=sys.stderr,
        )
        return 2
    return 1 if result.failures else 0


def _reason(error: str) -> str:
    """An error without the leading "file / line / record: " parts that locate it, to tell one cause from many."""
    parts = str(error).split(": ")
    while len(parts) > 1 and any(mark in parts[0] for mark in ("/", ".", " line ", "#")):
        parts.pop(0)
    return ": ".join(parts)
