"""The one sha256 helper and the one rank / world-size helper (subcell_hf.utils)."""

from __future__ import annotations

import hashlib

from subcell_hf.utils import distributed
from subcell_hf.utils.hashing import sha256_bytes, sha256_file, update_from_file


def test_sha256_of_files_and_bytes(tmp_path):
    content = bytes(range(256)) * 50
    path = tmp_path / "blob.bin"
    path.write_bytes(content)
    expected = hashlib.sha256(content).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk_size=7) == expected  # blocks that do not divide the size
    assert sha256_bytes(content[:100], content[100:]) == expected
    sha1, md5 = hashlib.sha1(), hashlib.md5()
    update_from_file(path, sha1, md5, chunk_size=1000)
    assert (sha1.hexdigest(), md5.hexdigest()) == (hashlib.sha1(content).hexdigest(), hashlib.md5(content).hexdigest())


def test_rank_and_world_size_come_from_the_launcher_before_a_process_group(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert (distributed.rank(), distributed.world_size()) == (0, 1)
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (distributed.rank(), distributed.world_size()) == (3, 4)
    assert (distributed.launched_rank(), distributed.launched_world_size()) == (3, 4)
    # collectives need a process group: without one there is a single process to gather from
    assert (distributed.rank(launcher_fallback=False), distributed.world_size(launcher_fallback=False)) == (0, 1)
