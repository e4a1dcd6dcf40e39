"""JUMP-CP style retrieval of same-group profiles with copairs (an `evaluate` module)."""

from __future__ import annotations

import datasets
import evaluate
import numpy as np

from subcell_hf.evaluation.functional import retrieval_metrics
from subcell_hf.evaluation.metrics import CITATION

_DESCRIPTION = """\
Every profile queries all the others, ranked by cosine similarity (`copairs.map.average_precision`); its
positives are the other profiles of its group (the perturbation for replicate retrieval, the mechanism of action
for MoA retrieval). Pairs sharing the query's `exclude` id (e.g. its compound, for MoA retrieval) are neither
positives nor negatives. Reports the mean over groups of copairs' per-group mAP, the fraction of groups retrieved
(Benjamini-Hochberg corrected permutation p-value below 0.05, `copairs.map.mean_average_precision`) and the
nearest-neighbour accuracy (neighbours on the query's plate skipped when `plates` is given).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list[list[float]]`): (N, D) embeddings or aggregated profiles.
    references (`list[str]` or `list[int]`): N group ids.
    exclude (`list`, *optional*): N ids; pairs sharing the query's id are skipped.
    plates (`list`, *optional*): N plate ids; nearest neighbours on the query's plate are skipped.
    null_size (`int`, defaults to 10000), seed (`int`, defaults to 0): copairs' null distribution.
Returns:
    mean_average_precision, fraction_retrieved, nearest_neighbor_accuracy.
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
            reference_urls=["https://github.com/cytomining/copairs", "https://doi.org/10.1038/s41467-025-60306-2"],
        )

    def _compute(
        self, predictions, references, exclude=None, plates=None, null_size: int = 10000, seed: int = 0
    ) -> dict[str, float]:
        return retrieval_metrics(
            np.asarray(predictions), references, exclude=exclude, plates=plates, null_size=null_size, seed=seed
        )
