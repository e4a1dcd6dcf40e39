"""End-to-end embedding throughput: image files on disk -> embeddings + probabilities on disk, in cells/s.

Both paths read the same wrapper CSV (one crop per row, one 16-bit PNG or TIFF per channel, half of each) with the
same preloaded model and write embeddings and probabilities to disk:

- **wrapper-style loop**: the original wrapper's default run: one row at a time, read each channel file, stack,
  global min-max, one forward pass, `np.save` of `<prefix>_embedding.npy` and `<prefix>_probabilities.npy`;
- **subcell_hf**: `subcell_hf.inference.embed` (DataLoader workers decode while the model runs, batches, chunked
  writes, `embeddings.h5ad` + `summary.csv`).

CPU (always, fp32): two models measured in one run, reported as a speed-up ratio: the published architecture
(ViT-B/16 + pooler + 10 classifiers, random weights, 448-px crops), where the forward pass dominates, and the tiny
test architecture (64-px crops), where reading and writing dominate.

GPU (when CUDA is present): ViT-B/16 at 448 px, bf16 autocast, large batches, 8 workers, with and without
`torch.compile`: cells/s end to end and for the model alone, and the fraction of the GPU's peak dense bf16 FLOP/s
(FLOPs per cell counted with torch's FlopCounterMode, peak from `benchmarks/inference.py`).

    python benchmarks/embed.py [--output benchmarks/results/embed.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEAK_BF16_FLOPS, flops_per_image, machine_name, time_once, write_crop_csv  # noqa: E402
from _common import write_results  # noqa: E402

import subcell_hf  # noqa: E402
from subcell_hf import SubCellForProteinLocalization, SubCellImageProcessor, min_max_normalize  # noqa: E402
from subcell_hf.inference import EmbeddingModel, embed  # noqa: E402

TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
            pool_hidden_size=32, classifier_hidden_sizes=[32, 16], num_classifiers=3)


# ------------------------------------------------------------------------------------------------- inputs
def read_rows(csv: Path) -> list[tuple[list[Path], str]]:
    lines = csv.read_text().splitlines()[1:]
    return [([csv.parent / p for p in line.split(",")[:4]], line.split(",")[4]) for line in lines]


# ----------------------------------------------------------------------------------------------- the paths
def wrapper_style_loop(model: SubCellForProteinLocalization, csv: Path, output: Path, device: torch.device) -> None:
    """The original wrapper's default run: batch 1, no workers, per-cell `.npy` files."""
    import tifffile
    from PIL import Image

    output.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        for paths, prefix in read_rows(csv):
            planes = [tifffile.imread(p) if p.suffix == ".tif" else np.asarray(Image.open(p)) for p in paths]
            cell = torch.from_numpy(np.stack(planes).astype(np.float32))[None]
            result = model(min_max_normalize(cell).to(device))
            np.save(output / f"{prefix}_embedding.npy", result.embeddings[0].float().cpu().numpy())
            np.save(output / f"{prefix}_probabilities.npy", result.probabilities[0].float().cpu().numpy())


def subcell_hf_pipeline(loaded: EmbeddingModel, csv: Path, output: Path, **options) -> None:
    embed(loaded, csv, output, formats=("h5ad",), overwrite=True, progress=False, **options)


def max_difference(csv: Path, baseline: Path, ours: Path) -> float:
    import anndata

    adata = anndata.read_h5ad(ours / "embeddings.h5ad")
    return max(
        float(np.abs(np.load(baseline / f"{prefix}_embedding.npy") - adata[prefix].X[0]).max())
        for _, prefix in read_rows(csv)[:8]
    )


# -------------------------------------------------------------------------------------------------- CPU
def cpu_case(
    name: str, config_kwargs: dict, size: int, num_rows: int, batch: int, workers: int, work: Path, repeats: int = 2
) -> dict:
    """Best of `repeats` for each path, the two paths alternating (the machine is shared: best-of and alternation
    keep other processes' load out of the ratio)."""
    torch.manual_seed(0)
    config = subcell_hf.SubCellConfig(**config_kwargs)
    model = SubCellForProteinLocalization(config).eval()
    loaded = EmbeddingModel(model, SubCellImageProcessor.from_config(config), name=name)
    csv = write_crop_csv(work / f"{name}_{batch}", num_rows, size)
    device = torch.device("cpu")
    warm = csv.with_name("warmup.csv")  # first imports, file cache: out of the timings
    warm.write_text("\n".join(csv.read_text().splitlines()[:3]) + "\n")
    subcell_hf_pipeline(loaded, warm, work / f"{name}_warmup", batch_size=batch, num_workers=0)
    baseline, ours = float("inf"), float("inf")
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        baseline = min(baseline, time_once(lambda: wrapper_style_loop(model, csv, work / f"{name}_baseline", device)))
        ours = min(ours, time_once(
            lambda: subcell_hf_pipeline(loaded, csv, work / f"{name}_ours", batch_size=batch, num_workers=workers)
        ))
    return {
        "model": name,
        "crop_size": size,
        "cells": num_rows,
        "batch_size": batch,
        "num_workers": workers,
        "repeats": repeats,
        "wrapper_style_cells_per_s": num_rows / baseline,
        "subcell_hf_cells_per_s": num_rows / ours,
        "speedup": baseline / ours,
        "max_abs_embedding_difference": max_difference(csv, work / f"{name}_baseline", work / f"{name}_ours"),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after: other work
    }


# -------------------------------------------------------------------------------------------------- GPU
def gpu_benchmark(work: Path, size: int = 448, num_rows: int = 2048, batch: int = 256, workers: int = 8) -> dict:
    device = torch.device("cuda")
    device_name = torch.cuda.get_device_name(device)
    peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in device_name), None)
    torch.manual_seed(0)
    config = subcell_hf.SubCellConfig()
    model = SubCellForProteinLocalization(config).eval()
    flops = flops_per_image(model, size)
    loaded = EmbeddingModel(model, SubCellImageProcessor.from_config(config), name="vit-b16")
    csv = write_crop_csv(work / "gpu", num_rows, size, distinct=128)
    results = {"device": device_name, "crop_size": size, "cells": num_rows, "batch_size": batch, "num_workers": workers,
               "precision": "bf16 autocast", "gflops_per_cell": flops / 1e9, "peak_bf16_flops_assumed": peak}
    model.to(device)
    baseline_rows = 256  # the one-at-a-time loop is slow; time it on a slice
    baseline_csv = work / "gpu" / "baseline.csv"
    baseline_csv.write_text("\n".join(csv.read_text().splitlines()[: baseline_rows + 1]) + "\n")
    seconds = time_once(lambda: wrapper_style_loop(model, baseline_csv, work / "gpu_baseline", device))
    results["wrapper_style_fp32_cells_per_s"] = baseline_rows / seconds
    for label, compile_model in (("eager", False), ("compiled", True)):
        options = dict(batch_size=batch, num_workers=workers, precision="bf16", compile=compile_model, device="cuda")
        subcell_hf_pipeline(loaded, csv, work / f"gpu_warmup_{label}", **options)
        seconds = time_once(lambda: subcell_hf_pipeline(loaded, csv, work / f"gpu_{label}", **options))
        results[f"{label}_end_to_end_cells_per_s"] = num_rows / seconds
        module = torch.compile(model) if compile_model else model
        pixels = torch.rand(batch, config.num_channels, size, size, device=device)

        def forward():
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
                for _ in range(5):
                    module(pixels)

        forward()
        model_only = 5 * batch / time_once(forward)
        results[f"{label}_model_only_cells_per_s"] = model_only
        if peak:
            results[f"{label}_end_to_end_fraction_of_peak"] = num_rows / seconds * flops / peak
            results[f"{label}_model_only_fraction_of_peak"] = model_only * flops / peak
    return results


# ------------------------------------------------------------------------------------------------ report
def markdown(results: dict) -> str:
    lines = [
        "# Embedding throughput, files to files (`benchmarks/embed.py`)",
        "",
        f"Machine: {results['machine']}; torch {results['torch']}; measured {results['date']}. Both paths read the "
        "same wrapper CSV (16-bit PNG and TIFF crops, one file per channel) and write embeddings + probabilities "
        "to disk; the model is loaded once beforehand; best of the repeats, the two paths alternating.",
        "",
        "## CPU, fp32",
        "",
        "| model | crop | cells | wrapper-style loop (cells/s) | subcell_hf embed (cells/s) | speed-up | batch, workers"
        " |",
        "|---|---|---|---|---|---|---|",
    ]
    for case in results["cpu"]:
        lines.append(
            f"| {case['model']} | {case['crop_size']} px | {case['cells']} | {case['wrapper_style_cells_per_s']:.2f} | "
            f"{case['subcell_hf_cells_per_s']:.2f} | **{case['speedup']:.2f}x** | {case['batch_size']}, "
            f"{case['num_workers']} |"
        )
    lines += [
        "",
        "Both paths give the same numbers (largest embedding difference over 8 cells: "
        + ", ".join(f"{c['model']}/batch {c['batch_size']} {c['max_abs_embedding_difference']:.1e}"
                    for c in results["cpu"])
        + "). The machine is shared: load average (1 min, before/after each case, other processes included) "
        + ", ".join(f"{c['model']}/batch {c['batch_size']} {c['load_average_1min']}" for c in results["cpu"])
        + "; absolute cells/s move with it, the alternating best-of keeps the ratio meaningful.",
        "",
        "Reading: with ViT-B/16 on 2 CPU cores the forward pass (about 1 s per 448-px cell on an idle machine) is "
        "nearly all of the time in both paths, so what the pipeline saves there (decoding while the model runs, "
        "batched forward passes) is small against the noise of a shared machine: under contention its extra worker "
        "processes also get a larger share of the CPU. Read the ViT-B/16 CPU ratio as roughly 1, not as a gain. "
        "When reading and writing weigh (the tiny model here; GPUs, where the forward pass is fast), the workers, "
        "batching and chunked writes show.",
        "",
    ]
    gpu = results.get("gpu", {})
    if "device" in gpu:
        lines += [
            f"## GPU: {gpu['device']}, ViT-B/16, {gpu['crop_size']} px, bf16 autocast, batch {gpu['batch_size']}, "
            f"{gpu['num_workers']} workers",
            "",
            f"Wrapper-style loop (fp32, batch 1): {gpu['wrapper_style_fp32_cells_per_s']:.1f} cells/s. "
            f"{gpu['gflops_per_cell']:.1f} GFLOPs per cell.",
            "",
            "| path | end to end (cells/s) | fraction of peak | model only (cells/s) | fraction of peak |",
            "|---|---|---|---|---|",
        ]
        for label in ("eager", "compiled"):
            lines.append(
                f"| {label} | {gpu[f'{label}_end_to_end_cells_per_s']:.0f} | "
                f"{gpu.get(f'{label}_end_to_end_fraction_of_peak', float('nan')):.1%} | "
                f"{gpu[f'{label}_model_only_cells_per_s']:.0f} | "
                f"{gpu.get(f'{label}_model_only_fraction_of_peak', float('nan')):.1%} |"
            )
    else:
        lines += ["## GPU", "", f"Not measured: {gpu.get('skipped', 'no CUDA device')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "embed.json"))
    parser.add_argument("--vit-cells", type=int, default=16, help="cells for the ViT-B/16 CPU case")
    parser.add_argument("--tiny-cells", type=int, default=1024, help="cells for the tiny CPU case")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="subcell_embed_bench_"))
    try:
        results = {
            "machine": machine_name(),
            "torch": torch.__version__,
            "subcell_hf": subcell_hf.__version__,
            "date": time.strftime("%Y-%m-%d"),
            "cpu": [
                cpu_case("vit-b16", {}, 448, args.vit_cells, batch=1, workers=2, work=work, repeats=3),
                cpu_case("vit-b16", {}, 448, args.vit_cells, batch=8, workers=2, work=work, repeats=3),
                cpu_case("tiny", TINY, 64, args.tiny_cells, batch=64, workers=2, work=work, repeats=3),
            ],
        }
        if torch.cuda.is_available():
            results["gpu"] = gpu_benchmark(work)
        else:
            results["gpu"] = {"skipped": "no CUDA device in this run (the GPU path skips cleanly)"}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_results(results, args.output, markdown)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
