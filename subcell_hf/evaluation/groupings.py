"""The paper's location groupings: the HPA classes mapped onto coarser groups (`--grouping "Grouping 1"`).

The table is `subcell_hf/evaluation/data/location_group_mapping.tsv` (vendored; see the README there): one row per
original HPA location name, one column per grouping (`Grouping 1`, `Grouping 2`, `Grouping 3`, `Grouping dl2`,
`Grouping OpenCell`). An empty cell leaves that class out of the grouping; a class the table does not list (the
ensembles' `Negative`) is left out of every grouping.

Scores are mapped with `group_scores`: a cell's score for a group is the highest score of the group's classes
(the group is predicted as strongly as its most likely member), and its target is 1 when any of its classes
belongs to the group.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from .splits import DATA_DIR

GROUPING_TABLE = DATA_DIR / "location_group_mapping.tsv"
CLASS_COLUMN = "Original annotation"


@lru_cache(maxsize=1)
def _table() -> tuple[tuple[str, ...], dict[str, dict[str, str]]]:
    with GROUPING_TABLE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    groupings = tuple(column for column in rows[0] if column != CLASS_COLUMN)
    mapping = {
        grouping: {row[CLASS_COLUMN].strip(): (row[grouping] or "").strip() for row in rows} for grouping in groupings
    }
    return groupings, mapping


def available_groupings() -> tuple[str, ...]:
    """The grouping names of the table, in its column order."""
    return _table()[0]


def grouping_map(grouping: str) -> dict[str, str]:
    """Class name -> group name for the classes that `grouping` keeps (those with a non-empty cell)."""
    groupings, mapping = _table()
    if grouping not in groupings:
        raise ValueError(f"unknown grouping {grouping!r}; the table {GROUPING_TABLE.name} has {list(groupings)}")
    return {name: group for name, group in mapping[grouping].items() if group}


def group_names(grouping: str, classes: Sequence[str]) -> list[str]:
    """The groups that `classes` map to, in order of first appearance."""
    mapping = grouping_map(grouping)
    return list(dict.fromkeys(mapping[name] for name in classes if name in mapping))


def group_scores(
    y_true: np.ndarray, y_score: np.ndarray, classes: Sequence[str], grouping: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(N, L) targets and scores over `classes` -> (N, G) over the groups of `grouping` (module docstring).

    The last axis may be preceded by others (e.g. (N, heads, L) scores): the groups replace the last axis.
    """
    mapping = grouping_map(grouping)
    groups = group_names(grouping, classes)
    if not groups:
        raise ValueError(f"none of the classes {list(classes)[:5]}... is in {grouping!r}")
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    grouped_true = np.zeros(y_true.shape[:-1] + (len(groups),), dtype=y_true.dtype)
    grouped_score = np.zeros(y_score.shape[:-1] + (len(groups),), dtype=np.float64)
    for index, group in enumerate(groups):
        members = [i for i, name in enumerate(classes) if mapping.get(name) == group]
        grouped_true[..., index] = y_true[..., members].max(axis=-1)
        grouped_score[..., index] = y_score[..., members].max(axis=-1)
    return grouped_true, grouped_score, groups
