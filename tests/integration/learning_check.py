"""Learning check: does pretraining learn localization, and not the nuisance? An integration check run by hand
(~10-15 min on 2 cores), not part of the pytest run.

What it shows, and only that (docs/pretraining.md, "Learning check"):

1. Data: synthetic HPA-like fields (`subcell_hf.data.synthetic`, one localization pattern per antibody) **with nuisance
   factors**: each cell line has its own per-channel brightness and cell size, each plate its own camera offset,
   drawn independently of the pattern. Two disjoint sets of antibodies: 20 for pretraining, 20 others (2 per
   pattern) held out of pretraining entirely, on which every probe is trained and tested.
2. Variants at the tiny scale (`recipes/configs/tiny.yaml`: 2-layer, 64-wide ViT, 64-px crops), each with >= 3
   seeds: `random_init` (the architecture untrained), `supcon_only` (protein-specific SupCon alone) and
   `all_three` (MAE reconstruction + NT-Xent + SupCon, the MAE-CellS-ProtS-Pool recipe). Same steps for both
   trained variants.
3. Scores on the held-out antibodies: the linear probe of `subcell_hf.pretraining.probe` (trained on one antibody
   per pattern, tested on the other's cells: micro / macro AP) and kNN (is the nearest cell *of another antibody*
   of the same pattern?); the same for the **cell line** (the nuisance). **Chance** is measured by the same probes
   on random Gaussian features of the same width.
4. Verdicts: learned = `all_three` beats `random_init` on pattern micro AP by >= 0.10 (mean over seeds); not
   mostly nuisance = the embedding's pattern kNN lift over chance exceeds its cell-line kNN lift over chance.

Writes `tests/integration/results/learning_check/`: `learning_check.json|md`, `scores.png` (mean +- std over seeds,
chance marked) and `loss_curves.png`.

    python -m tests.integration.learning_check [--work outputs/learning_check] [--steps 300] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

import subcell_hf  # noqa: E402, F401
from subcell_hf.data.crops import CropOptions  # noqa: E402
from subcell_hf.data.shards import iter_records, write_shards  # noqa: E402
from subcell_hf.data.synthetic import generate_dataset  # noqa: E402
from subcell_hf.evaluation.functional import localization_metrics, retrieval_metrics  # noqa: E402
from subcell_hf.models import SubCellModel  # noqa: E402
from subcell_hf.pretraining.config import load_config  # noqa: E402
from subcell_hf.pretraining.probe import antibody_split, embed_cells, fit_linear_probe  # noqa: E402
from subcell_hf.pretraining.trainer import METRICS_FILENAME, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results" / "learning_check"
TINY = ROOT / "recipes" / "configs" / "tiny.yaml"
REQUIRED_MARGIN = 0.10
VARIANTS = {
    "supcon_only": {"reconstruction_weight": 0.0, "cell_contrastive_weight": 0.0, "protein_contrastive_weight": 1.0},
    "all_three": {},
}
SHARD_OPTIONS = dict(crop=CropOptions(size=64, output_size=64, min_area=100), records_per_shard=4, num_workers=0,
                     show_progress=False)


# ------------------------------------------------------------------------------------------------ data
def prepare_data(work: Path) -> tuple[Path, Path]:
    """Pretraining shards (antibodies 0-19) and held-out probe shards (antibodies 100-119), with nuisance."""
    folders = []
    for name, fields, seed, first in (("pretrain", 60, 0, 0), ("heldout", 40, 7, 100)):
        if not (work / name / "summary.json").is_file():
            manifest = generate_dataset(
                work / f"{name}_fields", num_fields=fields, num_antibodies=20, image_size=256, seed=seed,
                nuisance=True, first_antibody=first, show_progress=False,
            )
            write_shards(manifest, work / name, **SHARD_OPTIONS)
        folders.append(work / name)
    return folders[0], folders[1]


def heldout_cells(shards: Path, channel_names: list[str]) -> dict[str, np.ndarray | torch.Tensor]:
    cells, labels, antibodies, lines = [], [], [], []
    for record in iter_records(shards):
        order = [record["channels"].index(name) for name in channel_names]
        cells.append(torch.from_numpy(record["cells"][:, order].astype(np.float32)))
        labels += [cell["labels"] for cell in record["metadata"]]
        lines += [cell["cell_line"] for cell in record["metadata"]]
        antibodies += [record["antibody_id"]] * len(record["cells"])
    return {
        "cells": torch.cat(cells), "labels": np.asarray(labels, np.int64), "antibodies": np.asarray(antibodies),
        "cell_lines": np.asarray(lines),
    }


# ------------------------------------------------------------------------------------------------ scores
def scores(embeddings: np.ndarray, data: dict, seed: int) -> dict[str, float]:
    """Pattern and cell-line probe (micro AP, trained on some held-out antibodies, tested on the others) and kNN."""
    labels, antibodies, lines = data["labels"], data["antibodies"], data["cell_lines"]
    labels = labels[:, labels.any(0)]  # the classes present (the 10 patterns): 3.5x cheaper probes, same scores
    label_sets = np.asarray(["".join(map(str, row)) for row in labels])
    train = antibody_split(antibodies, labels, seed)
    pattern_scores = fit_linear_probe(embeddings[train], labels[train], embeddings[~train], max_iterations=100)
    pattern = localization_metrics(labels[~train], pattern_scores)
    names = sorted(set(lines))
    one_hot = (lines[:, None] == np.asarray(names)[None, :]).astype(np.int64)
    line_scores = fit_linear_probe(embeddings[train], one_hot[train], embeddings[~train], max_iterations=100)
    line = localization_metrics(one_hot[~train], line_scores)
    return {
        "pattern_probe_micro_ap": pattern["micro_average_precision"],
        "pattern_probe_macro_ap": pattern["macro_average_precision"],
        "pattern_knn_accuracy": retrieval_metrics(embeddings, label_sets, exclude=antibodies)[
            "nearest_neighbor_accuracy"
        ],
        "cell_line_probe_micro_ap": line["micro_average_precision"],
        "cell_line_knn_accuracy": retrieval_metrics(embeddings, lines, exclude=antibodies)["nearest_neighbor_accuracy"],
    }


def pretrain(variant: str, seed: int, shards: Path, work: Path, steps: int, records: int) -> tuple[Path, float]:
    output = work / "runs" / f"{variant}_steps{steps}x{records}_seed{seed}"
    overrides = {
        "data.shards": str(shards), "data.validation_shards": None, "optim.max_steps": steps,
        "data.records_per_batch": records,
        "optim.warmup_steps": max(1, steps // 10), "train.output_dir": str(output), "train.seed": seed,
        "train.report_to": "none", "train.save_every": 0, "train.log_every": 10, "eval.every": 0,
    }
    config = load_config(TINY, overrides)
    config.model.config_overrides.update(VARIANTS[variant])
    start = time.perf_counter()
    if not (output / "encoder" / "config.json").is_file():
        train(config)
        from accelerate.state import AcceleratorState, PartialState

        AcceleratorState._reset_state(True)
        PartialState._reset_state()
    return output, time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ figures
def plot_scores(summary: dict, path: Path) -> None:
    keys = list(summary["chance"]["mean"])
    rows = ["random_init", *VARIANTS]
    figure, axis = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(rows)
    for k, name in enumerate(rows):
        means = [summary[name]["mean"][key] for key in keys]
        errors = [summary[name]["std"][key] for key in keys]
        bars = axis.bar(np.arange(len(keys)) + (k - 1) * width, means, width, yerr=errors, capsize=3,
                        label=name.replace("_", " "))
        axis.bar_label(bars, fmt="%.2f", fontsize=7)
    for index, key in enumerate(keys):
        chance = summary["chance"]["mean"][key]
        axis.hlines(chance, index - 0.45, index + 0.45, colors="black", linestyles="dashed",
                    label="chance" if index == 0 else None)
    axis.set_xticks(range(len(keys)), [key.replace("_", "\n") for key in keys], fontsize=8)
    axis.set_ylim(0, 1.05)
    axis.set_title(f"held-out antibodies (never pretrained on); mean +- std over {summary['num_seeds']} seeds")
    axis.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_losses(runs: dict[str, list[Path]], path: Path) -> None:
    figure, axes = plt.subplots(1, len(runs), figsize=(5 * len(runs), 3.5), squeeze=False)
    for axis, (variant, folders) in zip(axes[0], runs.items()):
        for folder in folders:
            rows = [json.loads(line) for line in (folder / METRICS_FILENAME).read_text().splitlines()]
            rows = [r for r in rows if "train/loss" in r]
            axis.plot([r["step"] for r in rows], [r["train/loss"] for r in rows],
                      label=folder.name.rsplit("_", 1)[-1])
        axis.set_title(f"{variant.replace('_', ' ')}: training loss")
        axis.set_xlabel("optimizer step")
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ------------------------------------------------------------------------------------------------ main
def summarize(values: list[dict]) -> dict:
    keys = values[0]
    return {
        "mean": {k: float(np.mean([v[k] for v in values])) for k in keys},
        "std": {k: float(np.std([v[k] for v in values])) for k in keys},
        "per_seed": values,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="outputs/learning_check", help="scratch folder (data and the runs)")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of each pretraining run")
    parser.add_argument("--records-per-batch", type=int, default=4, help="records (8 cells each) per step")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (at least 3 for the report)")
    parser.add_argument("--output", default=str(RESULTS), help="results folder")
    args = parser.parse_args()
    work, output = Path(args.work), Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    pretrain_shards, heldout_shards = prepare_data(work)
    channel_names = load_config(TINY).model.build_config().channel_names
    data = heldout_cells(heldout_shards, channel_names)
    per_variant: dict[str, list[dict]] = {"chance": [], "random_init": [], **{v: [] for v in VARIANTS}}
    runs: dict[str, list[Path]] = {v: [] for v in VARIANTS}
    seconds: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for seed in args.seeds:
        generator = np.random.default_rng(seed)
        per_variant["chance"].append(scores(generator.standard_normal((len(data["cells"]), 128)), data, seed))
        torch.manual_seed(seed)
        random_init = SubCellModel(load_config(TINY).model.build_config().encoder_config())
        per_variant["random_init"].append(scores(embed_cells(random_init, data["cells"]), data, seed))
        for variant in VARIANTS:
            run, took = pretrain(variant, seed, pretrain_shards, work, args.steps, args.records_per_batch)
            runs[variant].append(run)
            seconds[variant].append(took)
            encoder = AutoModel.from_pretrained(run / "encoder")
            per_variant[variant].append(scores(embed_cells(encoder, data["cells"]), data, seed))
            print(variant, seed, json.dumps(per_variant[variant][-1]), flush=True)

    summary = {name: summarize(values) for name, values in per_variant.items()}
    summary["num_seeds"] = len(args.seeds)
    mean = {name: summary[name]["mean"] for name in per_variant}
    margin = mean["all_three"]["pattern_probe_micro_ap"] - mean["random_init"]["pattern_probe_micro_ap"]
    lift = {
        kind: mean["all_three"][f"{kind}_knn_accuracy"] - mean["chance"][f"{kind}_knn_accuracy"]
        for kind in ("pattern", "cell_line")
    }
    verdicts = {
        "learned_localization": bool(margin >= REQUIRED_MARGIN),
        "not_mostly_nuisance": bool(lift["pattern"] > lift["cell_line"]),
    }
    report = {
        "what": "probes of localization pattern and cell line (nuisance) on antibodies held out of pretraining",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, shared CPU",
        "preset": "tiny", "steps": args.steps, "records_per_batch": args.records_per_batch, "seeds": args.seeds,
        "pretraining_seconds": {v: round(float(np.mean(s)), 1) for v, s in seconds.items()},
        "total_seconds": round(time.perf_counter() - started, 1),
        "heldout_cells": int(len(data["cells"])), "heldout_antibodies": int(len(set(data["antibodies"].tolist()))),
        "cell_lines": sorted(set(data["cell_lines"].tolist())),
        "results": summary, "pattern_micro_ap_margin_over_random_init": margin, "required_margin": REQUIRED_MARGIN,
        "knn_lift_over_chance": lift, "verdicts": verdicts,
    }
    (output / "learning_check.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_scores(summary, output / "scores.png")
    plot_losses(runs, output / "loss_curves.png")
    keys = list(mean["chance"])
    header = "| variant | " + " | ".join(k.replace("_", " ") for k in keys) + " |"
    lines = [header, "|---" * (len(keys) + 1) + "|"]
    for name in per_variant:
        cells = [f"{mean[name][k]:.3f} +- {summary[name]['std'][k]:.3f}" for k in keys]
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(cells) + " |")
    (output / "learning_check.md").write_text(
        "# Learning check (`python -m tests.integration.learning_check`)\n\n"
        f"Tiny preset (2-layer, 64-wide ViT, 64-px crops), {args.steps} steps of {args.records_per_batch} records "
        f"x 8 cells per run, seeds {args.seeds}, on "
        f"synthetic fields with cell-line and plate nuisance; every score on {report['heldout_cells']} cells of "
        f"{report['heldout_antibodies']} antibodies held out of pretraining (probe trained on one antibody per "
        f"pattern, tested on the other's cells). Chance = the same probes on random Gaussian features. Mean +- std "
        f"over seeds; {report['total_seconds']:.0f} s in all on {report['machine']}.\n\n" + "\n".join(lines) + "\n\n"
        f"- learned localization (all three vs random init, pattern micro AP): **{margin:+.3f}** "
        f"(required {REQUIRED_MARGIN:+.2f}): {'yes' if verdicts['learned_localization'] else 'NO'}.\n"
        f"- not mostly nuisance (kNN lift over chance, all three): pattern {lift['pattern']:+.3f}, cell line "
        f"{lift['cell_line']:+.3f}: {'yes' if verdicts['not_mostly_nuisance'] else 'NO'}.\n\n"
        "What it does not show: anything about the released ViT-B/16 models or real HPA images; the tiny model and the "
        "synthetic patterns only check that the objectives, views and sampling train in the right direction.\n\n"
        "![scores](scores.png)\n\n![losses](loss_curves.png)\n"
    )
    print(json.dumps({"verdicts": verdicts, "margin": margin, "lift": lift}, indent=2))
    return 0 if all(verdicts.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
