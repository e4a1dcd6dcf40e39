"""Evaluation results as files: the results JSON that the Hub cards consume, and its `model-index` form.

A results JSON describes what one model scored on one dataset:

    {"model": "subcell/all_channels-vit-prots-pool",
     "task": {"type": "image-classification", "name": "Protein localization"},
     "dataset": {"name": "HPA v23 test", "type": "hpa-v23", "split": "test"},
     "metrics": [{"type": "micro_average_precision", "name": "Micro average precision (ensemble)",
                  "config": "ensemble", "value": 0.81}, ...],
     "source": "how it was measured",
     "protocol": {...}, "report": {...}}

`config` (optional) says which variant of a metric an entry is (`ensemble`, `seed-mean`, `kmeans`, `leiden`,
`replicate-retrieval`...); `protocol` and `report` (optional, written by `recipes/evaluate_model.py`) record how the
numbers were made and the full report behind them (per-seed values, per-class APs).

`model_index_from_results` turns one or several of them into the `model-index` list of a model card through
huggingface_hub's own `EvalResult` and `eval_results_to_model_index`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult
from huggingface_hub.repocard_data import eval_results_to_model_index

from ..utils.atomic_writes import atomic_write_text
from .functional import METRIC_NAMES

LOCALIZATION_TASK: dict[str, str] = {"type": "image-classification", "name": "Protein localization"}


def metric_entries(
    values: Mapping[str, float], qualifier: str | None = None, config: str | None = None
) -> list[dict[str, Any]]:
    """`[{"type", "name", "value"}]` for metric values keyed as `functional` returns them; `qualifier` is appended
    to the display name (e.g. `"MoA retrieval"`) and `config` recorded when one metric type is measured in
    several ways."""
    entries = []
    for key, value in values.items():
        name = METRIC_NAMES.get(key, key.replace("_", " ").capitalize())
        entry = {"type": key, "name": f"{name} ({qualifier})" if qualifier else name, "value": float(value)}
        if config:
            entry["config"] = config
        entries.append(entry)
    return entries


def make_results(
    model: str,
    metrics: Sequence[Mapping[str, Any]],
    dataset: Mapping[str, str],
    source: str,
    task: Mapping[str, str] = LOCALIZATION_TASK,
) -> dict[str, Any]:
    """Assemble (and validate) one results JSON object."""
    results = {
        "model": model,
        "task": dict(task),
        "dataset": {key: dataset[key] for key in ("name", "type", "split") if key in dataset},
        "metrics": [dict(entry) for entry in metrics],
        "source": source,
    }
    return validate_results(results)


def validate_results(results: Mapping[str, Any], origin: str = "results") -> dict[str, Any]:
    """Check a results object against the schema; the error names the field, expected and found values."""

    def fail(field: str, expected: str, found: Any) -> None:
        raise ValueError(f"{origin}: field {field!r} must be {expected}, found {found!r}")

    if not isinstance(results, Mapping):
        fail("<root>", "an object", results)
    for key in ("model", "source"):
        if not isinstance(results.get(key), str) or not results[key]:
            fail(key, "a non-empty string", results.get(key))
    for key, fields in (("task", ("type", "name")), ("dataset", ("name", "type", "split"))):
        section = results.get(key)
        if not isinstance(section, Mapping):
            fail(key, f"an object with {list(fields)}", section)
        for field in fields:
            if not isinstance(section.get(field), str) or not section[field]:
                fail(f"{key}.{field}", "a non-empty string", section.get(field))
    metrics = results.get("metrics")
    if not isinstance(metrics, list) or not metrics:
        fail("metrics", "a non-empty list", metrics)
    for index, entry in enumerate(metrics):
        if not isinstance(entry, Mapping):
            fail(f"metrics[{index}]", "an object", entry)
        for field in ("type", "name"):
            if not isinstance(entry.get(field), str) or not entry[field]:
                fail(f"metrics[{index}].{field}", "a non-empty string", entry.get(field))
        value = entry.get("value")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"metrics[{index}].value", "a number", value)
        if "config" in entry and (not isinstance(entry["config"], str) or not entry["config"]):
            fail(f"metrics[{index}].config", "a non-empty string when present", entry["config"])
    for key in ("protocol", "report"):
        if key in results and not isinstance(results[key], Mapping):
            fail(key, "an object when present", results[key])
    return dict(results)


def eval_results_from_results(results: Mapping[str, Any]) -> list[EvalResult]:
    """One `huggingface_hub.EvalResult` per metric of a (validated) results object."""
    results = validate_results(results)
    task, dataset = results["task"], results["dataset"]
    return [
        EvalResult(
            task_type=task["type"],
            task_name=task["name"],
            dataset_type=dataset["type"],
            dataset_name=dataset["name"],
            dataset_split=dataset["split"],
            metric_type=metric["type"],
            metric_name=metric["name"],
            metric_config=metric.get("config"),
            metric_value=float(metric["value"]),
        )
        for metric in results["metrics"]
    ]


def model_index_from_results(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `model-index` (one model, one entry per task and dataset) of one or several results objects, made by
    `huggingface_hub.eval_results_to_model_index`.

    Several results objects must name the same model. The free-text `source` stays in the card's prose: a
    model-index `source` needs a URL.
    """
    results_list = [results] if isinstance(results, Mapping) else list(results)
    if not results_list:
        raise ValueError("model_index_from_results needs at least one results object")
    results_list = [validate_results(r, origin=f"results[{i}]") for i, r in enumerate(results_list)]
    models = {r["model"] for r in results_list}
    if len(models) != 1:
        raise ValueError(f"all results must name the same model, found {sorted(models)}")
    eval_results = [entry for r in results_list for entry in eval_results_from_results(r)]
    return eval_results_to_model_index(models.pop(), eval_results)


def write_results(results: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Validate and write a results JSON atomically (temp file, then `os.replace`)."""
    return atomic_write_text(path, json.dumps(validate_results(results), indent=2) + "\n")


def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a results JSON."""
    with open(path) as handle:
        return validate_results(json.load(handle), origin=str(path))
