"""Pretraining SubCell (the recipe: docs/pretraining.md, section 7): the model with its MAE decoder, projectors and
losses, the optimiser and schedule, and the training loop that `recipes/pretrain.py` launches.

The names below load on first use (with transformers and torch), so that importing `subcell_hf.pretraining.config`
stays light and `recipes/pretrain.py --help` answers at once; the Auto classes learn the pretraining model then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..utils.lazy_exports import lazy_exports

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


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES, on_load=_register)


__all__ = ["FAMILY_OBJECTIVES", "SubCellForPreTraining", "SubCellPreTrainingConfig", "SubCellPreTrainingOutput"]
