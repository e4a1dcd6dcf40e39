"""End-to-end evaluation with the paper's protocol on synthetic shards named with real antibody ids.

    python benchmarks/evaluation.py                       # results in benchmarks/results/evaluation/
    python benchmarks/evaluation.py --workdir /tmp/eval   # keep the intermediate files there

1. Synthetic HPA-like fields (`subcell_hf.data.synthetic`): 50 antibodies over 10 localization patterns, renamed to
   real ids of the published split (per pattern: 2 train, 1 valid, 2 test antibodies), written as shards.
2. A tiny randomly initialised encoder, and `recipes/train_classifiers.py --split published` (10 heads over the
   31 released classes, of which the data has 10): the heads train on the train antibodies and stop early on the
   valid ones.
3. `recipes/evaluate_model.py --split published` on the same shards: only the test antibodies are scored; localization
   per seed and for the ensemble, k-means and Leiden clustering, replicate (antibody) and MoA retrieval
   with copairs on per-field profiles normalised per plate (MoA analogue: the antibodies' localization, so positives
   are other antibodies of the same pattern); then again with `--grouping "Grouping 3"`.

The numbers show the protocol end to end, not a model's quality (the encoder is random). Everything the report
holds is written by the recipes; this script only copies their outputs and writes a summary.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results" / "evaluation"
NUM_ANTIBODIES, NUM_FIELDS, NUM_CLASSIFIERS = 50, 100, 10
REPORT_FILES = (
    "results.json",
    "model-index.yaml",
    "report.md",
    "per_class_average_precision.png",
    "replicate_retrieval.csv",
    "moa_retrieval.csv",
)


def published_names(num_antibodies: int, num_patterns: int) -> dict[str, str]:
    """Synthetic id -> real id: antibody k has pattern k % num_patterns; per pattern the first two antibodies
    take train ids, the third a valid id, the fourth and fifth test ids (two per pattern, for MoA retrieval)."""
    from subcell_hf.evaluation import published_split

    split = published_split()
    pools = {name: iter(sorted(split.antibodies[name])) for name in ("train", "valid", "test")}
    roles = ("train", "train", "valid", "test", "test")
    return {f"HPA{k:06d}": next(pools[roles[k // num_patterns % len(roles)]]) for k in range(num_antibodies)}


def make_shards(workdir: Path) -> tuple[Path, dict]:
    import pandas as pd

    from subcell_hf.data.crops import CropOptions
    from subcell_hf.data.shards import write_shards
    from subcell_hf.data.synthetic import PATTERNS, generate_dataset

    manifest = pd.read_csv(
        generate_dataset(workdir / "fields", num_fields=NUM_FIELDS, num_antibodies=NUM_ANTIBODIES, image_size=256,
                         cells_per_field=(8, 12), show_progress=False),
        dtype=str,
        keep_default_na=False,
    )
    names = published_names(NUM_ANTIBODIES, len(PATTERNS))
    manifest["antibody"] = manifest["antibody"].map(names)
    write_shards(
        manifest, workdir / "shards", crop=CropOptions(size=96, output_size=64, min_area=50), num_workers=0,
        overwrite=True,
        show_progress=False,
    )
    return workdir / "shards", {"antibodies": names, "fields": len(manifest)}


def make_encoder(workdir: Path) -> Path:
    import torch

    from subcell_hf import SubCellConfig, SubCellImageProcessor, SubCellModel

    torch.manual_seed(0)
    config = SubCellConfig(  # 2 layers, 64 wide, 64-px crops: the code paths of ViT-B/16 at a fraction of the cost
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
        pool_hidden_size=32, classifier_hidden_sizes=[32, 16],
    )
    encoder = SubCellModel(config)
    folder = workdir / "encoder"
    encoder.save_pretrained(folder)
    SubCellImageProcessor.from_config(config).save_pretrained(folder)
    return folder


def run(script: str, arguments: list[str], log: Path) -> None:
    command = [sys.executable, str(ROOT / "recipes" / script), *arguments]
    with log.open("w") as handle:
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    if completed.returncode != 0:
        raise SystemExit(f"{script} failed ({completed.returncode}); last lines of {log}:\n" + log.read_text()[-3000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, help="intermediate files (default: a temporary folder, removed)")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR, help="report folder (default: %(default)s)")
    args = parser.parse_args(argv)
    scratch = None if args.workdir else tempfile.TemporaryDirectory(prefix="subcell-evaluation-")
    workdir = args.workdir or Path(scratch.name)
    workdir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    started = time.perf_counter()
    shards, data = make_shards(workdir)
    encoder = make_encoder(workdir)
    seconds["data"] = round(time.perf_counter() - started, 1)
    embed = ["--embedding.num_workers", "0", "--embedding.precision", "fp32"]

    started = time.perf_counter()
    run(
        "train_classifiers.py",
        ["--encoder", str(encoder), "--shards", str(shards), "--output", str(workdir / "classifiers"),
         "--classes", "localization", "--num_classifiers", str(NUM_CLASSIFIERS), "--training.batch_size", "256",
         "--training.max_epochs", "40", "--overwrite", "true", *embed],
        workdir / "train_classifiers.log",
    )
    seconds["train_classifiers"] = round(time.perf_counter() - started, 1)
    common = [
        "--model", str(workdir / "classifiers" / "model"), "--shards", str(shards),
        "--embedding.cache", str(workdir / "eval-embeddings"), "--model_name", "synthetic/tiny-subcell",
        "--dataset.name", "Synthetic HPA-like cells named with published test antibodies",
        "--dataset.type", "subcell-hf-synthetic", "--protocol.replicate_column", "antibody",
        "--protocol.moa_column", "locations", "--protocol.profile_by", "[image_id]", "--protocol.null_size", "2000",
        "--overwrite", "true", *embed,
    ]
    for name, extra in (("classes", []), ("grouping_3", ["--protocol.grouping", "Grouping 3"])):
        started = time.perf_counter()
        output = workdir / f"eval_{name}"
        run("evaluate_model.py", [*common, "--output", str(output), *extra], workdir / f"evaluate_{name}.log")
        seconds[f"evaluate_{name}"] = round(time.perf_counter() - started, 1)
        target = args.output / name
        target.mkdir(parents=True, exist_ok=True)
        for file_name in REPORT_FILES:
            if (workdir / f"eval_{name}" / file_name).is_file():
                shutil.copyfile(workdir / f"eval_{name}" / file_name, target / file_name)

    training = json.loads((workdir / "classifiers" / "training.json").read_text())
    summary = {
        "what": "recipes/train_classifiers.py + recipes/evaluate_model.py with --split published on synthetic shards "
        "named with real antibody ids (random tiny encoder: the numbers show the protocol, not a model)",
        "antibodies": data["antibodies"],
        "fields": data["fields"],
        "training_split_report": training["split_report"],
        "heads": [
            {k: head[k] for k in ("seed", "best_epoch", "epochs_run", "validation_macro_average_precision")}
            for head in training["heads"]
        ],
        "seconds": seconds,
        "machine": "2 CPU cores shared with other jobs",
    }
    (args.output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# End-to-end evaluation on synthetic shards (`benchmarks/evaluation.py`)",
        "",
        summary["what"] + ".",
        "",
        f"- [`classes/report.md`](classes/report.md): the 31-class protocol (the 21 classes absent from the test cells "
        "dropped before every metric).",
        f"- [`grouping_3/report.md`](grouping_3/report.md): the same cells scored on `Grouping 3`.",
        "",
        "Training split (antibodies found in the shards / listed): "
        + ", ".join(
            f"{name} {entry['antibodies_found']}/{entry.get('listed_antibodies', '-')}"
            for name, entry in training["split_report"].items()
        )
        + ".",
        "",
        "Seconds per stage (" + summary["machine"] + "): " + ", ".join(f"{k} {v}" for k, v in seconds.items()) + ".",
        "",
    ]
    (args.output / "README.md").write_text("\n".join(lines))
    print(f"wrote {args.output}")
    if scratch is not None:
        scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
