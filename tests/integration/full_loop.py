"""The full loop on synthetic data: a model pretrained with this toolkit ends up like the published ones.

An integration check run by hand, not part of the pytest run (it launches the recipes as a user does: minutes):

    python -m tests.integration.full_loop --output outputs/full_loop   # ~4 min on 2 CPU cores

1. data: two synthetic HPA-like datasets (`subcell_hf.data.synthetic`, 20 antibodies over 10 patterns, 2 per pattern),
   one for training and one of held-out fields for testing, cropped to 64-px cells in WebDataset shards;
2. pretraining: `recipes/pretrain.py --config_path tiny` (MAE-CellS-ProtS-Pool objectives, 2-layer 64-wide ViT);
3. ensemble: `recipes/train_classifiers.py` (10 heads, seeds 0-9) on the pretrained encoder, launched on 2
   processes with `accelerate launch`; the same on a randomly initialised encoder as the baseline;
4. evaluation: `recipes/evaluate_model.py` on the test shards (localization, clustering, antibody retrieval);
5. card: README.md with the measured `model-index`;
6. cache: the folder downloaded into a local Hugging Face cache by `snapshot_download` (from the tests' loopback Hub
   stand-in) as `synthetic-loop/all_channels-mae-cells-prots-pool`;
7. load: `AutoModelForImageClassification.from_pretrained(repo_id)` offline, its probabilities and metrics checked
   against the evaluated folder.

Writes `<output>/...` and the summary `tests/integration/results/full_loop.json` (+ `.md`). Exit code 1 when a
check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
NAMESPACE = "synthetic-loop"
#: The tiny preset trains the MAE-CellS-ProtS-Pool objectives on all four channels: named like that release.
RELEASE_NAME = "all_channels-mae-cells-prots-pool"
NUM_CLASSIFIERS = 10


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/full_loop"), help="work folder (default: %(default)s)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS / "full_loop.json",
        help="summary JSON; a Markdown table is written next to it (default: %(default)s)",
    )
    parser.add_argument(
        "--pretrain-steps", type=int, default=100, help="optimizer steps of pretraining (default: %(default)s)"
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="processes for the ensemble training launch (default: %(default)s)"
    )
    return parser


def run(command: list[str], log: Path, env: dict[str, str] | None = None) -> None:
    """Run a recipe as its user would, its output kept in `log`; a failure shows the log's tail."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as stream:
        completed = subprocess.run(
            command, cwd=ROOT, stdout=stream, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
    if completed.returncode:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"{' '.join(command)} exited with {completed.returncode}; last lines of {log}:\n{tail}")


def launch(script: str, arguments: list[str], log: Path, processes: int = 1) -> None:
    """`accelerate launch` on CPU processes (ACCELERATE_USE_CPU=1 with --multi_gpu starts real processes; `--cpu` with
    several processes starts only one)."""
    accelerate = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
    ]
    if processes > 1:
        accelerate += ["--multi_gpu", "--num_processes", str(processes)]
    else:
        accelerate += ["--cpu", "--num_processes", "1"]
    run(accelerate + [script, *arguments], log, env={"ACCELERATE_USE_CPU": "1"})


def make_data(output: Path) -> dict:
    from subcell_hf.data.crops import CropOptions
    from subcell_hf.data.shards import write_shards
    from subcell_hf.data.synthetic import generate_dataset

    summary = {}
    for split, seed, fields in (("train", 0, 80), ("test", 1, 40)):
        manifest = generate_dataset(
            output / split / "fields",
            num_fields=fields,
            num_antibodies=20,
            image_size=320,
            seed=seed,
            cells_per_field=(10, 16),
            show_progress=False,
        )
        shards = write_shards(
            manifest,
            output / split / "shards",
            crop=CropOptions(size=96, output_size=64, min_area=50),
            records_per_shard=8,
            num_workers=0,
            show_progress=False,
        )
        summary[split] = {
            "fields": fields,
            "antibodies": shards.num_antibodies,
            "records": shards.num_records,
            "cells": shards.num_cells,
            "shards": len(shards.shards),
        }
    return summary


def random_encoder(like: Path, destination: Path) -> Path:
    """The pretrained encoder's architecture with fresh weights (seed 0): the baseline."""
    import torch

    from subcell_hf import SubCellImageProcessor, SubCellModel

    config = SubCellModel.from_pretrained(like).config
    torch.manual_seed(0)
    encoder = SubCellModel(config)
    encoder.save_pretrained(destination)
    SubCellImageProcessor.from_config(config).save_pretrained(destination)
    return destination


def write_card(model_dir: Path, repo_id: str, results: dict) -> Path:
    """A card for this custom-trained model: what it is, how it was made, and its measured `model-index`."""
    from huggingface_hub import ModelCard, ModelCardData

    from subcell_hf.evaluation import model_index_from_results
    from subcell_hf.models import SubCellConfig

    config = SubCellConfig.from_pretrained(model_dir)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="image-classification",
        license="mit",
        tags=["subcell", "microscopy", "synthetic"],
        **{"model-index": model_index_from_results(results)},
    )
    rows = "\n".join(f"| {m['name']} | {m['value']:.4f} |" for m in results["metrics"])
    text = (
        f"---\n{data.to_yaml()}\n---\n\n# {repo_id}\n\n"
        f"A SubCell model made end to end with `subcell_hf` on synthetic images by `tests/integration/full_loop.py`: a "
        f"{config.num_hidden_layers}-layer, {config.hidden_size}-wide ViT encoder pretrained with the "
        f"MAE-CellS-ProtS-Pool objectives, and an ensemble of {config.num_classifiers} MLP classifiers over "
        f"{config.num_labels} classes ({', '.join(config.id2label.values())}). A test model, not for biology.\n\n"
        f"## Evaluation\n\n{results['dataset']['name']} ({results['dataset']['split']}):\n\n"
        f"| Metric | Value |\n|---|---|\n{rows}\n\nMeasured with {results['source']}\n"
    )
    card = ModelCard(text)
    card.save(model_dir / "README.md")
    return model_dir / "README.md"


def fill_local_cache(model_dir: Path, cache_dir: Path) -> Path:
    """The model folder in a Hugging Face cache made by the real client: `snapshot_download` from the tests' loopback
    Hub stand-in (docs/hub.md, offline use); returns the snapshot folder."""
    sys.path.insert(0, str(ROOT))
    from tests.hub.hub_stand_in import download_into_cache

    repo_id = f"{NAMESPACE}/{RELEASE_NAME}"
    return download_into_cache({repo_id: model_dir}, cache_dir)[repo_id]


def check_loaded_by_repo_id(
    repo_id: str, cache_dir: Path, model_dir: Path, evaluation_dir: Path, results: dict
) -> dict:
    """Load the model by repo id offline; its weights, probabilities and metrics must equal the evaluated folder's."""
    import numpy as np
    import torch
    from huggingface_hub import ModelCard, snapshot_download
    from transformers import AutoModelForImageClassification

    from subcell_hf.evaluation import localization_metrics, read_labelled_embeddings

    model = AutoModelForImageClassification.from_pretrained(repo_id, cache_dir=cache_dir, local_files_only=True).eval()
    folder = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    weights_equal = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), folder.state_dict().values()))
    labelled = read_labelled_embeddings(evaluation_dir / "embeddings" / "embeddings.h5ad")
    with torch.no_grad():
        _, probabilities, _ = model.classify(torch.from_numpy(labelled.embeddings))
    difference = float(np.abs(probabilities.numpy() - labelled.probabilities).max())
    labels = labelled.labels(labelled.probability_classes)
    rows = labels.any(axis=1)
    metrics = localization_metrics(labels[rows], probabilities.numpy()[rows])
    measured = {m["type"]: m["value"] for m in results["metrics"] if m.get("config") == "ensemble"}
    card = ModelCard.load(Path(snapshot_download(repo_id, cache_dir=cache_dir, local_files_only=True)) / "README.md")
    card_values = [(r.metric_type, r.metric_config, r.metric_value) for r in card.data.eval_results]
    return {
        "repo_id": repo_id,
        "weights_equal_trained_folder": weights_equal and model.state_dict().keys() == folder.state_dict().keys(),
        "max_abs_probability_difference": difference,
        "metrics_equal": all(abs(metrics[k] - measured[k]) < 1e-6 for k in metrics),
        "card_model_index_equals_results": card_values
        == [(m["type"], m.get("config"), m["value"]) for m in results["metrics"]],
        "num_classifiers": len(model.classifiers),
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    output = args.output.resolve()
    cache_dir = output / "hf-cache"
    timings, summary = {}, {"namespace": NAMESPACE}

    def stage(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 1)
        print(f"[{name}] {timings[name]} s", flush=True)

    started = time.perf_counter()
    summary["data"] = make_data(output / "data")
    stage("data", started)

    started = time.perf_counter()
    pretrain_dir = output / "pretrain"
    launch(
        "recipes/pretrain.py",
        [
            "--config_path",
            "tiny",
            "--data.shards",
            str(output / "data/train/shards"),
            "--data.validation_shards",
            str(output / "data/test/shards"),
            "--train.output_dir",
            str(pretrain_dir),
            "--optim.max_steps",
            str(args.pretrain_steps),
            "--train.report_to",
            "none",
        ],
        output / "logs" / "pretrain.log",
    )
    encoders = {
        "pretrained": pretrain_dir / "encoder",
        "random_init": random_encoder(pretrain_dir / "encoder", output / "random_encoder"),
    }
    summary["pretraining"] = {"steps": args.pretrain_steps, "preset": "recipes/configs/tiny.yaml"}
    stage("pretraining", started)

    evaluations = {}
    for name, encoder in encoders.items():
        started = time.perf_counter()
        classifiers_dir = output / f"classifiers_{name}"
        launch(
            "recipes/train_classifiers.py",
            [
                "--encoder",
                str(encoder),
                "--shards",
                str(output / "data/train/shards"),
                "--output",
                str(classifiers_dir),
                "--classes",
                "present",
                "--num_classifiers",
                str(NUM_CLASSIFIERS),
                "--training.batch_size",
                "64",
                "--split",
                "random",
                "--training.validation_fraction",
                "0.2",
                "--embedding.num_workers",
                "0",
                "--embedding.precision",
                "fp32",
                "--overwrite",
                "true",
            ],
            output / "logs" / f"train_classifiers_{name}.log",
            processes=args.processes if name == "pretrained" else 1,
        )
        stage(f"ensemble_{name}", started)
        training = json.loads((classifiers_dir / "training.json").read_text())
        started = time.perf_counter()
        evaluation_dir = output / f"evaluation_{name}"
        launch(
            "recipes/evaluate_model.py",
            [
                "--model",
                str(classifiers_dir / "model"),
                "--shards",
                str(output / "data/test/shards"),
                "--output",
                str(evaluation_dir),
                "--model_name",
                f"{NAMESPACE}/{RELEASE_NAME}",
                "--dataset.name",
                "Synthetic HPA-like cells (held-out fields)",
                "--dataset.type",
                "subcell-hf-synthetic",
                "--protocol.split",
                "random",
                "--dataset.split",
                "test",
                "--protocol.replicate_column",
                "antibody",
                "--protocol.profile_by",
                "[image_id]",
                "--embedding.num_workers",
                "0",
                "--embedding.precision",
                "fp32",
                "--overwrite",
                "true",
            ],
            output / "logs" / f"evaluate_{name}.log",
        )
        stage(f"evaluation_{name}", started)
        results = json.loads((evaluation_dir / "results.json").read_text())
        evaluations[name] = {"classifiers_dir": classifiers_dir, "evaluation_dir": evaluation_dir, "results": results}
        summary[name] = {
            "ensemble": {
                "classes": training["classes"],
                "train_cells": training["num_cells"],
                "heads": [
                    {k: h[k] for k in ("seed", "best_epoch", "epochs_run", "validation_macro_average_precision")}
                    for h in training["heads"]
                ],
            },
            "test_metrics": {f"{m['type']}/{m.get('config')}": round(m["value"], 4) for m in results["metrics"]},
        }

    started = time.perf_counter()
    chosen = evaluations["pretrained"]
    model_dir = chosen["classifiers_dir"] / "model"
    repo_id = f"{NAMESPACE}/{RELEASE_NAME}"
    write_card(model_dir, repo_id, chosen["results"])
    snapshot = fill_local_cache(model_dir, cache_dir)
    summary["cache"] = {"repo_id": repo_id, "files": sorted(p.name for p in snapshot.iterdir())}
    summary["loaded_by_repo_id"] = check_loaded_by_repo_id(
        repo_id, cache_dir, model_dir, chosen["evaluation_dir"], chosen["results"]
    )
    summary["results_json"] = chosen["results"]
    stage("card_cache_load", started)

    summary["seconds"] = timings
    loaded = summary["loaded_by_repo_id"]
    checks = {
        "loaded model has the trained weights": loaded["weights_equal_trained_folder"],
        "loaded model reproduces the evaluated probabilities": loaded["max_abs_probability_difference"] < 1e-6,
        "loaded model reproduces the measured metrics": loaded["metrics_equal"],
        "card model-index equals the results": loaded["card_model_index_equals_results"],
        "ensemble has 10 heads": loaded["num_classifiers"] == NUM_CLASSIFIERS,
    }
    summary["checks"] = checks
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(summary, indent=2) + "\n")
    args.results.with_suffix(".md").write_text(markdown(summary))
    print(f"wrote {args.results} and {args.results.with_suffix('.md')}")
    failed = [name for name, ok in checks.items() if not ok]
    for name in failed:
        print(f"check failed: {name}", file=sys.stderr)
    return 1 if failed else 0


def markdown(summary: dict) -> str:
    pretrained, baseline = summary["pretrained"]["test_metrics"], summary["random_init"]["test_metrics"]
    names = {f"{m['type']}/{m.get('config')}": m["name"] for m in summary["results_json"]["metrics"]}
    lines = [
        "# Full loop on synthetic data (`python -m tests.integration.full_loop`)",
        "",
        f"Data: {summary['data']['train']['cells']} training cells, {summary['data']['test']['cells']} test cells "
        f"(held-out fields), 20 antibodies over 10 patterns. Pretraining: {summary['pretraining']['steps']} steps of "
        f"the tiny preset. Ensemble: {NUM_CLASSIFIERS} heads.",
        "",
        "| Test metric | pretrained encoder | random-init encoder |",
        "|---|---|---|",
        *[f"| {names[key]} | {pretrained[key]:.4f} | {baseline[key]:.4f} |" for key in pretrained],
        "",
        f"Cached as `{summary['cache']['repo_id']}` and loaded by repo id offline: "
        + ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in summary["checks"].items())
        + ".",
        "",
        "Seconds per stage (2 CPU cores): " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()) + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
