"""Pushing with the real `HfApi` to a loopback Hub stand-in: one commit per variant, no commit when unchanged.

What is uploaded, skipped and deleted is decided by `huggingface_hub` itself (`upload_folder`); the stand-in records
the commits it receives, which is what these tests check.
"""

from __future__ import annotations

import json
from pathlib import Path
from unittest import mock

import pytest
import torch
from huggingface_hub import HfApi, constants, scan_cache_dir, snapshot_download
from transformers import AutoModelForImageClassification

from subcell_hf.hub.publish import (
    RELEASE_FILES,
    PreparedRelease,
    prepare_release_folder,
    prepare_releases,
    push_release,
)
from subcell_hf.variants import RELEASES


def _api(hub) -> HfApi:
    return HfApi(endpoint=hub.url, token=False)


def test_one_commit_per_variant_and_a_rerun_makes_none(local_hub, prepared_all, tiny_release_dir, tmp_path):
    api = _api(local_hub)
    results = [push_release(prepared, api=api) for prepared in prepared_all]
    assert all(r.changed for r in results)
    assert sorted(local_hub.repos) == sorted(f"subcell/{name}" for name in RELEASES)
    for prepared in prepared_all:
        repo = local_hub.repos[prepared.repo_id()]
        initial, ours = repo.commits  # the Hub's initial commit, then exactly one of ours
        assert ours.summary == f"Upload SubCell {prepared.release.name}: encoder + 10-classifier ensemble (safetensors)"
        assert ours.added == sorted(RELEASE_FILES) and ours.deleted == []
        assert results[list(RELEASES).index(prepared.release.name)].commit_url.endswith(ours.oid)
        assert "checks passed: all_tensors_bit_exact" in ours.description
        assert {path: repo.files[path] for path in RELEASE_FILES} == {
            f.path_in_repo: f.local_path.read_bytes() for f in prepared.files
        }

    # A rerun converts again from the same files: byte-identical output, so nothing to commit.
    again = prepare_releases(tiny_release_dir, tmp_path, cards_dir=None, progress=False)
    results = [push_release(prepared, api=api) for prepared in again]
    assert [r.changed for r in results] == [False] * 8
    assert all(len(local_hub.repos[p.repo_id()].commits) == 2 for p in again)
    assert local_hub.unexpected_requests == []


def test_only_changed_files_are_committed(local_hub, prepared_all, tiny_release_dir, tmp_path):
    api = _api(local_hub)
    release = RELEASES["er-dna-protein-vit-prots-pool"]
    push_release(next(p for p in prepared_all if p.release == release), api=api)

    results = {
        "model": release.repo_id(),
        "task": {"type": "image-classification", "name": "Protein localization"},
        "dataset": {"name": "HPA test", "type": "hpa", "split": "test"},
        "metrics": [{"type": "average_precision", "name": "micro AP", "value": 0.5}],
        "source": "recipes/evaluate_model.py",
    }
    (tmp_path / "cards" / "results").mkdir(parents=True)
    (tmp_path / "cards" / "results" / f"{release.name}.json").write_text(json.dumps(results))
    updated = prepare_release_folder(release, tiny_release_dir, tmp_path / "out", cards_dir=tmp_path / "cards")
    result = push_release(updated, api=api)
    commits = local_hub.repos[release.repo_id()].commits
    assert len(commits) == 3 and result.commit_url.endswith(commits[-1].oid)
    assert commits[-1].added == ["README.md"] and commits[-1].deleted == []  # the weights etc. were left out
    assert b"model-index" in local_hub.repos[release.repo_id()].files["README.md"]


def test_foreign_weights_are_deleted_other_files_kept(local_hub, prepared_all):
    api = _api(local_hub)
    prepared = prepared_all[0]
    local_hub.create(prepared.repo_id())
    local_hub.commit(
        prepared.repo_id(), "old upload", "",
        {"pytorch_model.bin": b"pickled", "model-00001-of-00002.safetensors": b"x", "figure.png": b"png"}, [],
    )
    assert push_release(prepared, api=api).changed
    ours = local_hub.repos[prepared.repo_id()].commits[-1]
    assert ours.deleted == ["model-00001-of-00002.safetensors", "pytorch_model.bin"]
    assert ours.added == sorted(RELEASE_FILES)
    files = local_hub.repos[prepared.repo_id()].files
    assert set(files) == RELEASE_FILES | {".gitattributes", "figure.png"}
    assert len(local_hub.repos[prepared.repo_id()].commits) == 3  # initial, old upload, ours


def test_push_to_another_namespace_uses_it_in_the_card(local_hub, tiny_release_dir, tmp_path):
    release = RELEASES["dna-protein-mae-cells-prots-pool"]
    prepared = prepare_release_folder(release, tiny_release_dir, tmp_path, namespace="my-lab")
    result = push_release(prepared, namespace="my-lab", api=_api(local_hub))
    assert result.repo_id == "my-lab/dna-protein-mae-cells-prots-pool"
    card = local_hub.repos[result.repo_id].files["README.md"].decode()
    assert 'from_pretrained("my-lab/dna-protein-mae-cells-prots-pool")' in card


def test_unready_release_is_refused_before_any_request(local_hub):
    broken = PreparedRelease(RELEASES["all_channels-vit-prots-pool"], problems=("conversion checks failed: ['x']",))
    with pytest.raises(ValueError, match=r"refusing all_channels-vit-prots-pool: conversion checks failed"):
        push_release(broken, api=_api(local_hub))
    assert local_hub.repos == {}


def test_stray_weights_alone_are_deleted_in_one_commit(local_hub, prepared_all):
    """The release is already up to date; an old `*.pth` added later is removed without re-uploading anything."""
    api = _api(local_hub)
    prepared = prepared_all[2]
    push_release(prepared, api=api)
    local_hub.commit(prepared.repo_id(), "old weights", "", {"weights/encoder.pth": b"pickled"}, [])
    assert push_release(prepared, api=api).changed
    last = local_hub.repos[prepared.repo_id()].commits[-1]
    assert (last.added, last.deleted) == ([], ["weights/encoder.pth"])
    assert not push_release(prepared, api=api).changed
    assert local_hub.unexpected_requests == []


def test_a_pushed_release_downloads_into_a_cache_that_loads_by_repo_id_offline(local_hub, prepared_all, tmp_path):
    """The offline route of docs/hub.md: `snapshot_download` (what `hf download` runs) fills a cache on a connected
    node; with HF_HUB_OFFLINE=1 `from_pretrained(repo_id)` then reads it."""
    prepared = next(p for p in prepared_all if p.release.name == "dna-protein-mae-cells-prots-pool")
    push_release(prepared, api=_api(local_hub))
    snapshot = Path(snapshot_download(prepared.repo_id(), cache_dir=tmp_path, endpoint=local_hub.url, token=False))
    (repo,) = scan_cache_dir(tmp_path).repos
    assert repo.repo_id == prepared.repo_id()
    assert {f.file_name for f in next(iter(repo.revisions)).files} == RELEASE_FILES | {".gitattributes"}
    assert all((snapshot / name).read_bytes() == (prepared.folder / name).read_bytes() for name in RELEASE_FILES)

    with mock.patch.object(constants, "HF_HUB_OFFLINE", True):
        loaded = AutoModelForImageClassification.from_pretrained(prepared.repo_id(), cache_dir=tmp_path)
    reference = AutoModelForImageClassification.from_pretrained(prepared.folder)
    assert type(loaded).__name__ == "SubCellForProteinLocalization" and len(loaded.classifiers) == 10
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), reference.state_dict().values()))
    assert local_hub.unexpected_requests == []
