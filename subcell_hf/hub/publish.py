"""Publish the SubCell releases: convert, check, write the card, then push to the Hub.

The only module of `subcell_hf` that talks to the Hugging Face Hub, and it does so only through `huggingface_hub`.
The steps, each usable alone:

1. `prepare_release_folder`: convert one release from the original files (docs/model.md, section 6 layout) into a folder
   holding exactly what its Hub repository holds (safetensors weights, configs, remote code, `conversion.json`,
   `README.md`) and list every reason to refuse publishing it (a failed conversion check, a stray file ...).
2. `dry_run_listing`: every repository, file, size and sha256 a push would upload.
3. `push_release`: `HfApi.upload_folder` of the checked folder, one commit per repository. The library skips the
   files the Hub already holds and makes no commit when nothing changed; `delete_patterns` removes weight files
   that are not ours (old ``*.bin`` / ``*.pth`` ...).

Offline use needs no tool of ours: a cache made by the real client (``hf download subcell/<repo> --cache-dir DIR``
on a connected node, copied to the cluster) loads by repo id with ``HF_HUB_OFFLINE=1`` (docs/hub.md).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi
from tqdm.auto import tqdm

from .. import __version__
from ..utils.atomic_writes import OUTPUT_MARKER, atomic_write_text
from ..variants import DEFAULT_NAMESPACE, NUM_RELEASED_CLASSIFIERS, RELEASES, Release
from .cards import SOURCES_DIRNAME, release_inputs, render_card
from ..utils.hashing import sha256_file
from .convert import SIDECAR_NAME, CheckpointMismatchError, convert_release

CARD_FILE = "README.md"
WEIGHTS_FILE = "model.safetensors"
REMOTE_CODE_FILES = ("configuration_subcell.py", "image_processing_subcell.py", "modeling_subcell.py")
#: Exactly the files of a published SubCell repository.
RELEASE_FILES = frozenset(
    {CARD_FILE, "config.json", "preprocessor_config.json", SIDECAR_NAME, WEIGHTS_FILE, *REMOTE_CODE_FILES}
)
MODEL_AUTO_CLASSES = ("AutoConfig", "AutoModel", "AutoModelForImageClassification")
#: Remote files a push removes (`upload_folder(delete_patterns=...)`) unless it uploads them, so that a repository
#: holds only our safetensors weights; other files (e.g. a figure a maintainer added) are kept.
FOREIGN_WEIGHT_PATTERNS = ("*.bin", "*.pth", "*.pt", "*.ckpt", "*.pkl", "*.h5", "*.msgpack", "*.onnx",
                           "*.safetensors", "*.index.json")
#: What a failed conversion can raise; the variant is then refused and the others go on.
CONVERSION_ERRORS = (CheckpointMismatchError, OSError, ValueError, RuntimeError, KeyError)


@dataclass(frozen=True)
class ReleaseFile:
    """One file of a prepared release, as the dry run lists it."""

    path_in_repo: str
    local_path: Path
    size: int
    sha256: str

    @classmethod
    def from_path(cls, folder: Path, path: Path) -> "ReleaseFile":
        return cls(path.relative_to(folder).as_posix(), path, path.stat().st_size, sha256_file(path))


@dataclass(frozen=True)
class PreparedRelease:
    """A release converted into the folder that becomes its Hub repository, or the reasons it must not be."""

    release: Release
    folder: Path | None = None
    files: tuple[ReleaseFile, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return not self.problems and bool(self.files)

    def repo_id(self, namespace: str = DEFAULT_NAMESPACE) -> str:
        return self.release.repo_id(namespace)

    def refusal(self) -> str:
        return f"refusing {self.release.name}: " + "; ".join(self.problems)


@dataclass(frozen=True)
class PushResult:
    repo_id: str
    commit_url: str | None  # None when the repository was already up to date (no commit made)

    @property
    def changed(self) -> bool:
        return self.commit_url is not None


# ------------------------------------------------------------------------------------------ preparation
def check_release_folder(folder: str | Path, release: Release, recorded_sources: dict[str, str] | None = None):
    """Every reason the converted `folder` must not be published as `release`; empty when it may be.

    `recorded_sources` (file name -> sha256, kept with the cards) must then equal the converted sources.
    """
    folder = Path(folder)
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != OUTPUT_MARKER}
    problems = [f"missing file {name}" for name in sorted(RELEASE_FILES - present)]
    problems += [
        f"unexpected file {name} (a repository holds only safetensors weights, configs and remote code)"
        for name in sorted(present - RELEASE_FILES)
    ]
    if problems:
        return problems
    report = json.loads((folder / SIDECAR_NAME).read_text())
    failed = [name for name, ok in report.get("checks", {}).items() if not ok]
    if failed or not report.get("passed"):
        problems.append(f"conversion checks failed: {failed or 'none recorded'}")
    if recorded_sources is not None:
        problems += _source_problems(report, recorded_sources, release)
    return problems + _config_problems(folder, release)


def _source_problems(report: dict, recorded: dict[str, str], release: Release) -> list[str]:
    converted = {name: info["sha256"] for name, info in report.get("sources", {}).items()}
    return [
        f"source {name}: sha256 {converted.get(name)} differs from {recorded.get(name)} recorded in "
        f"{SOURCES_DIRNAME}/{release.name}.json"
        for name in sorted(set(recorded) | set(converted))
        if recorded.get(name) != converted.get(name)
    ]


def _config_problems(folder: Path, release: Release) -> list[str]:
    """The configs must describe this release and name the remote code for every Auto class."""
    problems = []
    config = json.loads((folder / "config.json").read_text())
    expected = {
        "channel_names": list(release.variant.channels),
        "position_embedding_type": release.family.position_embedding_type,
        "num_classifiers": NUM_RELEASED_CLASSIFIERS,
        "model_variant": release.name,
    }
    for key, value in expected.items():
        if config.get(key) != value:
            problems.append(f"config.json {key}: expected {value!r}, found {config.get(key)!r}")
    missing_auto = [name for name in MODEL_AUTO_CLASSES if name not in config.get("auto_map", {})]
    if missing_auto:
        problems.append(f"config.json auto_map lacks {missing_auto} (needed by trust_remote_code users)")
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    if "AutoImageProcessor" not in processor.get("auto_map", {}):
        problems.append("preprocessor_config.json auto_map lacks AutoImageProcessor")
    if processor.get("channel_names") != list(release.variant.channels):
        problems.append(
            f"preprocessor_config.json channel_names: expected {list(release.variant.channels)}, "
            f"found {processor.get('channel_names')}"
        )
    return problems


def prepare_release_folder(
    release: Release,
    release_dir: str | Path,
    output_dir: str | Path,
    namespace: str = DEFAULT_NAMESPACE,
    cards_dir: str | Path | None = None,
) -> PreparedRelease:
    """Convert `release` from `release_dir` into `output_dir/<repo-name>/`, write its card, and check it.

    With `cards_dir` (e.g. ``hub_cards``), the card includes the measured results kept there, and the conversion
    must match the source hashes recorded there. Conversion errors and failed checks do not raise: they are the
    returned `problems`.
    """
    folder = Path(output_dir) / release.name
    try:
        _, report = convert_release(release, release_dir, folder, overwrite=True)
    except CONVERSION_ERRORS as error:
        return PreparedRelease(release, problems=(f"conversion failed: {error}",))
    try:
        recorded_sources, results = release_inputs(cards_dir, release)
    except ValueError as error:
        return PreparedRelease(release, folder, problems=(f"card inputs: {error}",))
    sources = {name: info["sha256"] for name, info in report.sources.items()}
    atomic_write_text(folder / CARD_FILE, str(render_card(release, namespace, sources, results)))
    problems = check_release_folder(folder, release, recorded_sources)
    files = tuple(  # the output marker is local bookkeeping (utils/atomic_writes.py), never published
        ReleaseFile.from_path(folder, p) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != OUTPUT_MARKER
    )
    return PreparedRelease(release, folder, files, tuple(problems))


def prepare_releases(
    release_dir: str | Path,
    output_dir: str | Path,
    releases: Iterable[Release] | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    cards_dir: str | Path | None = None,
    progress: bool = True,
) -> list[PreparedRelease]:
    """`prepare_release_folder` for each release (default: all 8), with a progress bar."""
    releases = list(releases or RELEASES.values())
    bar = tqdm(releases, desc="converting", unit="repo", disable=not progress)
    prepared = []
    for release in bar:
        bar.set_postfix_str(release.name)
        prepared.append(prepare_release_folder(release, release_dir, output_dir, namespace, cards_dir))
    return prepared


def dry_run_listing(prepared: Iterable[PreparedRelease], namespace: str = DEFAULT_NAMESPACE) -> str:
    """Every repository, file, size and sha256 that a push would upload (ready releases only)."""
    lines = []
    for item in prepared:
        if not item.ready:
            continue
        total = sum(f.size for f in item.files)
        lines.append(f"{item.repo_id(namespace)}  ({len(item.files)} files, {total:,} bytes)")
        width = max(len(f.path_in_repo) for f in item.files)
        lines += [f"  {f.path_in_repo:<{width}}  {f.size:>13,}  sha256:{f.sha256}" for f in item.files]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ Hub
def _commit_text(prepared: PreparedRelease) -> tuple[str, str]:
    report = json.loads((prepared.folder / SIDECAR_NAME).read_text())
    message = (
        f"Upload SubCell {prepared.release.name}: encoder + {NUM_RELEASED_CLASSIFIERS}-classifier ensemble "
        "(safetensors)"
    )
    description = (
        f"Converted from the original SubCell release files with subcell_hf {__version__}; "
        f"checks passed: {', '.join(sorted(report.get('checks', {})))}."
    )
    return message, description


def push_release(
    prepared: PreparedRelease,
    namespace: str = DEFAULT_NAMESPACE,
    api: HfApi | None = None,
    private: bool | None = None,
) -> PushResult:
    """Push one prepared release as ONE commit to `<namespace>/<repo-name>`, creating the repository if needed.

    `HfApi.upload_folder` uploads exactly the checked files (`RELEASE_FILES`); the library leaves out the files
    whose content the Hub already holds and makes no commit when nothing changed. Remote files matching
    `FOREIGN_WEIGHT_PATTERNS` that the push does not upload are deleted in the same commit. Raises `ValueError`
    for a release that is not ready (see `PreparedRelease.problems`), before any request.
    """
    if not prepared.ready:
        raise ValueError(prepared.refusal())
    api = api or HfApi()
    repo_id = prepared.repo_id(namespace)
    api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    head = api.repo_info(repo_id).sha
    message, description = _commit_text(prepared)
    info = api.upload_folder(
        repo_id=repo_id,
        folder_path=prepared.folder,
        allow_patterns=sorted(RELEASE_FILES),
        ignore_patterns=[OUTPUT_MARKER],  # local bookkeeping of the atomic writers, never published
        delete_patterns=list(FOREIGN_WEIGHT_PATTERNS),
        commit_message=message,
        commit_description=description,
    )
    # Without changes the library makes no commit and returns the head it found: compare with the head before.
    return PushResult(repo_id, None if info.oid == head else str(info.commit_url))
