"""Plot an embedding run: a UMAP (PCA without umap-learn) of the embeddings, and a grid of attention maps.

    subcell-hf plot --h5ad results/embeddings.h5ad --color top_1
    subcell-hf plot --h5ad results/embeddings.h5ad --color cell_line --output results/map_cell_line.png \\
        --attention_grid true

The map is coloured by any obs column (the predicted class top_1 by default). --attention_grid true needs a run
made with `subcell-hf embed --save_attention true` and writes attention_grid.png next to the .h5ad unless
--attention_grid_output names another path.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..options import DEFAULT_COLOR, MapMethod  # no matplotlib / anndata: fast --help


@dataclass
class Config:
    h5ad: str
    """embeddings.h5ad written by subcell-hf embed; required"""
    color: str = DEFAULT_COLOR
    """obs column to colour by"""
    method: MapMethod = "auto"
    """auto = UMAP if umap-learn is installed, else PCA"""
    output: Optional[str] = None
    """map PNG (default: <h5ad folder>/<umap|pca>_<color>.png)"""
    attention_grid: bool = False
    """also draw a grid of attention maps (needs a run made with --save_attention true)"""
    attention_grid_output: Optional[str] = None
    """PNG of the attention grid (default: <h5ad folder>/attention_grid.png)"""
    num_cells: int = 12
    """cells in the attention grid"""


def run(args: Config) -> int:
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
        if args.attention_grid:
            written["attention_grid"] = plot_attention_grid(
                args.h5ad, args.attention_grid_output or folder / "attention_grid.png", num_cells=args.num_cells
            )
    except (FileNotFoundError, ValueError, ImportError) as error:
        print(f"subcell-hf plot: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({name: str(path) for name, path in written.items()}, indent=2))
    return 0
