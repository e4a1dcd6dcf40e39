"""Learning check: does pretraining learn something a linear probe can read? Run by hand (minutes on a CPU).

1. Synthetic shards (`subcell_hf.pretraining.synthetic`: HPA-like fields, one localization pattern per antibody,
   20 antibodies = 2 per pattern, 64-px crops; validation fields from another seed).
2. `recipes/pretrain.py --config tiny` (MAE-CellS-ProtS-Pool objectives on a 2-layer 64-wide ViT), as a user runs it.
3. Embed every validation cell with the exported encoder (`AutoModel`) and with the same architecture at its
   random initialisation, and score both with the same linear probe (`subcell_hf.pretraining.probe`: trained on
   the cells of one antibody per pattern, tested on the other antibody's cells, micro / macro AP) and kNN
   (nearest cell of another antibody has the same pattern).

Writes `benchmarks/results/learning_check/`: `learning_check.json|md`, `loss_curves.png`, `probe.png`, and the run's
last reconstruction and attention figures.

    python benchmarks/learning_check.py [--work outputs/learning_check] [--max-steps 600]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModel  # noqa: E402

import subcell_hf  # noqa: E402, F401
from subcell_hf.models import SubCellModel  # noqa: E402
from subcell_hf.pretraining.probe import embed_cells, load_validation_cells, probe_metrics  # noqa: E402
from subcell_hf.pretraining.synthetic import prepare_synthetic_shards  # noqa: E402
from subcell_hf.pretraining.trainer import METRICS_FILENAME  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "learning_check"
#: The probe must beat the random-initialisation probe by this much micro AP for the check to pass.
REQUIRED_MARGIN = 0.10


def pretrain(work: Path, train: Path, validation: Path, max_steps: int | None) -> tuple[Path, float]:
    command = [
        sys.executable, str(ROOT / "recipes" / "pretrain.py"), "--config", "tiny",
        f"--data.shards={train}", f"--data.validation_shards={validation}",
        f"--train.output_dir={work / 'run'}", "--train.report_to=tensorboard",
    ]
    if max_steps:
        command += [f"--optim.max_steps={max_steps}", f"--eval.every={max_steps // 4}"]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return work / "run", time.perf_counter() - start


def score(encoder: SubCellModel, cells, labels, antibodies) -> dict[str, float]:
    return probe_metrics(embed_cells(encoder, cells), labels, antibodies)


def plot_losses(run: Path, path: Path) -> None:
    rows = [json.loads(line) for line in (run / METRICS_FILENAME).read_text().splitlines()]
    train_rows = [r for r in rows if "train/loss" in r]
    eval_rows = [r for r in rows if "eval/probe_micro_average_precision" in r]
    figure, (losses, probe) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("loss", "reconstruction", "cell_contrastive", "protein_contrastive"):
        losses.plot([r["step"] for r in train_rows], [r[f"train/{key}"] for r in train_rows], label=key)
    losses.set_xlabel("optimizer step")
    losses.set_title("training losses (mean over 10 steps)")
    losses.legend()
    for key in ("probe_micro_average_precision", "knn_accuracy"):
        probe.plot([r["step"] for r in eval_rows], [r[f"eval/{key}"] for r in eval_rows], "o-", label=key)
    probe.set_xlabel("optimizer step")
    probe.set_title("online validation")
    probe.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_probe(results: dict, path: Path) -> None:
    keys = ["probe_micro_average_precision", "probe_macro_average_precision", "knn_accuracy"]
    figure, axis = plt.subplots(figsize=(7, 3.5))
    width = 0.38
    for offset, name in ((-width / 2, "random_init"), (width / 2, "pretrained")):
        values = [results[name][k] for k in keys]
        bars = axis.bar([i + offset for i in range(len(keys))], values, width, label=name.replace("_", " "))
        axis.bar_label(bars, fmt="%.2f")
    axis.set_xticks(range(len(keys)), [k.replace("probe_", "").replace("_", " ") for k in keys])
    axis.set_ylim(0, 1.05)
    axis.set_title("linear probe / kNN of the localization pattern, unseen antibodies")
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="outputs/learning_check", help="scratch folder (data and the run)")
    parser.add_argument("--max-steps", type=int, default=None, help="override the tiny preset's schedule length")
    parser.add_argument("--output", default=str(RESULTS), help="results folder")
    args = parser.parse_args()
    work, output = Path(args.work), Path(args.output)
    output.mkdir(parents=True, exist_ok=True)

    train, validation = prepare_synthetic_shards(work / "data", show_progress=False)
    run, seconds = pretrain(work, train, validation, args.max_steps)

    pretrained = AutoModel.from_pretrained(run / "encoder")
    torch.manual_seed(0)
    random_init = SubCellModel(pretrained.config)
    cells, labels, antibodies, _ = load_validation_cells(str(validation), pretrained.config.channel_names, 100_000)
    results = {
        "pretrained": score(pretrained, cells, labels, antibodies),
        "random_init": score(random_init, cells, labels, antibodies),
    }
    key = "probe_micro_average_precision"
    margin = results["pretrained"][key] - results["random_init"][key]
    steps = [json.loads(line) for line in (run / METRICS_FILENAME).read_text().splitlines()][-1]["step"]
    report = {
        "what": "linear probe (micro AP) of the synthetic localization pattern on unseen antibodies' cells",
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads",
        "preset": "tiny",
        "steps": steps,
        "pretraining_seconds": round(seconds, 1),
        "validation_cells": len(cells),
        "validation_antibodies": int(len(set(antibodies.tolist()))),
        "results": results,
        "micro_ap_margin": margin,
        "required_margin": REQUIRED_MARGIN,
        "passed": margin >= REQUIRED_MARGIN,
    }
    (output / "learning_check.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_losses(run, output / "loss_curves.png")
    plot_probe(results, output / "probe.png")
    for kind in ("reconstruction", "attention"):
        figures = sorted((run / "figures").glob(f"{kind}_step*.png"))
        if figures:
            shutil.copyfile(figures[-1], output / f"{kind}.png")
    rows = "\n".join(
        f"| {key} | {results['random_init'][key]:.3f} | {results['pretrained'][key]:.3f} |"
        for key in results["pretrained"]
    )
    (output / "learning_check.md").write_text(
        f"# Learning check (`benchmarks/learning_check.py`)\n\n"
        f"`recipes/pretrain.py --config tiny`: {steps} steps on synthetic shards in {seconds:.0f} s "
        f"({report['machine']}), then the same linear probe / kNN on the embeddings of {len(cells)} validation cells "
        f"({report['validation_antibodies']} antibodies; probe trained on one antibody per pattern, tested on the "
        f"other's cells).\n\n| metric | random init | pretrained |\n|---|---|---|\n{rows}\n\n"
        f"Micro-AP margin: **{margin:+.3f}** (required {REQUIRED_MARGIN:+.2f}): "
        f"{'passed' if report['passed'] else 'FAILED'}.\n\n"
        "![losses](loss_curves.png)\n\n![probe](probe.png)\n\n![reconstruction](reconstruction.png)\n\n"
        "![attention](attention.png)\n"
    )
    print(json.dumps(report, indent=2))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
