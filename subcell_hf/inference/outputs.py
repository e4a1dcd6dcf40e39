"""Writers for embedding results: AnnData `.h5ad`, Parquet, per-cell `.npy` files and the summary CSV.

Every file is written under a temporary name in its folder and renamed into place, so a crash never leaves a
half-written output. The same `EmbeddingTable` always gives the same bytes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..utils.atomic_writes import atomic_path, atomic_write_text
from ..options import OUTPUT_FORMATS
from .chunks import ChunkResult

TOP_K = 3
FEATURE_TEMPLATE = "feat{index:04d}"


@dataclass
class EmbeddingTable:
    """All cells of a run: embeddings, probabilities, per-cell table and the inputs that failed."""

    embeddings: np.ndarray  # (N, D) float32
    probabilities: np.ndarray | None  # (N, L) float32; None for an encoder-only model
    obs: pd.DataFrame  # index "id"; input_index, metadata, top_k columns, attention_map
    failures: pd.DataFrame  # columns item, id, source, error
    class_names: list[str] = field(default_factory=list)
    uns: dict[str, Any] = field(default_factory=dict)

    @property
    def num_cells(self) -> int:
        return len(self.embeddings)


def build_table(merged: ChunkResult, class_names: Sequence[str], uns: dict[str, Any]) -> EmbeddingTable:
    """Turn merged chunks into a table: metadata columns typed, top-k classes added, ids made unique."""
    records = []
    for cell in merged.cells:
        record = {"id": cell["id"], "input_index": cell["item"], "source": cell["source"]}
        # a metadata column named like one of ours (e.g. a CSV column "source") is kept as "metadata_<name>"
        record.update({(f"metadata_{k}" if k in record else k): v for k, v in cell.get("metadata", {}).items()})
        if cell.get("attention_map"):
            record["attention_map"] = cell["attention_map"]
        records.append(record)
    obs = pd.DataFrame.from_records(records, columns=_column_order(records))
    for column in obs.columns:
        if column != "id":
            obs[column] = _typed(obs[column])
    if merged.probabilities is not None and len(obs):
        top = top_k_table(merged.probabilities, class_names)
        obs = pd.concat([obs, top], axis=1)
    obs.index = pd.Index(_unique(obs.pop("id").astype(str).tolist()), dtype=object, name="id")
    failures = pd.DataFrame(merged.failures, columns=["item", "id", "source", "error"])
    return EmbeddingTable(
        merged.embeddings.astype(np.float32, copy=False),
        None if merged.probabilities is None else merged.probabilities.astype(np.float32, copy=False),
        obs,
        failures,
        list(class_names),
        uns,
    )


def top_k_table(probabilities: np.ndarray, class_names: Sequence[str], k: int = TOP_K) -> pd.DataFrame:
    """Columns top_1, top_1_score, ..., top_k, top_k_score: the k most probable classes of each cell."""
    k = min(k, probabilities.shape[1])
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    columns: dict[str, Any] = {}
    for rank in range(k):
        indices = order[:, rank]
        columns[f"top_{rank + 1}"] = [class_names[i] for i in indices]
        columns[f"top_{rank + 1}_score"] = probabilities[np.arange(len(indices)), indices].astype(np.float64)
    return pd.DataFrame(columns)


def _column_order(records: list[dict[str, Any]]) -> list[str]:
    order: dict[str, None] = {}
    for record in records:
        order.update(dict.fromkeys(record))
    return list(order) or ["id", "input_index", "source"]


def _typed(column: pd.Series) -> pd.Series:
    """One dtype per column, as AnnData and Parquet want: bool, int64, float64, or str ("" for missing)."""
    values = column.tolist()
    present = [v for v in values if not _missing(v)]
    if present and len(present) == len(values) and all(isinstance(v, bool) for v in present):
        return column.astype(bool)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        if len(present) == len(values) and all(isinstance(v, int) for v in present):
            return column.astype(np.int64)
        return column.astype(np.float64)
    return pd.Series(["" if _missing(v) else str(v) for v in values], index=column.index, dtype=object)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    unique = []
    for name in ids:
        count = seen.get(name, 0)
        seen[name] = count + 1
        unique.append(name if count == 0 else f"{name}-{count}")
    return unique


# ------------------------------------------------------------------------------------------------ writers
def to_anndata(table: EmbeddingTable):
    """An `anndata.AnnData` laid out as scverse tools expect:

    - `X` and `obsm["X_subcell"]`: the embeddings (`X_<name>` is where scanpy looks for a representation:
      `sc.pp.neighbors(adata, use_rep="X_subcell")`);
    - `obsm["probabilities"]` (cells x classes, float32) and `obsm["probabilities_by_class"]`, the same as a
      DataFrame whose columns are the class names; `uns["probability_classes"]`;
    - `obsm["spatial"]`: each cell's centroid (x = column, y = row, field pixels) for field-of-view inputs, as
      squidpy reads it (`obs` says which field each cell came from);
    - `obs`: the per-cell table; `uns`: the run's facts.
    """
    import anndata

    var = pd.DataFrame(index=[FEATURE_TEMPLATE.format(index=i) for i in range(table.embeddings.shape[1])])
    adata = anndata.AnnData(X=table.embeddings, obs=table.obs.copy(), var=var)
    adata.obsm["X_subcell"] = table.embeddings.copy()
    if table.probabilities is not None:
        adata.obsm["probabilities"] = table.probabilities
        adata.obsm["probabilities_by_class"] = pd.DataFrame(
            table.probabilities, index=adata.obs_names, columns=list(table.class_names)
        )
        adata.uns["probability_classes"] = list(table.class_names)
    if {"centroid_row", "centroid_col"} <= set(table.obs.columns) and table.obs["centroid_row"].dtype.kind == "f":
        adata.obsm["spatial"] = table.obs[["centroid_col", "centroid_row"]].to_numpy(np.float64)
    adata.uns.update(_h5_safe(table.uns))
    return adata


def write_anndata(table: EmbeddingTable, path: str | os.PathLike) -> Path:
    adata = to_anndata(table)
    with atomic_path(path) as temporary:
        adata.write_h5ad(temporary)
    return Path(path)


def write_parquet(table: EmbeddingTable, path: str | os.PathLike) -> Path:
    """One row per cell: the obs columns, `embedding` (fixed-size list of float32) and `probabilities`; the run
    facts (the AnnData `uns`) are in the schema metadata under `subcell`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = table.obs.reset_index()
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.append_column("embedding", _fixed_size_list(table.embeddings))
    if table.probabilities is not None:
        arrow = arrow.append_column("probabilities", _fixed_size_list(table.probabilities))
    metadata = dict(arrow.schema.metadata or {})
    metadata[b"subcell"] = json.dumps(
        {**table.uns, "probability_classes": table.class_names}, sort_keys=True, default=str
    ).encode()
    arrow = arrow.replace_schema_metadata(metadata)
    with atomic_path(path) as temporary:
        pq.write_table(arrow, temporary)
    return Path(path)


def _fixed_size_list(array: np.ndarray):
    import pyarrow as pa

    array = np.ascontiguousarray(array, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(array.reshape(-1)), array.shape[1])


def cell_file_path(output_dir: str | os.PathLike, cell_id: str, suffix: str) -> Path:
    """`<output_dir>/<cell_id><suffix>`, as the original wrapper names per-cell files (an id may hold `/` for
    subfolders); parts that would leave `output_dir` (absolute paths, `..`) are dropped."""
    parts = [part for part in str(cell_id).replace("\\", "/").split("/") if part not in ("", ".", "..")]
    if not parts:
        parts = ["cell"]
    parts[-1] = parts[-1] + suffix
    return Path(output_dir).joinpath(*parts)


def write_npy(table: EmbeddingTable, output_dir: str | os.PathLike) -> list[Path]:
    """The original wrapper's per-cell files: `<id>_embedding.npy` (D,) and `<id>_probabilities.npy` (L,)."""
    output_dir = Path(output_dir)
    written = []
    for row, cell_id in enumerate(table.obs.index):
        arrays = {"embedding": table.embeddings[row]}
        if table.probabilities is not None:
            arrays["probabilities"] = table.probabilities[row]
        for suffix, array in arrays.items():
            path = cell_file_path(output_dir, cell_id, f"_{suffix}.npy")
            with atomic_path(path) as temporary:
                np.save(temporary, array)
            written.append(path)
    return written


def summary_frame(table: EmbeddingTable) -> pd.DataFrame:
    """One line per cell (status ok, top-3 classes) and per failed input (status failed, the error), in input
    order."""
    top_columns = [c for c in table.obs.columns if c.startswith("top_")]
    cells = pd.DataFrame(
        {
            "id": table.obs.index.astype(str),
            "input_index": table.obs["input_index"].to_numpy() if len(table.obs) else [],
            "status": "ok",
            "source": table.obs["source"].astype(str).to_numpy() if len(table.obs) else [],
            "error": "",
        }
    )
    for column in top_columns:
        cells[column] = table.obs[column].to_numpy()
    failed = pd.DataFrame(
        {
            "id": table.failures["id"].astype(str),
            "input_index": table.failures["item"].astype(np.int64),
            "status": "failed",
            "source": table.failures["source"].astype(str),
            "error": table.failures["error"].astype(str),
        }
    )
    frames = [frame for frame in (cells, failed) if len(frame)]
    summary = pd.concat(frames, ignore_index=True) if frames else cells
    return summary.sort_values("input_index", kind="stable").reset_index(drop=True)


def write_summary(table: EmbeddingTable, path: str | os.PathLike) -> Path:
    frame = summary_frame(table)
    return atomic_write_text(path, frame.to_csv(index=False, float_format="%.6f"))


def _h5_safe(value: Any) -> Any:
    """uns values HDF5 can store: None -> "", tuples -> lists, nested dicts kept."""
    if value is None:
        return ""
    if isinstance(value, dict):
        return {str(k): _h5_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_h5_safe(v) for v in value]
        return [str(v) for v in items] if any(isinstance(v, str) for v in items) else items
    return value


__all__ = [
    "OUTPUT_FORMATS",
    "EmbeddingTable",
    "atomic_path",
    "build_table",
    "cell_file_path",
    "summary_frame",
    "to_anndata",
    "top_k_table",
    "write_anndata",
    "write_npy",
    "write_parquet",
    "write_summary",
]
