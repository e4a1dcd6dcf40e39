"""Every GPU path of subcell_hf proven and measured in one short run (about 6 minutes on one H200).

Steps, most important first; the results are written after each step (`suite.json`, `suite.md`), so a run cut
short keeps what it measured:

1. **correctness**: the converter's own synthetic checkpoint in the original format (published ViT-B/16 sizes,
   10 classifiers) converted, then on the device: fp32 with TF32 off against CPU fp32 (embeddings, probabilities,
   pooler and CLS attention maps within 1e-4), bf16 autocast (cosine of embeddings >= 0.999, probability max abs
   difference reported), SDPA against eager attention, and the embed loader's raw 8/16-bit transfer scaled on the
   device against the image processor on the CPU (equal).
2. **inference_throughput**: `SubCellModel` ViT-B/16, 448 px, 4 channels, batch 64/128/256, fp32 / TF32 / bf16,
   SDPA / eager, with and without `torch.compile`: cells/s, peak memory, fraction of the device's dense bf16 peak
   (FLOPs per cell counted from the model); the best configuration against `subcell-hf embed`'s defaults.
3. **input_pipeline**: `embed()` end to end on 8-bit PNG crops (wrapper CSV) and on 2048 px fields of view with
   masks (manifest), 16 workers: cells/s, the share of the time in the model's forward, the loader alone, and the
   CPU workers a GPU needs at the model's rate.
4. **pretraining**: both paper presets on one GPU, bf16, at their per-GPU micro-batch (read from the preset):
   steps/s, cells/s, MFU, peak memory (`benchmarks/train.py`'s measurement, one process each); the two-view GPU
   augmentation's cells/s; one DeepSpeed ZeRO-2 process, start to step; the streaming loader's cells/s with the
   preset's workers.

Without CUDA every step records "skipped: no CUDA". `--quick` runs the same code on the CPU with tiny sizes
(tiny architecture, small batches, `torch.compile` with the eager backend, the tiny pretraining preset, no
DeepSpeed) in well under a minute: CI runs it so the suite never rots.

    python benchmarks/gpu_suite.py                        # on a GPU machine; ~6 min
    python benchmarks/gpu_suite.py --quick --output /tmp/suite   # CPU smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import flops_per_image, machine, peak_bf16_flops, timed  # noqa: E402
from _common import crop_arguments, write_crop_csv, write_field_manifest  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gpu"
PAPER_PRESETS = ("vit-prots-pool", "mae-cells-prots-pool")
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
            pool_hidden_size=32, classifier_hidden_sizes=[32, 16], num_classifiers=3)
#: Pass thresholds of step 1.
FP32_TOLERANCE = 1e-4
BF16_MIN_COSINE = 0.999


class StepTimeout(Exception):
    """A step ran past its share of the wall budget."""


@contextlib.contextmanager
def deadline(seconds: float):
    """Raise StepTimeout in this (main) thread after `seconds` (checked between Python bytecodes)."""
    def expire(*_):
        raise StepTimeout(f"ran past its {seconds:.0f} s budget")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.01))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class Budget:
    """Wall time left to a step; measurements check it before starting more work."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def _no_save() -> None:
    pass


#: Writes the report so far; `run_suite` points it at the output folder (steps call it after each measurement).
save_progress = _no_save


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@contextlib.contextmanager
def attention(model: torch.nn.Module, implementation: str):
    """Run `model` with `implementation` ("sdpa" or "eager") attention, then restore its own."""
    previous = model.config._attn_implementation
    model.config._attn_implementation = implementation
    try:
        yield model
    finally:
        model.config._attn_implementation = previous


@contextlib.contextmanager
def tf32(enabled: bool):
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


def _max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float().cpu() - b.float().cpu()).abs().max())


# ---------------------------------------------------------------------------------------------- 1. correctness
def step_correctness(device: torch.device, quick: bool, budget: Budget, work: Path, result: dict) -> dict:
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.inference.embed import CellBatches, model_inputs
    from subcell_hf.inference.inputs import Cell, CellSource
    from subcell_hf.data.synthetic import TINY_ARCHITECTURE, OriginalArchitecture, write_release_files
    from subcell_hf.variants import RELEASES

    release = RELEASES["all_channels-vit-prots-pool"]
    arch = TINY_ARCHITECTURE if quick else OriginalArchitecture()
    write_release_files(work / "release", releases=[release], arch=arch)
    model, report = convert_release(release, work / "release")
    assert report.passed, f"conversion checks failed: {report.checks}"
    size = 16 * arch.grid_size
    cells = 4 if quick else 8
    generator = torch.Generator().manual_seed(0)
    raw = torch.randint(0, 65535, (cells, 4, size, size), generator=generator, dtype=torch.int32)
    from subcell_hf.models import SubCellImageProcessor

    processor = SubCellImageProcessor.from_config(model.config)
    pixels = processor(raw.numpy().astype(np.uint16))["pixel_values"]

    def run(module, on, autocast=None, implementation="sdpa"):
        with attention(module, implementation), torch.inference_mode(), torch.autocast(
            on.type, dtype=autocast or torch.float32, enabled=autocast is not None
        ):
            output = module(pixels.to(on), output_attentions=True)
        return {k: getattr(output, k).float().cpu() for k in ("embeddings", "probabilities", "pool_attentions",
                                                                "cls_attentions")}

    reference = run(model.eval(), torch.device("cpu"))
    model.to(device)
    result.update({"checkpoint": f"{release.name}, synthetic, {'tiny' if quick else 'ViT-B/16'} original format, "
                    "10 classifiers", "image_size": size, "cells": cells})
    with tf32(False):
        on_device = run(model, device)
        eager = run(model, device, implementation="eager")
    result["fp32_max_abs_diff_vs_cpu"] = {k: _max_abs(on_device[k], reference[k]) for k in reference}
    result["sdpa_vs_eager_max_abs_diff"] = {k: _max_abs(on_device[k], eager[k]) for k in reference}
    bf16 = run(model, device, autocast=torch.bfloat16)
    cosine = torch.nn.functional.cosine_similarity(bf16["embeddings"], reference["embeddings"], dim=1)
    result["bf16_min_cosine_embeddings"] = float(cosine.min())
    result["bf16_probabilities_max_abs_diff"] = _max_abs(bf16["probabilities"], reference["probabilities"])
    result["bf16_pool_attentions_max_abs_diff"] = _max_abs(bf16["pool_attentions"], reference["pool_attentions"])

    class Arrays(CellSource):  # the embed loader's raw transfer, scaled on the device
        def __init__(self, arrays):
            super().__init__(list(model.config.channel_names))
            self.arrays = arrays

        def __len__(self):
            return len(self.arrays)

        def iter_cells(self, index):
            yield Cell(str(index), self.arrays[index], "")

    from subcell_hf.inference.chunks import plan_chunks

    loader_diffs = {}
    for dtype in (np.uint8, np.uint16):
        arrays = [a.astype(dtype) for a in (raw.numpy() % (256 if dtype == np.uint8 else 65536))]
        batches = CellBatches(Arrays(arrays), processor, plan_chunks(len(arrays), len(arrays)), batch_size=cells)
        piece = next(iter(batches))
        scaled = model_inputs(piece, device, processor)
        loader_diffs[np.dtype(dtype).name] = _max_abs(scaled, processor(arrays)["pixel_values"])
    result["embed_loader_raw_transfer_max_abs_diff"] = loader_diffs
    worst_fp32 = max(result["fp32_max_abs_diff_vs_cpu"].values())
    worst_eager = max(result["sdpa_vs_eager_max_abs_diff"].values())
    result["checks"] = {
        f"fp32 on device = CPU within {FP32_TOLERANCE:g} (incl. attention maps)": worst_fp32 <= FP32_TOLERANCE,
        f"SDPA = eager within {FP32_TOLERANCE:g}": worst_eager <= FP32_TOLERANCE,
        f"bf16 autocast cosine >= {BF16_MIN_COSINE}": result["bf16_min_cosine_embeddings"] >= BF16_MIN_COSINE,
        "raw 8/16-bit loader transfer = processor": max(loader_diffs.values()) == 0.0,
    }
    result["passed"] = all(result["checks"].values())
    model.to("cpu")
    return result


# --------------------------------------------------------------------------------------- 2. inference throughput
def throughput_grid(quick: bool) -> list[dict]:
    """The configurations, most informative first (the budget may stop the grid early); `quick`: one batch size,
    each precision, attention and compile setting once."""
    if quick:
        return [dict(batch=2, precision=precision, attention=attention, compile=compiled)
                for precision, attention, compiled in (("bf16", "sdpa", False), ("bf16", "sdpa", True),
                                                       ("tf32", "sdpa", False), ("fp32", "sdpa", False),
                                                       ("fp32", "eager", False), ("bf16", "eager", False))]
    batches = (256, 128, 64)
    grid = []
    for batch in batches:
        grid.append(dict(batch=batch, precision="bf16", attention="sdpa", compile=False))
        if batch == batches[0]:
            grid.append(dict(batch=batch, precision="bf16", attention="sdpa", compile=True))
    for batch in batches:
        grid += [dict(batch=batch, precision="tf32", attention="sdpa", compile=False),
                 dict(batch=batch, precision="fp32", attention="sdpa", compile=False),
                 dict(batch=batch, precision="bf16", attention="eager", compile=False)]
    for batch in batches[1:]:
        grid.append(dict(batch=batch, precision="bf16", attention="sdpa", compile=True))
    for batch in batches:
        grid += [dict(batch=batch, precision="tf32", attention="eager", compile=False),
                 dict(batch=batch, precision="fp32", attention="eager", compile=False)]
    grid.append(dict(batch=batches[0], precision="tf32", attention="sdpa", compile=True))
    return grid


def step_inference_throughput(device: torch.device, quick: bool, budget: Budget, work: Path, result: dict) -> dict:
    from subcell_hf import SubCellConfig, SubCellModel
    from subcell_hf.inference.embed import EmbedConfig

    torch.manual_seed(0)
    config = SubCellConfig(**TINY) if quick else SubCellConfig()
    size = config.image_size if quick else 448
    model = SubCellModel(config).eval().to(device)
    flops = flops_per_image(model, size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_bf16_flops(name)
    repeats = 2 if quick else 3
    rows, compiled = [], {}
    result.update(model="SubCellModel tiny (64 px)" if quick else "SubCellModel ViT-B/16 + pooler, 448 px, 4 channels",
                  image_size=size, device=name, gflops_per_cell_forward=round(flops / 1e9, 3),
                  peak_bf16_flops_assumed=peak, rows=rows)
    for setting in throughput_grid(quick):
        if budget.left() < (5 if quick else 90 if setting["compile"] else 25):  # inductor: ~1 min per compile
            rows.append({**setting, "skipped": "wall budget"})
            continue
        images = torch.rand(setting["batch"], config.num_channels, size, size, device=device)
        key = (setting["attention"],)
        if setting["compile"] and key not in compiled:
            compiled[key] = torch.compile(model, backend="eager" if quick else "inductor")
        module = compiled[key] if setting["compile"] else model
        dtype = torch.bfloat16 if setting["precision"] == "bf16" else None

        def forward():
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                module(images)

        row = dict(setting)
        try:
            with attention(model, setting["attention"]), tf32(setting["precision"] == "tf32"):
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
                forward()  # first call: compilation, kernel selection
                _synchronize(device)
                row["first_call_s"] = round(time.perf_counter() - start, 2)
                seconds = timed(forward, repeats, warmup=1)
        except Exception as error:  # noqa: BLE001 - one failed configuration is a result, not the end of the step
            row["error"] = f"{type(error).__name__}: {str(error)[:300]}"
            rows.append(row)
            continue
        row["cells_per_s"] = round(setting["batch"] / seconds, 2)
        row["achieved_tflops"] = round(setting["batch"] / seconds * flops / 1e12, 3)
        row["fraction_of_peak_bf16"] = round(setting["batch"] / seconds * flops / peak, 4) if peak else None
        if device.type == "cuda":
            row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
        rows.append(row)
        save_progress()
    measured = [r for r in rows if "cells_per_s" in r]
    best = max(measured, key=lambda r: r["cells_per_s"]) if measured else None
    defaults = EmbedConfig()
    embed_default = {"precision": "bf16" if device.type == "cuda" else "fp32", "attention": "sdpa",
                     "compile": defaults.compile, "batch": defaults.batch_size}
    default_row = next((r for r in measured if all(r[k] == v for k, v in embed_default.items() if k != "batch")
                        and r["batch"] == max(x["batch"] for x in measured)), None)
    model.to("cpu")
    result.update({
        "target": "fraction_of_peak_bf16 >= 0.5 in the best configuration (about 3,000 cells/s on an H200)",
        "rows": rows,
        "best": best,
        "embed_defaults": {**embed_default, "note": "subcell-hf embed: --precision auto (bf16 on a GPU), SDPA, "
                           "--compile off, --batch-size 64; the row shown is its precision/attention/compile at the "
                           "largest measured batch"},
        "embed_default_row": default_row,
        "target_met": bool(best and best.get("fraction_of_peak_bf16") and best["fraction_of_peak_bf16"] >= 0.5),
    })
    return result


# --------------------------------------------------------------------------------------------- 3. input pipeline
def step_input_pipeline(device: torch.device, quick: bool, budget: Budget, work: Path, result: dict) -> dict:
    from embed_pipeline import TINY as PIPELINE_TINY
    from embed_pipeline import build_model, measure_embed

    from subcell_hf.inference.embed import EmbedConfig

    workers = 2 if quick else min(16, os.cpu_count() or 1)
    batch = 8 if quick else 256
    size, field_size = (64, 256) if quick else (448, 2048)
    crop = {"crop_size": 128, "output_size": 64, "min_area": 100} if quick else {"crop_size": 896, "output_size": 448}
    csv = write_crop_csv(work / "csv", 16 if quick else 4096, size, distinct=4 if quick else 64, bit_depth=8,
                         suffixes=("png",))
    manifest = write_field_manifest(work / "fields", 2 if quick else 48, field_size, distinct=1 if quick else 4)
    loaded = build_model(PIPELINE_TINY if quick else {})
    precision = "bf16" if device.type == "cuda" else "fp32"
    options = dict(batch_size=batch, num_workers=workers, precision=precision, device=str(device))
    result.update({"workers": workers, "batch_size": batch, "precision": precision,
                   "default_num_workers": EmbedConfig().num_workers, "runs": {}})
    for label, inputs, crop_options in (("csv_8bit_png_crops", csv, {}), ("fields_2048px_manifest", manifest, crop)):
        if budget.left() < (5 if quick else 30):
            result["runs"][label] = {"skipped": "wall budget"}
            continue
        if not quick:  # file caches, kernel selection
            warm = measure_embed(loaded, inputs, work / f"warm_{label}", crop_options, **options)
        run = measure_embed(loaded, inputs, work / f"out_{label}", crop_options, **options)
        run["warm_up_run_cells_per_s"] = None if quick else warm["cells_per_s"]
        # the model's own rate on these cells: cells over the time in its forward (no loader in that time)
        run["model_cells_per_s"] = round(run["cells"] / max(run["forward_seconds"], 1e-9), 2)
        run["loader_bound"] = run["forward_share"] < 0.9
        per_worker = loader_cells_per_s(loaded, inputs, crop_options, batch, seconds=3 if quick else 8)
        run["loader_cells_per_s_per_worker"] = round(per_worker, 2)
        run["workers_needed_at_model_rate"] = math.ceil(run["model_cells_per_s"] / per_worker)
        result["runs"][label] = run
        save_progress()
    loaded.model.to("cpu")
    return result


def loader_cells_per_s(loaded, inputs: Path, crop_options: dict, batch: int, seconds: float) -> float:
    """Cells/s one loader process delivers (read, crop, batch: what each DataLoader worker does), for about
    `seconds` of work."""
    from subcell_hf.inference.chunks import plan_chunks
    from subcell_hf.inference.embed import CellBatches
    from subcell_hf.inference.inputs import open_source

    source = open_source(inputs, loaded.model.config.channel_names, **crop_arguments(crop_options))
    batches = CellBatches(source, loaded.processor, plan_chunks(len(source), 1), batch)
    cells, start = 0, time.perf_counter()
    for piece in batches:
        cells += 0 if piece["end"] else len(piece["cells"])
        if piece["end"] and time.perf_counter() - start > seconds:
            break
    return cells / (time.perf_counter() - start)


# ------------------------------------------------------------------------------------------------- 4. pretraining
def _train_child(preset: str, device: str, records: int | None, steps: int, deepspeed: bool, timeout: float) -> dict:
    """`benchmarks/train.py`'s measurement of one preset in its own process (own peak memory), timed start to end."""
    command = [sys.executable, str(ROOT / "benchmarks" / "train.py"), "--child", preset, "--device", device,
               "--steps", str(steps)]
    command += ["--records", str(records)] if records else []
    command += ["--deepspeed"] if deepspeed else []
    start = time.perf_counter()
    try:
        completed = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=max(timeout, 1))
    except subprocess.TimeoutExpired:
        return {"preset": preset, "error": f"ran past its {timeout:.0f} s budget"}
    wall = time.perf_counter() - start
    if completed.returncode:
        return {"preset": preset, "error": completed.stderr.strip().splitlines()[-3:]}
    row = json.loads(completed.stdout.strip().splitlines()[-1])
    row["process_wall_s"] = round(wall, 2)
    row["steps_per_s"] = round(1 / row["seconds_per_step"], 3)
    return row


def step_pretraining(device: torch.device, quick: bool, budget: Budget, work: Path, result: dict) -> dict:
    from subcell_hf.data.augment import TwoViewAugmentation
    from subcell_hf.data.loader import build_pretraining_loader
    from subcell_hf.data.shards import write_shards
    from subcell_hf.data.synthetic import generate_dataset
    from subcell_hf.pretraining.config import load_config

    presets = ("tiny",) if quick else PAPER_PRESETS
    result["presets"] = []
    for preset in presets:
        config = load_config(ROOT / "recipes" / "configs" / f"{preset}.yaml")
        records = config.data.records_per_batch  # per process: the preset's per-GPU micro-batch
        if budget.left() < (5 if quick else 45):
            result["presets"].append({"preset": preset, "skipped": "wall budget"})
            continue
        if quick:  # the same measurement in this process (a child would pay the imports again)
            from train import measure

            row = measure(preset, device.type, False, records, 2)
            row["steps_per_s"] = round(1 / row["seconds_per_step"], 3)
        else:
            row = _train_child(preset, device.type, records, 5, False, budget.left() - 5)
        row["records_per_gpu"] = records
        result["presets"].append(row)
        save_progress()

    # two-view augmentation on the device, at the first preset's micro-batch
    config = load_config(ROOT / "recipes" / "configs" / f"{presets[0]}.yaml")
    cells_per_record = config.data.cells_per_record
    cells = (2 if quick else config.data.records_per_batch) * cells_per_record
    size = 64 if quick else 448
    augmentation = TwoViewAugmentation().to(device)
    raw = torch.randint(0, 65535, (cells, 4, size, size), device=device).float()
    masks = torch.zeros(cells, 1, size, size, device=device)
    masks[..., size // 4: 3 * size // 4, size // 4: 3 * size // 4] = 1
    seconds = timed(lambda: augmentation(raw, masks, cells_per_record, torch.Generator().manual_seed(0)),
                    repeats=2 if quick else 5, warmup=1)
    result["augmentation"] = {"cells": cells, "image_size": size, "cells_per_s": round(cells / seconds, 1)}

    # one DeepSpeed ZeRO-2 process, start to step
    if quick:
        result["deepspeed_zero2"] = {"skipped": "--quick: DeepSpeed's first CPU start compiles a C++ op (minutes)"}
    elif budget.left() < 40:
        result["deepspeed_zero2"] = {"skipped": "wall budget"}
    else:
        row = _train_child(presets[0], device.type, config.data.records_per_batch, 1, True, budget.left() - 5)
        result["deepspeed_zero2"] = {**row, "note": "process_wall_s: interpreter start, imports, DeepSpeed "
                                     "initialisation, one counted warm-up step, one more and one timed step"}

    # the streaming loader with the preset's workers (raw cells; augmentation stays on the device)
    if budget.left() < (5 if quick else 30):
        result["streaming_loader"] = {"skipped": "wall budget"}
        return result
    workers = 1 if quick else config.data.num_workers
    field_size, crop = (256, dict(crop_size=128, output_size=64, min_area=100)) if quick else (2048, {})
    manifest = generate_dataset(work / "shard_fields", num_fields=1 if quick else 3, num_antibodies=1,
                                image_size=field_size, show_progress=False)
    write_shards(manifest, work / "shards", num_workers=0 if quick else min(6, os.cpu_count() or 1),
                 show_progress=False, **crop_arguments(crop))
    batch_records = 1 if quick else config.data.records_per_batch
    batches = 3 if quick else 12
    loader = build_pretraining_loader(work / "shards", batch_records=batch_records, cells_per_record=cells_per_record,
                                      num_workers=workers, num_batches=batches + 2, seed=0,
                                      pin_memory=device.type == "cuda")
    iterator = iter(loader)
    for _ in range(2):  # worker start, first shards
        next(iterator)
    start = time.perf_counter()
    delivered = sum(len(next(iterator)["cells"]) for _ in range(batches))
    seconds = time.perf_counter() - start
    result["streaming_loader"] = {"workers": workers, "batch_records": batch_records, "cells": delivered,
                                  "cells_per_s": round(delivered / seconds, 1)}
    return result


# ------------------------------------------------------------------------------------------------------ the run
STEPS = (
    # name, function, share of the wall budget (GPU), seconds it needs at least to start
    ("correctness", step_correctness, 0.12, 30),
    ("inference_throughput", step_inference_throughput, 0.33, 40),
    ("input_pipeline", step_input_pipeline, 0.2, 40),
    ("pretraining", step_pretraining, 0.35, 60),
)


def run_suite(output: Path, quick: bool, budget_s: float, only: list[str] | None = None) -> dict:
    global save_progress
    started = time.monotonic()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    report = {"suite": "benchmarks/gpu_suite.py", "mode": "quick (CPU, tiny sizes)" if quick else "full",
              "machine": machine(), "wall_budget_s": budget_s, "steps": {}}
    output.mkdir(parents=True, exist_ok=True)
    save_progress = lambda: write_report(report, output)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="subcell_gpu_suite_") as scratch:
        for index, (name, function, share, minimum) in enumerate(STEPS):
            if only and name not in only:
                continue
            entry: dict = {"order": index + 1, "status": "running"}
            report["steps"][name] = entry
            left = budget_s - (time.monotonic() - started)
            if not cuda and not quick:
                entry["status"] = "skipped: no CUDA"
            elif left < (1 if quick else minimum):
                entry["status"] = "skipped: wall budget spent"
            else:
                later = sum(s[2] for s in STEPS[index:] if not only or s[0] in only)  # unused time moves on
                allowed = left if quick else min(left, max(share / later * left, minimum))
                step_start = time.monotonic()
                try:
                    entry["result"] = {}  # filled as the step goes: a step cut short keeps its rows
                    with deadline(allowed + (0 if quick else 15)):
                        function(device, quick, Budget(allowed), Path(scratch) / name, entry["result"])
                    entry["status"] = "ok"
                except StepTimeout as error:
                    entry["status"] = f"failed: {error}"
                except Exception as error:  # noqa: BLE001 - the next steps still run and report
                    entry["status"] = f"failed: {type(error).__name__}: {error}"
                    entry["traceback"] = traceback.format_exc()[-3000:]
                entry["seconds"] = round(time.monotonic() - step_start, 1)
                if cuda:
                    torch.cuda.empty_cache()
            report["elapsed_s"] = round(time.monotonic() - started, 1)
            write_report(report, output)  # after each step: a run cut short keeps what it measured
            print(f"[{report['elapsed_s']:7.1f} s] {name}: {entry['status']}", flush=True)
    save_progress = _no_save
    return report


def write_report(report: dict, output: Path) -> None:
    from subcell_hf.utils.atomic_writes import atomic_write_text

    atomic_write_text(output / "suite.json", json.dumps(report, indent=2, default=str) + "\n")
    atomic_write_text(output / "suite.md", markdown(report))


def _fmt(value, digits=3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# GPU suite (`benchmarks/gpu_suite.py`)",
        "",
        f"Mode: {report['mode']}. Machine: {m.get('gpu', 'no GPU')}; CPU {m['cpu']}; torch {m['torch']}; "
        f"{m['date']} UTC; wall budget {report['wall_budget_s']:.0f} s, used {report.get('elapsed_s', 0):.0f} s.",
        "",
    ]
    for name, entry in report["steps"].items():
        lines += [f"## {entry['order']}. {name}: {entry['status']}", ""]
        result = entry.get("result")
        if not result:
            continue
        mark = len(lines)
        try:
            if name == "correctness":
                lines += [f"{result['checkpoint']}, {result['cells']} cells of {result['image_size']} px.", "",
                          "| check | passed |", "|---|---|"]
                lines += [f"| {check} | {'yes' if ok else '**no**'} |" for check, ok in result["checks"].items()]
                lines += ["", f"fp32 max abs diff vs CPU: {result['fp32_max_abs_diff_vs_cpu']}; SDPA vs eager: "
                          f"{result['sdpa_vs_eager_max_abs_diff']}; bf16: min cosine "
                          f"{result['bf16_min_cosine_embeddings']:.6f}, probabilities max abs diff "
                          f"{result['bf16_probabilities_max_abs_diff']:.2e}; loader raw transfer: "
                          f"{result['embed_loader_raw_transfer_max_abs_diff']}.", ""]
            elif name == "inference_throughput":
                lines += [f"{result['model']} on {result['device']}: {result['gflops_per_cell_forward']} GFLOP per cell "
                          f"(counted); peak assumed {_fmt(result['peak_bf16_flops_assumed'])} FLOP/s.", "",
                          "| batch | precision | attention | compile | cells/s | TFLOP/s | of bf16 peak | peak mem GiB | "
                          "first call s |", "|---|---|---|---|---|---|---|---|---|"]
                for r in result["rows"]:
                    if "cells_per_s" not in r:
                        lines.append(f"| {r['batch']} | {r['precision']} | {r['attention']} | {r['compile']} | "
                                     f"{r.get('skipped') or r.get('error')} |||||")
                        continue
                    share = r.get("fraction_of_peak_bf16")
                    lines.append(f"| {r['batch']} | {r['precision']} | {r['attention']} | {r['compile']} | "
                                 f"{r['cells_per_s']:.1f} | {r['achieved_tflops']:.2f} | "
                                 f"{'-' if share is None else f'{100 * share:.1f} %'} | {_fmt(r.get('peak_memory_gib'))} | "
                                 f"{r['first_call_s']} |")
                best = result.get("best") or {}
                lines += ["", f"Best: {best.get('batch')} / {best.get('precision')} / {best.get('attention')} / compile "
                          f"{best.get('compile')} at {_fmt(best.get('cells_per_s'))} cells/s; target "
                          f"({result['target']}) met: {result['target_met']}. `subcell-hf embed` defaults: "
                          f"{result['embed_defaults']}.", ""]
            elif name == "input_pipeline":
                lines += [f"{result['workers']} workers, batch {result['batch_size']}, {result['precision']}; embed's "
                          f"default --num-workers: {result['default_num_workers']}.", "",
                          "| input | cells | cells/s end to end | forward share | model alone cells/s | loader cells/s "
                          "per worker | workers needed at the model's rate |", "|---|---|---|---|---|---|---|"]
                for label, r in result["runs"].items():
                    if "skipped" in r:
                        lines.append(f"| {label} | {r['skipped']} ||||||")
                        continue
                    lines.append(f"| {label} | {r['cells']} | {r['cells_per_s']} | {r['forward_share']} | "
                                 f"{r['model_cells_per_s']} | {r['loader_cells_per_s_per_worker']} | "
                                 f"{r['workers_needed_at_model_rate']} |")
                lines.append("")
            elif name == "pretraining":
                lines += ["| preset | records/GPU | cells/step | steps/s | cells/s | TFLOP/s | MFU (of bf16 peak) | "
                          "peak mem GiB |", "|---|---|---|---|---|---|---|---|"]
                for r in result["presets"]:
                    if "error" in r or "skipped" in r:
                        lines.append(f"| {r['preset']} | {r.get('error') or r.get('skipped')} |||||||")
                        continue
                    share = r.get("fraction_of_peak_bf16")
                    lines.append(f"| {r['preset']} | {r['records_per_gpu']} | {r['cells_per_step']} | {r['steps_per_s']} | "
                                 f"{r['cells_per_second']:.1f} | {r['achieved_tflops']:.2f} | "
                                 f"{'-' if share is None else f'{100 * share:.1f} %'} | {r['peak_memory_gib']:.2f} |")
                ds = result.get("deepspeed_zero2", {})
                lines += ["", f"Two-view augmentation on the device: {result['augmentation']['cells_per_s']} cells/s "
                          f"({result['augmentation']['cells']} cells of {result['augmentation']['image_size']} px). "
                          f"DeepSpeed ZeRO-2, one process, start to step: "
                          f"{ds.get('skipped') or ds.get('error') or str(ds.get('process_wall_s')) + ' s'}. "
                          f"Streaming loader: {result.get('streaming_loader')}.", ""]
            else:
                lines += ["```", json.dumps(result, indent=1, default=str), "```", ""]
        except (KeyError, TypeError, ValueError):  # a step cut short: its rows as they are
            del lines[mark:]
            lines += ["```", json.dumps(result, indent=1, default=str), "```", ""]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU smoke run: the same code on tiny sizes")
    parser.add_argument("--output", default=str(RESULTS), help="folder for suite.json and suite.md")
    parser.add_argument("--budget", type=float, default=None,
                        help="wall seconds for all steps (default: 330 on a GPU, leaving start-up inside 6 min)")
    parser.add_argument("--steps", nargs="+", choices=[s[0] for s in STEPS], help="run only these steps")
    args = parser.parse_args(argv)
    budget = args.budget or (600.0 if args.quick else 330.0)
    if args.quick:
        torch.set_num_threads(1)  # tiny sizes: threads only contend (CI runners and shared machines)
    report = run_suite(Path(args.output), args.quick, budget, args.steps)
    failed = [n for n, e in report["steps"].items() if e["status"].startswith("failed")]
    checks = report["steps"].get("correctness", {}).get("result", {})
    if checks and not checks.get("passed"):
        failed.append("correctness checks")
    print(f"wrote {Path(args.output) / 'suite.json'} and suite.md" + (f"; FAILED: {failed}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
