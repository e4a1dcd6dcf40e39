"""Pretraining throughput (cells/s) and peak memory per preset, run by hand.

One training step here is what `recipes/pretrain.py` does per micro-batch, minus data loading (measured by
`benchmarks/data.py`): both views built on the device by `TwoViewAugmentation`, `SubCellForPreTraining` forward
(all objectives of the preset), backward, gradient clipping, AdamW step, through `accelerator.prepare`.

- CPU (always): fp32, SDPA, one process; the tiny preset at its batch (4 records = 32 cells), the paper's
  ViT-B/16 presets at 448 px with one record (8 cells: the smallest batch SupCon can use).
- GPU (when CUDA is present, e.g. one H200): bf16, SDPA, DeepSpeed ZeRO-2 (recipes/accelerate/deepspeed_zero2.json)
  on one process, the paper's per-GPU batch (14 records = 112 cells); also the fraction of the GPU's dense bf16
  peak reached. Without CUDA the GPU rows are recorded as skipped.

FLOPs per cell are counted from the model with torch's `FlopCounterMode` over one full step (forward + backward
of encoder, decoder, projectors and losses; the augmentation is not counted), during the untimed warm-up step.
Each measurement runs in its own process, so that peak memory (max RSS on CPU, max allocated on GPU) is its own.

    python benchmarks/train.py [--presets tiny vit-prots-pool mae-cells-prots-pool] [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import PEAK_BF16_FLOPS, write_results  # noqa: E402

PRESETS = ("tiny", "vit-prots-pool", "mae-cells-prots-pool")
DEEPSPEED_CONFIG = ROOT / "recipes" / "accelerate" / "deepspeed_zero2.json"
RESULTS = ROOT / "benchmarks" / "results"


def _accelerator(device: str, deepspeed: bool, records: int, cells_per_record: int):
    from accelerate import Accelerator
    from accelerate.utils import DeepSpeedPlugin

    if not deepspeed:
        return Accelerator(cpu=device == "cpu", mixed_precision="bf16" if device == "cuda" else "no")
    for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "1"), ("MASTER_ADDR", "127.0.0.1"),
                        ("MASTER_PORT", "29511")):
        os.environ.setdefault(name, value)
    plugin = DeepSpeedPlugin(hf_ds_config=str(DEEPSPEED_CONFIG))
    micro = records * cells_per_record
    plugin.deepspeed_config.update(
        train_micro_batch_size_per_gpu=micro, train_batch_size=micro, gradient_accumulation_steps=1,
        gradient_clipping=1.0,
    )
    return Accelerator(deepspeed_plugin=plugin, mixed_precision="bf16" if device == "cuda" else "no")


def measure(preset: str, device: str, deepspeed: bool, records: int | None, steps: int) -> dict:
    """One preset in this process: cells/s over `steps` timed steps, FLOPs per cell, peak memory."""
    import subcell_hf  # noqa: F401
    from subcell_hf.data.augment import TwoViewAugmentation
    from subcell_hf.pretraining import SubCellForPreTraining
    from subcell_hf.pretraining.config import load_config
    from subcell_hf.pretraining.optim import build_optimizer

    config = load_config(ROOT / "recipes" / "configs" / f"{preset}.yaml")
    records = records or (config.data.records_per_batch if preset == "tiny" else 1)
    cells_per_record = config.data.cells_per_record
    accelerator = _accelerator(device, deepspeed, records, cells_per_record)
    torch.manual_seed(0)
    model_config = config.model.build_config()
    model = SubCellForPreTraining(model_config)
    optimizer = build_optimizer(model, 1e-4)
    model, optimizer = accelerator.prepare(model, optimizer)
    augmentation = TwoViewAugmentation.for_family(config.model.family).to(accelerator.device)

    cells = records * cells_per_record
    size = model_config.image_size
    raw = torch.randint(0, 65535, (cells, model_config.num_channels, size, size)).float().to(accelerator.device)
    masks = torch.zeros(cells, 1, size, size, device=accelerator.device)
    masks[..., size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    antibodies = torch.arange(cells, device=accelerator.device) // cells_per_record

    def step() -> None:
        views = augmentation(raw, masks, cells_per_record, torch.Generator().manual_seed(0))
        output = model(views["view1"], views["view2"], antibodies, views["mask1"], views["mask2"])
        accelerator.backward(output.loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def synchronize() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    with FlopCounterMode(display=False) as counter:  # the first warm-up step, counted
        step()
    step()  # allocator and kernel caches settle over the first steps
    synchronize()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    seconds = min(times)  # best of: the CPU is shared, the slower steps measure the neighbours
    flops_per_cell = counter.get_total_flops() / cells
    result = {
        "preset": preset,
        "device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or platform.machine(),
        "precision": "bf16" if device == "cuda" else "fp32",
        "attention": model_config._attn_implementation,
        "deepspeed": "ZeRO-2" if deepspeed else None,
        "image_size": size,
        "cells_per_step": cells,
        "objectives": list(model_config.objectives),
        "parameters": sum(p.numel() for p in accelerator.unwrap_model(model).parameters()),
        "seconds_per_step": seconds,
        "timed_steps": steps,
        "cells_per_second": cells / seconds,
        "flops_per_cell": flops_per_cell,
        "achieved_tflops": flops_per_cell * cells / seconds / 1e12,
    }
    if device == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        peak = next((v for k, v in PEAK_BF16_FLOPS.items() if k in result["device"]), None)
        result["fraction_of_peak_bf16"] = result["achieved_tflops"] * 1e12 / peak if peak else None
    else:
        result["peak_memory_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        result["threads"] = torch.get_num_threads()
    return result


def run_child(preset: str, device: str, deepspeed: bool, records: int | None, steps: int) -> dict:
    command = [sys.executable, __file__, "--child", preset, "--device", device]
    command += ["--steps", str(steps)] if steps else []
    command += ["--deepspeed"] if deepspeed else []
    command += ["--records", str(records)] if records else []
    completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if completed.returncode:
        return {"preset": preset, "device": device, "error": completed.stderr.strip().splitlines()[-1:]}
    return json.loads(completed.stdout.strip().splitlines()[-1])


def markdown(report: dict) -> str:
    lines = [
        "# Pretraining throughput (`benchmarks/train.py`)",
        "",
        "One step = two augmented views on the device + `SubCellForPreTraining` forward/backward + clip + AdamW "
        "(data loading excluded: see `data.md`). Best of the timed steps after two warm-up steps (the CPU is shared). "
        "FLOPs per cell counted with `FlopCounterMode` over a whole step.",
        "",
        "| preset | device | precision | DeepSpeed | px | cells/step | cells/s | GFLOP/cell | TFLOP/s | peak mem GiB "
        "| % of peak |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in report["cpu"] + report["gpu"]:
        if "error" in row:
            lines.append(f"| {row['preset']} | {row['device']} | failed: {row['error']} |")
            continue
        share = row.get("fraction_of_peak_bf16")
        lines.append(
            f"| {row['preset']} | {row['device']} | {row['precision']} | {row['deepspeed'] or '-'} | "
            f"{row['image_size']} | {row['cells_per_step']} | {row['cells_per_second']:.2f} | "
            f"{row['flops_per_cell'] / 1e9:.2f} | {row['achieved_tflops']:.3f} | {row['peak_memory_gib']:.2f} | "
            f"{'-' if share is None else f'{100 * share:.1f}'} |"
        )
    lines += ["", f"GPU: {report['gpu_note']}", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default: 20 tiny, 2 ViT-B on CPU)")
    parser.add_argument("--output", default=str(RESULTS / "train.json"))
    parser.add_argument("--child", choices=PRESETS, help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help=argparse.SUPPRESS)
    parser.add_argument("--deepspeed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--records", type=int, default=None, help="records per step (default: see above)")
    args = parser.parse_args()
    if args.child:
        steps = args.steps or (20 if args.child == "tiny" or args.device == "cuda" else 2)
        print(json.dumps(measure(args.child, args.device, args.deepspeed, args.records, steps)))
        return 0

    report = {"cpu": [], "gpu": []}
    for preset in args.presets:
        print(f"cpu: {preset} ...", flush=True)
        report["cpu"].append(run_child(preset, "cpu", False, args.records, args.steps))
    if torch.cuda.is_available():
        for preset in args.presets:
            records = args.records or (None if preset == "tiny" else 14)
            print(f"gpu: {preset} ...", flush=True)
            report["gpu"].append(run_child(preset, "cuda", True, records, args.steps))
        report["gpu_note"] = f"measured on {torch.cuda.get_device_name()} (bf16, SDPA, DeepSpeed ZeRO-2, 1 process)."
    else:
        report["gpu_note"] = (
            "skipped: no CUDA device in this session. On a GPU machine the same command measures bf16 + SDPA + "
            "ZeRO-2 at 14 records (112 cells) per GPU and the fraction of the dense bf16 peak."
        )
    print(write_results(report, args.output, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
