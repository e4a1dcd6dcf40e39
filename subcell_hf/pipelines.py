"""`pipeline("image-classification")` and `pipeline("image-feature-extraction")` for multi-channel cells.

transformers' image pipelines read every input into an RGB PIL image, which would drop or mix SubCell's channels.
These subclasses of the stock pipelines read a SubCell cell instead, whenever the model is a SubCell model:

- an array or tensor (C, H, W) in the model's channel order (or a list of them: a batch);
- a mapping `{channel name: 2-D array or file path}`;
- a list of one file path per model channel (PNG/TIFF), in the model's channel order;
- the path of a multi-channel TIFF / OME-TIFF / OME-Zarr crop (channels matched by their names in the file).

For any other model they are the stock pipelines, unchanged. `register_pipelines` puts them in transformers'
`PIPELINE_REGISTRY` under the stock task names (the public way to add a pipeline); `import subcell_hf` arranges it.

`image-classification` returns the top-k `{"label", "score"}` of the 31 localization classes (the ensemble's
probabilities); `image-feature-extraction` returns the 1536-d SubCell embedding (`pooler_output`) by default, the
token states with `pool=False`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from transformers import AutoModel, AutoModelForImageClassification
from transformers.pipelines import PIPELINE_REGISTRY
from transformers.pipelines.image_classification import ImageClassificationPipeline
from transformers.pipelines.image_feature_extraction import ImageFeatureExtractionPipeline
from transformers.utils import logging

from .data.io import is_multichannel_path, read_cell
from .models.image_processing_subcell import SubCellImageProcessor


class _SubCellInputs:
    """Reads SubCell cells from what a user passes; defers to the stock pipeline for other models."""

    # An image pipeline: no video processor (transformers would derive one from the processor's auto_map and ask
    # whether to run remote code for it).
    _load_video_processor = False

    @property
    def _is_subcell(self) -> bool:
        return isinstance(self.image_processor, SubCellImageProcessor)

    def _read(self, inputs: Any, channel_map: Mapping[str, str | int] | None) -> tuple[Any, bool]:
        """(cells, is_batch): one cell as an array, a batch as a list of arrays."""
        names = self.image_processor.channel_names
        if isinstance(inputs, list) and inputs and not self._is_one_cell_of_files(inputs, names):
            return [read_cell(item, names, channel_map) for item in inputs], True
        cell = read_cell(inputs, names, channel_map)
        if hasattr(cell, "ndim") and cell.ndim == 4:  # a (B, C, H, W) batch
            return list(cell), True
        return cell, False

    @staticmethod
    def _is_one_cell_of_files(items: list, names) -> bool:
        paths = all(isinstance(item, (str, os.PathLike)) for item in items)
        return paths and not any(is_multichannel_path(item) for item in items)

    def __call__(self, inputs: Any = None, *args, channel_map: Mapping[str, str | int] | None = None, **kwargs):
        if inputs is None and "images" in kwargs:
            inputs = kwargs.pop("images")
        if not self._is_subcell:
            if channel_map is not None:
                raise ValueError("channel_map is for SubCell models only")
            return super().__call__(inputs, *args, **kwargs)
        cells, is_batch = self._read(inputs, channel_map)
        if is_batch:
            return super().__call__(cells, *args, **kwargs)
        # one cell: through the pipeline as a batch of one (a bare ndarray is not seen as a batch either way)
        return super().__call__([cells], *args, **kwargs)[0]

    def preprocess(self, image, timeout=None, **image_processor_kwargs):
        if not self._is_subcell:
            return super().preprocess(image, timeout=timeout, **image_processor_kwargs)
        return self.image_processor(image, return_tensors="pt", **image_processor_kwargs).to(self.dtype)


class SubCellImageClassificationPipeline(_SubCellInputs, ImageClassificationPipeline):
    """The stock image-classification pipeline, reading multi-channel SubCell cells (see the module docstring)."""


class SubCellImageFeatureExtractionPipeline(_SubCellInputs, ImageFeatureExtractionPipeline):
    """The stock image-feature-extraction pipeline, reading multi-channel SubCell cells; for SubCell models it returns
    the pooled embedding unless `pool=False`."""

    def postprocess(self, model_outputs, pool=None, return_tensors=False):
        if pool is None and self._is_subcell:
            pool = True
        return super().postprocess(model_outputs, pool=pool, return_tensors=return_tensors)


def register_pipelines() -> None:
    """Register both pipelines for their stock tasks (same default models and model classes)."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()  # "task is already registered. Overwriting...": that is the point
    try:
        for task, pipeline_class, model_class in (
            ("image-classification", SubCellImageClassificationPipeline, AutoModelForImageClassification),
            ("image-feature-extraction", SubCellImageFeatureExtractionPipeline, AutoModel),
        ):
            stock = PIPELINE_REGISTRY.supported_tasks.get(task, {})
            PIPELINE_REGISTRY.register_pipeline(
                task, pipeline_class=pipeline_class, pt_model=model_class, default=stock.get("default"), type="image"
            )
    finally:
        logging.set_verbosity(verbosity)


__all__ = ["SubCellImageClassificationPipeline", "SubCellImageFeatureExtractionPipeline", "register_pipelines"]
