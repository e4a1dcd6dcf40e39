"""Pretraining SubCell (the recipe: docs/pretraining.md, section 7): the model with its MAE decoder, projectors and
losses, the optimiser and schedule, and the training loop that `recipes/pretrain.py` launches.

The names below load on first use (with transformers and torch), so that importing `subcell_hf.pretraining.config`
stays light and `recipes/pretrain.py --help` answers at once; the Auto classes learn the pretraining model then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_LAZY_NAMES = {
    "FAMILY_OBJECTIVES": ".configuration_pretraining",
    "SubCellPreTrainingConfig": ".configuration_pretraining",
    "SubCellForPreTraining": ".modeling_pretraining",
    "SubCellPreTrainingOutput": ".modeling_pretraining",
}

if TYPE_CHECKING:  # pragma: no cover
    from .configuration_pretraining import FAMILY_OBJECTIVES, SubCellPreTrainingConfig
    from .modeling_pretraining import SubCellForPreTraining, SubCellPreTrainingOutput


def _register() -> None:
    from transformers import AutoConfig, AutoModelForPreTraining

    from .configuration_pretraining import SubCellPreTrainingConfig
    from .modeling_pretraining import SubCellForPreTraining

    AutoConfig.register(SubCellPreTrainingConfig.model_type, SubCellPreTrainingConfig, exist_ok=True)
    AutoModelForPreTraining.register(SubCellPreTrainingConfig, SubCellForPreTraining, exist_ok=True)


def __getattr__(name: str) -> Any:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    _register()
    globals()[name] = value
    return value


__all__ = ["FAMILY_OBJECTIVES", "SubCellForPreTraining", "SubCellPreTrainingConfig", "SubCellPreTrainingOutput"]
