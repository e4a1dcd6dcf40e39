"""Synthetic data for the demo, the tests and the benchmarks, in one place.

1. **Fields of view** (`generate_dataset`): a synthetic HPA-like dataset, the built-in default.

Each field of view holds 20-80 touching cells (integer label mask) imaged in the four HPA channels:

- ``dna``: nuclei with chromatin texture;
- ``microtubules``: filaments radiating from a centrosome next to the nucleus to the cell edge;
- ``er``: a reticular network, densest around the nucleus and continuous with the nuclear envelope;
- ``protein``: the antibody's localization pattern, one of `PATTERNS` (nucleoplasm, nucleoli, nuclear membrane,
  cytosol, mitochondria, plasma membrane, vesicles, endoplasmic reticulum, Golgi apparatus, centrosome).

Every antibody has one pattern; its fields span a few cell lines and plates. The manifest it writes is the one
`write_shards` reads (see `subcell_hf.data.manifest`), plus a `pattern` column.

With ``nuisance=True`` the fields also carry effects unrelated to localization, as real plates do: each cell line
has its own per-channel brightness (which survives the per-cell min-max, since that scales all channels together)
and cell size (cells per field), and each plate its own camera offset. The cell line of an antibody is drawn
independently of its pattern, so an embedding that separates patterns of unseen antibodies has learned the
localization, not the nuisance (the learning check measures both).

2. **Pretraining shards** (`prepare_synthetic_shards`): training and validation shards for the `tiny` preset,
   the tests and the learning check::

       python -m subcell_hf.data.synthetic --root outputs/synthetic

   writes `outputs/synthetic/{shards,validation_shards}` (the paths `recipes/configs/tiny.yaml` reads): fields of
   (1), one localization pattern per antibody, cropped to 64-px cells by `subcell_hf.data.shards`. Validation
   fields come from another seed: new cells of the same antibodies. It is the same as `subcell-hf synth`
   followed by `subcell-hf shards`, twice, with these sizes.

3. **Release files** (`write_release_files`): random tensors with the published key names and shapes (or a
   smaller architecture with the same key layout) in the exact original format (docs/model.md, section 6),
   saved as plain state dicts, laid out like the published release folder: what the converter reads.
"""


from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import ndimage

from ..models.configuration_subcell import HPA_CHANNELS, PRETRAINING_CLASSES
from ..utils.atomic_writes import atomic_write_text
from .io import write_image
from .manifest import LOCATION_SEPARATOR

if TYPE_CHECKING:
    import torch

    from ..variants import Release

#: Synthetic protein pattern -> its annotated localizations (names from PRETRAINING_CLASSES).
PATTERNS: dict[str, tuple[str, ...]] = {
    "nucleoplasm": ("Nucleoplasm",),
    "nucleoli": ("Nucleoli",),
    "nuclear_membrane": ("Nuclear membrane",),
    "cytosol": ("Cytosol",),
    "mitochondria": ("Mitochondria",),
    "plasma_membrane": ("Plasma membrane",),
    "vesicles": ("Vesicles",),
    "endoplasmic_reticulum": ("Endoplasmic reticulum",),
    "golgi_apparatus": ("Golgi apparatus",),
    "centrosome": ("Centrosome",),
}
assert all(name in PRETRAINING_CLASSES for names in PATTERNS.values() for name in names)

CELL_LINES: tuple[str, ...] = ("U2OS", "A-431", "U-251MG", "HeLa", "MCF7", "RT4")
WELL_ROWS = "ABCDEFGH"
CELLS_PER_FIELD = (20, 80)


@dataclass
class CellLayout:
    """Geometry of the cells of one field, shared by all channels."""

    labels: np.ndarray  # (H, W) int32, 0 = background
    nucleus: np.ndarray  # (H, W) bool
    radial: np.ndarray  # (H, W) distance to the cell centre / cell radius (0 at centre, ~1 at edge)
    nuclear_radial: np.ndarray  # (H, W) distance to the nucleus centre / nucleus radius
    centres: np.ndarray  # (n, 2) cell centres (row, column)
    nucleus_centres: np.ndarray  # (n, 2)
    radii: np.ndarray  # (n,) cell radii in pixels
    nucleus_radii: np.ndarray  # (n,)

    @property
    def cytoplasm(self) -> np.ndarray:
        return (self.labels > 0) & ~self.nucleus


# ------------------------------------------------------------------------------------------------ geometry
def _place_centres(size: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Up to `count` centres at least `spacing` apart (dart throwing), and the spacing."""
    spacing = np.sqrt(0.5 * size * size * 4 / (count * np.pi))
    centres: list[np.ndarray] = []
    for _ in range(count * 60):
        candidate = rng.uniform(0.03 * size, 0.97 * size, 2)
        if all(np.hypot(*(candidate - c)) >= spacing for c in centres):
            centres.append(candidate)
            if len(centres) == count:
                break
    return np.array(centres), spacing


def _wobble(angle: np.ndarray, phases: np.ndarray, amplitude: float) -> np.ndarray:
    """A smooth random radius factor around 1 as a function of the polar angle."""
    return 1 + amplitude * (np.sin(2 * angle + phases[0]) * 0.6 + np.sin(3 * angle + phases[1]) * 0.4)


def make_layout(size: int, num_cells: int, rng: np.random.Generator) -> CellLayout:
    """Touching, irregular cells (each pixel goes to its nearest centre within a wobbly radius) and nuclei."""
    from scipy.spatial import cKDTree

    centres, spacing = _place_centres(size, num_cells, rng)
    count = len(centres)
    radii = spacing * rng.uniform(0.75, 0.95, count)
    nucleus_radii = radii * rng.uniform(0.38, 0.5, count)
    nucleus_centres = centres + rng.normal(0, 0.08, (count, 2)) * radii[:, None]
    phases = rng.uniform(0, 2 * np.pi, (count, 2))
    nucleus_phases = rng.uniform(0, 2 * np.pi, (count, 2))

    grid = np.indices((size, size), dtype=np.float32).reshape(2, -1).T
    _, nearest = cKDTree(centres).query(grid)
    delta = grid - centres[nearest]
    angle = np.arctan2(delta[:, 0], delta[:, 1])
    radial = np.hypot(delta[:, 0], delta[:, 1]) / (radii[nearest] * _wobble(angle, phases[nearest].T, 0.18))
    labels = np.where(radial < 1, nearest + 1, 0).astype(np.int32)

    nuclear_delta = grid - nucleus_centres[nearest]
    nuclear_angle = np.arctan2(nuclear_delta[:, 0], nuclear_delta[:, 1])
    nuclear_radial = np.hypot(nuclear_delta[:, 0], nuclear_delta[:, 1]) / (
        nucleus_radii[nearest] * _wobble(nuclear_angle, nucleus_phases[nearest].T, 0.1)
    )
    nucleus = (nuclear_radial < 1) & (labels > 0)
    shape = (size, size)
    return CellLayout(
        labels.reshape(shape),
        nucleus.reshape(shape),
        radial.reshape(shape).astype(np.float32),
        nuclear_radial.reshape(shape).astype(np.float32),
        centres,
        nucleus_centres,
        radii,
        nucleus_radii,
    )


# ------------------------------------------------------------------------------------------------ drawing
def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise scaled to [0, 1]."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


def _splat(shape: tuple[int, int], points: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian spots of width `sigma` at `points` (n, 2), peak height ~ `weights`."""
    canvas = np.zeros(shape, dtype=np.float32)
    if len(points):
        index = np.clip(np.rint(points).astype(int), 0, np.array(shape) - 1)
        np.add.at(canvas, (index[:, 0], index[:, 1]), weights)
    return ndimage.gaussian_filter(canvas, sigma) * (2 * np.pi * sigma * sigma)


def _polylines(shape: tuple[int, int], paths: list[np.ndarray], sigma: float) -> np.ndarray:
    """Anti-aliased thin lines along `paths` (each (k, 2) points), blurred by `sigma`."""
    from skimage.draw import line_aa

    canvas = np.zeros(shape, dtype=np.float32)
    for path in paths:
        for start, stop in zip(path[:-1], path[1:]):
            rows, columns, values = line_aa(*np.rint(start).astype(int), *np.rint(stop).astype(int))
            keep = (rows >= 0) & (rows < shape[0]) & (columns >= 0) & (columns < shape[1])
            np.maximum.at(canvas, (rows[keep], columns[keep]), values[keep].astype(np.float32))
    return ndimage.gaussian_filter(canvas, sigma) if sigma > 0 else canvas


def _points_in(mask: np.ndarray, count: int, rng: np.random.Generator, weights: np.ndarray | None = None):
    rows, columns = np.nonzero(mask)
    if len(rows) == 0 or count <= 0:
        return np.zeros((0, 2))
    p = None if weights is None else weights[rows, columns] / weights[rows, columns].sum()
    chosen = rng.choice(len(rows), size=count, p=p)
    return np.stack([rows[chosen], columns[chosen]], 1) + rng.uniform(-0.5, 0.5, (count, 2))


def _per_cell(layout: CellLayout, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """A random factor per cell, broadcast to pixels (0 on background)."""
    factors = np.concatenate([[0.0], rng.uniform(low, high, len(layout.centres))]).astype(np.float32)
    return factors[layout.labels]


def _centrosomes(layout: CellLayout, rng: np.random.Generator) -> np.ndarray:
    """One point per cell just outside the nucleus (the microtubule organising centre)."""
    angles = rng.uniform(0, 2 * np.pi, len(layout.centres))
    distance = layout.nucleus_radii * 1.2
    return layout.nucleus_centres + np.stack([np.sin(angles), np.cos(angles)], 1) * distance[:, None]


def draw_dna(layout: CellLayout, rng: np.random.Generator) -> np.ndarray:
    texture = _smooth_noise(layout.labels.shape, 1.5, rng)
    return layout.nucleus * (0.55 + 0.45 * texture) * _per_cell(layout, rng, 0.6, 1.0)


def draw_microtubules(layout: CellLayout, centrosomes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    shape = layout.labels.shape
    paths = []
    for label, (start, radius) in enumerate(zip(centrosomes, layout.radii), start=1):
        for _ in range(int(rng.integers(14, 26))):
            heading = rng.uniform(0, 2 * np.pi)
            steps = int(rng.integers(6, 10))
            step = radius * 1.3 / steps
            turns = np.cumsum(rng.normal(0, 0.18, steps))
            points = [start]
            for turn in turns:  # grow until the filament leaves its own cell
                point = points[-1] + step * np.array([np.sin(heading + turn), np.cos(heading + turn)])
                row, column = np.rint(point).astype(int)
                if not (0 <= row < shape[0] and 0 <= column < shape[1]) or layout.labels[row, column] != label:
                    break
                points.append(point)
            if len(points) > 1:
                paths.append(np.array(points))
    filaments = _polylines(shape, paths, sigma=0.7 * max(layout.radii.mean() / 40, 0.5))
    filaments /= max(float(np.percentile(filaments[layout.labels > 0], 99)), 1e-6)
    diffuse = 0.12 * (layout.labels > 0)
    return np.clip(filaments + diffuse, 0, 1.5) * (layout.labels > 0) * _per_cell(layout, rng, 0.6, 1.0)


def draw_reticulum(layout: CellLayout, rng: np.random.Generator) -> np.ndarray:
    """Ridges of band-passed noise (a net), densest near the nucleus, plus the nuclear envelope."""
    scale = max(layout.radii.mean() / 40, 0.5)
    band = ndimage.gaussian_filter(rng.standard_normal(layout.labels.shape).astype(np.float32), 1.6 * scale)
    band /= band.std() + 1e-6
    net = np.exp(-((band / 0.35) ** 2))
    perinuclear = np.clip(1.15 - layout.radial, 0.15, 1)
    envelope = np.exp(-(((layout.nuclear_radial - 1.05) / 0.08) ** 2))
    signal = (net * perinuclear * layout.cytoplasm + 0.8 * envelope * (layout.labels > 0)).astype(np.float32)
    return signal * _per_cell(layout, rng, 0.6, 1.0)


def draw_protein(
    pattern: str, layout: CellLayout, centrosomes: np.ndarray, reticulum: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """The protein channel for one of `PATTERNS`."""
    shape = layout.labels.shape
    cells = layout.labels > 0
    scale = max(layout.radii.mean() / 40, 0.5)
    n = len(layout.centres)
    if pattern == "nucleoplasm":
        signal = layout.nucleus * (0.75 + 0.25 * _smooth_noise(shape, 2 * scale, rng))
    elif pattern == "nucleoli":
        points = [
            c + rng.normal(0, 0.35, 2) * r
            for c, r in zip(layout.nucleus_centres, layout.nucleus_radii)
            for _ in range(int(rng.integers(1, 5)))
        ]
        signal = _splat(shape, np.array(points), np.ones(len(points), np.float32), 2.2 * scale) * layout.nucleus
    elif pattern == "nuclear_membrane":
        signal = np.exp(-(((layout.nuclear_radial - 1.0) / 0.07) ** 2)) * cells
    elif pattern == "cytosol":
        signal = layout.cytoplasm * (0.8 + 0.2 * _smooth_noise(shape, 3 * scale, rng)) * (1.1 - 0.3 * layout.radial)
    elif pattern == "mitochondria":
        starts = _points_in(layout.cytoplasm, 45 * n, rng, weights=np.clip(1.2 - layout.radial, 0.1, 1))
        headings = rng.uniform(0, 2 * np.pi, len(starts))
        lengths = rng.uniform(2, 6, len(starts)) * scale
        stops = starts + np.stack([np.sin(headings), np.cos(headings)], 1) * lengths[:, None]
        signal = _polylines(shape, [np.stack([a, b]) for a, b in zip(starts, stops)], 0.6 * scale) * layout.cytoplasm
    elif pattern == "plasma_membrane":
        from skimage.segmentation import find_boundaries

        edges = find_boundaries(layout.labels, mode="inner").astype(np.float32)
        signal = ndimage.gaussian_filter(edges, 0.8 * scale) * cells
    elif pattern == "vesicles":
        points = _points_in(layout.cytoplasm, 30 * n, rng)
        signal = _splat(shape, points, rng.uniform(0.5, 1.0, len(points)).astype(np.float32), 1.1 * scale) * cells
    elif pattern == "endoplasmic_reticulum":
        signal = reticulum * (0.9 + 0.2 * _smooth_noise(shape, 4 * scale, rng))
    elif pattern == "golgi_apparatus":
        angles = rng.uniform(0, 2 * np.pi, n)
        sites = layout.nucleus_centres + np.stack([np.sin(angles), np.cos(angles)], 1) * (
            layout.nucleus_radii * 1.3
        )[:, None]
        points = np.concatenate([s + rng.normal(0, 0.18, (25, 2)) * r for s, r in zip(sites, layout.radii)])
        signal = _splat(shape, points, np.full(len(points), 0.5, np.float32), 1.3 * scale) * layout.cytoplasm
    elif pattern == "centrosome":
        points = np.concatenate([centrosomes, centrosomes + rng.normal(0, 1.5 * scale, centrosomes.shape)])
        signal = _splat(shape, points, np.ones(len(points), np.float32), 1.2 * scale) * cells
    else:
        raise ValueError(f"unknown pattern {pattern!r}; expected one of {sorted(PATTERNS)}")
    signal = signal.astype(np.float32)
    signal /= max(float(signal.max()), 1e-6)
    return signal * _per_cell(layout, rng, 0.4, 1.0)


def generate_field(
    size: int,
    num_cells: int,
    pattern: str,
    rng: np.random.Generator,
    bit_depth: int = 16,
    channel_gains: dict[str, float] | None = None,
    offset: float = 0.015,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One field of view: `{channel: (size, size) uint8/uint16}` in HPA channel order, and the label mask.
    `channel_gains` multiply each channel's brightness and `offset` is the camera offset (fraction of full scale)."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, found {bit_depth}")
    layout = make_layout(size, num_cells, rng)
    centrosomes = _centrosomes(layout, rng)
    reticulum = draw_reticulum(layout, rng)
    signals = {
        "microtubules": draw_microtubules(layout, centrosomes, rng),
        "er": reticulum,
        "dna": draw_dna(layout, rng),
        "protein": draw_protein(pattern, layout, centrosomes, reticulum, rng),
    }
    top = 255 if bit_depth == 8 else 65535
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    channels = {}
    for name in HPA_CHANNELS:
        gain = rng.uniform(0.35, 0.6) * top * (channel_gains or {}).get(name, 1.0)
        clean = (offset + signals[name]) * gain  # camera offset, then signal
        noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * (0.004 * top + 0.03 * np.sqrt(clean))
        channels[name] = np.clip(np.rint(noisy), 0, top).astype(dtype)
    return channels, layout.labels.astype(np.uint16 if layout.labels.max() < 65536 else np.int32)


# ------------------------------------------------------------------------------------------------ dataset
def generate_dataset(
    output_dir: str | os.PathLike,
    num_fields: int = 24,
    num_antibodies: int = 10,
    image_size: int = 512,
    seed: int = 0,
    bit_depth: int = 16,
    file_format: str = "png",
    cells_per_field: tuple[int, int] = CELLS_PER_FIELD,
    show_progress: bool = True,
    nuisance: bool = False,
    first_antibody: int = 0,
) -> Path:
    """Write a synthetic HPA-like dataset and return the path of its manifest CSV.

    Files: ``images/<image_id>_<channel>.<png|tif>`` per channel, ``images/<image_id>_mask.<png|tif>`` (uint16
    labels) and ``manifest.csv`` with absolute paths and the columns of `subcell_hf.data.manifest` plus `pattern`.
    Antibody k has pattern ``PATTERNS[k % len(PATTERNS)]`` and fields ``k, k + num_antibodies, ...``; each field is
    drawn from its own seed, so the output depends only on the arguments. `first_antibody` numbers the antibodies
    from there (``HPA<first_antibody + k>``: a second dataset of other antibodies); `nuisance` adds cell-line and
    plate effects unrelated to localization (module docstring).
    """
    from tqdm.auto import tqdm

    if file_format not in ("png", "tif"):
        raise ValueError(f"file_format must be 'png' or 'tif', found {file_format!r}")
    if num_fields < 1 or num_antibodies < 1:
        raise ValueError(f"need num_fields >= 1 and num_antibodies >= 1, found {num_fields}, {num_antibodies}")
    output_dir = Path(output_dir).resolve()
    images = output_dir / "images"
    pattern_names = list(PATTERNS)
    study = np.random.default_rng([seed, 0])
    antibody_lines = [study.choice(CELL_LINES, size=2, replace=False) for _ in range(num_antibodies)]
    effects = np.random.default_rng([1234])  # the same cell-line and plate effects in every dataset
    line_gains = {line: dict(zip(HPA_CHANNELS, effects.uniform(0.4, 1.6, len(HPA_CHANNELS)))) for line in CELL_LINES}
    line_density = {line: effects.uniform(0.6, 1.6) for line in CELL_LINES}
    rows = []
    for index in tqdm(range(num_fields), desc="synthetic fields", disable=not show_progress):
        rng = np.random.default_rng([seed, 1, index])
        antibody = index % num_antibodies
        pattern = pattern_names[(first_antibody + antibody) % len(pattern_names)]
        plate = index // 8 + 1
        num_cells = int(rng.integers(cells_per_field[0], cells_per_field[1] + 1))
        gains, offset, cell_line = None, 0.015, None
        if nuisance:  # the cell line is needed first; drawn from its own stream so the default output is unchanged
            cell_line = str(antibody_lines[antibody][int(np.random.default_rng([seed, 2, index]).integers(2))])
            num_cells = max(4, int(num_cells * line_density[cell_line]))
            gains, offset = line_gains[cell_line], 0.015 + 0.02 * (plate % 4)
        channels, mask = generate_field(image_size, num_cells, pattern, rng, bit_depth, gains, offset)
        if cell_line is None:
            cell_line = str(antibody_lines[antibody][int(rng.integers(2))])
        image_id = f"field{index:05d}"
        row = {}
        for name in HPA_CHANNELS:
            row[name] = str(write_image(images / f"{image_id}_{name}.{file_format}", channels[name]))
        row["mask"] = str(write_image(images / f"{image_id}_mask.{file_format}", mask))
        row.update(
            image_id=image_id,
            antibody=f"HPA{first_antibody + antibody:06d}",
            gene=f"SYN{first_antibody + antibody:04d}",
            cell_line=cell_line,
            plate=f"plate{plate:03d}",
            well=f"{WELL_ROWS[int(rng.integers(len(WELL_ROWS)))]}{int(rng.integers(1, 13))}",
            locations=LOCATION_SEPARATOR.join(PATTERNS[pattern]),
            pattern=pattern,
        )
        rows.append(row)
    manifest = output_dir / "manifest.csv"
    atomic_write_text(manifest, pd.DataFrame(rows).to_csv(index=False))
    return manifest


# Pretraining shards (2)

TRAIN_DIRNAME = "shards"
VALIDATION_DIRNAME = "validation_shards"


def prepare_synthetic_shards(
    root: str | Path,
    num_fields: int = 60,
    num_validation_fields: int = 20,
    num_antibodies: int = 20,
    image_size: int = 256,
    crop_size: int = 64,
    output_size: int = 64,
    parts_per_antibody: int = 4,
    seed: int = 0,
    show_progress: bool = True,
) -> tuple[Path, Path]:
    """Write (or reuse, when complete) training and validation shards under `root`; returns their folders."""
    from .crops import CropOptions
    from .shards import write_shards

    root = Path(root)
    folders = []
    for name, fields, field_seed in (
        (TRAIN_DIRNAME, num_fields, seed),
        (VALIDATION_DIRNAME, num_validation_fields, seed + 1),
    ):
        manifest = generate_dataset(
            root / f"{name}_fields", num_fields=fields, num_antibodies=num_antibodies, image_size=image_size,
            seed=field_seed, show_progress=show_progress,
        )
        write_shards(
            manifest, root / name, crop=CropOptions(size=crop_size, output_size=output_size, min_area=100),
            parts_per_antibody=parts_per_antibody, records_per_shard=4, num_workers=0, show_progress=show_progress,
        )
        folders.append(root / name)
    return folders[0], folders[1]


# Release files in the original format (3)

@dataclass(frozen=True)
class OriginalArchitecture:
    """Sizes of an original-format checkpoint; the defaults are the published ViT-B/16."""

    hidden_size: int = 768
    num_layers: int = 12
    intermediate_size: int = 3072
    patch_size: int = 16
    grid_size: int = 28
    pool_hidden_size: int = 512
    pool_num_heads: int = 2
    classifier_hidden_sizes: tuple[int, ...] = (512, 256)
    num_classes: int = 31


#: A small architecture with the published key layout, for fast tests (64-px crops, 2 layers).
TINY_ARCHITECTURE = OriginalArchitecture(
    hidden_size=64, num_layers=2, intermediate_size=128, grid_size=4, pool_hidden_size=32,
    classifier_hidden_sizes=(32, 16),
)


def original_encoder_state_dict(
    num_channels: int,
    position_embedding_type: str = "learned",
    arch: OriginalArchitecture = OriginalArchitecture(),
    seed: int = 0,
    training_extras: bool = False,
) -> dict[str, torch.Tensor]:
    """Random encoder weights under the original 198 + 6 key names. Scales keep activations well-conditioned."""
    import torch

    from ..models.modeling_subcell import sincos_position_embeddings

    g = torch.Generator().manual_seed(seed)
    h, p = arch.hidden_size, arch.patch_size

    def rand(*shape: int, scale: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=g) * scale

    sd = {
        "encoder.embeddings.cls_token": rand(1, 1, h),
        "encoder.embeddings.position_embeddings": (
            sincos_position_embeddings(h, arch.grid_size, arch.grid_size)
            if position_embedding_type == "sincos"
            else rand(1, arch.grid_size**2 + 1, h)
        ),
        "encoder.embeddings.patch_embeddings.projection.weight": rand(h, num_channels, p, p, scale=0.05),
        "encoder.embeddings.patch_embeddings.projection.bias": rand(h),
    }
    for i in range(arch.num_layers):
        layer = f"encoder.encoder.layer.{i}"
        for name in ("attention.attention.query", "attention.attention.key", "attention.attention.value",
                     "attention.output.dense"):
            sd[f"{layer}.{name}.weight"] = rand(h, h, scale=h**-0.5)
            sd[f"{layer}.{name}.bias"] = rand(h)
        sd[f"{layer}.intermediate.dense.weight"] = rand(arch.intermediate_size, h, scale=h**-0.5)
        sd[f"{layer}.intermediate.dense.bias"] = rand(arch.intermediate_size)
        sd[f"{layer}.output.dense.weight"] = rand(h, arch.intermediate_size, scale=arch.intermediate_size**-0.5)
        sd[f"{layer}.output.dense.bias"] = rand(h)
        for norm in ("layernorm_before", "layernorm_after"):
            sd[f"{layer}.{norm}.weight"] = 1 + rand(h, scale=0.1)
            sd[f"{layer}.{norm}.bias"] = rand(h, scale=0.1)
    sd["encoder.layernorm.weight"] = 1 + rand(h, scale=0.1)
    sd["encoder.layernorm.bias"] = rand(h, scale=0.1)
    for gate in ("attention_v", "attention_u"):
        sd[f"pool_model.{gate}.1.weight"] = rand(arch.pool_hidden_size, h, scale=h**-0.5)
        sd[f"pool_model.{gate}.1.bias"] = rand(arch.pool_hidden_size)
    sd["pool_model.attention.weight"] = rand(arch.pool_num_heads, arch.pool_hidden_size, scale=1.0)
    sd["pool_model.attention.bias"] = rand(arch.pool_num_heads)
    if training_extras:  # what some training checkpoints carry beside the released encoder
        sd["target_encoder.embeddings.cls_token"] = rand(1, 1, h)
        sd["decoder.decoder_embed.weight"] = rand(8, h)
    return sd


def original_classifier_state_dict(arch: OriginalArchitecture = OriginalArchitecture(), seed: int = 0):
    """Random classifier weights under the original `nn.Sequential` indices 0, 3, 6."""
    import torch

    g = torch.Generator().manual_seed(10_000 + seed)
    sizes = [arch.pool_num_heads * arch.hidden_size, *arch.classifier_hidden_sizes, arch.num_classes]
    sd = {}
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        sd[f"{3 * index}.weight"] = torch.randn(fan_out, fan_in, generator=g) * fan_in**-0.5
        sd[f"{3 * index}.bias"] = torch.randn(fan_out, generator=g) * 0.1
    return sd


def write_release_files(
    release_dir: str | Path,
    releases: list[Release] | None = None,
    arch: OriginalArchitecture = OriginalArchitecture(),
    num_classifiers: int = 10,
    seed: int = 0,
) -> dict[str, tuple[Path, list[Path]]]:
    """Write encoder and classifier files for `releases` (default: all 8) in the published layout."""
    import torch

    from ..variants import RELEASES

    release_dir = Path(release_dir)
    written = {}
    for offset, release in enumerate(releases or list(RELEASES.values())):
        encoder_path, classifier_paths = release.source_paths(release_dir, num_classifiers)
        encoder_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            original_encoder_state_dict(
                release.variant.num_channels, release.family.position_embedding_type, arch, seed + offset
            ),
            encoder_path,
        )
        classifier_paths[0].parent.mkdir(parents=True, exist_ok=True)
        for k, path in enumerate(classifier_paths):
            torch.save(original_classifier_state_dict(arch, seed=100 * offset + k), path)
        written[release.name] = (encoder_path, classifier_paths)
    return written


@dataclass
class SyntheticShardsConfig:
    """Synthetic training and validation shards (shards/ and validation_shards/) for the tiny pretraining preset:
    synthetic HPA-like fields cropped to 64-px cells.

        python -m subcell_hf.data.synthetic --root outputs/synthetic
    """

    # Folder to write (shards/ and validation_shards/, with the fields they are cropped from).
    root: Path = Path("outputs/synthetic")
    # Training fields of view.
    num_fields: int = 60
    # Validation fields of view (another seed: new cells of the same antibodies).
    num_validation_fields: int = 20
    # Antibodies (2 per localization pattern by default).
    num_antibodies: int = 20
    # Random seed.
    seed: int = 0


def main(argv: list[str] | None = None) -> int:
    from ..utils.config_cli import parse_config

    args = parse_config(SyntheticShardsConfig, argv, prog="python -m subcell_hf.data.synthetic")
    train, validation = prepare_synthetic_shards(
        args.root, args.num_fields, args.num_validation_fields, args.num_antibodies, seed=args.seed
    )
    print(f"training shards: {train}\nvalidation shards: {validation}")
    return 0


__all__ = [
    "CELL_LINES",
    "PATTERNS",
    "SyntheticShardsConfig",
    "TINY_ARCHITECTURE",
    "CellLayout",
    "OriginalArchitecture",
    "generate_dataset",
    "generate_field",
    "make_layout",
    "original_classifier_state_dict",
    "original_encoder_state_dict",
    "prepare_synthetic_shards",
    "write_release_files",
]

if __name__ == "__main__":
    raise SystemExit(main())
