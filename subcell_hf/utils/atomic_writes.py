"""Atomic writes of files and whole folders: stage next to the destination (same filesystem), then rename, so
that a failure leaves either the previous version or nothing, never a half-written one.

Outputs get the user's umask like any ordinary write (`tempfile` alone would leave them 0600 / 0700, unreadable
by colleagues). Every folder written by `atomic_directory` carries a marker file (`OUTPUT_MARKER`, JSON naming
the command that wrote it); `--overwrite` replaces only a folder that carries the marker of the same command,
so that nothing a user made is ever deleted (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

OUTPUT_MARKER = ".subcell_hf_output.json"
LOCK_NAME = ".subcell_hf.lock"


class UnsafeOverwriteError(FileExistsError):
    """`--overwrite` was asked to replace something that is not a previous output of the same command."""


def current_umask() -> int:
    """The process's umask: from /proc on Linux (no race with other threads), else by setting and restoring it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(path: str | os.PathLike, tree: bool = False) -> None:
    """Give a file made by `tempfile` (0600) or a folder (0700) the permissions a plain `open` / `mkdir` would
    (bits are added, never removed); with `tree`, also to everything below a folder (libraries such as
    transformers write their files through `tempfile` too)."""
    path = Path(path)
    mask = current_umask()
    paths = [path, *(path.rglob("*") if tree and path.is_dir() else ())]
    for item in paths:
        if item.is_symlink():
            continue
        wanted = (0o777 if item.is_dir() else 0o666) & ~mask
        mode = stat.S_IMODE(item.stat().st_mode)
        if mode | wanted != mode:
            os.chmod(item, mode | wanted)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path` (same suffix); on success it replaces `path`, on error it is removed.

    The temporary name, `.<name>.<random>.partial<suffix>`, is hidden and recognisable: `remove_stale_partials`
    clears those a killed process left behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=f".partial{path.suffix}")
    os.close(handle)
    try:
        yield Path(temporary)
        if Path(temporary).exists():
            apply_umask(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


_PARTIAL_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.partial(\.[^.]+)?$")  # `tempfile.mkstemp` names of atomic_path


def remove_stale_partials(folder: str | os.PathLike, recursive: bool = False) -> int:
    """Delete the temporaries `atomic_path` left in `folder` (with `recursive`, also below) when its process was
    killed; returns how many. Call it, under `exclusive_output`, when a command starts on its output folder."""
    removed = 0
    folder = Path(folder)
    if folder.is_dir():
        for stale in folder.rglob(".*.partial*") if recursive else folder.glob(".*.partial*"):
            if stale.is_file() and _PARTIAL_NAME.match(stale.name):
                stale.unlink(missing_ok=True)
                removed += 1
    return removed


class OutputBusyError(OSError):
    """Another run is writing the same output folder."""


@contextmanager
def exclusive_output(folder: str | os.PathLike) -> Iterator[None]:
    """Hold an advisory lock on `folder` (a `.subcell_hf.lock` file in it) while a command writes there; a second
    run on the same folder meanwhile raises `OutputBusyError` instead of mixing its files with the first's. The
    lock ends with the process, however it ends. No-op where `fcntl` is missing (Windows)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    try:
        with open(lock, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise OutputBusyError(
                    f"{folder}: another run is writing this output folder; wait for it to end or choose another one"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    finally:
        if created and [p.name for p in folder.iterdir()] == [LOCK_NAME]:  # a run that wrote nothing leaves nothing
            lock.unlink(missing_ok=True)
            folder.rmdir()


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write a UTF-8 text file (``\\n`` line ends, so hashes are the same on every platform) atomically."""
    with atomic_path(path) as temporary:
        with open(temporary, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
    return Path(path)


def read_output_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder written by `atomic_directory` / `mark_output`, or None."""
    try:
        marker = json.loads((Path(folder) / OUTPUT_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


def mark_output(folder: str | os.PathLike, command: str) -> None:
    """Write the marker that lets a later `--overwrite` of `command` replace `folder`."""
    atomic_write_text(Path(folder) / OUTPUT_MARKER, json.dumps({"written_by": "subcell_hf", "command": command}) + "\n")


def check_replaceable(destination: str | os.PathLike, command: str, inputs: Iterable[str | os.PathLike] = ()) -> None:
    """Raise `UnsafeOverwriteError` unless `destination` may be deleted by `--overwrite` of `command`: it must not
    be `/`, the home or current folder, nor hold (or be) any of `inputs`, and when not empty it must carry the
    marker of `command`."""
    path = Path(destination).expanduser().resolve()
    if not path.exists():
        return
    refuse = f"{destination}: --overwrite refused,"
    try:
        home = Path.home().resolve()
    except (KeyError, RuntimeError):  # no home folder known
        home = None
    if path == Path(path.anchor) or path == home or path == Path.cwd().resolve():
        raise UnsafeOverwriteError(f"{refuse} it is the root, home or current folder; name a new output folder")
    for source in inputs:
        source = Path(source).expanduser().resolve()
        if source == path or path in source.parents:
            raise UnsafeOverwriteError(f"{refuse} it holds the input {source}; choose another output folder")
    if not path.is_dir():
        raise UnsafeOverwriteError(f"{refuse} it is a file, not an output folder")
    if not any(path.iterdir()):
        return
    marker = read_output_marker(path)
    if marker is None:
        raise UnsafeOverwriteError(
            f"{refuse} it is not empty and was not written by subcell_hf (no {OUTPUT_MARKER}); "
            "delete it yourself or choose another output folder"
        )
    if marker.get("command") != command:
        raise UnsafeOverwriteError(
            f"{refuse} it was written by {marker.get('command')!r}, not {command!r}; choose another output folder"
        )


def check_output_folder(
    destination: str | os.PathLike, overwrite: bool, command: str, inputs: Iterable[str | os.PathLike] = ()
) -> None:
    """What `atomic_directory` checks before writing, for commands that check before long work: an existing
    non-empty `destination` raises `FileExistsError` unless `overwrite`, and must then pass `check_replaceable`."""
    path = Path(destination).expanduser()
    if path.exists() and not (path.is_dir() and not any(path.iterdir())):
        if not overwrite:
            raise FileExistsError(f"{destination}: output folder exists; pass --overwrite to replace it")
        check_replaceable(path, command, inputs)


@contextmanager
def atomic_directory(
    destination: str | Path,
    overwrite: bool = True,
    command: str = "subcell_hf",
    inputs: Iterable[str | os.PathLike] = (),
) -> Iterator[Path]:
    """Yield an empty staging folder beside `destination`; on success it (with the marker of `command`) replaces
    `destination`, on error it is removed.

    An existing non-empty destination raises `FileExistsError` before anything is written unless `overwrite`; with
    `overwrite` it must pass `check_replaceable` (a previous output of the same `command`, holding no input).
    """
    check_output_folder(destination, overwrite, command, inputs)
    destination = Path(destination).expanduser().resolve()  # "." names the current folder: stage beside it
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.tmp-", dir=destination.parent))
    try:
        yield staging
        mark_output(staging, command)
        apply_umask(staging, tree=True)
        if destination.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{destination.name}.old-", dir=destination.parent))
            os.replace(destination, retired / destination.name)
            os.replace(staging, destination)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, destination)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "LOCK_NAME",
    "OUTPUT_MARKER",
    "OutputBusyError",
    "exclusive_output",
    "UnsafeOverwriteError",
    "apply_umask",
    "atomic_directory",
    "atomic_path",
    "atomic_write_text",
    "check_output_folder",
    "check_replaceable",
    "current_umask",
    "mark_output",
    "read_output_marker",
    "remove_stale_partials",
]
