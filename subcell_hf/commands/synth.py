"""Write a synthetic HPA-like dataset: fields of view (one 8- or 16-bit image per channel), integer cell masks
and a manifest CSV, ready for `subcell-hf shards`.

    subcell-hf synth --output ./synthetic --num-fields 24 --num-antibodies 10 --image-size 512

Each antibody has one localization pattern (nucleoplasm, nucleoli, nuclear membrane, cytosol, mitochondria,
plasma membrane, vesicles, endoplasmic reticulum, Golgi apparatus, centrosome); fields hold 20-80 cells.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", required=True, help="folder to write (images/ and manifest.csv)")
    parser.add_argument("--num-fields", type=int, default=24, help="fields of view (default: 24)")
    parser.add_argument("--num-antibodies", type=int, default=10, help="antibodies, one pattern each (default: 10)")
    parser.add_argument("--image-size", type=int, default=512, help="field side in pixels (default: 512)")
    parser.add_argument("--bit-depth", type=int, choices=(8, 16), default=16, help="pixel depth (default: 16)")
    parser.add_argument("--format", choices=("png", "tif"), default="png", help="image files (default: png)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")


def run(args: argparse.Namespace) -> int:
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
