"""Which antibodies train, validate and test: the published SubCell split, a user's split file, or none.

The paper's classifiers and metrics use one fixed split of HPA antibodies (10,433 train / 1,487 validation /
3,460 test), vendored in `subcell_hf/evaluation/data/splits/` (see the README there for the source and licence).
`resolve_split` turns the `--split` option of `recipes/train_classifiers.py` and `recipes/evaluate_model.py` into an
`AntibodySplit`:

- `"published"`: the vendored lists;
- `"random"`: `None`, i.e. no list (training holds out a random share of antibodies for validation, evaluation
  scores every cell it is given);
- a path: a folder holding `train_antibodies.txt`, `valid_antibodies.txt`, `test_antibodies.txt` (the published
  layout; a missing file is an empty list), or a `.csv` / `.tsv` table with columns `antibody` and `split`
  (values `train`, `valid`, `test`).

`AntibodySplit.report` counts how many antibodies of each list the data holds, and `AntibodySplit.rows` refuses
a list of which the data holds no antibody, naming the list, its size and a few ids on each side.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
SPLIT_CHOICES: tuple[str, ...] = ("published", "random")
DATA_DIR = Path(__file__).resolve().parent / "data"
PUBLISHED_SPLIT_DIR = DATA_DIR / "splits"


@dataclass(frozen=True)
class AntibodySplit:
    """Antibody ids per split name (`train`, `valid`, `test`) and where they come from."""

    source: str
    antibodies: Mapping[str, frozenset[str]]

    def __post_init__(self):
        overlap = {
            (a, b): sorted(self.antibodies[a] & self.antibodies[b])[:5]
            for i, a in enumerate(SPLIT_NAMES)
            for b in SPLIT_NAMES[i + 1 :]
            if self.antibodies[a] & self.antibodies[b]
        }
        if overlap:
            raise ValueError(f"{self.source}: an antibody must be in one split only, found shared ids {overlap}")

    def assign(self, antibodies: Sequence[str]) -> np.ndarray:
        """The split name of each entry of `antibodies` ("" where no list holds it)."""
        antibodies = np.asarray(antibodies).astype(str)
        names = np.full(len(antibodies), "", dtype=object)
        for split in SPLIT_NAMES:
            names[np.isin(antibodies, list(self.antibodies[split]))] = split
        return names

    def report(self, antibodies: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per split: antibodies listed, listed antibodies the data holds, and their cells; plus the data's
        antibodies (and cells) that no list holds, under `"unlisted"`."""
        antibodies = np.asarray(antibodies).astype(str)
        assigned = self.assign(antibodies)
        report = {}
        for split in SPLIT_NAMES:
            rows = assigned == split
            report[split] = {
                "listed_antibodies": len(self.antibodies[split]),
                "antibodies_found": len(np.unique(antibodies[rows])),
                "cells": int(rows.sum()),
            }
        rows = assigned == ""
        report["unlisted"] = {"antibodies_found": len(np.unique(antibodies[rows])), "cells": int(rows.sum())}
        return report

    def rows(self, antibodies: Sequence[str], split: str) -> np.ndarray:
        """Boolean mask of the entries of `antibodies` in `split`; an error when there is none."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, found {split!r}")
        antibodies = np.asarray(antibodies).astype(str)
        mask = self.assign(antibodies) == split
        if not mask.any():
            present = sorted(set(antibodies.tolist()))
            listed = sorted(self.antibodies[split])
            raise ValueError(
                f"none of the {len(present)} antibodies in the data is in the {split!r} list of the {self.source} "
                f"split ({len(listed)} ids, e.g. {listed[:3]}); the data holds e.g. {present[:3]}. For data that is "
                "not the HPA release, pass --split random or a split file"
            )
        return mask


def format_report(report: Mapping[str, Mapping[str, int]], source: str) -> str:
    """One line per split, for logs and the console."""
    lines = [f"antibody split {source}:"]
    for split in SPLIT_NAMES:
        entry = report[split]
        lines.append(
            f"  {split}: {entry['antibodies_found']} of {entry['listed_antibodies']} listed antibodies in the data "
            f"({entry['cells']} cells)"
        )
    unlisted = report["unlisted"]
    lines.append(f"  in no list: {unlisted['antibodies_found']} antibodies ({unlisted['cells']} cells), left out")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def published_split() -> AntibodySplit:
    """The published SubCell antibody split (vendored lists)."""
    return read_split(PUBLISHED_SPLIT_DIR, source="published")


def read_split(path: str | os.PathLike, source: str | None = None) -> AntibodySplit:
    """A split from a folder of `<split>_antibodies.txt` files or a `.csv` / `.tsv` table (`antibody`, `split`)."""
    path = Path(path)
    source = source or str(path)
    if path.is_dir():
        files = {split: path / f"{split}_antibodies.txt" for split in SPLIT_NAMES}
        if not any(file.is_file() for file in files.values()):
            raise ValueError(f"{path}: expected {', '.join(f.name for f in files.values())} in this folder, found none")
        return AntibodySplit(source, {split: _read_ids(file) for split, file in files.items()})
    if path.suffix.lower() in (".csv", ".tsv") and path.is_file():
        import pandas as pd

        table = pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str, keep_default_na=False)
        missing = [column for column in ("antibody", "split") if column not in table.columns]
        if missing:
            raise ValueError(f"{path}: expected columns ['antibody', 'split'], found {list(table.columns)}")
        unknown = sorted(set(table["split"]) - set(SPLIT_NAMES))
        if unknown:
            raise ValueError(f"{path}: column 'split' must hold {list(SPLIT_NAMES)}, found {unknown}")
        ids = {split: frozenset(table.loc[table["split"] == split, "antibody"].str.strip()) for split in SPLIT_NAMES}
        return AntibodySplit(source, ids)
    raise ValueError(
        f"--split must be one of {SPLIT_CHOICES}, a folder of <split>_antibodies.txt files or a .csv/.tsv file "
        f"with columns antibody and split; found {str(path)!r}"
    )


def resolve_split(spec: str | os.PathLike | AntibodySplit | None) -> AntibodySplit | None:
    """`"published"` -> the published split, `"random"` / None -> None (no list), a path -> `read_split`."""
    if spec is None or isinstance(spec, AntibodySplit):
        return spec
    if str(spec) == "published":
        return published_split()
    if str(spec) == "random":
        return None
    return read_split(spec)


def _read_ids(path: Path) -> frozenset[str]:
    if not path.is_file():
        return frozenset()
    return frozenset(line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
