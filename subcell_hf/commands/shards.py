"""Crop every cell of the fields of view listed in a manifest and write antibody records as WebDataset shards.

    subcell-hf shards --manifest fields.csv --output ./shards --crop-size 896 --output-size 448

The manifest (CSV or Parquet) has a path column per channel (microtubules, er, dna, protein), `mask`,
`image_id`, `antibody` and optionally `gene`, `cell_line`, `plate`, `well`, `locations` (`;`-separated) and
`mult` (visits per epoch of each of the antibody's parts).
Rerunning with the same inputs resumes: finished shards are kept. Rows that fail are listed with their row
number and reason in <output>/summary.json; the exit status is 1 when any row failed.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..data.crops import DEFAULT_CROP_SIZE, DEFAULT_MASK_DILATION, DEFAULT_MIN_AREA, DEFAULT_OUTPUT_SIZE
    from ..data.shards import DEFAULT_PARTS_PER_ANTIBODY, DEFAULT_RECORDS_PER_SHARD
    from ..models import HPA_CHANNELS

    parser.add_argument("--manifest", required=True, help="CSV or Parquet table of fields of view")
    parser.add_argument("--output", required=True, help="folder for shard-*.tar, progress.json and summary.json")
    parser.add_argument(
        "--channels", nargs="+", choices=HPA_CHANNELS, default=list(HPA_CHANNELS),
        help="channels to stack, in HPA order (default: all four)",
    )
    parser.add_argument("--crop-size", type=int, default=DEFAULT_CROP_SIZE, help="native crop side (default: 896)")
    parser.add_argument("--output-size", type=int, default=DEFAULT_OUTPUT_SIZE, help="stored side (default: 448)")
    parser.add_argument(
        "--min-area", type=int, default=DEFAULT_MIN_AREA,
        help=f"skip smaller cells, in native pixels (default: {DEFAULT_MIN_AREA})",
    )
    parser.add_argument("--keep-border-cells", action="store_true", help="keep cells touching the field's edge")
    parser.add_argument(
        "--parts-per-antibody", type=int, default=DEFAULT_PARTS_PER_ANTIBODY,
        help=f"records (parts) per antibody, each spanning its fields of view (default: {DEFAULT_PARTS_PER_ANTIBODY})",
    )
    parser.add_argument(
        "--mask-dilation", type=int, default=DEFAULT_MASK_DILATION,
        help=f"dilate each cell's stored mask by this many native pixels (default: {DEFAULT_MASK_DILATION})",
    )
    parser.add_argument(
        "--records-per-shard", type=int, default=DEFAULT_RECORDS_PER_SHARD,
        help=f"records per tar file (default: {DEFAULT_RECORDS_PER_SHARD})",
    )
    parser.add_argument("--num-workers", type=int, default=None, help="cropping processes (default: all CPUs)")
    parser.add_argument("--overwrite", action="store_true", help="replace shards written from other inputs")


def run(args: argparse.Namespace) -> int:
    from ..data.manifest import ManifestError
    from ..data.shards import write_shards

    try:
        summary = write_shards(
            args.manifest,
            args.output,
            channel_names=args.channels,
            crop_size=args.crop_size,
            output_size=args.output_size,
            min_area=args.min_area,
            skip_border=not args.keep_border_cells,
            parts_per_antibody=args.parts_per_antibody,
            mask_dilation=args.mask_dilation,
            records_per_shard=args.records_per_shard,
            num_workers=args.num_workers,
            overwrite=args.overwrite,
        )
    except (ManifestError, OSError, ValueError) as error:  # OSError: missing, read-only, refused --overwrite
        print(f"subcell-hf shards: error: {error}", file=sys.stderr)
        return 2
    report = summary.to_dict()
    report["failed_rows"] = report["failed_rows"][:20]
    print(json.dumps({k: v for k, v in report.items() if k != "options"}, indent=2))
    for failure in summary.failed_rows:
        print(f"subcell-hf shards: row {failure.row} ({failure.image_id}) skipped: {failure.reason}", file=sys.stderr)
    return 1 if summary.failed_rows else 0
