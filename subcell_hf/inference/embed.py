"""The batched embedding engine behind `subcell-hf embed`.

Data flows one way: a `CellSource` (inputs.py) -> `CellBatches`, an IterableDataset whose DataLoader workers read
and crop whole chunks while the model runs (integer crops travel raw and are min-max scaled on the model's device)
-> the model under autocast (optionally compiled) -> one chunk file per chunk (chunks.py) -> after every chunk is
done, the merged outputs (outputs.py).

Several processes (`accelerate launch`) split the chunks by rank (chunk k goes to rank k mod world size), each
writes its own chunk files, and rank 0 merges after a barrier. A rerun skips the chunks already on disk. Because
batches never cross a chunk and chunks are merged in order, the outputs are the same whatever the number of
processes, workers or restarts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, default_collate, get_worker_info

from .. import __version__
from ..utils.atomic_writes import exclusive_output, remove_stale_partials
from ..utils.processes import process_state
from ..options import PRECISION_NAMES
from ..data.channels import check_channels
from ..model_loading import load_subcell
from ..models import SubCellForProteinLocalization, SubCellImageProcessor, SubCellModel, min_max_normalize
from .attention import ATTENTION_SUFFIX, save_attention_png
from .chunks import Chunk, ChunkResult, ChunkStore, plan_chunks, settings_mismatch
from .config import EmbedConfig
from .inputs import Cell, CellSource, InputFailure, WrapperCsvSource, open_source
from .outputs import EmbeddingTable, build_table, cell_file_path, write_anndata, write_npy
from .outputs import write_parquet, write_summary
from .runtime import build_runtime, resolve_runtime

logger = logging.getLogger(__name__)

PRECISIONS = dict(zip(PRECISION_NAMES, (None, torch.bfloat16, torch.float16)))  # autocast dtype per name
OUTPUT_NAMES = {"h5ad": "embeddings.h5ad", "parquet": "embeddings.parquet", "summary": "summary.csv"}
CHUNKS_DIRNAME = "chunks"


class EmbeddingSettingsError(ValueError):
    """An output folder holds chunks computed with other inputs, model or settings."""


@dataclass
class EmbedResult:
    """What a run wrote. `outputs` maps a format (and "summary") to its path; only rank 0 has outputs. When
    no cell was embedded (`num_cells == 0`: every input failed), `outputs` holds only the summary."""

    output_dir: Path
    outputs: dict[str, Path] = field(default_factory=dict)
    num_cells: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    chunks_computed: int = 0
    chunks_skipped: int = 0
    table: EmbeddingTable | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


# ------------------------------------------------------------------------------------------------- model
@dataclass
class EmbeddingModel:
    """A SubCell model ready to embed: an encoder alone (`SubCellModel`, no probabilities) or with its
    localization ensemble, its image processor, and where it came from."""

    model: SubCellModel | SubCellForProteinLocalization
    processor: SubCellImageProcessor
    name: str = "in-memory"
    revision: str | None = None
    commit: str | None = None

    def __post_init__(self):
        check_channels(self.processor.channel_names, self.model.config.channel_names, f"{self.name}: image processor",
                       exact=True, hint="the image processor must read the model's channels")
        self.model.eval()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str, revision: str | None = None, classifiers: bool | None = None
    ) -> "EmbeddingModel":
        """Load any SubCell folder or Hub repo (`load_subcell`): by default a localization model if its weights
        hold the classifier ensemble, else the encoder alone (an encoder-only folder never gets randomly
        initialised classifiers); `classifiers=False`: the encoder alone whatever the folder holds."""
        model, processor, _ = load_subcell(name_or_path, classifiers=classifiers, revision=revision)
        return cls(model, processor, str(name_or_path), revision, _hub_commit(name_or_path, revision))

    @property
    def has_classifiers(self) -> bool:
        return isinstance(self.model, SubCellForProteinLocalization)

    @property
    def class_names(self) -> list[str]:
        id2label = self.model.config.id2label
        return [id2label[i] for i in range(len(id2label))] if self.has_classifiers else []

    @property
    def embedding_size(self) -> int:
        return self.model.config.pool_num_heads * self.model.config.hidden_size

    def fingerprint(self) -> str:
        """sha256 over the weights and config: chunks from other weights are never mixed in."""
        settings = {k: v for k, v in self.model.config.to_dict().items() if not k.startswith("_")}  # not the path
        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
        for name, tensor in sorted(self.model.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()

    def forward(
        self, pixel_values: torch.Tensor, module: torch.nn.Module | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(embeddings, probabilities or None, pool attention maps) for preprocessed cells; `module` runs the
        model instead of `self.model` (e.g. its `torch.compile` wrapper)."""
        output = (self.model if module is None else module)(pixel_values)
        if self.has_classifiers:
            return output.embeddings, output.probabilities, output.pool_attentions
        return output.pooler_output, None, output.pool_attentions


def _hub_commit(name_or_path: str, revision: str | None) -> str | None:
    """The commit a Hub model was loaded from (its snapshot folder), or None for a local folder."""
    if os.path.isdir(name_or_path):
        return None
    try:
        from transformers.utils import cached_file

        resolved = Path(cached_file(name_or_path, "config.json", revision=revision))
    except Exception:  # noqa: BLE001 - the commit is informative only
        return None
    return resolved.parent.name if resolved.parent.parent.name == "snapshots" else None


# -------------------------------------------------------------------------------------------------- data
#: Pixel types sent across the worker boundary as they are and min-max scaled on the model's device (a uint8
#: cell is a quarter of its float32 copy: less to copy into shared memory, pin and transfer).
RAW_PIXEL_TYPES = (np.uint8, np.uint16, np.int8, np.int16)


class CellBatches(IterableDataset):
    """Model-ready batches of the given chunks. Each DataLoader worker takes whole chunks (round robin), reads
    their cells, groups them by crop size and pixel type into batches that never cross a chunk, and ends each chunk
    with a marker carrying the chunk's failures.

    With `raw_transfer`, integer crops of at most 16 bits that need no resizing travel raw (`"normalized": False`):
    `model_inputs` applies the processor's min-max on the model's device, batched, with the same float32
    arithmetic (equal numbers). Any other crop, and every crop without `raw_transfer`, goes through the image
    processor in the worker (`"normalized": True`).
    """

    def __init__(
        self,
        source: CellSource,
        processor: SubCellImageProcessor,
        chunks: Sequence[Chunk],
        batch_size: int,
        preprocess_kwargs: dict[str, Any] | None = None,
        raw_transfer: bool = True,
        with_masks: bool = False,
    ):
        self.with_masks = with_masks  # send each cell's mask along (for the attention pictures' outlines)
        self.source = source
        self.processor = processor
        self.chunks = list(chunks)
        self.batch_size = batch_size
        self.preprocess_kwargs = preprocess_kwargs or {}
        # what the processor does to such a crop is exactly min-max: no resize, normalisation on
        self.raw_transfer = (
            raw_transfer and not self.preprocess_kwargs and not processor.do_resize and processor.do_normalize
        )

    def __iter__(self) -> Iterator[dict[str, Any]]:
        worker = get_worker_info()
        chunks = self.chunks if worker is None else self.chunks[worker.id :: worker.num_workers]
        for chunk in chunks:
            yield from self.chunk_batches(chunk)

    def prepare(self, pixels: np.ndarray) -> tuple[np.ndarray | torch.Tensor, bool]:
        """(pixels, normalized): the raw crop (an array) when it can travel raw, else the processor's pixel values
        (a tensor). Raises the processor's ValueError for a crop it refuses."""
        if (
            self.raw_transfer
            and isinstance(pixels, np.ndarray)
            and pixels.dtype.type in RAW_PIXEL_TYPES
            and pixels.ndim == 3
            and pixels.shape[0] == len(self.processor.channel_names)
            and min(pixels.shape[1:]) >= self.processor.patch_size
        ):
            return pixels, False
        return self.processor(pixels, **self.preprocess_kwargs)["pixel_values"][0], True

    def chunk_batches(self, chunk: Chunk) -> Iterator[dict[str, Any]]:
        buckets: dict[tuple[int, ...], list[tuple[int, Cell, Any, int, bool]]] = defaultdict(list)
        failures: list[dict[str, Any]] = []
        order = 0
        for item in chunk.items:
            for entry in self.source.iter_cells(item):
                if isinstance(entry, InputFailure):
                    failures.append(entry.to_dict())
                    continue
                try:
                    pixels, normalized = self.prepare(entry.pixels)
                except ValueError as error:
                    failures.append(InputFailure(item, entry.id, entry.source, str(error)).to_dict())
                    continue
                # batches depend on the crop sizes only (not on how the pixels travel), so the batches and
                # hence the numbers are the same with or without raw transfer, whatever the workers
                bucket = buckets[tuple(pixels.shape)]
                bucket.append((order, entry, pixels, item, normalized))
                order += 1
                if len(bucket) == self.batch_size:
                    yield self._batch(chunk, bucket)
                    bucket.clear()
        for bucket in sorted(buckets.values(), key=lambda b: b[0][0] if b else order):
            if bucket:
                yield self._batch(chunk, bucket)
        yield {"chunk": chunk.index, "end": True, "failures": failures}

    def _batch(self, chunk: Chunk, bucket: list) -> dict[str, Any]:
        pixels = [p for _, _, p, _, _ in bucket]
        normalized = all(n for *_, n in bucket)
        if not any(n for *_, n in bucket):  # all raw: one integer type that holds them all (exact)
            common = np.result_type(*{p.dtype for p in pixels})
            pixels = [np.ascontiguousarray(p, dtype=common) for p in pixels]
            pixels = [torch.from_numpy(p if p.flags.writeable else p.copy()) for p in pixels]
        elif not normalized:  # raw and processed crops of one size: the processor for all
            pixels = [p if n else self.processor(p)["pixel_values"][0] for _, _, p, _, n in bucket]
            normalized = True
        return {
            "chunk": chunk.index,
            "end": False,
            "masks": [cell.mask for _, cell, *_ in bucket] if self.with_masks else [None] * len(bucket),
            "order": torch.tensor([order for order, *_ in bucket], dtype=torch.long),
            # default_collate stacks straight into shared memory inside a worker (no extra copy on the way out)
            "pixel_values": default_collate(pixels),
            "normalized": normalized,
            "cells": [
                {"id": cell.id, "item": item, "source": cell.source, "metadata": cell.metadata}
                for _, cell, _, item, _ in bucket
            ],
        }


def model_inputs(piece: dict[str, Any], device: torch.device, processor: SubCellImageProcessor) -> torch.Tensor:
    """A `CellBatches` batch on `device`, min-max scaled there when it travelled raw."""
    pixel_values = piece["pixel_values"].to(device, non_blocking=True)
    if piece["normalized"]:
        return pixel_values
    if pixel_values.dtype == torch.uint16:  # widened through its int16 bits: exact, needs no uint16 kernels
        pixel_values = pixel_values.view(torch.int16).to(torch.int32) & 0xFFFF
    return min_max_normalize(pixel_values, processor.epsilon)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # workers decode and normalise; the main process owns the cores for the model


class _ChunkAccumulator:
    """A chunk's model outputs as they arrive, batch by batch, restored to input order when the chunk ends."""

    def __init__(self):
        self.orders: list[np.ndarray] = []
        self.cells: list[dict[str, Any]] = []
        self.embeddings: list[np.ndarray] = []
        self.probabilities: list[np.ndarray] = []

    def add(self, order: torch.Tensor, cells: list[dict], embeddings: torch.Tensor, probabilities) -> None:
        self.orders.append(order.numpy())
        self.cells.extend(cells)
        self.embeddings.append(embeddings.float().cpu().numpy())
        if probabilities is not None:
            self.probabilities.append(probabilities.float().cpu().numpy())

    def finish(self, failures: list[dict], embedding_size: int, with_probabilities: bool, num_labels: int):
        order = np.argsort(np.concatenate(self.orders)) if self.orders else np.zeros(0, dtype=np.int64)
        embeddings = np.concatenate(self.embeddings) if self.embeddings else np.zeros((0, embedding_size), np.float32)
        probabilities = None
        if with_probabilities:
            probabilities = (
                np.concatenate(self.probabilities) if self.probabilities else np.zeros((0, num_labels), np.float32)
            )[order]
        return ChunkResult(embeddings[order], probabilities, [self.cells[i] for i in order], failures)


# ------------------------------------------------------------------------------------------------ engine
def embed(
    model: str | os.PathLike | EmbeddingModel,
    inputs: str | os.PathLike | Sequence[str],
    output_dir: str | os.PathLike,
    config: EmbedConfig | None = None,
    **options: Any,
) -> EmbedResult:
    """Embed every cell of `inputs` with a SubCell model and write the outputs to `output_dir`.

    Args:
        model: a Hub id or local folder (any variant, encoder-only or with classifiers), or an `EmbeddingModel`.
        inputs: a wrapper CSV, a field manifest (CSV/Parquet), or shard paths / a glob / a brace pattern.
        output_dir: receives `embeddings.h5ad` / `.parquet` / per-cell files, `summary.csv` and `chunks/`.
        config / options: an `EmbedConfig`, or its fields as keyword arguments.

    Bad inputs (a missing or unreadable image, channels of different sizes, a mask with no cells) are reported in
    `summary.csv` and in `EmbedResult.failures`; the other cells are processed. A second run on the same
    `output_dir` at the same time is refused (`OutputBusyError`); a rerun resumes (docs/reliability.md).
    """
    config = config or EmbedConfig(**options)
    main_process = process_state(config.device).is_main_process
    with exclusive_output(output_dir) if main_process else contextlib.nullcontext():  # one run per folder
        if main_process:
            remove_stale_partials(output_dir, recursive=True)  # what a killed run left half-written
        return _embed(model, inputs, output_dir, config)


def _embed(
    model: str | os.PathLike | EmbeddingModel,
    inputs: str | os.PathLike | Sequence[str],
    output_dir: str | os.PathLike,
    config: EmbedConfig,
) -> EmbedResult:
    """`embed` inside its output lock."""
    state = process_state(config.device)
    embedding_model = model if isinstance(model, EmbeddingModel) else EmbeddingModel.from_pretrained(
        str(model), config.revision
    )
    channels = embedding_model.model.config.channel_names
    source = open_source(inputs, channels, config.input_kind, config.crop, config.mask_cells)
    unused = source.unused_channels() if isinstance(source, WrapperCsvSource) else []
    if unused and state.is_main_process:
        logger.warning("%s: columns for %s are ignored: model %s reads %s", inputs, unused, embedding_model.name,
                       channels)
    output_dir = Path(output_dir)
    device = torch.device(config.device) if config.device else state.device
    dtype = _autocast_dtype(config.precision, device)
    runtime = resolve_runtime(config.runtime, device, dtype, config.compile)  # fails before any work
    rows_per_batch = -(-config.batch_size // source.cells_per_item) if source.cells_per_item else 1
    chunk_size = config.chunk_size or default_chunk_size(len(source), source.default_chunk_size, rows_per_batch)
    chunks = plan_chunks(len(source), chunk_size)
    store = ChunkStore(output_dir / CHUNKS_DIRNAME, {c.index: source.signature(c.items) for c in chunks})
    preprocess_kwargs = {"do_resize": True, "size": config.size} if config.size is not None else {}
    settings = _run_settings(embedding_model, source, config, chunk_size, dtype, preprocess_kwargs)
    settings["runtime"] = runtime
    done = _start_or_resume(store, chunks, settings, config.overwrite, state)

    pending = [c for c in chunks if c.index not in done]
    mine = [c for c in pending if c.index % state.num_processes == state.process_index]
    computed = _run_chunks(embedding_model, source, mine, store, config, device, dtype, preprocess_kwargs,
                           output_dir, show_progress=config.progress and state.is_main_process,
                           fingerprint=settings["model_fingerprint"])
    state.wait_for_everyone()

    result = EmbedResult(output_dir, chunks_computed=computed, chunks_skipped=len(done))
    if state.is_main_process:
        merged = ChunkResult.concatenate([store.read(c.index) for c in chunks], embedding_model.embedding_size)
        uns = {**_uns(embedding_model, source, dtype, preprocess_kwargs, len(merged.failures)), "runtime": runtime}
        table = build_table(merged, embedding_model.class_names, uns)
        result.outputs = write_outputs(table, output_dir, config.formats)
        result.num_cells, result.failures, result.table = table.num_cells, merged.failures, table
    state.wait_for_everyone()
    return result


def _start_or_resume(store: ChunkStore, chunks: list[Chunk], settings: dict, overwrite: bool, state) -> set[int]:
    """Check the settings of an earlier run in `store` (refusing a mismatch unless `overwrite`), record this run's,
    and return the chunks already done."""
    previous = store.read_run_info()
    if previous is not None and previous != settings and not overwrite:
        raise EmbeddingSettingsError(
            f"{store.root}: holds chunks of a run with other settings (differs in: "
            f"{', '.join(settings_mismatch(previous, settings))}); pass overwrite=True (--overwrite) to start afresh "
            "or choose another output folder"
        )
    state.wait_for_everyone()  # every rank has read the old settings before rank 0 replaces them
    if state.is_main_process:
        if overwrite or previous != settings:
            store.reset()
        store.write_run_info(settings)
    state.wait_for_everyone()
    return store.completed(chunks)


def default_chunk_size(num_items: int, largest: int, smallest: int = 1) -> int:
    """About 16 chunks for small inputs (so that several loader workers and ranks have work), at least `smallest`
    items (enough for a full batch: batches never cross chunks) and at most `largest` items per chunk. It depends
    on the inputs and the batch size alone, so a rerun finds the same chunks."""
    return max(1, min(largest, max(smallest, -(-num_items // 16))))


def write_outputs(table: EmbeddingTable, output_dir: Path, formats: Sequence[str]) -> dict[str, Path]:
    """The requested formats and `summary.csv`; when no cell was embedded (every input failed) only the summary,
    which lists why: an empty `.h5ad` would read as a finished run."""
    outputs: dict[str, Path] = {}
    if not table.num_cells:
        formats = ()
    if "h5ad" in formats:
        outputs["h5ad"] = write_anndata(table, output_dir / OUTPUT_NAMES["h5ad"])
    if "parquet" in formats:
        outputs["parquet"] = write_parquet(table, output_dir / OUTPUT_NAMES["parquet"])
    if "npy" in formats:
        write_npy(table, output_dir)
        outputs["npy"] = output_dir
    outputs["summary"] = write_summary(table, output_dir / OUTPUT_NAMES["summary"])
    return outputs


def _run_chunks(
    embedding_model: EmbeddingModel,
    source: CellSource,
    chunks: list[Chunk],
    store: ChunkStore,
    config: EmbedConfig,
    device: torch.device,
    dtype: torch.dtype | None,
    preprocess_kwargs: dict[str, Any],
    output_dir: Path,
    show_progress: bool,
    fingerprint: str | None = None,
) -> int:
    """Compute and write `chunks`; returns how many were written (`fingerprint`: the model's, already hashed)."""
    from tqdm.auto import tqdm

    if not chunks:
        return 0
    runtime = build_runtime(config.runtime, embedding_model, device, dtype, config.compile, fingerprint=fingerprint)
    num_workers = min(config.num_workers, len(chunks))
    # where min-max is cheapest: on an accelerator, or batched in this process when it also reads; CPU workers
    # running beside a CPU model keep the processor (measured: benchmarks/results/embed_pipeline.md)
    raw_transfer = device.type != "cpu" or num_workers == 0
    loader = DataLoader(
        CellBatches(source, embedding_model.processor, chunks, config.batch_size, preprocess_kwargs, raw_transfer,
                    with_masks=config.save_attention),
        batch_size=None,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        worker_init_fn=_worker_init if num_workers else None,
        prefetch_factor=4 if num_workers else None,
    )
    # a known total (and so an ETA) for every input kind: cells when each input row is a fixed number of cells
    # (a wrapper CSV), else input items (fields of view, shard files), counted as their chunk completes
    per_item = source.cells_per_item
    total = sum(len(c.items) for c in chunks) * (per_item or 1)
    progress = tqdm(total=total, unit="cell" if per_item else "input", desc="embedding", disable=not show_progress,
                    dynamic_ncols=True)
    accumulators: dict[int, _ChunkAccumulator] = defaultdict(_ChunkAccumulator)
    written, failed, num_cells, started = 0, 0, 0, time.perf_counter()
    items_per_chunk = {c.index: len(c.items) for c in chunks}
    with torch.inference_mode():
        for piece in loader:
            index = piece["chunk"]
            if piece["end"]:
                result = (accumulators.pop(index, None) or _ChunkAccumulator()).finish(
                    piece["failures"], embedding_model.embedding_size, embedding_model.has_classifiers,
                    len(embedding_model.class_names),
                )
                store.write(index, result)
                written, failed = written + 1, failed + len(result.failures)
                progress.set_postfix(chunks=f"{written}/{len(chunks)}", cells=num_cells, failed_inputs=failed,
                                     refresh=False)
                # failed rows still advance the cell count; items advance when their chunk is done
                progress.update(len(result.failures) * per_item if per_item else items_per_chunk[index])
                continue
            pixel_values = model_inputs(piece, device, embedding_model.processor)
            embeddings, probabilities, attention = runtime(pixel_values)
            cells = piece["cells"]
            if config.save_attention:
                _save_attention(output_dir, cells, piece["masks"], pixel_values, attention,
                                embedding_model.processor.channel_names)
            accumulators[index].add(piece["order"], cells, embeddings, probabilities)
            num_cells += len(cells)
            if per_item:
                progress.update(len(cells))
    progress.close()
    elapsed = time.perf_counter() - started
    logger.info("embedded %d chunks in %.1f s", written, elapsed)
    return written


def _save_attention(output_dir: Path, cells: list[dict], masks: list, pixel_values: torch.Tensor,
                    attention: torch.Tensor, channel_names: Sequence[str]) -> None:
    pixels = pixel_values.float().cpu().numpy()
    maps = attention.float().cpu().numpy()
    for cell, mask, cell_pixels, cell_maps in zip(cells, masks, pixels, maps):
        path = cell_file_path(output_dir, cell["id"], ATTENTION_SUFFIX)
        save_attention_png(path, cell_pixels, cell_maps, channel_names, mask, title=cell["id"])
        cell["attention_map"] = path.relative_to(output_dir).as_posix()


def _autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "auto":
        on_gpu = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if on_gpu else None
    return PRECISIONS[precision]


def _precision_name(dtype: torch.dtype | None) -> str:
    return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]


def _preprocessing(processor: SubCellImageProcessor, preprocess_kwargs: dict[str, Any]) -> dict[str, Any]:
    settings = {k: v for k, v in processor.to_dict().items() if k not in ("image_processor_type", "auto_map")}
    settings.update(preprocess_kwargs)
    return settings


def _run_settings(
    embedding_model: EmbeddingModel,
    source: CellSource,
    config: EmbedConfig,
    chunk_size: int,
    dtype: torch.dtype | None,
    preprocess_kwargs: dict[str, Any],
) -> dict[str, Any]:
    """Everything that changes the numbers in the chunks; a resumed run must match it exactly."""
    describe = {k: v for k, v in source.describe().items() if k not in ("path", "shards")}
    return {
        "model_fingerprint": embedding_model.fingerprint(),
        "inputs": {**describe, "fingerprint": source.fingerprint()},
        "chunk_size": chunk_size,
        "batch_size": config.batch_size,
        "precision": _precision_name(dtype),
        "preprocessing": _preprocessing(embedding_model.processor, preprocess_kwargs),
        "save_attention": config.save_attention,
        "subcell_hf": __version__,
    }


def _uns(
    embedding_model: EmbeddingModel,
    source: CellSource,
    dtype: torch.dtype | None,
    preprocess_kwargs: dict[str, Any],
    num_failed: int,
) -> dict[str, Any]:
    model_config = embedding_model.model.config
    return {
        "model_id": embedding_model.name,
        "model_revision": embedding_model.revision or "",
        "model_commit": embedding_model.commit or "",
        "model_variant": getattr(model_config, "model_variant", None) or "",
        "channel_names": list(model_config.channel_names),
        "preprocessing": _preprocessing(embedding_model.processor, preprocess_kwargs),
        "precision": _precision_name(dtype),
        "input": source.describe(),
        "num_failed_inputs": num_failed,
        "subcell_hf_version": __version__,
    }


__all__ = [
    "CellBatches",
    "EmbedConfig",
    "EmbedResult",
    "EmbeddingModel",
    "EmbeddingSettingsError",
    "embed",
    "write_outputs",
]
