"""Data throughput: crops written per core, and cells delivered by the pretraining loader, next to what one
H200 consumes in pretraining.

1. **Writing** (`write_shards`, one process = one core): synthetic 2048 x 2048 16-bit fields of view (PNG, 4
   channels) -> 896 px crops downsampled to 448 -> shards. Crops/s = cells written / wall time, end to end
   (PNG decoding, cropping, downsampling, tar writing), and the time spent per stage.
2. **Loading** (`build_pretraining_loader`, 448 px, 4 channels, 8 cells per record, batches of 4 records): cells/s
   with N DataLoader workers, raw (augmentation left to the accelerator, the intended set-up) and with
   `TwoViewAugmentation` run in the CPU workers (all augmentations, both views).
3. **Need**: cells/s one H200 trains on. Forward FLOPs of the ViT-B/16 + pooler at 448 px (785 tokens) are
   counted analytically (and cross-checked with torch's FlopCounterMode); training = 3 x forward; a pretraining
   step encodes two views per cell; the projector heads add < 1 %. Cells/s = MFU x peak / FLOPs per cell, for
   bf16 (989 TFLOP/s dense) and TF32 (494 TFLOP/s dense, the paper's precision), at an assumed 40 % MFU (typical
   for ViT-B training at these batch sizes; no GPU was available to measure it).

    python benchmarks/data.py [--fields 4] [--output benchmarks/results/data.json]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PEAK_BF16_FLOPS, machine_name, write_results  # noqa: E402

from subcell_hf.data.augment import TwoViewAugmentation  # noqa: E402
from subcell_hf.data.crops import CropOptions, crop_cell, find_cells, read_field  # noqa: E402
from subcell_hf.data.loader import build_pretraining_loader  # noqa: E402
from subcell_hf.data.manifest import read_manifest  # noqa: E402
from subcell_hf.data.shards import write_shards  # noqa: E402
from subcell_hf.data.synthetic import generate_dataset  # noqa: E402
from subcell_hf.models import HPA_CHANNELS, SubCellConfig, SubCellModel  # noqa: E402

H200_PEAK_TF32_FLOPS = 494e12  # dense; NVIDIA H200 SXM datasheet (bf16 dense: PEAK_BF16_FLOPS["H200"])
ASSUMED_MFU = 0.40
VIEWS_PER_CELL = 2


def measure_writing(folder: Path, num_fields: int, image_size: int) -> dict:
    manifest = generate_dataset(folder / "fields", num_fields=num_fields, num_antibodies=2, image_size=image_size)
    start = time.perf_counter()
    summary = write_shards(manifest, folder / "shards", num_workers=0)
    seconds = time.perf_counter() - start
    # the same work again, stage by stage, for the breakdown
    stages = {"read_png": 0.0, "find_cells": 0.0, "crop_and_downsample": 0.0}
    for _, row in read_manifest(manifest).iterrows():
        t0 = time.perf_counter()
        channels, mask = read_field(row, HPA_CHANNELS)
        t1 = time.perf_counter()
        selection = find_cells(mask)
        t2 = time.perf_counter()
        for cell in selection.cells:
            crop_cell(channels, mask, cell, CropOptions(size=896, output_size=448))
        t3 = time.perf_counter()
        stages["read_png"] += t1 - t0
        stages["find_cells"] += t2 - t1
        stages["crop_and_downsample"] += t3 - t2
    return {
        "fields": num_fields,
        "field_size": image_size,
        "cells_written": summary.num_cells,
        "records": summary.num_records,
        "seconds": round(seconds, 2),
        "crops_per_s_per_core": round(summary.num_cells / seconds, 2),
        "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
        "shard_bytes_per_cell": round(
            sum(p.stat().st_size for p in (folder / "shards").glob("*.tar")) / summary.num_cells
        ),
    }


def measure_loading(shards: Path, workers: list[int], batches: int) -> list[dict]:
    results = []
    augmentation = TwoViewAugmentation()
    for num_workers in workers:
        for label, augment in (("raw", None), ("augmented_on_cpu", augmentation)):
            count = batches if augment is None else max(2, batches // 4)
            loader = build_pretraining_loader(
                shards, batch_records=4, num_workers=num_workers, augmentation=augment,
                num_batches=count + 2, seed=0,
            )
            iterator = iter(loader)
            for _ in range(2):  # warm-up: worker start, first shards
                next(iterator)
            start = time.perf_counter()
            cells = sum(len(next(iterator)["cells"]) for _ in range(count))
            seconds = time.perf_counter() - start
            results.append(
                {"workers": num_workers, "mode": label, "cells": cells, "cells_per_s": round(cells / seconds, 2)}
            )
            print(results[-1], flush=True)
    return results


def vit_forward_flops(tokens: int = 785, hidden: int = 768, layers: int = 12, mlp: int = 3072, channels: int = 4,
                      patch: int = 16, pool_hidden: int = 512, pool_heads: int = 2) -> dict[str, float]:
    """Forward FLOPs (2 per multiply-add) of the SubCell encoder + pooler on one image, by term."""
    linear = layers * 2 * tokens * hidden * (3 * hidden + hidden + 2 * mlp)  # qkv, output, MLP in + out
    attention = layers * 2 * 2 * tokens * tokens * hidden  # scores and weighted sum
    patch_embedding = 2 * (tokens - 1) * channels * patch * patch * hidden
    pooler = 2 * tokens * hidden * pool_hidden * 2  # the two gate branches
    pooler += 2 * tokens * pool_hidden * pool_heads + 2 * pool_heads * tokens * hidden  # scores, weighted sum
    return {"linear": linear, "attention": attention, "patch_embedding": patch_embedding, "pooler": pooler}


def training_need() -> dict:
    """Cells/s one H200 trains on. Training FLOPs = 3 x forward (backward = 2 x forward), 2 views per cell."""
    from torch.utils.flop_counter import FlopCounterMode

    terms = vit_forward_flops()
    forward = sum(terms.values())
    # cross-check the analytic count against torch's counter (which does not count CPU SDPA attention)
    torch.manual_seed(0)
    model = SubCellModel(SubCellConfig()).eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 4, 448, 448))
    per_cell = VIEWS_PER_CELL * 3 * forward
    need = {
        "tokens": 785,
        "forward_gflops_per_view": round(forward / 1e9, 1),
        "forward_gflops_by_term": {k: round(v / 1e9, 1) for k, v in terms.items()},
        "flop_counter_forward_gflops_without_attention": round(counter.get_total_flops() / 1e9, 1),
        "train_gflops_per_cell": round(per_cell / 1e9, 1),
        "assumed_mfu": ASSUMED_MFU,
        "h200_cells_per_s_bf16": round(ASSUMED_MFU * PEAK_BF16_FLOPS["H200"] / per_cell),
        "h200_cells_per_s_tf32": round(ASSUMED_MFU * H200_PEAK_TF32_FLOPS / per_cell),
    }
    need["h200_step_seconds_bf16_896_cells"] = round(896 / need["h200_cells_per_s_bf16"], 2)
    return need


def markdown(results: dict) -> str:
    writing, need = results["writing"], results["need"]
    lines = [
        "# Data throughput (`benchmarks/data.py`)",
        "",
        f"Machine: {results['machine']}. Synthetic 16-bit fields, 896 px crops -> 448, 4 channels.",
        "",
        "## Writing shards",
        "",
        f"{writing['cells_written']} cells from {writing['fields']} fields of {writing['field_size']} px: "
        f"**{writing['crops_per_s_per_core']} crops/s per core** end to end "
        f"({writing['shard_bytes_per_cell'] / 1e6:.2f} MB per cell in the shards). "
        f"Time per stage (s): {writing['stage_seconds']}.",
        "",
        "## Loading (cells/s delivered)",
        "",
        "| workers | raw (augment on the accelerator) | all augmentations in CPU workers |",
        "|---|---|---|",
    ]
    by_workers: dict[int, dict] = {}
    for row in results["loading"]:
        by_workers.setdefault(row["workers"], {})[row["mode"]] = row["cells_per_s"]
    for workers, modes in sorted(by_workers.items()):
        lines.append(f"| {workers} | {modes.get('raw')} | {modes.get('augmented_on_cpu')} |")
    lines += [
        "",
        "## What one H200 needs (estimate, no GPU measured)",
        "",
        f"ViT-B/16 + pooler at 448 px ({need['tokens']} tokens): {need['forward_gflops_per_view']} GFLOP per "
        f"forward pass (analytic: {need['forward_gflops_by_term']}; torch's FlopCounterMode, which skips CPU "
        f"attention, gives {need['flop_counter_forward_gflops_without_attention']}). Training = 3 x forward, "
        f"x{VIEWS_PER_CELL} views = {need['train_gflops_per_cell']} GFLOP per cell (projector heads < 1 %, MAE "
        "variant about the same: 25 % fewer encoder tokens, plus an 8-layer 512-wide decoder). "
        f"At {int(need['assumed_mfu'] * 100)} % MFU an H200 trains on **{need['h200_cells_per_s_bf16']} "
        f"cells/s in bf16** ({need['h200_step_seconds_bf16_896_cells']} s per 896-cell step) or "
        f"**{need['h200_cells_per_s_tf32']} cells/s in TF32**.",
        "",
        f"Cores to keep one H200 fed: {results['cores_needed_raw']} loader workers with augmentation on the GPU "
        f"(bf16 rate); {results['cores_needed_cpu_augment']} if the augmentations ran on the CPU, which is why "
        "`TwoViewAugmentation` runs batched on the accelerator in the training loop. Shard reads at that rate: "
        f"{results['read_gb_per_s']} GB/s.",
        "",
        "Notes: measured on a shared 2-core CPU machine while other jobs ran (see the load average), so the figures",
        "are lower bounds. With 1-2 workers here, worker processes compete with the main process for the same two",
        "cores and batches cross process boundaries (float32, 3.2 MB per cell), so they deliver less than the",
        "in-process loop; on a many-core host each worker adds roughly the in-process rate. Writing is a one-off:",
        f"at {writing['crops_per_s_per_core']} crops/s per core, a million cells take "
        f"{1e6 / writing['crops_per_s_per_core'] / 3600 / 32:.1f} h on 32 cores.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=4, help="synthetic 2048 px fields to shard")
    parser.add_argument("--image-size", type=int, default=2048)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--batches", type=int, default=12, help="measured batches per loader setting (raw)")
    parser.add_argument("--output", default="benchmarks/results/data.json")
    args = parser.parse_args(argv)

    results = {"machine": f"{machine_name()}, torch {torch.__version__}, load average at start {os.getloadavg()[0]:.1f}"}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        results["writing"] = measure_writing(scratch, args.fields, args.image_size)
        print(results["writing"], flush=True)
        results["loading"] = measure_loading(scratch / "shards", args.workers, args.batches)
    results["need"] = training_need()
    need = results["need"]["h200_cells_per_s_bf16"]
    best_raw = max(r["cells_per_s"] / max(r["workers"], 1) for r in results["loading"] if r["mode"] == "raw")
    best_cpu = max(
        r["cells_per_s"] / max(r["workers"], 1) for r in results["loading"] if r["mode"] == "augmented_on_cpu"
    )
    results["cores_needed_raw"] = max(1, round(need / best_raw + 0.5))
    results["cores_needed_cpu_augment"] = max(1, round(need / best_cpu + 0.5))
    results["read_gb_per_s"] = round(need * results["writing"]["shard_bytes_per_cell"] / 1e9, 2)
    print(write_results(results, args.output, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
