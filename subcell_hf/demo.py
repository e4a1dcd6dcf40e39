"""`make demo`: the main job end to end on the built-in synthetic default, in about a minute on a laptop CPU.

Writes synthetic original-format release files, converts them exactly, loads the result through the Auto
classes and classifies a synthetic cell.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import subcell_hf
from subcell_hf.convert import convert_release
from subcell_hf.synthetic_release import TINY_ARCHITECTURE, write_release_files
from subcell_hf.variants import RELEASES

DEMO_RELEASE = "all_channels-vit-prots-pool"


def synthetic_cell(size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """A 16-bit four-channel cell: a nucleus, a ring of cytoplasm, nuclear protein."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    radius = np.hypot(yy - size / 2, xx - size / 2)
    nucleus = (radius < size * 0.2).astype(np.float64)
    cytoplasm = ((radius < size * 0.4) & (radius >= size * 0.2)).astype(np.float64)

    def stain(pattern):
        return np.clip(pattern * 40000 + rng.normal(2000, 500, (size, size)), 0, 65535).astype(np.uint16)

    return {"microtubules": stain(cytoplasm), "er": stain(cytoplasm), "dna": stain(nucleus), "protein": stain(nucleus)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_outputs", help="folder for the demo outputs")
    args = parser.parse_args(argv)
    output = Path(args.output)

    release = RELEASES[DEMO_RELEASE]
    write_release_files(output / "original_release", [release], arch=TINY_ARCHITECTURE)
    model_dir = output / "converted" / DEMO_RELEASE
    _, report = convert_release(release, output / "original_release", model_dir, overwrite=True)
    print(f"converted {release.encoder_filename} + 10 classifiers -> {model_dir} (checks: {report.checks})")

    predictor = subcell_hf.LocalizationPredictor.from_pretrained(str(model_dir))
    cell = synthetic_cell(TINY_ARCHITECTURE.grid_size * TINY_ARCHITECTURE.patch_size)
    for rank, prediction in enumerate(predictor(cell, top_k=3), start=1):
        print(f"  top-{rank}: {prediction['label']:<28s} {prediction['score']:.3f}")
    print(f"outputs in {output.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
