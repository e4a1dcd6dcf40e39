"""The model card's metrics as `evaluate` modules, loadable offline from their packaged folders.

    >>> from subcell_hf.evaluation import load_metric
    >>> localization = load_metric("localization")
    >>> localization.compute(predictions=probabilities, references=multi_hot)
    {'micro_average_precision': 0.81, 'macro_average_precision': 0.62, ...}

Each module lives in `metrics/<name>/<name>.py` and delegates to `subcell_hf.evaluation.functional`, so that the
`evaluate` objects and the plain functions always give the same numbers.
"""

from __future__ import annotations

from pathlib import Path

#: The folder holding one sub-folder per metric module.
METRICS_DIR = Path(__file__).resolve().parent

#: Metric module name -> what it measures.
AVAILABLE_METRICS: dict[str, str] = {
    "localization": "multi-label localization: micro / macro AP, label ranking AP, coverage error",
    "clustering": "k-means or Leiden clusters of embeddings vs labels: ARI, V-measure, Fowlkes-Mallows",
    "retrieval": "copairs retrieval of same-group profiles: mAP, fraction retrieved, nearest-neighbour accuracy",
}

CITATION = """\
@article{gupta2024subcell,
  title   = {SubCell: Vision foundation models for microscopy capture single-cell biology},
  author  = {Gupta, Ankit and Wefers, Zoe and Kahnert, Konstantin and Hansen, Jan N. and Leineweber, William D.
             and Cesnik, Anthony and Lu, Dan and Axelsson, Ulrika and Ballllosera Navarro, Frederic
             and Karaletsos, Theofanis and Lundberg, Emma},
  journal = {bioRxiv},
  year    = {2024},
  doi     = {10.1101/2024.12.06.627299}
}
"""


def metric_path(name: str) -> Path:
    """The folder of a packaged metric module, for `evaluate.load(str(path))`."""
    if name not in AVAILABLE_METRICS:
        raise ValueError(f"unknown metric {name!r}; expected one of {sorted(AVAILABLE_METRICS)}")
    return METRICS_DIR / name


def load_metric(name: str, **kwargs):
    """`evaluate.load` of a packaged metric module (a local path: no network). `kwargs` go to `evaluate.load`
    (e.g. `keep_in_memory=True`, `cache_dir=...`)."""
    import evaluate  # ~7 s to import: only when a metric module is actually wanted

    return evaluate.load(str(metric_path(name)), **kwargs)
