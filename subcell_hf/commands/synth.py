"""Write a synthetic HPA-like dataset: fields of view (one 8- or 16-bit image per channel), integer cell masks
and a manifest CSV, ready for `subcell-hf shards`.

    subcell-hf synth --output ./synthetic --num_fields 24 --num_antibodies 10 --image_size 512

Each antibody has one localization pattern (nucleoplasm, nucleoli, nuclear membrane, cytosol, mitochondria,
plasma membrane, vesicles, endoplasmic reticulum, Golgi apparatus, centrosome); fields hold 20-80 cells.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Literal

#: a named type, not `Literal["png", "tif"]` in the field: draccus finds a field's help only on a line without quotes
ImageFormat = Literal["png", "tif"]


@dataclass
class Config:
    output: str
    """folder to write (images/ and manifest.csv); required"""
    num_fields: int = 24
    """fields of view"""
    num_antibodies: int = 10
    """antibodies, one pattern each"""
    image_size: int = 512
    """field side in pixels"""
    bit_depth: Literal[8, 16] = 16
    """pixel depth"""
    format: ImageFormat = "png"
    """image files"""
    seed: int = 0
    """random seed"""


def run(args: Config) -> int:
    from ..data.synthetic import generate_dataset

    try:
        manifest = generate_dataset(
            args.output,
            num_fields=args.num_fields,
            num_antibodies=args.num_antibodies,
            image_size=args.image_size,
            seed=args.seed,
            bit_depth=args.bit_depth,
            file_format=args.format,
        )
    except (ValueError, OSError) as error:
        print(f"subcell-hf synth: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"manifest": str(manifest), "num_fields": args.num_fields}, indent=2))
    return 0
