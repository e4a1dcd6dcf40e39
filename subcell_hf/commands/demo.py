"""`make demo`: the main job end to end on the built-in synthetic default, in about a minute on a laptop CPU.

1. writes synthetic original-format release files (a tiny architecture with the published key layout) and converts
   them exactly into a `save_pretrained` folder;
2. draws synthetic HPA-like fields of view with cell masks (`subcell_hf.data.synthetic`);
3. embeds every cell, cropped on the fly, with localization probabilities and attention maps
   (`subcell_hf.inference.embed`) -> `embeddings.h5ad`, `embeddings.parquet`, `summary.csv`;
4. draws a UMAP (PCA without umap-learn) coloured by the synthetic protein pattern and by the predicted class, and
   a grid of attention maps.

The weights are random, so the predicted classes mean nothing; the pipeline, the files and their layout are the
real ones. With a published model, step 3 is `subcell-hf embed --model subcell/<variant> --inputs manifest.csv ...`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

DEMO_RELEASE = "all_channels-vit-prots-pool"
#: The tiny model was trained (here: initialised) at 64 px (`TINY_ARCHITECTURE`: a 4 x 4 grid of 16-px patches); the synthetic
#: cells are ~70 px wide at 512 px fields.
CROP_SIZE, CELL_SIZE = 128, 64


@dataclass
class Config:
    output: str = "demo_outputs"
    """folder for the demo outputs"""
    num_fields: int = 12
    """synthetic fields of view"""


def run(args: Config) -> int:
    from subcell_hf.data.synthetic import TINY_ARCHITECTURE, write_release_files
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.variants import RELEASES

    assert CELL_SIZE == TINY_ARCHITECTURE.grid_size * TINY_ARCHITECTURE.patch_size
    output = Path(args.output)
    started = time.perf_counter()

    from subcell_hf.utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()  # before accelerate meets deepspeed: no accelerator banner on stdout

    from subcell_hf.data.crops import CropOptions
    from subcell_hf.data.synthetic import generate_dataset
    from subcell_hf.inference import embed
    from subcell_hf.inference.plots import plot_attention_grid, plot_embedding_map, resolve_map_method

    release = RELEASES[DEMO_RELEASE]
    write_release_files(output / "original_release", [release], arch=TINY_ARCHITECTURE)
    model_dir = output / "converted" / DEMO_RELEASE
    _, report = convert_release(release, output / "original_release", model_dir, overwrite=True)
    print(f"[1/4] converted {release.encoder_filename} + 10 classifiers -> {model_dir} (checks: {report.checks})")

    manifest = generate_dataset(
        output / "synthetic_fields", num_fields=args.num_fields, num_antibodies=6, image_size=512, seed=0
    )
    print(f"[2/4] {args.num_fields} synthetic fields of view + cell masks -> {manifest}")

    result = embed(
        model_dir,
        manifest,
        output / "embeddings",
        formats=("h5ad", "parquet"),
        crop=CropOptions(size=CROP_SIZE, output_size=CELL_SIZE),
        save_attention=True,
        overwrite=True,
        batch_size=64,
        num_workers=2,
    )
    print(f"[3/4] {result.num_cells} cells embedded ({len(result.failures)} inputs failed)")
    first = result.table.obs.iloc[0]
    print(f"      first cell {result.table.obs.index[0]}: " + ", ".join(
        f"{first[f'top_{k}']} {first[f'top_{k}_score']:.3f}" for k in (1, 2, 3)
    ))

    h5ad = result.outputs["h5ad"]
    method = resolve_map_method()  # UMAP with umap-learn installed, PCA otherwise: the file names say which
    pictures = [
        plot_embedding_map(h5ad, output / "embeddings" / f"{method}_pattern.png", color="pattern", method=method),
        plot_embedding_map(h5ad, output / "embeddings" / f"{method}_top_1.png", color="top_1", method=method),
        plot_attention_grid(h5ad, output / "embeddings" / "attention_grid.png", num_cells=9),
    ]
    print("[4/4] plots: " + ", ".join(str(p) for p in pictures))
    print(f"\noutputs in {output.resolve()} ({time.perf_counter() - started:.0f} s):")
    for name, path in {**result.outputs, "map": pictures[0], "attention grid": pictures[2]}.items():
        print(f"  {name:<15s} {path}")
    print("  read them with: anndata.read_h5ad(...) / pandas.read_parquet(...)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m subcell_hf.commands.demo ...`: the same as `subcell-hf demo ...`."""
    import sys

    from subcell_hf.cli import main as cli_main

    return cli_main(["demo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
