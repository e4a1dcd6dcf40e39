"""The SubCell model family as transformers classes (also uploaded as remote code).

Names load on first use, so that importing the configuration alone (e.g. to register it) does not import the
modeling code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY_NAMES = {
    "HPA_CHANNELS": ".configuration_subcell",
    "LOCALIZATION_CLASSES": ".configuration_subcell",
    "PRETRAINING_CLASSES": ".configuration_subcell",
    "SubCellConfig": ".configuration_subcell",
    "SubCellImageProcessor": ".image_processing_subcell",
    "min_max_normalize": ".image_processing_subcell",
    "SubCellForProteinLocalization": ".modeling_subcell",
    "SubCellLocalizationOutput": ".modeling_subcell",
    "SubCellModel": ".modeling_subcell",
    "SubCellModelOutput": ".modeling_subcell",
    "SubCellPreTrainedModel": ".modeling_subcell",
}

if TYPE_CHECKING:  # pragma: no cover
    from .configuration_subcell import HPA_CHANNELS, LOCALIZATION_CLASSES, PRETRAINING_CLASSES, SubCellConfig
    from .image_processing_subcell import SubCellImageProcessor, min_max_normalize
    from .modeling_subcell import (
        SubCellForProteinLocalization,
        SubCellLocalizationOutput,
        SubCellModel,
        SubCellModelOutput,
        SubCellPreTrainedModel,
    )


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__all__ = sorted(_LAZY_NAMES)
