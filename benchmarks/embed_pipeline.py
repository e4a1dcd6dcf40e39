"""The input pipeline of `subcell-hf embed`: where the loader spends its time, and old code vs new side by side.

Inputs (generated): a wrapper CSV of 8-bit PNG crops (448 px, one file per channel) and a manifest of 2048 px
16-bit fields of view with cell masks (cropped on the fly, 896 -> 448 px). Model: the tiny test architecture
(2 layers, 64 wide) at those sizes, so that reading, cropping and moving pixels dominate, as on a fast GPU.

1. **Stages** (one process, current code): time per cell to read the files (CSV) or to read, find and crop the
   cells of a field (manifest); the image processor's per-cell float32 min-max (what the old loader did in its
   workers); stacking a batch (float32 vs the raw integer crops the loader now sends); the batched min-max on the
   model's side.
2. **Old vs new** (`embed()` end to end, files to `embeddings.h5ad`): each run in its own process, the baseline
   from the package as exported from git at `--baseline-ref` (the loader before integer crops travelled raw),
   runs alternating old/new, best of `--repeats`. Also: the time in the model's forward over the total.

`measure_embed` is also what `benchmarks/gpu_suite.py` runs on a GPU (its step 3).

    python benchmarks/embed_pipeline.py [--output benchmarks/results/embed_pipeline.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import crop_arguments, machine, write_crop_csv, write_field_manifest, write_results  # noqa: E402

#: The commit before the loader sent integer crops raw (processor min-max per cell in the workers).
BASELINE_REF = "6064a17"
TINY = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
            pool_hidden_size=32, classifier_hidden_sizes=[32, 16], num_classifiers=3)


READING = (
    "Reading: without workers (the loader in the model's process) the new loader scales a whole batch at once "
    "instead of running the processor's per-cell float32 pass, about 1.7x end to end here for both inputs. With "
    "CPU workers beside a CPU model, the new code keeps the processor in the workers (the main process, which runs "
    "the model, should not take on that work), so old and new do the same work; the 2-worker rows differ by the "
    "machine's load, not by code: the forward pass alone (the same code in both) took 1.4-1.6x longer in the new "
    "runs, while the rest of the time (reading, cropping, writing) stayed within 15 %. On a GPU the raw integer crops "
    "cross the worker boundary, get pinned and are copied (uint8: a quarter of the float32 bytes, uint16: half) "
    "and are scaled on the device: that path is measured by `benchmarks/gpu_suite.py` (step 3) once a GPU is "
    "available. Decoding the PNG files (CSV) and reading + cropping the fields are the main per-cell costs and set "
    "the number of CPU workers a GPU needs. Both codes give the same embeddings (last column). The stage table's "
    "processor figure is inflated by thread contention on the loaded machine (it was 13.6 ms per CSV cell at load "
    "3.6 in an earlier probe); read it as an order, not a cost."
)


# ----------------------------------------------------------------------------------------------- measuring
class ForwardTimer:
    """Wall time spent inside a module's forward (synchronised on CUDA), accumulated over calls."""

    def __init__(self, module: torch.nn.Module):
        self.seconds, self.calls, self._start = 0.0, 0, 0.0
        self._handles = [module.register_forward_pre_hook(self._before), module.register_forward_hook(self._after)]

    def _sync(self, module):
        if next(module.parameters()).is_cuda:
            torch.cuda.synchronize()

    def _before(self, module, _inputs):
        self._sync(module)
        self._start = time.perf_counter()

    def _after(self, module, _inputs, _output):
        self._sync(module)
        self.seconds += time.perf_counter() - self._start
        self.calls += 1

    def remove(self):
        for handle in self._handles:
            handle.remove()


def build_model(config_kwargs: dict, seed: int = 0):
    """A randomly initialised `EmbeddingModel` (with classifiers) of the given architecture."""
    import subcell_hf
    from subcell_hf import SubCellForProteinLocalization, SubCellImageProcessor
    from subcell_hf.inference import EmbeddingModel

    torch.manual_seed(seed)
    config = subcell_hf.SubCellConfig(**config_kwargs)
    model = SubCellForProteinLocalization(config).eval()
    return EmbeddingModel(model, SubCellImageProcessor.from_config(config), name="benchmark")


def measure_embed(loaded, inputs: Path, output: Path, crop: dict | None = None, **options) -> dict:
    """One `embed()` run, files to files: cells/s end to end and the share of the time in the model's forward."""
    import dataclasses

    from subcell_hf.inference import embed
    from subcell_hf.inference.embed import EmbedConfig

    if "runtime" in {f.name for f in dataclasses.fields(EmbedConfig)}:
        # the torch model in every version compared (and on a GPU): only the input pipeline differs, and the
        # forward timer sees the model's forward
        options.setdefault("runtime", "eager")
    timer = ForwardTimer(loaded.model)
    start = time.perf_counter()
    try:
        result = embed(loaded, inputs, output, formats=("h5ad",), overwrite=True, progress=False,
                       **crop_arguments(crop), **options)
    finally:
        timer.remove()
    seconds = time.perf_counter() - start
    return {
        "cells": result.num_cells,
        "failures": len(result.failures),
        "seconds": round(seconds, 3),
        "cells_per_s": round(result.num_cells / seconds, 2),
        "forward_seconds": round(timer.seconds, 3),
        "forward_share": round(timer.seconds / seconds, 3),
    }


def measure_stages(csv: Path, manifest: Path, crop: dict, batch_size: int) -> dict:
    """Per-cell time of each loader stage, in this process (current code)."""
    from subcell_hf.inference.inputs import open_source
    from subcell_hf.models import HPA_CHANNELS, SubCellImageProcessor, min_max_normalize

    processor = SubCellImageProcessor()
    stages: dict[str, float] = {}
    for label, path, options in (("csv", csv, {}), ("fields", manifest, crop)):
        source = open_source(path, HPA_CHANNELS, **crop_arguments(options))
        items = min(len(source), 24 if label == "csv" else 2)
        start = time.perf_counter()
        cells = [c.pixels for i in range(items) for c in source.iter_cells(i)]
        stages[f"{label}_read_and_crop_ms_per_cell"] = 1e3 * (time.perf_counter() - start) / len(cells)
        processor(cells[0]), min_max_normalize(torch.from_numpy(cells[0])[None])  # first calls: out of the timing
        start = time.perf_counter()
        processed = [processor(c)["pixel_values"][0] for c in cells]
        stages[f"{label}_processor_min_max_ms_per_cell"] = 1e3 * (time.perf_counter() - start) / len(cells)
        batch = (cells * -(-batch_size // len(cells)))[:batch_size]
        floats = (processed * -(-batch_size // len(processed)))[:batch_size]
        start = time.perf_counter()
        torch.stack(floats)
        stages[f"{label}_stack_float32_ms_per_cell"] = 1e3 * (time.perf_counter() - start) / batch_size
        start = time.perf_counter()
        raw = torch.stack([torch.from_numpy(c) for c in batch])
        stages[f"{label}_stack_raw_ms_per_cell"] = 1e3 * (time.perf_counter() - start) / batch_size
        start = time.perf_counter()
        min_max_normalize(raw)
        stages[f"{label}_batched_min_max_ms_per_cell"] = 1e3 * (time.perf_counter() - start) / batch_size
        stages[f"{label}_bytes_per_cell_raw"] = int(cells[0].nbytes)
        stages[f"{label}_bytes_per_cell_float32"] = int(processed[0].numel() * 4)
        stages[f"{label}_cells_measured"] = len(cells)
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in stages.items()}


# ----------------------------------------------------------------------------------------------- old vs new
def export_baseline(ref: str, folder: Path) -> Path:
    """The `subcell_hf` package as of git `ref`, exported into `folder` (importable with PYTHONPATH=folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "archive", ref, "subcell_hf"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder


def run_child(code_root: Path, inputs: Path, output: Path, crop: dict, batch_size: int, workers: int) -> dict:
    command = [sys.executable, __file__, "--child", str(inputs), "--child-output", str(output),
               "--batch-size", str(batch_size), "--workers", str(workers), "--crop", json.dumps(crop)]
    environment = {**os.environ, "PYTHONPATH": str(code_root)}
    completed = subprocess.run(command, capture_output=True, text=True, env=environment, cwd=ROOT)
    if completed.returncode:
        raise RuntimeError(f"child failed ({code_root}): {completed.stderr[-2000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def child(args) -> None:
    import subcell_hf

    torch.set_num_threads(max(1, torch.get_num_threads()))
    loaded = build_model(TINY)
    crop = json.loads(args.crop)
    result = measure_embed(loaded, Path(args.child), Path(args.child_output), crop, batch_size=args.batch_size,
                           num_workers=args.workers[0], device="cpu")
    result["package"] = str(Path(subcell_hf.__file__).parent)
    print(json.dumps(result))


def compare_outputs(old: Path, new: Path) -> float:
    import anndata

    a, b = anndata.read_h5ad(old / "embeddings.h5ad"), anndata.read_h5ad(new / "embeddings.h5ad")
    assert list(a.obs_names) == list(b.obs_names), "old and new runs embed different cells"
    return float(np.abs(np.asarray(a.X) - np.asarray(b.X)).max())


# -------------------------------------------------------------------------------------------------- report
def markdown(results: dict) -> str:
    stages = results["stages"]
    lines = [
        "# The input pipeline of `subcell-hf embed` (`benchmarks/embed_pipeline.py`)",
        "",
        f"Machine: {results['machine']['cpu']}, torch {results['machine']['torch']}, measured "
        f"{results['machine']['date']} UTC while other jobs shared the CPU (load average at start "
        f"{results['machine']['load_average_1min']}): absolute figures move with that load; old and new ran "
        "alternately in separate processes, best of the repeats. Tiny model (2 layers, 64 wide), fp32, CPU.",
        "",
        f"Inputs: {results['inputs']['csv']}; {results['inputs']['fields']}.",
        "",
        "## Where the loader spends its time (ms per cell, one core)",
        "",
        "| stage | CSV, 8-bit PNG crops | fields, 2048 px 16-bit + mask |",
        "|---|---|---|",
    ]
    for stage, label in (
        ("read_and_crop", "read files (+ find and crop cells for fields)"),
        ("processor_min_max", "old: processor min-max per cell (float32), in the worker"),
        ("stack_float32", "old: stack a float32 batch"),
        ("stack_raw", "new: stack the raw integer crops"),
        ("batched_min_max", "new: batched min-max on the model's device"),
    ):
        lines.append(f"| {label} | {stages[f'csv_{stage}_ms_per_cell']:.2f} | {stages[f'fields_{stage}_ms_per_cell']:.2f} |")
    lines.append(
        f"| bytes per cell crossing the worker boundary, old / new | {stages['csv_bytes_per_cell_float32']:,} / "
        f"{stages['csv_bytes_per_cell_raw']:,} | {stages['fields_bytes_per_cell_float32']:,} / "
        f"{stages['fields_bytes_per_cell_raw']:,} |"
    )
    lines += [
        "",
        f"## Old vs new, `embed()` end to end (batch {results['batch_size']}, cells/s, best of {results['repeats']})",
        "",
        "| input | workers | old (cells/s) | new (cells/s) | speed-up | forward s old / new | rest (loader, writes) s "
        "old / new | max abs embedding difference |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in results["runs"]:
        lines.append(
            f"| {row['input']} | {row['workers']} | {row['old']['cells_per_s']:.1f} | {row['new']['cells_per_s']:.1f} "
            f"| **{row['speedup']:.2f}x** | {row['old']['forward_seconds']:.1f} / {row['new']['forward_seconds']:.1f} | "
            f"{row['old']['seconds'] - row['old']['forward_seconds']:.1f} / "
            f"{row['new']['seconds'] - row['new']['forward_seconds']:.1f} | {row['max_abs_difference']:.1e} |"
        )
    lines += ["", results["reading"], ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "embed_pipeline.json"))
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--csv-rows", type=int, default=256)
    parser.add_argument("--fields", type=int, default=6, help="manifest rows (2048 px fields)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-output", help=argparse.SUPPRESS)
    parser.add_argument("--crop", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return 0

    crop = {"crop_size": 896, "output_size": 448}
    results = {"machine": machine(), "baseline_ref": args.baseline_ref, "batch_size": args.batch_size,
               "repeats": args.repeats, "runs": []}
    with tempfile.TemporaryDirectory(prefix="subcell_embed_pipeline_") as scratch:
        scratch = Path(scratch)
        baseline = export_baseline(args.baseline_ref, scratch / "baseline")
        csv = write_crop_csv(scratch / "csv", args.csv_rows, 448, distinct=32, bit_depth=8, suffixes=("png",))
        manifest = write_field_manifest(scratch / "manifest", args.fields, 2048, distinct=2)
        results["inputs"] = {
            "csv": f"{args.csv_rows} rows of 448 px 8-bit PNG crops (32 distinct cells, 4 files each)",
            "fields": f"{args.fields} fields of view 2048 px, 16-bit PNG, 4 channels + mask (2 distinct), "
            "crops 896 -> 448 px",
        }
        results["stages"] = measure_stages(csv, manifest, crop, args.batch_size)
        print(json.dumps(results["stages"], indent=1), flush=True)
        for label, inputs, options in (("csv", csv, {}), ("fields", manifest, crop)):
            for workers in args.workers:
                best: dict[str, dict] = {}
                for repeat in range(args.repeats):
                    for code, root in (("old", baseline), ("new", ROOT)):
                        out = scratch / f"out_{label}_{workers}_{code}"
                        run = run_child(root, inputs, out, options, args.batch_size, workers)
                        if code not in best or run["seconds"] < best[code]["seconds"]:
                            best[code] = run
                row = {"input": label, "workers": workers, **best,
                       "speedup": round(best["old"]["seconds"] / best["new"]["seconds"], 3),
                       "max_abs_difference": compare_outputs(scratch / f"out_{label}_{workers}_old",
                                                             scratch / f"out_{label}_{workers}_new")}
                assert row["old"]["cells"] == row["new"]["cells"]
                results["runs"].append(row)
                print(json.dumps(row), flush=True)
    results["machine"]["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    results["reading"] = READING
    print(write_results(results, args.output, markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
