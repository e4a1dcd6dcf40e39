"""The SubCell model family as transformers classes (also uploaded as remote code)."""

from .configuration_subcell import HPA_CHANNELS, LOCALIZATION_CLASSES, PRETRAINING_CLASSES, SubCellConfig
from .image_processing_subcell import SubCellImageProcessor, min_max_normalize
from .modeling_subcell import (
    SubCellForProteinLocalization,
    SubCellLocalizationOutput,
    SubCellModel,
    SubCellModelOutput,
    SubCellPreTrainedModel,
)

__all__ = [
    "HPA_CHANNELS",
    "LOCALIZATION_CLASSES",
    "PRETRAINING_CLASSES",
    "SubCellConfig",
    "SubCellForProteinLocalization",
    "SubCellImageProcessor",
    "SubCellLocalizationOutput",
    "SubCellModel",
    "SubCellModelOutput",
    "SubCellPreTrainedModel",
    "min_max_normalize",
]
