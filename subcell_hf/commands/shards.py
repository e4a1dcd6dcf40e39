"""Crop every cell of the fields of view listed in a manifest and write antibody records as WebDataset shards.

    subcell-hf shards --manifest fields.csv --output ./shards --crop.size 896 --crop.output_size 448

The manifest (CSV or Parquet) has a path column per channel (microtubules, er, dna, protein), `mask`,
`image_id`, `antibody` and optionally `gene`, `cell_line`, `plate`, `well`, `locations` (`;`-separated) and
`mult` (visits per epoch of each of the antibody's parts).
Rerunning with the same inputs resumes: finished shards are kept. Rows that fail are listed with their row
number and reason in <output>/summary.json; the exit status is 1 when any row failed.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional

from ..data.crops import CropOptions
from ..options import HPA_CHANNELS, ChannelName  # no torch: fast --help

#: as subcell_hf.data.shards (which imports webdataset and pandas): tests/test_cli_help.py checks they match
DEFAULT_PARTS_PER_ANTIBODY, DEFAULT_RECORDS_PER_SHARD = 4, 16


@dataclass
class Config:
    manifest: str
    """CSV or Parquet table of fields of view; required"""
    output: str
    """folder for shard-*.tar, progress.json and summary.json; required"""
    channels: list[ChannelName] = field(default_factory=lambda: list(HPA_CHANNELS))
    """channels to stack, in HPA order, e.g. [dna, protein]"""
    crop: CropOptions = field(default_factory=CropOptions)
    """how each cell is cut, stored and masked (the release: 896 px windows stored at 448 px, masks dilated 7 px)"""
    parts_per_antibody: int = DEFAULT_PARTS_PER_ANTIBODY
    """records (parts) per antibody, each spanning its fields of view"""
    records_per_shard: int = DEFAULT_RECORDS_PER_SHARD
    """records per tar file"""
    num_workers: Optional[int] = None
    """cropping processes (default: all CPUs; 0 = in this process)"""
    overwrite: bool = False
    """replace shards written from other inputs (only a previous output of this command)"""


def run(args: Config) -> int:
    from ..data.manifest import ManifestError
    from ..data.shards import write_shards

    try:
        summary = write_shards(
            args.manifest,
            args.output,
            channel_names=args.channels,
            crop=args.crop,
            parts_per_antibody=args.parts_per_antibody,
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
