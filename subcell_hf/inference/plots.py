"""Pictures of an embedding run (`subcell-hf plot`): a 2-D map of the embeddings and a grid of attention maps.

The map is a UMAP when `umap-learn` is installed (`pip install subcell_hf[umap]`) and a PCA otherwise; points are
coloured by any `obs` column (default: the predicted class `top_1`). Figures are drawn without pyplot (no display
needed) and written atomically.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..utils.atomic_writes import atomic_path
from ..options import DEFAULT_COLOR, MAP_METHODS

MAX_CATEGORIES = 20


def resolve_map_method(method: str = "auto") -> str:
    """The method a map will use: "umap" when asked for or (auto) when umap-learn is installed, else "pca"."""
    if method not in MAP_METHODS:
        raise ValueError(f"method must be one of {MAP_METHODS}, found {method!r}")
    has_umap = importlib.util.find_spec("umap") is not None
    if method == "umap" and not has_umap:
        raise ImportError("method='umap' needs umap-learn: pip install 'subcell_hf[umap]' (or use method='pca')")
    return "umap" if method in ("auto", "umap") and has_umap else "pca"


def _reduce(embeddings: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str, list[str]]:
    """(N, 2) coordinates, the method used and the two axis labels (PCA: with the explained variance)."""
    used = resolve_map_method(method)
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or len(embeddings) < 3:
        raise ValueError(f"need at least 3 embeddings (N, D) to draw a map, found shape {embeddings.shape}")
    if used == "umap":
        import umap

        neighbours = min(15, len(embeddings) - 1)
        coords = umap.UMAP(n_neighbors=neighbours, random_state=seed).fit_transform(embeddings)
        return coords, used, ["UMAP 1", "UMAP 2"]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed)
    coords = pca.fit_transform(embeddings)
    return coords, used, [f"PC{i + 1} ({100 * r:.1f}% of variance)" for i, r in enumerate(pca.explained_variance_ratio_)]


def reduce_to_2d(embeddings: np.ndarray, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(N, 2) coordinates and the method used: UMAP if available (or asked for), else PCA."""
    coords, used, _ = _reduce(embeddings, method, seed)
    return coords, used


def _load(adata_or_path: Any):
    import anndata

    if isinstance(adata_or_path, (str, os.PathLike)):
        path = Path(adata_or_path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: .h5ad file not found (written by subcell-hf embed)")
        return anndata.read_h5ad(path), path.parent
    return adata_or_path, Path(".")


def plot_embedding_map(
    adata_or_path: Any,
    output: str | os.PathLike,
    color: str = DEFAULT_COLOR,
    method: str = "auto",
    seed: int = 0,
) -> Path:
    """Scatter the cells on a UMAP/PCA of their embeddings, coloured by `obs[color]`; returns the PNG path."""
    from matplotlib.figure import Figure

    adata, _ = _load(adata_or_path)
    if color not in adata.obs.columns:
        raise ValueError(f"color {color!r} is not an obs column; expected one of {list(adata.obs.columns)}")
    coords, used, axis_labels = _reduce(np.asarray(adata.X), method, seed)
    values = adata.obs[color]
    figure = Figure(figsize=(7.5, 6), dpi=120)
    axes = figure.add_subplot()
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > MAX_CATEGORIES:
        points = axes.scatter(coords[:, 0], coords[:, 1], c=values.to_numpy(), s=8, cmap="viridis")
        figure.colorbar(points, ax=axes, label=color)
    else:
        labels = _top_categories(values.astype(str))
        colours = _category_colours(labels.cat.categories)
        for category in labels.cat.categories:
            chosen = (labels == category).to_numpy()
            label = f"{category} ({int(chosen.sum())})"
            axes.scatter(coords[chosen, 0], coords[chosen, 1], s=8, color=colours[category], label=label)
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, frameon=False, markerscale=2)
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.set_title(f"{used.upper()} of SubCell embeddings ({len(coords)} cells), coloured by {color}")
    axes.set_xticks([])
    axes.set_yticks([])
    return _save(figure, output)


def _top_categories(values: pd.Series) -> pd.Series:
    counts = values.value_counts(sort=True)
    keep = sorted(counts.index[:MAX_CATEGORIES])
    if len(counts) > MAX_CATEGORIES:
        values = values.where(values.isin(keep), "other")
        keep = keep + ["other"]
    return pd.Series(pd.Categorical(values, categories=keep), index=values.index)


def _category_colours(categories) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab20"]
    return {c: ("lightgrey" if c == "other" else palette(i % 20)) for i, c in enumerate(categories)}


def plot_attention_grid(
    adata_or_path: Any,
    output: str | os.PathLike,
    num_cells: int = 12,
    columns: int = 3,
    by: str = DEFAULT_COLOR,
) -> Path:
    """A grid of the cells' attention pictures (`embed --save_attention true`), titled with id and predicted class.

    Cells are taken round robin over the values of `obs[by]` (one per predicted class first), in input order.
    """
    return _save(attention_grid_figure(adata_or_path, num_cells, columns, by), output)


def attention_grid_figure(adata_or_path: Any, num_cells: int = 12, columns: int = 3, by: str = DEFAULT_COLOR):
    """The matplotlib `Figure` of `plot_attention_grid`: each cell's picture (its panels titled, with the cell's
    outline and the attention colour bar: `subcell_hf.inference.attention`) under its id and top-1 class."""
    from matplotlib.figure import Figure
    from PIL import Image

    adata, root = _load(adata_or_path)
    if "attention_map" not in adata.obs.columns:
        raise ValueError("no attention maps in this run: embed with --save_attention true (save_attention=True)")
    obs = adata.obs[adata.obs["attention_map"].astype(str) != ""]
    chosen = _round_robin(obs, by, num_cells)
    if not chosen:
        raise ValueError("no cell has an attention map")
    rows = -(-len(chosen) // columns)
    figure = Figure(figsize=(6.4 * columns, 2.6 * rows + 0.75), dpi=120)
    figure.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.75 / (2.6 * rows + 0.75), wspace=0.04,
                           hspace=0.15)
    for position, cell_id in enumerate(chosen):
        axes = figure.add_subplot(rows, columns, position + 1)
        with Image.open(root / str(obs.loc[cell_id, "attention_map"])) as picture:
            axes.imshow(np.asarray(picture.convert("RGB")))
        axes.set_axis_off()
        title = str(cell_id)
        if "top_1" in obs.columns:
            title += f": {obs.loc[cell_id, 'top_1']} ({float(obs.loc[cell_id, 'top_1_score']):.2f})"
        axes.set_title(title, fontsize=8)
    figure.suptitle("Where the SubCell pooler looked: the cell's channels, then each head's attention over the "
                    "protein channel (each map scaled to its own range)", fontsize=10)
    return figure


def _round_robin(obs: pd.DataFrame, by: str, count: int) -> list[str]:
    if by not in obs.columns:
        return list(obs.index[:count])
    groups = [list(group.index) for _, group in obs.groupby(obs[by].astype(str), sort=True, observed=True)]
    chosen: list[str] = []
    for depth in range(max((len(g) for g in groups), default=0)):
        for group in groups:
            if depth < len(group) and len(chosen) < count:
                chosen.append(group[depth])
    return chosen


def _save(figure, output: str | os.PathLike) -> Path:
    with atomic_path(output) as temporary:
        figure.savefig(temporary, format="png", bbox_inches="tight")
    return Path(output)


__all__ = ["MAP_METHODS", "attention_grid_figure", "plot_attention_grid", "plot_embedding_map", "reduce_to_2d", "resolve_map_method"]
