"""An evaluation as files a colleague can read: Markdown tables, the per-class AP plot, copairs' per-group tables.

`write_report(results, output_dir, retrieval_tables)` writes, next to `results.json`:

- `report.md`: the protocol, the headline metrics (ensemble, and mean +- std over the seeds), the per-seed values,
  the per-class average precisions and the antibody split counts;
- `per_class_average_precision.png`: the ensemble's AP per class, with the seeds' mean and standard deviation;
- `<family>.csv`: copairs' per-group mAP, p-value and corrected p-value for each retrieval family.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ..utils.atomic_writes import atomic_path, atomic_write_text
from .functional import LOCALIZATION_METRICS, METRIC_NAMES

REPORT_NAME = "report.md"
PLOT_NAME = "per_class_average_precision.png"


def markdown_report(results: Mapping[str, Any]) -> str:
    """The Markdown report of a results object written by `results_from_evaluation`."""
    protocol, report = results.get("protocol", {}), results.get("report", {})
    lines = [
        f"# Evaluation of {results['model']}",
        "",
        f"{results['dataset']['name']} ({results['dataset']['split']}); {results['source']}",
        "",
        "## Protocol",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    for key in ("split", "grouping", "seed", "clustering"):
        if key in protocol:
            lines.append(f"| {key} | {_cell(protocol[key])} |")
    for key, value in protocol.get("retrieval", {}).items():
        lines.append(f"| retrieval {key} | {_cell(value)} |")
    versions = protocol.get("library_versions", {})
    versions = ", ".join(f"{name} {version}" for name, version in versions.items() if version)
    lines += [f"| libraries | {versions} |", ""]
    if "split_report" in protocol:
        lines += ["## Antibody split", "", "| list | listed antibodies | found in the data | cells |"]
        lines.append("|---|---|---|---|")
        for name, entry in protocol["split_report"].items():
            lines.append(
                f"| {name} | {entry.get('listed_antibodies', '-')} | {entry['antibodies_found']} | {entry['cells']} |"
            )
        lines += ["", "Only the cells of the `test` list are evaluated.", ""]
    lines += ["## Metrics", "", "| metric | config | value |", "|---|---|---|"]
    lines += [f"| {m['name']} | {m.get('config', '')} | {m['value']:.4f} |" for m in results["metrics"]]
    lines.append("")
    localization = report.get("localization")
    if localization:
        lines += _localization_tables(localization)
    if report.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    return "\n".join(lines)


def _localization_tables(localization: Mapping[str, Any]) -> list[str]:
    seeds = localization["seeds"]
    ids = seeds.get("ids", list(range(localization["num_heads"])))
    absent = localization["absent_classes"]
    lines = [
        "## Localization: ensemble and seeds",
        "",
        f"{localization['num_cells']} cells, {len(localization['classes'])} classes evaluated"
        + (f"; dropped (no positive): {', '.join(absent)}" if absent else "")
        + ". Seed spread: sample standard deviation over the heads.",
        "",
        "| metric | ensemble | seed mean | seed std | " + " | ".join(f"seed {i}" for i in ids) + " |",
        "|---|---|---|---|" + "---|" * len(ids),
    ]
    for key in LOCALIZATION_METRICS:
        values = " | ".join(f"{v:.4f}" for v in seeds["values"][key])
        lines.append(
            f"| {METRIC_NAMES[key]} | {localization['ensemble'][key]:.4f} | {seeds['mean'][key]:.4f} | "
            f"{seeds['std'][key]:.4f} | {values} |"
        )
    per_class = localization["per_class_average_precision"]
    lines += [
        "",
        "## Localization: average precision per class",
        "",
        "| class | positives | ensemble AP | seed mean AP | seed std |",
        "|---|---|---|---|---|",
    ]
    for name in localization["classes"]:
        lines.append(
            f"| {name} | {localization['positives'][name]} | {per_class['ensemble'][name]:.4f} | "
            f"{per_class['seed_mean'][name]:.4f} | {per_class['seed_std'][name]:.4f} |"
        )
    return lines + ["", f"![average precision per class]({PLOT_NAME})", ""]


def per_class_plot(localization: Mapping[str, Any]) -> bytes:
    """PNG bytes: horizontal bars of the ensemble's AP per class, seed mean +- std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per_class = localization["per_class_average_precision"]
    names = sorted(localization["classes"], key=lambda name: per_class["ensemble"][name])
    figure, axis = plt.subplots(figsize=(7, 0.28 * len(names) + 1.2))
    positions = range(len(names))
    axis.barh(positions, [per_class["ensemble"][n] for n in names], color="#4c72b0", label="ensemble")
    axis.errorbar(
        [per_class["seed_mean"][n] for n in names],
        positions,
        xerr=[per_class["seed_std"][n] for n in names],
        fmt="o",
        color="#dd8452",
        markersize=3,
        label=f"mean +- std of {localization['num_heads']} seeds",
    )
    axis.set_yticks(list(positions), names, fontsize=8)
    axis.set_xlim(0, 1)
    axis.set_xlabel("average precision")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    plt.close(figure)
    return buffer.getvalue()


def write_report(
    results: Mapping[str, Any], output_dir: str | Path, retrieval_tables: Mapping[str, pd.DataFrame] | None = None
) -> list[Path]:
    """Write `report.md`, the per-class plot (when there are localization metrics) and the retrieval tables."""
    output_dir = Path(output_dir)
    paths = [atomic_write_text(output_dir / REPORT_NAME, markdown_report(results))]
    localization = results.get("report", {}).get("localization")
    if localization:
        with atomic_path(output_dir / PLOT_NAME) as temporary:
            temporary.write_bytes(per_class_plot(localization))
        paths.append(output_dir / PLOT_NAME)
    for family, table in (retrieval_tables or {}).items():
        paths.append(atomic_write_text(output_dir / f"{family}.csv", table.to_csv(index=False)))
    return paths


def _cell(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None else str(value)
