"""Embedding at scale: cells from crops, fields of view or shards -> SubCell embeddings, localization
probabilities and attention maps, as AnnData / Parquet / per-cell files (`subcell-hf embed`), and plots of them
(`subcell-hf plot`).

    >>> from subcell_hf.inference import embed
    >>> result = embed("subcell/all_channels-vit-prots-pool", "path_list.csv", "results", formats=("h5ad",))
    >>> result.outputs["h5ad"]
    PosixPath('results/embeddings.h5ad')

Names load on first use (the engine imports torch), so that `subcell_hf.inference.config` (`EmbedConfig`, what
`subcell-hf embed --help` reads) stays light.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING, Any

from ..utils.lazy_exports import lazy_exports

#: public name -> module under subcell_hf.inference that defines it
_LAZY_NAMES = {
    "EmbedConfig": ".config",
    "EmbeddingModel": ".embed",
    "EmbeddingSettingsError": ".embed",
    "EmbedResult": ".embed",
    "embed": ".embed",
    "Cell": ".inputs",
    "CellSource": ".inputs",
    "FieldSource": ".inputs",
    "InputFailure": ".inputs",
    "ShardSource": ".inputs",
    "WrapperCsvSource": ".inputs",
    "open_source": ".inputs",
    "EmbeddingTable": ".outputs",
    "to_anndata": ".outputs",
}

if TYPE_CHECKING:  # pragma: no cover
    from .config import EmbedConfig
    from .embed import EmbeddingModel, EmbeddingSettingsError, EmbedResult, embed
    from .inputs import Cell, CellSource, FieldSource, InputFailure, ShardSource, WrapperCsvSource, open_source
    from .outputs import EmbeddingTable, to_anndata


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES)



class _Package(types.ModuleType):
    """`subcell_hf.inference.embed` names the engine function, as it did when this package imported it eagerly:
    importing the submodule of the same name would otherwise rebind the attribute to the module."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "embed" and isinstance(value, types.ModuleType):
            value = value.embed
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = sorted(_LAZY_NAMES)
