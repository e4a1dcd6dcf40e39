"""subcell_hf: the SubCell fluorescence-microscopy foundation models in the Hugging Face ecosystem.

Importing the package registers SubCell with the transformers Auto classes, so that
``AutoModel.from_pretrained("subcell/all_channels-vit-prots-pool")`` works without ``trust_remote_code``.
"""

from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

from .models import (
    HPA_CHANNELS,
    LOCALIZATION_CLASSES,
    PRETRAINING_CLASSES,
    SubCellConfig,
    SubCellForProteinLocalization,
    SubCellImageProcessor,
    SubCellLocalizationOutput,
    SubCellModel,
    SubCellModelOutput,
    SubCellPreTrainedModel,
    min_max_normalize,
)

__version__ = "0.1.0"


def _register_auto_classes() -> None:
    AutoConfig.register(SubCellConfig.model_type, SubCellConfig, exist_ok=True)
    AutoModel.register(SubCellConfig, SubCellModel, exist_ok=True)
    AutoModelForImageClassification.register(SubCellConfig, SubCellForProteinLocalization, exist_ok=True)
    AutoImageProcessor.register(SubCellConfig, image_processor_classes={"pil": SubCellImageProcessor}, exist_ok=True)
    # save_pretrained also writes the code and auto_map, for users who load with trust_remote_code=True.
    SubCellConfig.register_for_auto_class()
    SubCellModel.register_for_auto_class("AutoModel")
    SubCellForProteinLocalization.register_for_auto_class("AutoModelForImageClassification")
    SubCellImageProcessor.register_for_auto_class("AutoImageProcessor")


_register_auto_classes()

from .predict import LocalizationPredictor  # noqa: E402  (needs the registrations above)

__all__ = [
    "HPA_CHANNELS",
    "LOCALIZATION_CLASSES",
    "PRETRAINING_CLASSES",
    "LocalizationPredictor",
    "SubCellConfig",
    "SubCellForProteinLocalization",
    "SubCellImageProcessor",
    "SubCellLocalizationOutput",
    "SubCellModel",
    "SubCellModelOutput",
    "SubCellPreTrainedModel",
    "min_max_normalize",
]
