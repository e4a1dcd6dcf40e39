"""subcell_hf: the SubCell fluorescence-microscopy foundation models in the Hugging Face ecosystem.

Importing the package registers SubCell with the transformers Auto classes and pipelines, so that
``AutoModel.from_pretrained("subcell/all_channels-vit-prots-pool")`` and ``pipeline("image-classification",
model=...)`` work without ``trust_remote_code``. The import itself is light: the names below load on first use,
and the registrations run as soon as transformers loads its Auto classes (see `subcell_hf.registration`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .utils.lazy_exports import lazy_exports

from . import registration

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first access)
_LAZY_NAMES = {
    "HPA_CHANNELS": "subcell_hf.models.configuration_subcell",
    "LOCALIZATION_CLASSES": "subcell_hf.models.configuration_subcell",
    "PRETRAINING_CLASSES": "subcell_hf.models.configuration_subcell",
    "SubCellConfig": "subcell_hf.models.configuration_subcell",
    "SubCellImageProcessor": "subcell_hf.models.image_processing_subcell",
    "min_max_normalize": "subcell_hf.models.image_processing_subcell",
    "SubCellForProteinLocalization": "subcell_hf.models.modeling_subcell",
    "SubCellLocalizationOutput": "subcell_hf.models.modeling_subcell",
    "SubCellModel": "subcell_hf.models.modeling_subcell",
    "SubCellModelOutput": "subcell_hf.models.modeling_subcell",
    "SubCellPreTrainedModel": "subcell_hf.models.modeling_subcell",
    "LocalizationPredictor": "subcell_hf.inference.predictor",
}

if TYPE_CHECKING:  # pragma: no cover
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
    from .inference.predictor import LocalizationPredictor


__getattr__, __dir__ = lazy_exports(__name__, _LAZY_NAMES, on_load=registration.register_all)



registration.install()

__all__ = sorted(_LAZY_NAMES)
