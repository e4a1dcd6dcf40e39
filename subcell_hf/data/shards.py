"""WebDataset shards of antibody records: writing them from a manifest, and walking them back.

The sampling unit of pretraining is the *part* (docs/data.md): each antibody's cells are dealt into
``parts_per_antibody`` (4, as the released writer) near-equal parts, card by card over its fields of view lined up
one after the other, so every part spans the fields; each part is one record. An antibody with fewer cells than
parts gets one part per cell. A manifest column ``mult`` (optional, a positive integer, the same on all rows of an
antibody) says how many times the loader visits each of the antibody's parts per epoch (the release's repeat for
balancing; stored once, repeated by the loader).

Shard layout (``<output_dir>/shard-000000.tar``, ...): one sample per part, key ``<antibody>-<part>``, three
members:

- ``<key>.cells.npy``: (n, C, S, S) crops in channel order, the fields' dtype (uint8 or uint16);
- ``<key>.masks.npy``: (n, S, S) bool, each cell's own segmentation mask, dilated by the crop options'
  `mask_dilation` (7) native pixels;
- ``<key>.json``: the record (`antibody`, `antibody_id`, `gene`, `channels`, `part`, `num_parts`, `mult`,
  `crop_size`, `output_size`) and ``cells``: one dict per cell with `image_id`, `cell_id`, `cell_line`, `plate`, `well`,
  `plate_position`, `bbox`, `centroid`, `area`, `locations` (names), `labels` (35-class multi-hot over
  `PRETRAINING_CLASSES`) and `localization_labels` (31-class multi-hot over `LOCALIZATION_CLASSES`).

Arrays are plain ``.npy`` (never pickled). A shard is closed after ``records_per_shard`` records or 1 GB.

Next to the shards: ``progress.json`` (which shards and antibodies are complete; lets an interrupted run resume
without rewriting finished shards) and ``summary.json`` (counts, `records_per_epoch` = parts x mult, and every
manifest row that failed, with why).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ..models.configuration_subcell import HPA_CHANNELS, LOCALIZATION_CLASSES, PRETRAINING_CLASSES
from .channels import check_channels
from .crops import CellCrop, CropOptions, crop_cell, find_cells, read_field
from ..utils.atomic_writes import atomic_write_text, check_replaceable, mark_output
from ..utils.hashing import sha256_bytes
from .manifest import antibody_id, multi_hot, parse_locations, read_manifest

SHARD_PATTERN = "shard-%06d.tar"
SHARD_GLOB = "shard-*.tar"
PARTIAL_SUFFIX = ".partial"
PROGRESS_FILE = "progress.json"
SUMMARY_FILE = "summary.json"
#: Parts (records) per antibody, as the released writer: every antibody gets 4 x mult draws per epoch.
DEFAULT_PARTS_PER_ANTIBODY = 4
MULT_COLUMN = "mult"
DEFAULT_RECORDS_PER_SHARD = 16
#: A shard is also closed once it holds this many bytes (the usual 0.1-1 GB streaming granularity).
MAX_SHARD_BYTES = 1e9
_FIELD_COUNTS = ("fields", "fields_without_cells", "skipped_border", "skipped_small")


@dataclass
class FailedRow:
    """A manifest row that produced no cells because it could not be used."""

    row: int  # 0-based data row of the manifest
    image_id: str
    reason: str


@dataclass
class ShardSummary:
    """What `write_shards` did; also written to ``summary.json``."""

    output_dir: str
    shards: list[str] = field(default_factory=list)
    num_records: int = 0
    records_per_epoch: int = 0  # parts x mult: the record visits of one epoch
    num_cells: int = 0
    num_antibodies: int = 0
    num_fields: int = 0
    fields_without_cells: int = 0
    skipped_border: int = 0
    skipped_small: int = 0
    resumed_shards: int = 0
    failed_rows: list[FailedRow] = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------------------------ one field
@dataclass
class _FieldResult:
    row: int
    crops: list[CellCrop]
    skipped_border: int = 0
    skipped_small: int = 0
    error: str | None = None


def _crop_row(task: tuple[int, dict], channel_names: Sequence[str], crop: CropOptions) -> _FieldResult:
    """Read and crop one manifest row; any failure becomes the row's reason, never an exception."""
    index, row = task
    try:
        channels, mask = read_field(row, channel_names)
        selection = find_cells(mask, min_area=crop.min_area, skip_border=crop.skip_border)
        crops = [crop_cell(channels, mask, cell, crop) for cell in selection.cells]
        return _FieldResult(index, crops, selection.skipped_border, selection.skipped_small)
    except Exception as error:  # reported per row in summary.json; the run goes on
        return _FieldResult(index, [], error=f"{type(error).__name__}: {error}")


# ------------------------------------------------------------------------------------------------ records
def _cell_metadata(row: dict, crop: CellCrop, locations: list[str]) -> dict:
    plate, well = str(row.get("plate", "")), str(row.get("well", ""))
    return {
        "image_id": str(row["image_id"]),
        "cell_id": int(crop.cell_id),
        "cell_line": str(row.get("cell_line", "")),
        "plate": plate,
        "well": well,
        "plate_position": f"{plate}/{well}",
        "bbox": list(crop.bbox),
        "centroid": [round(v, 2) for v in crop.centroid],
        "area": int(crop.area),
        "locations": locations,
        "labels": multi_hot(locations, PRETRAINING_CLASSES),
        "localization_labels": multi_hot(locations, LOCALIZATION_CLASSES),
    }


def group_key(cell: dict) -> str:
    """The group a cell belongs to: its field of view (`image_id`), as in the release; parts and draws are dealt
    round-robin over these."""
    return str(cell.get("image_id", ""))


def deal_into_parts(groups: Sequence[str | tuple], num_parts: int) -> list[list[int]]:
    """Split item indices into `num_parts` parts of near-equal size, each spanning the groups.

    Items are lined up group after group and dealt like cards, so a group with at least `num_parts` items has
    items in every part, and part sizes differ by at most one.
    """
    members: dict = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    lined_up = [index for items in members.values() for index in items]
    return [lined_up[part::num_parts] for part in range(num_parts)]


def record_key(antibody: str, part: int) -> str:
    """A tar-safe key (no dots or slashes): the antibody, plus a hash when characters had to be replaced."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", antibody)
    if safe != antibody:
        safe += "_" + hashlib.blake2b(antibody.encode(), digest_size=4).hexdigest()
    return f"{safe}-{part:04d}"


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def build_records(
    antibody: str,
    gene: str,
    cells: list[tuple[CellCrop, dict]],
    channel_names: Sequence[str],
    parts_per_antibody: int,
    crop: CropOptions,
    mult: int = 1,
) -> list[dict]:
    """The webdataset samples of one antibody: its cells dealt into `parts_per_antibody` near-equal parts over its
    fields of view (one part per cell when it has fewer cells), each visited `mult` times per epoch."""
    num_parts = min(parts_per_antibody, len(cells))
    parts = deal_into_parts([group_key(meta) for _, meta in cells], num_parts)
    samples = []
    for part, indices in enumerate(parts):
        record = {
            "antibody": antibody,
            "antibody_id": antibody_id(antibody),
            "gene": gene,
            "channels": list(channel_names),
            "part": part,
            "num_parts": num_parts,
            "mult": mult,
            "crop_size": crop.size,
            "output_size": crop.output_size,
            "cells": [cells[i][1] for i in indices],
        }
        samples.append(
            {
                "__key__": record_key(antibody, part),
                "cells.npy": _npy_bytes(np.stack([cells[i][0].image for i in indices])),
                "masks.npy": _npy_bytes(np.stack([cells[i][0].mask.astype(bool) for i in indices])),
                "json": json.dumps(record).encode("utf-8"),
            }
        )
    return samples


# ------------------------------------------------------------------------------------------------ progress
class _Progress:
    """``progress.json``: finished shards (name + record keys) and antibodies whose records are all in them."""

    def __init__(self, output_dir: Path, fingerprint: str):
        self.path = output_dir / PROGRESS_FILE
        self.fingerprint = fingerprint
        self.shards: list[dict] = []
        self.antibodies: dict[str, dict] = {}

    @classmethod
    def load(cls, output_dir: Path, fingerprint: str) -> _Progress:
        progress = cls(output_dir, fingerprint)
        if progress.path.is_file():
            saved = json.loads(progress.path.read_text())
            if saved.get("fingerprint") != fingerprint:
                raise FileExistsError(
                    f"{output_dir}: holds shards written from another manifest or with other options "
                    f"(fingerprint {saved.get('fingerprint')}, expected {fingerprint}); "
                    "pass overwrite=True (--overwrite) or choose another output folder"
                )
            # a shard listed but gone (deleted by hand) ends the usable prefix
            for shard in saved["shards"]:
                if not (output_dir / shard["name"]).is_file():
                    break
                progress.shards.append(shard)
            kept = {key for shard in progress.shards for key in shard["records"]}
            progress.antibodies = {
                name: stats for name, stats in saved["antibodies"].items() if set(stats["keys"]) <= kept
            }
        elif any(output_dir.glob(SHARD_GLOB)):
            raise FileExistsError(
                f"{output_dir}: holds shards but no {PROGRESS_FILE}; pass overwrite=True (--overwrite) "
                "or choose another output folder"
            )
        return progress

    @property
    def written_keys(self) -> set[str]:
        return {key for shard in self.shards for key in shard["records"]}

    def save(self) -> None:
        payload = {"fingerprint": self.fingerprint, "shards": self.shards, "antibodies": self.antibodies}
        atomic_write_text(self.path, json.dumps(payload))


class _ResumableShardWriter:
    """`webdataset.ShardWriter` writing ``*.tar.partial`` files renamed to ``*.tar`` when complete.

    When a shard completes, the antibodies whose records all went into complete shards are committed to
    ``progress.json``. The underlying writer is opened on the first record only (no empty shard on resume).
    """

    def __init__(self, output_dir: Path, progress: _Progress, records_per_shard: int):
        self.output_dir = output_dir
        self.progress = progress
        self.records_per_shard = records_per_shard
        self.writer = None
        self.current_keys: list[str] = []
        self.pending: dict[str, dict] = {}  # antibodies fully written to the open shard

    def write(self, sample: dict) -> None:
        import webdataset as wds

        if self.writer is None:
            pattern = str(self.output_dir / SHARD_PATTERN) + PARTIAL_SUFFIX
            self.writer = wds.ShardWriter(
                pattern,
                maxcount=self.records_per_shard,
                maxsize=MAX_SHARD_BYTES,
                post=self._finish_shard,
                start_shard=len(self.progress.shards),
                verbose=0,
                encoder=False,
            )
        self.writer.write(sample)
        self.current_keys.append(sample["__key__"])

    def antibody_done(self, antibody: str, stats: dict) -> None:
        if self.writer is None and set(stats["keys"]) <= self.progress.written_keys:
            self.progress.antibodies[antibody] = stats
        else:
            self.pending[antibody] = stats

    def _finish_shard(self, partial_name: str) -> None:
        final = Path(partial_name[: -len(PARTIAL_SUFFIX)])
        os.replace(partial_name, final)
        self.progress.shards.append({"name": final.name, "records": self.current_keys})
        self.current_keys = []
        self.progress.antibodies.update(self.pending)
        self.pending = {}
        self.progress.save()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        self.progress.antibodies.update(self.pending)
        self.pending = {}
        self.progress.save()


# ------------------------------------------------------------------------------------------------ the API
def write_shards(
    manifest: str | os.PathLike | pd.DataFrame,
    output_dir: str | os.PathLike,
    channel_names: Sequence[str] = HPA_CHANNELS,
    crop: CropOptions = CropOptions(),
    parts_per_antibody: int = DEFAULT_PARTS_PER_ANTIBODY,
    records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
    num_workers: int | None = None,
    overwrite: bool = False,
    show_progress: bool = True,
) -> ShardSummary:
    """Crop every field of a manifest and write antibody records as WebDataset shards (module docstring).

    Args:
        manifest: a CSV/Parquet path (see `subcell_hf.data.manifest`) or a DataFrame with absolute paths.
        output_dir: folder for ``shard-*.tar``, ``progress.json`` and ``summary.json``.
        channel_names: channels to stack, in HPA order (a variant's subset, protein last).
        crop: the crop geometry, skip rule and mask dilation (`subcell_hf.data.crops.CropOptions`; the defaults
            are the release's: 896 px windows stored at 448 px, masks dilated by 7 native pixels).
        parts_per_antibody: records (parts) per antibody, each spanning its fields of view (release: 4).
        records_per_shard: records per tar file.
        num_workers: processes cropping fields in parallel (default: all CPUs; 0 = in this process).
        overwrite: delete shards of an earlier run with other inputs instead of refusing.

    A rerun with the same inputs resumes: complete shards are kept as they are and only the rest is written.
    Rows that fail (missing file, channels of different sizes, a mask of another size, an unreadable image, an
    unknown location name) are listed in the summary with their row number and reason; the others are written.
    """
    from tqdm.auto import tqdm

    _check_options(channel_names, crop, parts_per_antibody, records_per_shard)
    table = manifest if isinstance(manifest, pd.DataFrame) else read_manifest(manifest, channel_names)
    table = table.reset_index(drop=True)
    mults = antibody_mults(table, str(manifest) if not isinstance(manifest, pd.DataFrame) else "manifest")
    options = {  # the keys and order of earlier releases: the same inputs give the same fingerprint (resume)
        "channel_names": list(channel_names),
        "crop_size": crop.size,
        "output_size": crop.output_size,
        "min_area": crop.min_area,
        "skip_border": crop.skip_border,
        "parts_per_antibody": parts_per_antibody,
        "mask_dilation": crop.mask_dilation,
        "records_per_shard": records_per_shard,
    }
    output_dir = Path(output_dir)
    if overwrite:  # only a previous output of this command, never a folder holding the inputs (atomic.py)
        inputs = [] if isinstance(manifest, pd.DataFrame) else [Path(manifest)]
        check_replaceable(output_dir, "shards", inputs)
    fresh = not output_dir.exists() or not any(output_dir.iterdir())
    output_dir.mkdir(parents=True, exist_ok=True)
    if fresh:
        mark_output(output_dir, "shards")
    if overwrite:
        _remove_outputs(output_dir)
    for stale in output_dir.glob(SHARD_GLOB + PARTIAL_SUFFIX):
        stale.unlink()
    progress = _Progress.load(output_dir, _fingerprint(table, options))
    resumed_shards = len(progress.shards)
    writer = _ResumableShardWriter(output_dir, progress, records_per_shard)

    rows_by_antibody, locations, failed = _plan(table)
    for stats in progress.antibodies.values():
        failed.update({f["row"]: FailedRow(**f) for f in stats["failed"]})
    todo = [name for name in sorted(rows_by_antibody) if name not in progress.antibodies]
    tasks = [(index, table.loc[index].to_dict()) for name in todo for index in rows_by_antibody[name]]
    crop_row = partial(_crop_row, channel_names=list(channel_names), crop=crop)
    written = progress.written_keys
    results = _map_ordered(crop_row, tasks, num_workers)
    bar = tqdm(total=len(tasks), desc="cropping fields", unit="field", disable=not show_progress)
    try:
        for name in todo:
            indices = rows_by_antibody[name]
            field_results = []
            for _ in indices:
                field_results.append(next(results))
                bar.update(1)
            cells, stats = _gather_antibody(table, field_results, locations)
            failed.update({f["row"]: FailedRow(**f) for f in stats["failed"]})
            stats["mult"] = mults[name]
            if cells:
                gene = str(table.at[indices[0], "gene"])
                for sample in build_records(name, gene, cells, channel_names, parts_per_antibody, crop, mults[name]):
                    stats["keys"].append(sample["__key__"])
                    if sample["__key__"] not in written:
                        writer.write(sample)
            writer.antibody_done(name, stats)
    finally:
        bar.close()
        writer.close()
        results.close()

    summary = _summarize(output_dir, progress, failed, resumed_shards, options)
    atomic_write_text(output_dir / SUMMARY_FILE, json.dumps(summary.to_dict(), indent=2))
    return summary


def _check_options(channel_names, crop, parts_per_antibody, records_per_shard):
    """The writer's own options (the crop options checked themselves when they were made)."""
    if not isinstance(crop, CropOptions):
        raise TypeError(f"crop: expected a subcell_hf.data.crops.CropOptions, found {type(crop).__name__}")
    if parts_per_antibody < 1 or records_per_shard < 1:
        raise ValueError(
            f"parts_per_antibody and records_per_shard must be >= 1, found {parts_per_antibody}, "
            f"{records_per_shard}"
        )
    in_hpa_order = [c for c in HPA_CHANNELS if c in channel_names]
    check_channels(list(channel_names or ()), in_hpa_order or list(HPA_CHANNELS), "channel_names", exact=True,
                   hint=f"give distinct HPA channels in the order {list(HPA_CHANNELS)}")


def antibody_mults(table: pd.DataFrame, source: str = "manifest") -> dict[str, int]:
    """Each antibody's `mult` (visits of each of its parts per epoch): the manifest's ``mult`` column, else 1."""
    antibodies = table["antibody"].astype(str)
    if MULT_COLUMN not in table.columns:
        return dict.fromkeys(antibodies, 1)
    mults: dict[str, int] = {}
    for index, (name, value) in enumerate(zip(antibodies, table[MULT_COLUMN])):
        try:
            number = float(value)
            if number != int(number) or number < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(
                f"{source}: row {index}: column mult must be a positive integer, found {value!r}"
            ) from None
        if mults.setdefault(name, int(number)) != int(number):
            raise ValueError(
                f"{source}: row {index}: antibody {name!r} has mult {int(number)}, an earlier row has {mults[name]}; "
                "mult is per antibody"
            )
    return mults


def _plan(table: pd.DataFrame) -> tuple[dict[str, list[int]], dict[int, list[str]], dict[int, FailedRow]]:
    """Rows grouped by antibody (manifest order), each row's parsed locations, and rows failing already here."""
    rows_by_antibody: dict[str, list[int]] = defaultdict(list)
    locations: dict[int, list[str]] = {}
    failed: dict[int, FailedRow] = {}
    for index, row in table.iterrows():
        try:
            locations[index] = parse_locations(row.get("locations", ""))
        except ValueError as error:
            failed[index] = FailedRow(index, str(row["image_id"]), f"locations: {error}")
            continue
        rows_by_antibody[str(row["antibody"])].append(index)
    return rows_by_antibody, locations, failed


def _gather_antibody(
    table: pd.DataFrame, results: list[_FieldResult], locations: dict[int, list[str]]
) -> tuple[list[tuple[CellCrop, dict]], dict]:
    """The cells (crop + metadata) of one antibody's fields, and its counts for ``progress.json``."""
    stats = {"keys": [], "cells": 0, "failed": [], **dict.fromkeys(_FIELD_COUNTS, 0)}
    cells: list[tuple[CellCrop, dict]] = []
    for result in results:
        if result.error is not None:
            stats["failed"].append(asdict(FailedRow(result.row, str(table.at[result.row, "image_id"]), result.error)))
            continue
        row = table.loc[result.row].to_dict()
        stats["fields"] += 1
        stats["fields_without_cells"] += not result.crops
        stats["skipped_border"] += result.skipped_border
        stats["skipped_small"] += result.skipped_small
        cells.extend((crop, _cell_metadata(row, crop, locations[result.row])) for crop in result.crops)
    stats["cells"] = len(cells)
    return cells, stats


def _summarize(
    output_dir: Path, progress: _Progress, failed: dict[int, FailedRow], resumed_shards: int, options: dict
) -> ShardSummary:
    summary = ShardSummary(
        output_dir=str(output_dir),
        shards=[shard["name"] for shard in progress.shards],
        resumed_shards=resumed_shards,
        failed_rows=sorted(failed.values(), key=lambda f: f.row),
        options=options,
    )
    for stats in progress.antibodies.values():
        summary.num_records += len(stats["keys"])
        summary.records_per_epoch += len(stats["keys"]) * stats.get("mult", 1)
        summary.num_cells += stats["cells"]
        summary.num_antibodies += bool(stats["keys"])
        summary.num_fields += stats["fields"]
        summary.skipped_border += stats["skipped_border"]
        summary.skipped_small += stats["skipped_small"]
        summary.fields_without_cells += stats["fields_without_cells"]
    return summary


def _fingerprint(table: pd.DataFrame, options: dict) -> str:
    """Identifies a run's inputs: a resume must see the same manifest and options."""
    manifest = table.to_csv(index=False).encode("utf-8")
    return sha256_bytes(manifest, json.dumps(options, sort_keys=True).encode("utf-8"))[:16]


def _remove_outputs(output_dir: Path) -> None:
    """Delete what an earlier `write_shards` wrote there (and nothing else)."""
    for path in list(output_dir.glob(SHARD_GLOB)) + list(output_dir.glob(SHARD_GLOB + PARTIAL_SUFFIX)):
        path.unlink()
    for name in (PROGRESS_FILE, SUMMARY_FILE):
        (output_dir / name).unlink(missing_ok=True)


def _map_ordered(function, tasks: list, num_workers: int | None) -> Iterator:
    """`function` over `tasks`, results in task order, in a process pool (closing the generator ends the pool)."""
    num_workers = (os.cpu_count() or 1) if num_workers is None else num_workers
    if num_workers <= 0 or len(tasks) <= 1:
        for task in tasks:
            yield function(task)
        return
    with multiprocessing.get_context().Pool(min(num_workers, len(tasks))) as pool:
        yield from pool.imap(function, tasks, chunksize=1)


# ------------------------------------------------------------------------------------------------ reading
def list_shards(shards: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Shard paths from a folder (its ``shard-*.tar``), a brace pattern (``shard-{000000..000009}.tar``), a
    single path, or a list of paths."""
    from webdataset.shardlists import expand_urls

    if isinstance(shards, (str, os.PathLike)):
        path = Path(shards)
        if path.is_dir():
            found = sorted(str(p) for p in path.glob(SHARD_GLOB))
            if not found:
                raise FileNotFoundError(f"{path}: no {SHARD_GLOB} files")
            return found
        return expand_urls(str(shards))
    return [str(s) for s in shards]


def decode_record(sample: dict) -> dict:
    """A raw webdataset sample (bytes per member) -> the record: `cells` (n, C, S, S), `masks` (n, S, S) bool,
    `metadata` (per-cell dicts), `antibody`, `antibody_id`, `gene`, `channels`, `key`."""
    record = json.loads(sample["json"])
    cells = np.lib.format.read_array(io.BytesIO(sample["cells.npy"]), allow_pickle=False)
    masks = np.lib.format.read_array(io.BytesIO(sample["masks.npy"]), allow_pickle=False)
    if cells.ndim != 4 or masks.shape != (cells.shape[0],) + cells.shape[2:] or len(record["cells"]) != len(cells):
        raise ValueError(
            f"record {sample.get('__key__')}: cells {cells.shape}, masks {masks.shape} and "
            f"{len(record['cells'])} metadata entries do not match"
        )
    return {
        "key": sample.get("__key__"),
        "cells": cells,
        "masks": masks.astype(bool, copy=False),
        "metadata": record.pop("cells"),
        **record,
    }


class ShardReadError(ValueError):
    """A shard, or one record of it, that cannot be read."""


def iter_records(
    shard_urls: str | os.PathLike | Sequence[str | os.PathLike],
    on_error: Callable[[str, str | None, Exception], None] | None = None,
) -> Iterator[dict]:
    """Every record of the shards once, in order, with no sampling or augmentation (for inference and
    evaluation). Accepts what `list_shards` accepts.

    A record that does not decode, or a damaged tar (then the rest of that file), is reported as
    `on_error(shard, record key or None, error)` and skipped: the other records of the shard are still read.
    Without `on_error` it raises `ShardReadError` naming the shard and record."""
    import webdataset as wds

    for url in list_shards(shard_urls):
        url = str(url)

        def damaged(error: Exception, url: str = url) -> bool:
            if on_error is None:
                raise ShardReadError(f"{url}: damaged shard ({type(error).__name__}: {error})") from error
            on_error(url, None, error)
            return True  # webdataset: go on with what can still be read

        samples = wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples(handler=damaged))
        for sample in samples:
            try:
                record = decode_record(sample)
            except Exception as error:  # noqa: BLE001 - any decoder failure is this record's, not the shard's
                key = sample.get("__key__")
                if on_error is None:
                    raise ShardReadError(f"{url} record {key}: {type(error).__name__}: {error}") from error
                on_error(url, key, error)
                continue
            yield record


__all__ = [
    "FailedRow",
    "ShardReadError",
    "ShardSummary",
    "antibody_mults",
    "build_records",
    "deal_into_parts",
    "decode_record",
    "group_key",
    "iter_records",
    "list_shards",
    "record_key",
    "write_shards",
]
