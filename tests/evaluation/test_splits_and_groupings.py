"""The vendored published split and location groupings: package data, selection by antibody, the mapping table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from subcell_hf.evaluation import available_groupings, group_scores, grouping_map, published_split, read_split
from subcell_hf.evaluation.splits import DATA_DIR, format_report, resolve_split
from subcell_hf.models import LOCALIZATION_CLASSES, PRETRAINING_CLASSES


def test_published_split_has_the_papers_sizes_and_its_licence():
    split = published_split()
    sizes = {name: len(ids) for name, ids in split.antibodies.items()}
    assert sizes == {"train": 10433, "valid": 1487, "test": 3460}
    assert "MIT License" in (DATA_DIR / "LICENSE.subcell-embed").read_text()
    assert "CellProfiling/subcell-embed" in (DATA_DIR / "README.md").read_text()
    assert resolve_split("published") is split and resolve_split("random") is None


def test_split_selects_exactly_the_listed_antibodies_and_reports_counts():
    split = published_split()
    train = sorted(split.antibodies["train"])[:3]
    test = sorted(split.antibodies["test"])[:2]
    antibodies = np.array([train[0]] * 4 + [train[1], train[2], test[0], test[0], test[1], "HPA999999"])
    assert split.rows(antibodies, "test").tolist() == [False] * 6 + [True] * 3 + [False]
    report = split.report(antibodies)
    assert report["train"] == {"listed_antibodies": 10433, "antibodies_found": 3, "cells": 6}
    assert report["test"] == {"listed_antibodies": 3460, "antibodies_found": 2, "cells": 3}
    assert report["valid"]["antibodies_found"] == 0 and report["unlisted"] == {"antibodies_found": 1, "cells": 1}
    assert "test: 2 of 3460 listed antibodies in the data (3 cells)" in format_report(report, "published")
    with pytest.raises(ValueError, match=r"none of the 6 antibodies in the data is in the 'valid' list.*split random"):
        split.rows(antibodies, "valid")


def test_user_split_files_folder_and_table(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "train_antibodies.txt").write_text("AB1\nAB2\n")
    (tmp_path / "folder" / "test_antibodies.txt").write_text("AB3\n")
    folder = read_split(tmp_path / "folder")
    assert folder.antibodies == {"train": {"AB1", "AB2"}, "valid": frozenset(), "test": {"AB3"}}
    table = tmp_path / "split.csv"
    table.write_text("antibody,split\nAB1,train\nAB3,test\nAB4,valid\n")
    assert resolve_split(table).assign(["AB4", "AB1", "zz"]).tolist() == ["valid", "train", ""]
    table.write_text("antibody,split\nAB1,holdout\n")
    with pytest.raises(ValueError, match=r"split\.csv: column 'split' must hold"):
        read_split(table)
    table.write_text("antibody,split\nAB1,train\nAB1,test\n")
    with pytest.raises(ValueError, match="an antibody must be in one split only"):
        read_split(table)
    with pytest.raises(ValueError, match="--split must be one of"):
        resolve_split(tmp_path / "nowhere.txt")


def test_grouping_mapping_matches_the_table_for_every_class():
    with (DATA_DIR / "location_group_mapping.tsv").open(newline="") as handle:
        rows = {row["Original annotation"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert available_groupings() == (
        "Grouping 1", "Grouping 2", "Grouping 3", "Grouping dl2", "Grouping OpenCell"
    )
    assert set(rows) == set(PRETRAINING_CLASSES) - {"Negative"}  # the 35 HPA classes; "Negative" is not one
    for grouping in available_groupings():
        mapping = grouping_map(grouping)
        for name in set(LOCALIZATION_CLASSES) | set(PRETRAINING_CLASSES):
            expected = rows[name][grouping] if name in rows else ""
            assert mapping.get(name, "") == expected, (grouping, name)
    # spot checks read off the published table
    assert grouping_map("Grouping 1")["Nucleoli rim"] == "Nucleoli"
    assert grouping_map("Grouping 2")["Endosomes"] == "Vesicles"
    assert grouping_map("Grouping 3")["Centriolar satellite"] == "Cytosol"
    assert "Aggresome" not in grouping_map("Grouping 1") and "Negative" not in grouping_map("Grouping OpenCell")
    with pytest.raises(ValueError, match="unknown grouping 'Grouping 9'"):
        grouping_map("Grouping 9")


def test_group_scores_take_the_best_member_and_any_member_label():
    classes = ["Nucleoli", "Nucleoli rim", "Nucleoplasm", "Aggresome"]
    y_true = np.array([[0, 1, 0, 0], [0, 0, 1, 1]])
    y_score = np.array([[0.2, 0.7, 0.1, 0.9], [0.6, 0.1, 0.3, 0.8]])
    grouped_true, grouped_score, groups = group_scores(y_true, y_score, classes, "Grouping 2")
    assert groups == ["Nucleoli", "Nucleus"]  # Aggresome is in no group of Grouping 2
    assert grouped_true.tolist() == [[1, 0], [0, 1]]
    assert grouped_score.tolist() == [[0.7, 0.1], [0.6, 0.3]]


def test_package_data_is_declared_for_installation():
    """Every data file of the package (the vendored splits and groupings, the card template) matches a
    `package_data` pattern of its own package, so a wheel or a non-editable install carries it."""
    import configparser
    import fnmatch

    root = Path(__file__).resolve().parents[2]
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    patterns = {package: [p.strip() for p in value.split(",")] for package, value in setup["options.package_data"].items()}
    data_files = [path for path in (root / "subcell_hf").rglob("*")
                  if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts]
    assert any(path.name == "test_antibodies.txt" for path in data_files)
    undeclared = [
        str(path.relative_to(root)) for path in data_files
        if not any(fnmatch.fnmatch(path.name, pattern)
                   for pattern in patterns.get(".".join(path.parent.relative_to(root).parts), []))
    ]
    assert undeclared == []
