"""Embed cells with a SubCell model: embeddings, localization probabilities and, optionally, attention maps.

Inputs (the kind is detected from the file; force it with --input_kind):
  - the original wrapper's CSV: r_image,y_image,b_image,g_image,output_prefix (one crop per row, # comments);
  - a manifest of fields of view + cell masks (as written by the data tools), cropped on the fly;
  - WebDataset shards written by `subcell-hf shards` (files, a brace pattern or their folder).

    subcell-hf embed --model subcell/all_channels-vit-prots-pool --inputs path_list.csv --output results
    subcell-hf embed --model ./converted --inputs manifest.csv --output results --formats '[h5ad, parquet]' \\
        --save_attention true --crop.size 896 --crop.output_size 448
    accelerate launch -m subcell_hf.cli embed --model ./converted --inputs 'shards/shard-{000000..000099}.tar' \\
        --output results
    subcell-hf embed --config_path embed.yaml --batch_size 32    # a YAML preset of these fields, then overrides

Writes results/embeddings.h5ad (X = embeddings, obsm["probabilities"], obs = ids, metadata and top-3 classes,
uns = model, revision and preprocessing), optional embeddings.parquet and per-cell <id>_embedding.npy /
<id>_probabilities.npy / <id>_attention_map.png, and summary.csv (per cell: top-3 classes; per failed input: why).
A rerun with the same settings resumes: finished chunks in results/chunks/ are skipped.
Exit status: 0 when every input was embedded, 1 when some inputs failed (the rest is written), 2 on a fatal error
or when every input failed (nothing embedded; the reason is printed once when it is the same for all).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Union

from ..inference.config import EmbedConfig  # no torch: fast --help


@dataclass(kw_only=True)
class Config(EmbedConfig):
    """The settings of `subcell_hf.inference.embed` (EmbedConfig), plus what to embed with and where to."""

    model: str
    """Hub id or local folder of a SubCell model (any variant); required"""
    inputs: Union[list[str], str]
    """wrapper CSV, field manifest (CSV/Parquet), or shards: a folder, a brace pattern or a list of .tar; required"""
    output: str
    """output folder; required"""


def run(args: Config) -> int:
    from ..inference import EmbeddingSettingsError, embed
    from ..inference.runtime import MissingRuntimeError

    inputs = args.inputs[0] if isinstance(args.inputs, list) and len(args.inputs) == 1 else args.inputs
    try:
        result = embed(args.model, inputs, args.output, args)
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
