"""The manifest of fields of view, and the metadata facts derived from it.

A manifest is a CSV or Parquet table with one row per field of view:

| column | meaning |
|---|---|
| `microtubules`, `er`, `dna`, `protein` | path of each channel's image (only the channels you shard are needed) |
| `image` | instead of the channel columns: one multi-channel file per field (OME-TIFF, OME-Zarr, multi-page TIFF) |
| `channel_map` | optional, with `image`: which file channel holds each model channel, e.g. `dna=Hoechst;protein=2` |
| `mask` | path of the integer cell-label image (0 = background, k = cell k) |
| `image_id` | unique name of the field of view |
| `antibody` | the antibody: all cells stained with one antibody form one pretraining record |
| `gene`, `cell_line`, `plate`, `well` | optional metadata ("" when absent) |
| `locations` | optional `;`-separated localization names from `PRETRAINING_CLASSES` (case-insensitive) |

Relative paths are resolved against the manifest's folder. Extra columns (e.g. the synthetic `pattern`) are kept.
A row with an `image` path reads its channels from that file (`subcell_hf.data.io.read_channels`): by the channel
names in its metadata (`DAPI`, `Tubulin`, `GFP`... see `CHANNEL_ALIASES`), by `channel_map` where given (file
channel name or 0-based index), or in the model's order when the file names none; a row without one reads the
channel columns.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd

from ..models.configuration_subcell import HPA_CHANNELS, LOCALIZATION_CLASSES, PRETRAINING_CLASSES
from .channels import check_channels

MASK_COLUMN = "mask"
IMAGE_COLUMN = "image"
CHANNEL_MAP_COLUMN = "channel_map"
REQUIRED_COLUMNS: tuple[str, ...] = (MASK_COLUMN, "image_id", "antibody")
OPTIONAL_COLUMNS: tuple[str, ...] = ("gene", "cell_line", "plate", "well", "locations")
LOCATION_SEPARATOR = ";"

_CANONICAL_LOCATIONS = {name.lower(): name for name in PRETRAINING_CLASSES + LOCALIZATION_CLASSES}


class ManifestError(ValueError):
    """The manifest as a whole cannot be used (unreadable, or columns missing)."""


def read_manifest(path: str | os.PathLike, channel_names: Sequence[str] = HPA_CHANNELS) -> pd.DataFrame:
    """Read and check a CSV/Parquet manifest; path columns come back absolute, metadata columns as strings.

    Row problems (a missing file, an unknown location) are not checked here: `write_shards` reports them per row.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    if path.suffix.lower() == ".parquet":
        table = pd.read_parquet(path)
    elif path.suffix.lower() in (".csv", ".tsv"):
        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
    else:
        raise ManifestError(f"{path}: expected a .csv, .tsv or .parquet manifest, found {path.suffix!r}")
    if IMAGE_COLUMN not in table.columns:  # one file per channel: a column per channel
        check_channels(
            [column for column in table.columns if column in HPA_CHANNELS or column in channel_names],
            channel_names, f"{path} (channel columns)", error=ManifestError,
            hint=f"give a path column per channel, or an {IMAGE_COLUMN!r} column (one multi-channel file per field)",
        )
    expected = list(REQUIRED_COLUMNS)
    missing = [column for column in expected if column not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing columns {missing}; expected at least {expected}, found {list(table.columns)}"
        )
    if len(table) == 0:
        raise ManifestError(f"{path}: the manifest has no rows")
    duplicated = table["image_id"][table["image_id"].duplicated()].unique().tolist()
    if duplicated:
        raise ManifestError(f"{path}: image_id must be unique, found repeated values {duplicated[:5]}")
    for column in OPTIONAL_COLUMNS:
        if column not in table.columns:
            table[column] = ""
    for column in ("image_id", "antibody") + OPTIONAL_COLUMNS:
        table[column] = table[column].fillna("").astype(str)
    root = path.resolve().parent
    for column in [*channel_names, IMAGE_COLUMN, MASK_COLUMN]:
        if column in table.columns:
            table[column] = [_resolve(value, root) for value in table[column]]
    if CHANNEL_MAP_COLUMN in table.columns:
        table[CHANNEL_MAP_COLUMN] = table[CHANNEL_MAP_COLUMN].fillna("").astype(str)
        for image_id, text in zip(table["image_id"], table[CHANNEL_MAP_COLUMN]):
            try:
                parse_channel_map(text)
            except ValueError as error:
                raise ManifestError(f"{path} (image_id {image_id}): {CHANNEL_MAP_COLUMN}: {error}") from None
    return table.reset_index(drop=True)


def _resolve(value, root: Path) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or str(value) == "":
        return ""
    value = Path(str(value)).expanduser()
    return str(value if value.is_absolute() else root / value)


def parse_locations(text: str | None) -> list[str]:
    """`"Nucleoli;cytosol"` -> `["Nucleoli", "Cytosol"]` (canonical spelling); unknown names are an error."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return []
    names = []
    for part in str(text).split(LOCATION_SEPARATOR):
        part = part.strip()
        if not part:
            continue
        canonical = _CANONICAL_LOCATIONS.get(part.lower())
        if canonical is None:
            raise ValueError(f"unknown location {part!r}; expected names from PRETRAINING_CLASSES")
        if canonical not in names:
            names.append(canonical)
    return names


def parse_channel_map(text: str | None) -> dict[str, str | int]:
    """`"dna=Hoechst;protein=2"` -> `{"dna": "Hoechst", "protein": 2}`: model channel -> file channel name or
    0-based index ({} for a blank cell)."""
    if text is None or (isinstance(text, float) and pd.isna(text)):
        return {}
    mapping: dict[str, str | int] = {}
    for part in str(text).split(LOCATION_SEPARATOR):
        if not part.strip():
            continue
        channel, separator, value = (piece.strip() for piece in part.partition("="))
        if not separator or not channel or not value:
            raise ValueError(f"expected model_channel=file_channel pairs separated by ';', found {part.strip()!r}")
        if channel not in HPA_CHANNELS:
            raise ValueError(f"{channel!r} is not a SubCell channel; expected any of {list(HPA_CHANNELS)}")
        mapping[channel] = int(value) if value.isdigit() else value
    return mapping


def multi_hot(names: Iterable[str], classes: Sequence[str]) -> list[int]:
    """0/1 vector over `classes`; names outside `classes` are ignored (e.g. "Rods & Rings" in the 31 classes)."""
    present = set(names)
    return [int(name in present) for name in classes]


def antibody_id(antibody: str) -> int:
    """A stable non-negative int64 id for an antibody name: the same in every process, node and run."""
    digest = hashlib.blake2b(str(antibody).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


__all__ = [
    "CHANNEL_MAP_COLUMN",
    "IMAGE_COLUMN",
    "LOCATION_SEPARATOR",
    "MASK_COLUMN",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "ManifestError",
    "antibody_id",
    "multi_hot",
    "parse_channel_map",
    "parse_locations",
    "read_manifest",
]
