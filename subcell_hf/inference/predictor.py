"""Top-k localization names for cells in three lines.

    >>> from subcell_hf import LocalizationPredictor
    >>> predictor = LocalizationPredictor.from_pretrained("subcell/all_channels-vit-prots-pool")
    >>> predictor({"microtubules": mt, "er": er, "dna": dna, "protein": protein}, top_k=3)
    [{'label': 'Nucleoplasm', 'score': 0.91}, {'label': 'Nucleoli', 'score': 0.12}, ...]
"""

from __future__ import annotations

from typing import Any

import torch

from ..model_loading import load_subcell
from ..options import default_runtime
from ..models import SubCellForProteinLocalization, SubCellImageProcessor


class LocalizationPredictor:
    """A `SubCellForProteinLocalization` and its image processor behind one call.

    Calling it on one cell (array (C, H, W) or channel mapping) returns a list of `{"label", "score"}` dicts, best
    first; on a batch ((B, C, H, W) or a list) it returns one such list per cell.

    `runtime` chooses how the model runs (`subcell_hf.inference.runtime`): "auto" (ONNX Runtime on CPU, exported
    once per crop size and cached; eager PyTorch on a GPU), "eager", "onnx", "onnx-int8" (opt-in, not
    fp32-exact) or "openvino" (needs `pip install openvino`); the default is `$SUBCELL_HF_RUNTIME`, else "auto".
    """

    def __init__(self, model: SubCellForProteinLocalization, processor: SubCellImageProcessor,
                 runtime: str | None = None):
        from .embed import EmbeddingModel
        from .runtime import build_runtime

        name = getattr(model, "name_or_path", None) or "in-memory"
        embedding_model = EmbeddingModel(model, processor, name)  # checks that the processor reads the model's channels
        self.model = model.eval()
        self.processor = processor
        self.runtime = build_runtime(runtime or default_runtime(), embedding_model)

    @classmethod
    def from_pretrained(cls, name_or_path: str, device: str | torch.device = "cpu", runtime: str | None = None,
                        **kwargs) -> "LocalizationPredictor":
        """Load a localization checkpoint (Hub id or folder) and its image processor (`load_subcell`: a missing
        classifier tensor or a processor reading other channels is an error, never random heads)."""
        model, processor, _ = load_subcell(name_or_path, classifiers=True, **kwargs)
        return cls(model.to(device), processor, runtime=runtime)

    @torch.inference_mode()
    def probabilities(self, cells: Any, **preprocess_kwargs) -> torch.Tensor:
        """Ensemble probabilities (B, num_labels) for one cell or a batch."""
        pixel_values = self.processor(cells, **preprocess_kwargs)["pixel_values"]
        return self.runtime(pixel_values)[1].cpu()

    def __call__(self, cells: Any, top_k: int = 3, **preprocess_kwargs) -> list[dict] | list[list[dict]]:
        probabilities = self.probabilities(cells, **preprocess_kwargs)
        id2label = self.model.config.id2label
        top_k = min(top_k, probabilities.shape[-1])
        scores, indices = probabilities.topk(top_k, dim=-1)
        results = [
            [{"label": id2label[int(i)], "score": float(s)} for s, i in zip(row_scores, row_indices)]
            for row_scores, row_indices in zip(scores, indices)
        ]
        single = isinstance(cells, dict) or (hasattr(cells, "ndim") and cells.ndim == 3)
        return results[0] if single else results
