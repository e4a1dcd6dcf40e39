"""Embedding at scale: cells from crops, fields of view or shards -> SubCell embeddings, localization
probabilities and attention maps, as AnnData / Parquet / per-cell files (`subcell-hf embed`), and plots of them
(`subcell-hf plot`).

    >>> from subcell_hf.inference import embed
    >>> result = embed("subcell/all_channels-vit-prots-pool", "path_list.csv", "results", formats=("h5ad",))
    >>> result.outputs["h5ad"]
    PosixPath('results/embeddings.h5ad')
"""

from .embed import EmbedConfig, EmbeddingModel, EmbeddingSettingsError, EmbedResult, embed
from .inputs import Cell, CellSource, FieldSource, InputFailure, ShardSource, WrapperCsvSource, open_source
from .outputs import EmbeddingTable, to_anndata

__all__ = [
    "Cell",
    "CellSource",
    "EmbedConfig",
    "EmbedResult",
    "EmbeddingModel",
    "EmbeddingSettingsError",
    "EmbeddingTable",
    "FieldSource",
    "InputFailure",
    "ShardSource",
    "WrapperCsvSource",
    "embed",
    "open_source",
    "to_anndata",
]
