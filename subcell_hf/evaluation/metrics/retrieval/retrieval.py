"""Leave-one-out retrieval of same-group profiles by cosine similarity (an `evaluate` module)."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from subcell_hf.evaluation.functional import retrieval_metrics
from subcell_hf.evaluation.metrics import CITATION

_DESCRIPTION = """\
Every profile queries all the others, ranked by cosine similarity; its positives are the other profiles of its
group (the perturbation for replicate retrieval, the mechanism of action for MoA retrieval). Reports the mean over
queries of the average precision and the nearest-neighbour accuracy. Candidates sharing the query's `exclude` id
(e.g. its compound, for MoA retrieval) are left out of its ranking.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[float]]`): (N, D) embeddings or aggregated profiles.
    references (`list[str]` or `list[int]`): N group ids.
    exclude (`list`, *optional*): N ids; candidates sharing the query's id are skipped.
Returns:
    mean_average_precision, nearest_neighbor_accuracy (over queries that have at least one positive).
"""

_FEATURES = [
    datasets.Features(
        {"predictions": datasets.Sequence(datasets.Value("float64")), "references": datasets.Value(label_type)}
    )
    for label_type in ("string", "int64")
]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Retrieval(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES,
            reference_urls=["https://doi.org/10.1101/2024.12.06.627299"],
        )

    def _compute(self, predictions, references, exclude=None) -> dict[str, float]:
        return retrieval_metrics(np.asarray(predictions), references, exclude=exclude)
