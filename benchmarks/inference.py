"""Inference throughput of `SubCellModel` (ViT-B/16 + pooler, 4 channels, 448 px), run by hand.

CPU (always): images/s at batch 1 and 8 in fp32 with SDPA in every layer, against a naive baseline of the same
math the way the original wrapper runs it: one image at a time, with eager attention in the last layer whose
attention weights are computed and thrown away. Reported as a ratio, measured in one run.

GPU (when CUDA is present): bf16 autocast + SDPA at batch 64, with and without `torch.compile`; images/s and
the fraction of the GPU's peak dense bf16 FLOP/s, with FLOPs per image counted from the model.

    python benchmarks/inference.py [--output benchmarks/results/inference.json] [--repeats 3]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import flops_per_image, machine_name, peak_bf16_flops, timed, write_results  # noqa: E402

import subcell_hf  # noqa: E402
from subcell_hf import SubCellConfig, SubCellModel  # noqa: E402


def naive_wrapper_style(model: SubCellModel, images: torch.Tensor) -> None:
    """One image at a time, last layer with eager attention whose full weights are materialised then dropped."""
    last = model.layers[-1].attention
    shared = last.config
    last.config = copy.copy(shared)  # the last layer alone on eager attention
    last.config._attn_implementation = "eager"
    try:
        with torch.inference_mode():
            for image in images:
                model(image.unsqueeze(0))
    finally:
        last.config = shared


def cpu_benchmark(size: int, repeats: int) -> dict:
    torch.manual_seed(0)
    model = SubCellModel(SubCellConfig()).eval()
    images = torch.rand(8, 4, size, size)
    results = {"threads": torch.get_num_threads(), "dtype": "float32", "image_size": size}
    with torch.inference_mode():
        t1 = timed(lambda: model(images[:1]), repeats)
        t8 = timed(lambda: model(images), repeats)
    baseline = timed(lambda: naive_wrapper_style(model, images), max(1, repeats - 1))
    results.update(
        {
            "subcell_hf_batch1_images_per_s": 1 / t1,
            "subcell_hf_batch8_images_per_s": 8 / t8,
            "naive_wrapper_style_images_per_s": 8 / baseline,
            "speedup_batch8_vs_naive": (8 / t8) / (8 / baseline),
            "speedup_batch1_vs_naive": (1 / t1) / (8 / baseline),
            "gflops_per_image": flops_per_image(model, size) / 1e9,
        }
    )
    return results


def gpu_benchmark(size: int, repeats: int, batch: int = 64) -> dict:
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    peak = peak_bf16_flops(name)
    torch.manual_seed(0)
    model = SubCellModel(SubCellConfig()).eval().to(device)
    flops = flops_per_image(model, size)
    images = torch.rand(batch, 4, size, size, device=device)
    results = {"device": name, "batch": batch, "dtype": "bfloat16 autocast", "gflops_per_image": flops / 1e9}

    def run(m):
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16):
            m(images)

    for label, candidate in (("eager_sdpa", model), ("compiled_sdpa", torch.compile(model))):
        seconds = timed(lambda: run(candidate), repeats, warmup=3)
        throughput = batch / seconds
        results[f"{label}_images_per_s"] = throughput
        if peak:
            results[f"{label}_fraction_of_peak_bf16"] = throughput * flops / peak
    results["peak_bf16_flops_assumed"] = peak
    return results


def markdown(results: dict) -> str:
    cpu = results["cpu"]
    lines = [
        "# Inference throughput (`benchmarks/inference.py`)",
        "",
        f"Machine: {results['machine']}; torch {results['torch']}; measured {results['date']}.",
        "",
        f"## CPU, fp32, ViT-B/16 + pooler, 4 channels, {cpu['image_size']} px ({cpu['threads']} threads)",
        "",
        "| path | images/s |",
        "|---|---|",
        f"| naive wrapper style (1 image at a time, eager last layer) | {cpu['naive_wrapper_style_images_per_s']:.3f} |",
        f"| subcell_hf, batch 1 (SDPA everywhere) | {cpu['subcell_hf_batch1_images_per_s']:.3f} |",
        f"| subcell_hf, batch 8 (SDPA everywhere) | {cpu['subcell_hf_batch8_images_per_s']:.3f} |",
        "",
        f"Speed-up at batch 8 over the naive loop: **{cpu['speedup_batch8_vs_naive']:.2f}x** "
        f"(batch 1: {cpu['speedup_batch1_vs_naive']:.2f}x). {cpu['gflops_per_image']:.1f} GFLOPs per image.",
        "",
    ]
    gpu = results.get("gpu")
    if gpu and "device" in gpu:
        lines += [
            f"## GPU: {gpu['device']}, bf16 autocast, batch {gpu['batch']}",
            "",
            "| path | images/s | fraction of peak bf16 |",
            "|---|---|---|",
        ]
        for label in ("eager_sdpa", "compiled_sdpa"):
            fraction = gpu.get(f"{label}_fraction_of_peak_bf16")
            lines.append(
                f"| {label} | {gpu[f'{label}_images_per_s']:.1f} | {fraction:.1%} |"
                if fraction
                else f"| {label} | {gpu[f'{label}_images_per_s']:.1f} | n/a |"
            )
    else:
        lines += ["## GPU", "", f"Not measured: {results.get('gpu', {}).get('skipped', 'no CUDA device')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "inference.json"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=448)
    args = parser.parse_args()

    results = {
        "machine": machine_name(),
        "torch": torch.__version__,
        "subcell_hf": subcell_hf.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "cpu": cpu_benchmark(args.size, args.repeats),
    }
    if torch.cuda.is_available():
        results["gpu"] = gpu_benchmark(args.size, args.repeats)
    else:
        results["gpu"] = {"skipped": "no CUDA device in this run"}
    write_results(results, args.output, markdown)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
