"""Multi-label protein localization metrics of the SubCell model cards (an `evaluate` module)."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from subcell_hf.evaluation.functional import localization_metrics
from subcell_hf.evaluation.metrics import CITATION

_DESCRIPTION = """\
Multi-label localization quality of per-class scores against multi-hot targets: micro average precision (all
(cell, class) pairs pooled), macro average precision (mean of the per-class APs), label ranking average precision
and coverage error, as defined by scikit-learn. As in the released SubCell evaluation, the classes without a
positive in the references are dropped before every metric.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[float]]`): (N, L) scores, e.g. the ensemble's probabilities.
    references (`list[list[int]]`): (N, L) multi-hot targets.
Returns:
    micro_average_precision, macro_average_precision, label_ranking_average_precision (higher is better),
    coverage_error (lower is better; 1 is perfect for one label per cell).
Examples:
    >>> metric = subcell_hf.evaluation.load_metric("localization")
    >>> metric.compute(predictions=[[0.9, 0.2], [0.1, 0.7]], references=[[1, 0], [0, 1]])["micro_average_precision"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Localization(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int32")),
                }
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html#multilabel-ranking-metrics"],
        )

    def _compute(self, predictions, references) -> dict[str, float]:
        return localization_metrics(np.asarray(references), np.asarray(predictions))
