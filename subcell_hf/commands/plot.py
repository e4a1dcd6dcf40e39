"""Plot an embedding run: a UMAP (PCA without umap-learn) of the embeddings, and a grid of attention maps.

    subcell-hf plot results/embeddings.h5ad --color top_1
    subcell-hf plot results/embeddings.h5ad --color cell_line --output results/map_cell_line.png --attention-grid

The map is coloured by any obs column (the predicted class top_1 by default). --attention-grid needs a run made
with `subcell-hf embed --save-attention` and writes attention_grid.png next to the .h5ad unless a path is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..options import DEFAULT_COLOR, MAP_METHODS  # no matplotlib / anndata: fast --help

    parser.add_argument("h5ad", help="embeddings.h5ad written by subcell-hf embed")
    parser.add_argument("--color", default=DEFAULT_COLOR, help=f"obs column to colour by (default: {DEFAULT_COLOR})")
    parser.add_argument("--method", default="auto", choices=MAP_METHODS, help="auto = UMAP if installed, else PCA")
    parser.add_argument("--output", help="map PNG (default: <h5ad folder>/<umap|pca>_<color>.png)")
    parser.add_argument("--attention-grid", nargs="?", const="", metavar="PNG",
                        help="also draw a grid of attention maps (default path: <h5ad folder>/attention_grid.png)")
    parser.add_argument("--num-cells", type=int, default=12, help="cells in the attention grid (default: 12)")


def run(args: argparse.Namespace) -> int:
    from ..inference.plots import plot_attention_grid, plot_embedding_map, resolve_map_method

    folder = Path(args.h5ad).parent
    written = {}
    try:
        method = resolve_map_method(args.method)  # the file is named after the method it holds
        if method == "umap":  # one call without progress of its own: say what the wait is
            print(f"subcell-hf plot: computing the UMAP of {args.h5ad} (umap-learn first compiles its functions "
                  "with numba: up to a minute on a small CPU)...", file=sys.stderr, flush=True)
        written["map"] = plot_embedding_map(
            args.h5ad, args.output or folder / f"{method}_{args.color}.png", color=args.color, method=method
        )
        if args.attention_grid is not None:
            written["attention_grid"] = plot_attention_grid(
                args.h5ad, args.attention_grid or folder / "attention_grid.png", num_cells=args.num_cells
            )
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"subcell-hf plot: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: str(path) for name, path in written.items()}, indent=2))
    return 0
