"""Pretraining SubCell (the recipe: docs/pretraining.md, section 7): the model with its MAE decoder, projectors and
losses, the optimiser and schedule, and the training loop that `recipes/pretrain.py` launches."""

from transformers import AutoConfig, AutoModelForPreTraining

from .configuration_pretraining import FAMILY_OBJECTIVES, SubCellPreTrainingConfig
from .modeling_pretraining import SubCellForPreTraining, SubCellPreTrainingOutput

AutoConfig.register(SubCellPreTrainingConfig.model_type, SubCellPreTrainingConfig, exist_ok=True)
AutoModelForPreTraining.register(SubCellPreTrainingConfig, SubCellForPreTraining, exist_ok=True)

__all__ = ["FAMILY_OBJECTIVES", "SubCellForPreTraining", "SubCellPreTrainingConfig", "SubCellPreTrainingOutput"]
