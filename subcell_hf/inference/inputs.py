"""The three kinds of input `subcell-hf embed` reads, as ordered lists of items that each give cells.

An *item* is the unit of work and of error reporting: one row of a wrapper CSV (one cell), one field of view of a
manifest (its cells, cropped on the fly) or one WebDataset shard (its records' cells). `iter_cells(index)` yields
`Cell`s and, for bad input, `InputFailure`s: it never raises for a bad row, so a run reports the row and goes on.

| kind | what | made by |
|---|---|---|
| `csv` | `r_image,y_image,b_image,g_image,output_prefix` rows, one crop per row (the original wrapper's format) | you |
| `fields` | a manifest of fields of view + cell-label masks | `subcell_hf.data` (`read_manifest`) |
| `shards` | WebDataset `.tar` shards of cropped cells | `subcell-hf shards` |
"""

from __future__ import annotations

import csv
import hashlib
import os
import posixpath
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from ..data.crops import CropOptions
from ..data.channels import ChannelMismatchError, check_channels
from ..data.io import ImageReadError, read_image
from ..utils.hashing import sha256_file
from ..options import INPUT_KINDS

#: The original wrapper's column for each channel: r = microtubules, y = ER, b = DNA (nucleus), g = protein.
WRAPPER_CHANNEL_COLUMNS: dict[str, str] = {
    "microtubules": "r_image",
    "er": "y_image",
    "dna": "b_image",
    "protein": "g_image",
}
ID_COLUMNS = {"output_prefix", "output_folder"}


@dataclass
class Cell:
    """One cell crop ready for the image processor."""

    id: str
    pixels: np.ndarray  # (C, H, W) in the model's channel order, the file's dtype
    source: str  # where it came from, as in `InputFailure.source`
    metadata: dict[str, Any] = field(default_factory=dict)  # plain str/int/float/bool values
    mask: np.ndarray | None = None  # (H, W) bool, the cell's own mask in the crop where known (fields, shards)


@dataclass
class InputFailure:
    """An input item (or part of one) that gave no cells, and why."""

    item: int
    id: str
    source: str  # where: "path_list.csv line 7", a field's image_id, a shard file
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "id": self.id, "source": self.source, "error": self.error}


class CellSource:
    """Base class: an ordered list of input items, each giving cells (see the module docstring)."""

    kind: str = ""
    #: items per resumable chunk when the caller does not say
    default_chunk_size: int = 256

    def __init__(self, channel_names: Sequence[str]):
        self.channel_names = list(channel_names)

    def __len__(self) -> int:
        raise NotImplementedError

    def iter_cells(self, index: int) -> Iterator[Cell | InputFailure]:
        raise NotImplementedError

    def fingerprint(self) -> str:
        """Changes whenever the inputs change: a resumed run refuses chunks computed from other inputs."""
        raise NotImplementedError

    @property
    def cells_per_item(self) -> int | None:
        """Cells each item gives when that is known in advance (for the progress bar's total)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": len(self)}

    def item_files(self, index: int) -> list[str]:
        """The files item `index` is read from (their size and modification time tell a rerun they changed)."""
        return []

    def signature(self, items: Sequence[int]) -> str:
        """Size and modification time of every file of `items`: a resumed run recomputes a chunk whose files
        changed in place (a fixed image, a rewritten shard), not only one whose list of inputs changed."""
        digest = hashlib.sha256()
        for index in items:
            for path in self.item_files(index):
                try:
                    stat = os.stat(path)
                    digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
                except OSError:
                    digest.update(f"{path}\0missing\n".encode())
        return digest.hexdigest()


# ------------------------------------------------------------------------------------------------ wrapper CSV
@dataclass(frozen=True)
class WrapperRow:
    line: int  # 1-based line number in the file
    id: str
    paths: dict[str, str]  # channel -> path ("" when blank)
    metadata: dict[str, str]


class WrapperCsvSource(CellSource):
    """The original SubCell wrapper's `path_list.csv`: one cell crop per row, one image file per channel.

    Columns `r_image, y_image, b_image, g_image` (microtubules, ER, DNA, protein) and `output_prefix` (the cell's
    id, which names its per-cell files; it may contain `/` for subfolders, and a leading `/` is read relative to
    the output folder). The legacy `output_folder` column is joined in front of the prefix. Lines starting with
    `#` are comments (a `#` in front of the header is allowed), blank lines are skipped, a channel the model does
    not use may be blank. Relative image paths are resolved against the CSV's folder. Other columns are kept as
    per-cell metadata.
    """

    kind = "csv"
    default_chunk_size = 256

    def __init__(self, path: str | os.PathLike, channel_names: Sequence[str]):
        super().__init__(channel_names)
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: input CSV not found")
        self.rows = self._parse()

    def _parse(self) -> list[WrapperRow]:
        with open(self.path, newline="", encoding="utf-8-sig") as handle:
            lines = [(number, line) for number, line in enumerate(handle, start=1)]
        content = [(n, line) for n, line in lines if line.strip()]
        if not content:
            expected = ",".join(WRAPPER_CHANNEL_COLUMNS.values())
            raise ValueError(f"{self.path}: empty CSV; expected a header {expected},output_prefix")
        header_line, header_text = content[0]
        header = [name.strip() for name in next(csv.reader([header_text.lstrip().lstrip("#")]))]
        needed = [WRAPPER_CHANNEL_COLUMNS[name] for name in self.channel_names]
        missing = [column for column in needed + ["output_prefix"] if column not in header]
        if missing:
            raise ValueError(
                f"{self.path} line {header_line}: missing columns {missing}; the model's channels "
                f"{self.channel_names} need {needed} and every row needs output_prefix; found {header}"
            )
        channel_columns = set(WRAPPER_CHANNEL_COLUMNS.values())
        rows, seen = [], {}
        root = self.path.resolve().parent
        for number, text in content[1:]:
            if text.lstrip().startswith("#"):
                continue
            values = next(csv.reader([text]))
            if len(values) > len(header) and any(value.strip() for value in values[len(header):]):
                raise ValueError(
                    f"{self.path} line {number}: {len(values)} values, expected at most {len(header)} (the header "
                    f"has {len(header)} columns); quote values that hold a comma"
                )
            values += [""] * (len(header) - len(values))
            record = {name: value.strip() for name, value in zip(header, values)}
            prefix = record.get("output_prefix", "")
            if record.get("output_folder"):
                prefix = str(PurePosixPath(record["output_folder"]) / prefix)
            # a leading "/" (the original README's "/subfolder_1/sample_1", or an absolute legacy output_folder)
            # names a path under the output folder, as the wrapper's string concatenation did
            # "a", "./a" and "a/" name one file: compare (and write) the normalised name
            cell_id = _normalised_prefix(prefix) or f"line{number}"
            if cell_id in seen:
                raise ValueError(
                    f"{self.path} line {number}: output_prefix {cell_id!r} repeats line {seen[cell_id]}; "
                    "every row needs its own prefix"
                )
            seen[cell_id] = number
            paths = {
                channel: str(root / record[column]) if record.get(column) and not os.path.isabs(record[column])
                else record.get(column, "")
                for channel, column in WRAPPER_CHANNEL_COLUMNS.items()
            }
            metadata = {k: v for k, v in record.items() if k not in channel_columns | ID_COLUMNS}
            rows.append(WrapperRow(number, cell_id, paths, metadata))
        if not rows:
            raise ValueError(f"{self.path}: no rows after the header (lines starting with # are comments)")
        return rows

    def unused_channels(self) -> list[str]:
        """Channels some rows give but the model does not read (they are ignored)."""
        unused = [c for c in WRAPPER_CHANNEL_COLUMNS if c not in self.channel_names]
        return [c for c in unused if any(row.paths[c] for row in self.rows)]

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def cells_per_item(self) -> int:
        return 1

    def fingerprint(self) -> str:
        return sha256_file(self.path)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": len(self), "path": str(self.path)}

    def item_files(self, index: int) -> list[str]:
        row = self.rows[index]
        return [row.paths[channel] for channel in self.channel_names if row.paths[channel]]

    def iter_cells(self, index: int) -> Iterator[Cell | InputFailure]:
        row = self.rows[index]
        where = f"{self.path.name} line {row.line}"
        try:
            pixels = self.read_row(row)
        except (ImageReadError, ValueError) as error:
            yield InputFailure(index, row.id, where, str(error))
            return
        if not pixels.any():  # the model would still give a confident-looking top-1 for it
            yield InputFailure(index, row.id, where, "every channel is 0 (a blank crop): nothing to embed or classify")
            return
        metadata = {"output_prefix": row.id, "line": row.line, **row.metadata}
        yield Cell(row.id, pixels, where, metadata)

    def read_row(self, row: WrapperRow) -> np.ndarray:
        """The row's channels stacked (C, H, W); raises naming the column, file, expected and found values."""
        if _unsafe_relative(row.id):
            raise ValueError(f"output_prefix {row.id!r}: expected a relative name without '..'")
        planes: list[tuple[str, np.ndarray]] = []
        for channel in self.channel_names:
            column = WRAPPER_CHANNEL_COLUMNS[channel]
            if not row.paths[channel]:
                raise ValueError(f"{column} ({channel}) is blank; the model's channels are {self.channel_names}")
            plane = read_image(row.paths[channel])
            if planes and plane.shape != planes[0][1].shape:
                first_channel, first = planes[0]
                raise ValueError(
                    f"{column} ({channel}, {row.paths[channel]}) is {plane.shape[0]}x{plane.shape[1]}, expected "
                    f"{first.shape[0]}x{first.shape[1]} like {WRAPPER_CHANNEL_COLUMNS[first_channel]} ({first_channel})"
                )
            planes.append((channel, plane))
        return np.stack([plane for _, plane in planes])


def _normalised_prefix(prefix: str) -> str:
    """`output_prefix` as the relative POSIX path it names: `\\` as `/`, no leading `/`, no `.` parts, no
    trailing `/`, repeated `/` once ("" when it names nothing)."""
    text = prefix.replace("\\", "/").strip().lstrip("/")
    if not text:
        return ""
    normal = posixpath.normpath(text)
    return "" if normal == "." else normal


def _unsafe_relative(name: str) -> bool:
    path = PurePosixPath(name.replace("\\", "/"))
    return path.is_absolute() or ".." in path.parts


# ------------------------------------------------------------------------------------------ fields of view
class FieldSource(CellSource):
    """A manifest of fields of view + cell-label masks (`subcell_hf.data.manifest`), cropped on the fly with
    `subcell_hf.data.crops` and the same `CropOptions` as `subcell-hf shards`: the cells (and, with `mask_cells`,
    the masked cells) are those the shards written with these options hold. A field with no usable cell is a
    failure."""

    kind = "fields"
    default_chunk_size = 8

    def __init__(
        self,
        manifest: str | os.PathLike,
        channel_names: Sequence[str],
        crop: CropOptions = CropOptions(),
        mask_cells: bool = False,
    ):
        from ..data.manifest import read_manifest

        super().__init__(channel_names)
        self.path = Path(manifest)
        self.table = read_manifest(self.path, self.channel_names)
        self.crop = crop
        self.mask_cells = mask_cells

    def __len__(self) -> int:
        return len(self.table)

    def item_files(self, index: int) -> list[str]:
        from ..data.manifest import IMAGE_COLUMN, MASK_COLUMN

        row = self.table.iloc[index]
        columns = [*self.channel_names, IMAGE_COLUMN, MASK_COLUMN]
        return [str(row[column]) for column in columns if column in row and row[column]]

    def fingerprint(self) -> str:
        return sha256_file(self.path)

    def describe(self) -> dict[str, Any]:
        crop = self.crop.to_dict()  # the keys of earlier runs first, so that their settings still resume
        return {
            "kind": self.kind, "items": len(self), "path": str(self.path), "crop_size": crop.pop("crop_size"),
            "output_size": crop.pop("output_size"), "min_area": crop.pop("min_area"),
            "skip_border": crop.pop("skip_border"), "mask_cells": self.mask_cells,
            **({"mask_dilation": crop["mask_dilation"]} if self.mask_cells else {}),
        }

    def iter_cells(self, index: int) -> Iterator[Cell | InputFailure]:
        from ..data.crops import FieldError, crop_cell, find_cells, read_field
        from ..data.manifest import CHANNEL_MAP_COLUMN, IMAGE_COLUMN, MASK_COLUMN

        row = self.table.iloc[index]
        image_id = str(row["image_id"])
        try:
            channels, mask = read_field(row, self.channel_names)
        except FieldError as error:
            yield InputFailure(index, image_id, image_id, str(error))
            return
        selection = find_cells(mask, min_area=self.crop.min_area, skip_border=self.crop.skip_border)
        if not selection.cells:
            yield InputFailure(
                index, image_id, image_id,
                f"mask ({row[MASK_COLUMN]}) has no usable cells: {int(mask.max())} labels, "
                f"{selection.skipped_border} skipped at the border, {selection.skipped_small} smaller than "
                f"min_area={self.crop.min_area}",
            )
            return
        path_columns = {*self.channel_names, *WRAPPER_CHANNEL_COLUMNS, MASK_COLUMN, IMAGE_COLUMN, CHANNEL_MAP_COLUMN}
        field_metadata = {k: _plain(v) for k, v in row.items() if k not in path_columns}
        for box in selection.cells:
            crop = crop_cell(channels, mask, box, self.crop)
            pixels = crop.image * crop.mask.astype(crop.image.dtype) if self.mask_cells else crop.image
            top, left, bottom, right = crop.bbox
            yield Cell(
                cell_id_for(image_id, crop.cell_id),
                pixels,
                image_id,
                {
                    **field_metadata, "cell_label": int(crop.cell_id), "bbox_top": top, "bbox_left": left,
                    "bbox_bottom": bottom, "bbox_right": right, "centroid_row": float(crop.centroid[0]),
                    "centroid_col": float(crop.centroid[1]), "area": int(box.area),
                },
                crop.mask,
            )


def cell_id_for(image_id: str, cell_label: int) -> str:
    """The id of a cell cropped from a field of view: the same from fields and from shards."""
    return f"{image_id}_cell{int(cell_label):04d}"


def _plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so metadata serialises to JSON and to AnnData."""
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# -------------------------------------------------------------------------------------------------- shards
class ShardSource(CellSource):
    """WebDataset shards written by `subcell-hf shards` (`subcell_hf.data.shards`): one item per shard file.

    Records hold their channel names; a model reading fewer channels (e.g. dna-protein on four-channel shards)
    takes its own by name. Per-cell metadata is flattened to the columns a field manifest gives.
    """

    kind = "shards"
    default_chunk_size = 1

    def __init__(self, urls: str | os.PathLike | Sequence[str], channel_names: Sequence[str], mask_cells: bool = False):
        from ..data.shards import list_shards

        super().__init__(channel_names)
        self.urls = list_shards(urls)
        if not self.urls:
            raise FileNotFoundError(f"no shard files in {urls!r}")
        self.mask_cells = mask_cells

    def __len__(self) -> int:
        return len(self.urls)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for url in self.urls:  # size and modification time: a shard rewritten in place (tar sizes are padded to
            # 10 KiB blocks, so regenerated shards often keep their size) is not mistaken for the old one
            stat = os.stat(url) if os.path.isfile(url) else None
            size, modified = (stat.st_size, stat.st_mtime_ns) if stat else (-1, -1)
            digest.update(f"{Path(url).name}\0{size}\0{modified}\n".encode())
        return digest.hexdigest()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "items": len(self), "shards": list(self.urls), "mask_cells": self.mask_cells}

    def item_files(self, index: int) -> list[str]:
        return [str(self.urls[index])]

    def iter_cells(self, index: int) -> Iterator[Cell | InputFailure]:
        from ..data.shards import iter_records

        url = self.urls[index]
        name = Path(url).name
        skipped: list[InputFailure] = []

        def skip(shard: str, key: str | None, error: Exception) -> None:  # the record is lost, not the shard
            what = f"record {key}" if key else "damaged tar (the rest of the file)"
            skipped.append(InputFailure(index, f"{name}:{key}" if key else name, f"{name} {what}",
                                        f"unreadable {what} ({type(error).__name__}: {error})"))

        try:
            for record in iter_records([url], on_error=skip):
                yield from skipped
                skipped.clear()
                yield from self._record_cells(index, name, record)
        except Exception as error:  # noqa: BLE001 - an unreadable shard is one failed item
            yield InputFailure(index, name, url, f"unreadable shard ({type(error).__name__}: {error})")
        yield from skipped

    def _record_cells(self, index: int, name: str, record: dict) -> Iterator[Cell | InputFailure]:
        where = f"{name} record {record.get('key')}"
        channels = list(record.get("channels") or self.channel_names)
        try:
            order = check_channels(channels, self.channel_names, where, hint="the model reads the expected ones")
        except ChannelMismatchError as error:
            yield InputFailure(index, f"{name}:{record.get('key')}", where, str(error))
            return
        cells = np.asarray(record["cells"])[:, order]
        if self.mask_cells:
            cells = cells * np.asarray(record["masks"])[:, None].astype(cells.dtype)
        shared = {k: _plain(record.get(k, "")) for k in ("antibody", "gene")}
        masks = np.asarray(record["masks"]) > 0 if record.get("masks") is not None else [None] * len(cells)
        for pixels, meta, mask in zip(cells, record["metadata"], masks):
            metadata = {**shared, **_flat_cell_metadata(meta), "shard": name, "record": str(record.get("key"))}
            yield Cell(cell_id_for(str(meta["image_id"]), int(meta["cell_id"])), pixels, where, metadata, mask)


def _flat_cell_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """A shard's per-cell dict -> the scalar columns a field manifest gives (bbox and centroid split, locations
    joined with `;`, the multi-hot label vectors left out)."""
    flat: dict[str, Any] = {}
    for key, value in meta.items():
        if key in ("labels", "localization_labels"):
            continue
        if key == "cell_id":
            flat["cell_label"] = int(value)
        elif key == "bbox":
            flat.update(zip(("bbox_top", "bbox_left", "bbox_bottom", "bbox_right"), (int(v) for v in value)))
        elif key == "centroid":
            flat.update(zip(("centroid_row", "centroid_col"), (float(v) for v in value)))
        elif isinstance(value, (list, tuple)):
            flat[key] = ";".join(str(v) for v in value)
        else:
            flat[key] = _plain(value)
    return flat


# -------------------------------------------------------------------------------------------- auto detection
def open_source(
    inputs: str | os.PathLike | Sequence[str],
    channel_names: Sequence[str],
    kind: str = "auto",
    crop: CropOptions = CropOptions(),
    mask_cells: bool = False,
) -> CellSource:
    """The `CellSource` for `inputs`. `kind="auto"`: `.tar` files, patterns or a folder of them are shards, a table
    with the wrapper's `g_image` column is a wrapper CSV, a table with a `mask` column is a field manifest.
    The crop options apply to fields; `mask_cells` (zero the pixels outside the cell's mask, dilated by
    `crop.mask_dilation` for fields as the shards store it) to fields and shards."""
    if kind == "auto":
        kind = detect_kind(inputs)
    if kind not in INPUT_KINDS:
        raise ValueError(f"unknown input kind {kind!r}; expected one of {INPUT_KINDS} or 'auto'")
    if kind == "shards":
        return ShardSource(inputs, channel_names, mask_cells=mask_cells)
    if not isinstance(inputs, (str, os.PathLike)):
        raise ValueError(f"{kind} input is one CSV/Parquet file, found {inputs!r}")
    if kind == "csv":
        return WrapperCsvSource(inputs, channel_names)
    return FieldSource(inputs, channel_names, crop, mask_cells)


def detect_kind(inputs: str | os.PathLike | Sequence[str]) -> str:
    names = [str(inputs)] if isinstance(inputs, (str, os.PathLike)) else [str(i) for i in inputs]
    if all(".tar" in name for name in names) or (len(names) == 1 and Path(names[0]).is_dir()):
        return "shards"
    if len(names) != 1:
        raise ValueError(f"several inputs {names}: only shards (.tar) can be given as a list")
    path = Path(names[0])
    if not path.is_file():
        raise FileNotFoundError(f"{path}: input file not found")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        columns = pq.read_schema(path).names
    else:
        with open(path, encoding="utf-8-sig") as handle:
            header = next((line for line in handle if line.strip()), "")
        columns = [c.strip() for c in next(csv.reader([header.lstrip().lstrip("#")]), [])]
    if "g_image" in columns:
        return "csv"
    if "mask" in columns:
        return "fields"
    raise ValueError(
        f"{path}: cannot tell the input kind from its columns {columns}: a wrapper CSV has "
        f"{','.join(WRAPPER_CHANNEL_COLUMNS.values())},output_prefix; a field manifest has channel columns and mask"
    )


__all__ = [
    "INPUT_KINDS",
    "WRAPPER_CHANNEL_COLUMNS",
    "Cell",
    "CellSource",
    "FieldSource",
    "InputFailure",
    "ShardSource",
    "WrapperCsvSource",
    "cell_id_for",
    "detect_kind",
    "open_source",
]
