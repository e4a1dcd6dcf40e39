"""Helpers shared by the tests and the fault-injection benchmark, free of side effects (unlike conftest.py,
which sets up the test session's environment on import)."""

from __future__ import annotations

import io
import tarfile


def corrupt_shard_record(shard, key: str | None = None) -> str:
    """Overwrite the arrays of one record of a WebDataset shard (the first, or the one named `key`) with bytes that
    do not decode; the rest of the shard stays intact. Returns the record's key."""
    with tarfile.open(shard) as archive:
        members = [(member, archive.extractfile(member).read()) for member in archive.getmembers()]
    key = key or members[0][0].name.split(".")[0]
    with tarfile.open(shard, "w") as archive:
        for member, data in members:
            if member.name.startswith(key + ".") and member.name.endswith(".npy"):
                data = b"garbage" * 10
                member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return key
