"""CPU inference: which runtime is fastest for the published architecture, at what fp32 parity, and what int8 costs.

One run, side by side, on the same weights (ViT-B/16 + pooler + 10 classifiers, random weights) and the same cells
(synthetic cells of the demo, resized to 448 px), fp32, all of torch's threads:

- **wrapper style**: a faithful re-implementation of the original wrapper's forward: one cell at a time, and, as
  its ViT was called with `output_attentions=True`, eager attention in every layer (transformers' SDPA layers
  fall back to eager then) with every layer's full attention weights kept until the forward returns;
- **eager**: `SubCellModel` as is (SDPA in every layer), batch 1 and batch N (channels-last input on request);
- **compile**: `torch.compile` (inductor, C++ kernels on CPU), batch N;
- **onnx**: ONNX Runtime on the graph exported by `subcell_hf.inference.runtime`, batch 1 and batch N;
- **openvino**: OpenVINO (when installed) on the same graph, batch N;
- **onnx-int8**: ONNX Runtime with the linear layers dynamically quantized to int8 (opt-in), batch N.

The paths' repetitions are interleaved round robin (the order rotating each round), so that load from other jobs on
a shared CPU hits all of them alike; cells/s is the median over rounds (best in the JSON). Parity: each path's
embeddings and probabilities against fp32 eager at batch 1. GFLOP/s: FLOPs per cell (torch's FlopCounterMode) x
cells/s, against the fp32 peak of this CPU derived from /proc/cpuinfo (`cpu_peak`). Int8 accuracy: embedding
cosine, top-1 agreement, and the micro-AP change against the synthetic labels on (1) the full-size model over
more demo cells and (2) the demo's own tiny converted model over all demo cells (`python -m subcell_hf.commands.demo`
makes the data; random weights, so the absolute APs are chance level: the change is the quantization's effect).

    python benchmarks/cpu_inference.py [--output benchmarks/results/cpu_inference.json] [--minutes 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import flops_per_image, write_results  # noqa: E402

import subcell_hf  # noqa: E402
from subcell_hf import SubCellConfig, SubCellForProteinLocalization, SubCellImageProcessor  # noqa: E402
from subcell_hf.inference import EmbeddingModel, embed  # noqa: E402
from subcell_hf.inference.runtime import EXPORT_CACHE_ENV, build_runtime, missing_packages  # noqa: E402
from subcell_hf.models import LOCALIZATION_CLASSES  # noqa: E402


# ---------------------------------------------------------------------------------------------- the machine
def cpu_peak() -> dict:
    """fp32 peak FLOP/s = cores x clock x FLOP per cycle per core, from /proc/cpuinfo.

    FLOP per cycle: two FMA units per core (each FMA = 2 FLOP) x fp32 lanes: 16 with AVX-512, 8 with AVX2+FMA
    (Haswell and later, AMD Zen), and for AVX without FMA 16 FLOP (one add + one multiply unit x 8 lanes). The
    clock is the `cpu MHz` the kernel reports (under a hypervisor, the nominal clock; turbo can run above it, so
    the fraction of peak is an estimate)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    flags = set(re.search(r"^flags\s*:\s*(.*)$", text, re.M).group(1).split()) if "flags" in text else set()
    mhz = [float(v) for v in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.M)]
    model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    cores = len(re.findall(r"^processor\s*:", text, re.M)) or os.cpu_count()
    if "avx512f" in flags:
        isa, per_cycle = "AVX-512 + FMA", 64
    elif {"avx2", "fma"} <= flags:
        isa, per_cycle = "AVX2 + FMA", 32
    elif "avx" in flags:
        isa, per_cycle = "AVX", 16
    else:
        isa, per_cycle = "SSE", 8
    clock = statistics.median(mhz) * 1e6 if mhz else None
    return {
        "cpu": model.group(1).strip() if model else platform.processor(),
        "cores": cores,
        "isa": isa,
        "fp32_flop_per_cycle_per_core": per_cycle,
        "clock_hz": clock,
        "peak_fp32_flops": cores * clock * per_cycle if clock else None,
        "derivation": f"{cores} cores x {clock / 1e9:.3f} GHz (cpu MHz) x {per_cycle} fp32 FLOP/cycle ({isa}: "
        "2 FMA units x lanes x 2)" if clock else "unknown clock",
    }


# ------------------------------------------------------------------------------------------------- the paths
@contextlib.contextmanager
def wrapper_attention(model: SubCellForProteinLocalization):
    """Every layer on eager attention, as the original wrapper's `output_attentions=True` call ran transformers' ViT:
    the forward then keeps every layer's (B, heads, T, T) weights (`output.attentions`) until it returns."""
    previous = model.config._attn_implementation
    model.config._attn_implementation = "eager"
    try:
        yield
    finally:
        model.config._attn_implementation = previous


def wrapper_style(model: SubCellForProteinLocalization, pixels: torch.Tensor):
    embeddings, probabilities = [], []
    for cell in pixels:
        with wrapper_attention(model):
            output = model(cell.unsqueeze(0), output_attentions=True)
            kept = output.attentions
            cls_map = kept[-1][:, :, 0, 1:]  # the wrapper's last-layer CLS attention map
            assert len(kept) == len(model.subcell.layers) and cls_map.shape[-1] == pixels.shape[-1] ** 2 // 256
        embeddings.append(output.embeddings)
        probabilities.append(output.probabilities)
    return torch.cat(embeddings), torch.cat(probabilities)


def batched(fn, batch: int):
    def run(pixels):
        outputs = [fn(pixels[i : i + batch]) for i in range(0, len(pixels), batch)]
        return torch.cat([o[0] for o in outputs]), torch.cat([o[1] for o in outputs])

    return run


#: channels-last is left out by default: the only 4-D tensor of a ViT is the patch convolution's input.
DEFAULT_KINDS = ("wrapper", "eager", "compile", "onnx", "openvino", "onnx-int8")


def build_paths(model: EmbeddingModel, batch: int, cache_dir: Path, names: list[str]) -> dict:
    """name -> callable(pixels) -> (embeddings, probabilities)."""
    paths = {}
    eager = build_runtime("eager", model)
    available = {
        "wrapper style (1 cell at a time, eager attention)": lambda: lambda x: wrapper_style(model.model, x),
        "eager b1": lambda: batched(eager, 1),
        f"eager b{batch}": lambda: batched(eager, batch),
        f"channels-last eager b{batch}": lambda: batched(
            lambda x: eager(x.contiguous(memory_format=torch.channels_last)), batch),
        f"compile b{batch}": lambda: batched(build_runtime("eager", model, compile=True), batch),
        "onnx b1": lambda: batched(build_runtime("onnx", model, cache_dir=cache_dir), 1),
        f"onnx b{batch}": lambda: batched(build_runtime("onnx", model, cache_dir=cache_dir), batch),
        f"openvino b{batch}": lambda: batched(build_runtime("openvino", model, cache_dir=cache_dir), batch),
        f"onnx-int8 b{batch}": lambda: batched(build_runtime("onnx-int8", model, cache_dir=cache_dir), batch),
    }
    for name, make in available.items():
        kind = name.split()[0]
        if kind not in (names or DEFAULT_KINDS):
            continue
        if kind == "openvino" and missing_packages("openvino"):
            print(f"skipping {name}: openvino is not installed", flush=True)
            continue
        paths[name] = make()
    return paths


def demo_cells(demo_dir: Path, channels, count: int, size: int, processor: SubCellImageProcessor) -> torch.Tensor:
    """`count` cells of the demo's synthetic fields (cropped as the demo does), resized to `size` px."""
    from subcell_hf.commands.demo import CELL_SIZE, CROP_SIZE
    from subcell_hf.data.crops import CropOptions
    from subcell_hf.inference import open_source

    source = open_source(demo_dir / "synthetic_fields" / "manifest.csv", channels, "fields",
                         CropOptions(size=CROP_SIZE, output_size=CELL_SIZE))
    cells, labels = [], []
    for item in range(len(source)):
        for cell in source.iter_cells(item):
            if hasattr(cell, "pixels"):
                cells.append(processor(cell.pixels, do_resize=True, size=size)["pixel_values"][0])
                labels.append(cell.metadata.get("pattern"))
            if len(cells) == count:
                return torch.stack(cells), labels
    return torch.stack(cells), labels


def pattern_targets(patterns) -> np.ndarray:
    from subcell_hf.data.synthetic import PATTERNS

    targets = np.zeros((len(patterns), len(LOCALIZATION_CLASSES)), dtype=np.int64)
    for row, pattern in enumerate(patterns):
        for name in PATTERNS.get(pattern, ()):
            if name in LOCALIZATION_CLASSES:
                targets[row, LOCALIZATION_CLASSES.index(name)] = 1
    return targets


def agreement(reference: tuple, found: tuple, targets: np.ndarray | None = None) -> dict:
    from sklearn.metrics import average_precision_score

    cosine = torch.nn.functional.cosine_similarity(found[0].double(), reference[0].double(), dim=1)
    report = {
        "cells": int(reference[0].shape[0]),
        "embedding_max_abs_diff": float((found[0] - reference[0]).abs().max()),
        "probability_max_abs_diff": float((found[1] - reference[1]).abs().max()),
        "embedding_cosine_min": float(cosine.min()),
        "embedding_cosine_mean": float(cosine.mean()),
        "top1_agreement": float((found[1].argmax(1) == reference[1].argmax(1)).double().mean()),
    }
    top2 = reference[1].topk(2, dim=1).values
    margin = top2[:, 0] - top2[:, 1]  # how far the fp32 winner is ahead: what a perturbation must overcome
    flipped = found[1].argmax(1) != reference[1].argmax(1)
    report["top1_margin_median"] = float(margin.median())
    report["flipped_top1_margin_max"] = float(margin[flipped].max()) if flipped.any() else None
    if targets is not None and targets.any():
        ap_reference = average_precision_score(targets, reference[1].numpy(), average="micro")
        ap_found = average_precision_score(targets, found[1].numpy(), average="micro")
        report.update({"micro_ap_fp32": float(ap_reference), "micro_ap": float(ap_found),
                       "micro_ap_change": float(ap_found - ap_reference)})
    return report


# ------------------------------------------------------------------------------------------------------ run
def measure(paths: dict, pixels: torch.Tensor, rounds: int, budget_s: float) -> tuple[dict, dict, int]:
    """Round-robin timing: every round runs each path once over `pixels`, the order rotated each round."""
    names = list(paths)
    outputs, seconds = {}, {name: [] for name in names}
    started = time.perf_counter()
    with torch.inference_mode():  # every path was warmed up by its first call (set-up)
        done = 0
        while done < rounds:
            order = names[done % len(names):] + names[: done % len(names)]
            for name in order:
                start = time.perf_counter()
                output = paths[name](pixels)
                seconds[name].append(time.perf_counter() - start)
                outputs.setdefault(name, output)  # for the parity figures
            done += 1
            elapsed = time.perf_counter() - started
            print(f"round {done}: " + ", ".join(f"{n} {len(pixels) / seconds[n][-1]:.3f}" for n in names), flush=True)
            if elapsed > budget_s and done >= 2:
                break
    return outputs, seconds, done


def run(args) -> dict:
    torch.manual_seed(0)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="cpu-inference-"))
    load_start = os.getloadavg()
    os.environ.setdefault(EXPORT_CACHE_ENV, str(work / "exports"))  # the demo's exports too: not the user's cache
    demo_dir = work / "demo"
    if not (demo_dir / "synthetic_fields" / "manifest.csv").is_file():
        from subcell_hf.commands.demo import main as demo_main

        demo_main(["--output", str(demo_dir)])
    config = SubCellConfig() if not args.tiny else SubCellConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, image_size=64,
        pool_hidden_size=32, classifier_hidden_sizes=[32, 16])
    size = config.image_size
    model = EmbeddingModel(SubCellForProteinLocalization(config).eval(), SubCellImageProcessor.from_config(config),
                           name="random ViT-B/16" if not args.tiny else "random tiny")
    pixels_all, patterns = demo_cells(demo_dir, config.channel_names, args.cells + args.accuracy_cells, size,
                                      model.processor)
    pixels = pixels_all[: args.cells]
    flops = flops_per_image(model.model, size)
    peak = cpu_peak()
    cache_dir = work / "exports"

    paths = build_paths(model, args.batch, cache_dir, args.paths)
    setup = {}
    with torch.inference_mode():  # one-time costs: exports, quantization, compilation (first call per path)
        for name in list(paths):
            start = time.perf_counter()
            paths[name](pixels[: 1 if name.startswith("wrapper") or name.endswith(" b1") else args.batch])
            setup[name] = time.perf_counter() - start
            print(f"set-up {name}: {setup[name]:.1f} s", flush=True)
    if args.prepare:
        return {}
    outputs, seconds, rounds = measure(paths, pixels, args.rounds, args.minutes * 60)

    wrapper = next(n for n in paths if n.startswith("wrapper"))
    reference_name = "eager b1"
    reference = outputs[reference_name]
    results = {}
    for name in paths:
        cells_per_s = [len(pixels) / s for s in seconds[name]]
        median = statistics.median(cells_per_s)
        wrapper_median = statistics.median(len(pixels) / s for s in seconds[wrapper])
        results[name] = {
            "cells_per_s_median": median,
            "cells_per_s_best": max(cells_per_s),
            "cells_per_s_rounds": cells_per_s,
            "speedup_vs_wrapper": median / wrapper_median,
            "gflops_per_s": median * flops / 1e9,
            "fraction_of_fp32_peak": median * flops / peak["peak_fp32_flops"] if peak["peak_fp32_flops"] else None,
            "first_call_seconds": setup[name],
            "export_seconds": _export_seconds(cache_dir, name, model.name),
            "parity_vs_eager_b1": agreement(reference, outputs[name]),
        }

    accuracy = {}
    int8 = [n for n in paths if n.startswith("onnx-int8")]
    if int8 and args.accuracy_cells:
        extra = pixels_all
        targets = pattern_targets(patterns)
        with torch.inference_mode():
            fp32 = paths[f"eager b{args.batch}"](extra)
            quantized = paths[int8[0]](extra)
        accuracy["full_size_demo_cells"] = agreement(fp32, quantized, targets)
        accuracy["tiny_demo_model"] = tiny_demo_accuracy(demo_dir, work)

    return {
        "script": "benchmarks/cpu_inference.py",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": peak,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "subcell_hf": subcell_hf.__version__,
        "model": model.name,
        "image_size": size,
        "cells_per_round": len(pixels),
        "batch": args.batch,
        "rounds": rounds,
        "gflops_per_cell": flops / 1e9,
        "load_average_start": load_start,
        "load_average_end": os.getloadavg(),
        "interleaving": "the paths were interleaved round robin so that any other load hit them alike (see the "
        "load averages)",
        "reference_for_parity": reference_name,
        "paths": results,
        "int8_accuracy": accuracy,
    }


def tiny_demo_accuracy(demo_dir: Path, work: Path) -> dict:
    """The demo's tiny converted model over every demo cell: fp32 eager vs int8, through `embed` itself."""
    from subcell_hf.commands.demo import CELL_SIZE, CROP_SIZE, DEMO_RELEASE
    from subcell_hf.data.crops import CropOptions

    model = EmbeddingModel.from_pretrained(str(demo_dir / "converted" / DEMO_RELEASE))
    manifest = demo_dir / "synthetic_fields" / "manifest.csv"
    options = dict(crop=CropOptions(size=CROP_SIZE, output_size=CELL_SIZE), num_workers=0, progress=False,
                   overwrite=True)
    tables = {
        runtime: embed(model, manifest, work / f"tiny-{runtime}", runtime=runtime, **options).table
        for runtime in ("eager", "onnx", "onnx-int8")
    }
    as_tensors = {k: (torch.from_numpy(t.embeddings), torch.from_numpy(t.probabilities)) for k, t in tables.items()}
    targets = pattern_targets(tables["eager"].obs["pattern"])
    return {
        "onnx_fp32": agreement(as_tensors["eager"], as_tensors["onnx"], targets),
        "onnx_int8": agreement(as_tensors["eager"], as_tensors["onnx-int8"], targets),
    }


def _export_seconds(cache_dir: Path, name: str, model_name: str) -> float | None:
    """One-time cost of the graph a path runs (export, plus quantization for int8), from the cache's records."""
    if not name.startswith(("onnx", "openvino")):
        return None
    records = {p.stem: json.loads(p.read_text()) for p in cache_dir.glob("*.json")}
    records = {k: r for k, r in records.items() if r["model"] == model_name}
    fp32 = sum(r["seconds"] for k, r in records.items() if not k.endswith("-int8"))
    return fp32 + (sum(r["seconds"] for k, r in records.items() if k.endswith("-int8")) if "int8" in name else 0)


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def markdown(results: dict) -> str:
    machine = results["machine"]
    peak = machine["peak_fp32_flops"]
    lines = [
        "# CPU inference runtimes (`benchmarks/cpu_inference.py`)",
        "",
        f"Measured {results['date']} on {machine['cpu']} ({machine['cores']} cores, {machine['isa']}); torch "
        f"{results['torch']} ({results['torch_threads']} threads), onnxruntime {results['onnxruntime']}, openvino "
        f"{results['openvino']}. {results['model']} + 10 classifiers, 4 channels, {results['image_size']} px, fp32 "
        f"unless int8; {results['cells_per_round']} demo cells per path per round, {results['rounds']} rounds "
        f"interleaved round robin; {results['gflops_per_cell']:.1f} GFLOP per cell.",
        "",
        (
            f"**The CPU was shared with other jobs** (load average {results['load_average_start'][0]:.1f} at the "
            f"start, {results['load_average_end'][0]:.1f} at the end, on {machine['cores']} cores): absolute cells/s "
            "are low and noisy; the ratios, measured side by side, are the result."
            if results["load_average_start"][0] >= 1.0
            else f"No other job was running (load average {results['load_average_start'][0]:.1f} at the start, "
            f"{results['load_average_end'][0]:.1f} at the end, on {machine['cores']} cores: the benchmark's own "
            "threads); the paths were interleaved round robin."
        ),
        "",
        f"fp32 peak: {machine['derivation']} = {peak / 1e9:.0f} GFLOP/s." if peak else "fp32 peak: unknown.",
        "",
        "| path | cells/s (median) | best | vs wrapper style | GFLOP/s | of fp32 peak "
        "| max abs diff emb. / prob. vs eager b1 | export, once (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["paths"].items():
        parity = r["parity_vs_eager_b1"]
        fraction = f"{r['fraction_of_fp32_peak']:.0%}" if r["fraction_of_fp32_peak"] is not None else "n/a"
        lines.append(
            f"| {name} | {r['cells_per_s_median']:.3f} | {r['cells_per_s_best']:.3f} | "
            f"**{r['speedup_vs_wrapper']:.2f}x** | {r['gflops_per_s']:.0f} | {fraction} | "
            f"{parity['embedding_max_abs_diff']:.1e} / {parity['probability_max_abs_diff']:.1e} | "
            + (f"{r['export_seconds']:.0f} |" if r.get("export_seconds") is not None else "- |")
        )
    accuracy = results.get("int8_accuracy") or {}
    if accuracy:
        lines += ["", "## int8 (opt-in) against fp32", "",
                  "| data | cells | embedding cosine (min / mean) | top-1 agreement | micro-AP fp32 -> int8 |",
                  "|---|---|---|---|---|"]
        rows = [(f"{results['model']}, demo cells at {results['image_size']} px", accuracy.get("full_size_demo_cells")),
                ("demo tiny model (`embed`), all demo cells", (accuracy.get("tiny_demo_model") or {}).get("onnx_int8")),
                ("demo tiny model, ONNX fp32 (for scale)", (accuracy.get("tiny_demo_model") or {}).get("onnx_fp32"))]
        for label, a in rows:
            if not a:
                continue
            ap = (f"{a['micro_ap_fp32']:.4f} -> {a['micro_ap']:.4f} ({a['micro_ap_change']:+.4f})"
                  if "micro_ap" in a else "n/a")
            lines.append(f"| {label} | {a['cells']} | {a['embedding_cosine_min']:.4f} / "
                         f"{a['embedding_cosine_mean']:.4f} | {a['top1_agreement']:.1%} | {ap} |")
        lines += ["", "Weights are random (no published weights are downloaded here), so the APs are chance level "
                  "and only their change says something: how much the quantization moves the scores."]
        for label, a in rows:
            if a and a.get("flipped_top1_margin_max") is not None:
                lines.append(f"{label}: the cells whose top-1 class changed had an fp32 lead of at most "
                             f"{a['flipped_top1_margin_max']:.4f} over the second class (median lead over all cells "
                             f"{a['top1_margin_median']:.4f}).")
    lines += [
        "",
        "Reading: `vs wrapper style` is the median cells/s over the wrapper-style forward's, same run. fp32 parity is "
        "the largest difference from eager at batch 1 over the timed cells (target: 1e-4). `export, once` is the "
        "one-time cost of the exported graph (cached; int8 includes the fp32 export and the quantization). "
        "GFLOP/s counts the fp32 model's FLOPs for every path (for int8, fp32-equivalent work per second).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "cpu_inference.json"))
    parser.add_argument("--cells", type=int, default=2, help="cells per path per round (default: 2)")
    parser.add_argument("--batch", type=int, default=2, help="the batched paths' batch size (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="at most this many rounds (default: 3)")
    parser.add_argument("--minutes", type=float, default=4,
                        help="no new round once the timing has run this long, after 2 rounds (default: 4)")
    parser.add_argument("--accuracy-cells", type=int, default=6, help="extra cells for the int8 accuracy")
    parser.add_argument("--paths", nargs="*", default=[],
                        help="only these kinds: wrapper eager channels-last compile onnx openvino onnx-int8 "
                             "(default: all but channels-last)")
    parser.add_argument("--work-dir", help="demo data and exports (default: a temporary folder)")
    parser.add_argument("--prepare", action="store_true",
                        help="only make the demo data, the exports and the compiled kernels in --work-dir, then stop")
    parser.add_argument("--render", action="store_true", help="only rewrite the Markdown from --output's JSON")
    parser.add_argument("--tiny", action="store_true", help="the tiny test architecture (a smoke run of the script)")
    args = parser.parse_args()
    output = Path(args.output)
    if args.render:  # the Markdown again from the JSON of a run (the numbers are the run's)
        print(write_results(json.loads(output.read_text()), output, markdown))
        return
    results = run(args)
    if args.prepare:
        return
    print(write_results(results, output, markdown))


if __name__ == "__main__":
    main()
