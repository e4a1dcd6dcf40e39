"""Synthetic training and validation shards for the `tiny` preset, the tests and the learning check.

    python -m subcell_hf.pretraining.synthetic outputs/synthetic

writes `outputs/synthetic/{shards,validation_shards}` (the paths `recipes/configs/tiny.yaml` reads): the synthetic
HPA-like fields of `subcell_hf.data.synth` (one localization pattern per antibody), cropped to 64-px cells by
`subcell_hf.data.shards`. Validation fields come from another seed: new cells of the same antibodies.
It is the same as `subcell-hf synth` followed by `subcell-hf shards`, twice, with these sizes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TRAIN_DIRNAME = "shards"
VALIDATION_DIRNAME = "validation_shards"


def prepare_synthetic_shards(
    root: str | Path,
    num_fields: int = 60,
    num_validation_fields: int = 20,
    num_antibodies: int = 20,
    image_size: int = 256,
    crop_size: int = 64,
    output_size: int = 64,
    parts_per_antibody: int = 4,
    seed: int = 0,
    show_progress: bool = True,
) -> tuple[Path, Path]:
    """Write (or reuse, when complete) training and validation shards under `root`; returns their folders."""
    from ..data.shards import write_shards
    from ..data.synth import generate_dataset

    root = Path(root)
    folders = []
    for name, fields, field_seed in (
        (TRAIN_DIRNAME, num_fields, seed),
        (VALIDATION_DIRNAME, num_validation_fields, seed + 1),
    ):
        manifest = generate_dataset(
            root / f"{name}_fields", num_fields=fields, num_antibodies=num_antibodies, image_size=image_size,
            seed=field_seed, show_progress=show_progress,
        )
        write_shards(
            manifest, root / name, crop_size=crop_size, output_size=output_size, min_area=100,
            parts_per_antibody=parts_per_antibody, records_per_shard=4, num_workers=0, show_progress=show_progress,
        )
        folders.append(root / name)
    return folders[0], folders[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", help="folder to write (shards/ and validation_shards/)")
    parser.add_argument("--num-fields", type=int, default=60, help="training fields of view (default: 60)")
    parser.add_argument("--num-validation-fields", type=int, default=20, help="validation fields (default: 20)")
    parser.add_argument("--num-antibodies", type=int, default=20, help="antibodies (default: 20, 2 per pattern)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    train, validation = prepare_synthetic_shards(
        args.root, args.num_fields, args.num_validation_fields, args.num_antibodies, seed=args.seed
    )
    print(f"training shards: {train}\nvalidation shards: {validation}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
