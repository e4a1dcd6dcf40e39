"""Measuring pieces shared by the scripts in `benchmarks/`: device peaks, FLOP counting, timing, the machine's
description, synthetic inputs, and the results writer (JSON + Markdown).

One copy of each: every script imports them from here (`sys.path` holds this folder when a script runs).
"""

from __future__ import annotations

import copy
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

#: Dense bf16 tensor-core peak by device name substring (vendor datasheets, no sparsity).
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12}


def peak_bf16_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a device from its name (`torch.cuda.get_device_name()`), None when unknown."""
    return next((value for key, value in PEAK_BF16_FLOPS.items() if key in device_name), None)


def flops_per_image(model: torch.nn.Module, size: int) -> float:
    """Forward FLOPs of one `size` x `size` image, counted by torch's FlopCounterMode on a copy of `model` with
    eager attention (the SDPA kernels of some devices are not counted; eager attention is the same math)."""
    counted = copy.deepcopy(model).to("cpu" if model.device.type == "meta" else model.device).eval()
    counted.config._attn_implementation = "eager"
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        counted(torch.rand(1, counted.config.num_channels, size, size, device=counted.device))
    return float(counter.get_total_flops())


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, repeats: int, warmup: int = 1) -> float:
    """Best wall time over `repeats` after `warmup` calls (best-of removes scheduler noise on shared CPUs)."""
    for _ in range(warmup):
        fn()
    best = float("inf")
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        fn()
        synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def time_once(fn) -> float:
    """Wall time of one call (device work included)."""
    return timed(fn, repeats=1, warmup=0)


def machine_name() -> str:
    """The processor and its core count, e.g. "x86_64, 2 cores"."""
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def machine() -> dict:
    """Where a result was measured."""
    info = {
        "cpu": machine_name(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def crop_arguments(crop: dict | None) -> dict:
    """Keywords for `embed` / `open_source` / `write_shards` from {"crop_size", "output_size", "min_area"}: one
    `crop=CropOptions(...)` with the package that has it, the loose keywords with older ones (a baseline ref)."""
    if not crop:
        return {}
    try:
        from subcell_hf.data.crops import CropOptions
    except ImportError:
        return dict(crop)
    names = {"crop_size": "size", "output_size": "output_size", "min_area": "min_area"}
    return {"crop": CropOptions(**{names[key]: value for key, value in crop.items()})}


def write_results(results: dict, output: str | Path, markdown: Callable[[dict], str]) -> str:
    """`results` as JSON at `output` and `markdown(results)` next to it (same name, `.md`), each file written whole or
    not at all (a crashed run leaves the committed results as they were); returns the Markdown."""
    from subcell_hf.utils.atomic_writes import atomic_write_text

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    text = markdown(results)
    atomic_write_text(output, json.dumps(results, indent=2) + "\n")
    atomic_write_text(output.with_suffix(".md"), text)
    return text


def synthetic_crops(count: int, size: int, bit_depth: int = 16, seed: int = 0) -> list[np.ndarray]:
    """`count` (4, size, size) cell crops in HPA channel order, cut from synthetic fields of view."""
    from subcell_hf.data.crops import CropOptions, crop_cells
    from subcell_hf.data.synthetic import generate_field
    from subcell_hf.models import HPA_CHANNELS

    rng = np.random.default_rng(seed)
    crops: list[np.ndarray] = []
    while len(crops) < count:
        channels, mask = generate_field(max(512, 4 * size), 30, "nucleoli", rng, bit_depth=bit_depth)
        stacked = np.stack([channels[c] for c in HPA_CHANNELS])
        crops += [c.image for c in crop_cells(stacked, mask, CropOptions(size=size, min_area=200))]
    return crops[:count]


def write_crop_csv(
    folder: Path, num_rows: int, size: int, distinct: int = 32, bit_depth: int = 16, suffixes=("png", "tif")
) -> Path:
    """A wrapper CSV (`r_image,y_image,b_image,g_image,output_prefix`) of `num_rows` rows over `distinct` synthetic
    cells, one file per channel, the suffixes taking turns over the cells (16-bit default: PNG and TIFF)."""
    from subcell_hf.data.io import write_image
    from subcell_hf.inference.inputs import WRAPPER_CHANNEL_COLUMNS
    from subcell_hf.models import HPA_CHANNELS

    files = []
    for index, image in enumerate(synthetic_crops(distinct, size, bit_depth)):
        suffix = suffixes[index % len(suffixes)]
        paths = {}
        for channel, plane in zip(HPA_CHANNELS, image):
            paths[channel] = write_image(folder / "crops" / f"cell{index:03d}_{channel}.{suffix}", plane).name
        files.append(paths)
    lines = [",".join(WRAPPER_CHANNEL_COLUMNS.values()) + ",output_prefix"]
    for row in range(num_rows):
        paths = files[row % distinct]
        lines.append(",".join(f"crops/{paths[c]}" for c in HPA_CHANNELS) + f",row{row:05d}")
    csv = folder / "path_list.csv"
    csv.write_text("\n".join(lines) + "\n")
    return csv


def write_field_manifest(folder: Path, num_rows: int, size: int, distinct: int = 4, bit_depth: int = 16) -> Path:
    """A field manifest of `num_rows` rows over `distinct` synthetic `size` px fields of view with masks."""
    import pandas as pd

    from subcell_hf.data.synthetic import generate_dataset

    manifest = generate_dataset(folder / "fields", num_fields=distinct, num_antibodies=1, image_size=size,
                                bit_depth=bit_depth, show_progress=False)
    table = pd.read_csv(manifest)
    rows = pd.concat([table] * -(-num_rows // len(table)), ignore_index=True).iloc[:num_rows].copy()
    rows["image_id"] = [f"field{i:05d}" for i in range(len(rows))]
    for column in rows.columns:  # the copies point at the same files: make the paths absolute
        if rows[column].dtype == object and rows[column].astype(str).str.contains(r"\.(?:png|tif)$").all():
            rows[column] = [str((manifest.parent / p).resolve()) for p in rows[column]]
    path = folder / "manifest.csv"
    rows.to_csv(path, index=False)
    return path
