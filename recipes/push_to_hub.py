"""Publish the 8 SubCell releases to the Hugging Face Hub.

From a folder of original release files (the published layout: `<prefix>_<ModelFamily>.pth` and
`<prefix>_<ViT|MAE>_MLP_classifier/classifier_seed_<k>.pth`), each variant is converted, checked, given its
ensemble and its model card, then pushed (one commit per repository):

  python recipes/push_to_hub.py --release_dir ./subcell_release                  # push to subcell/*
  python recipes/push_to_hub.py --release_dir ./subcell_release --dry_run true   # list repos, files, sizes, sha256
  python recipes/push_to_hub.py --release_dir ./subcell_release --variants '[dna-protein-vit-prots-pool]'
  python recipes/push_to_hub.py --config_path push.yaml                          # the same fields in YAML

A variant whose conversion fails any check is refused with the reason; the others go on and the exit code is 1
(2 for a bad command line). Pushing needs a write token (`hf auth login` or HF_TOKEN); HF_ENDPOINT selects another
Hub. A rerun with nothing changed makes no commit. Offline clusters download the published repositories with
`hf download` (docs/hub.md).
"""

from __future__ import annotations

import sys
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path


CARDS_DIR = Path(__file__).resolve().parents[1] / "hub_cards"


@dataclass
class PushConfig:
    """Convert, check, card and push each SubCell release (docs/hub.md); exit 1 if one is refused, 2 on bad flags."""

    # Folder with the original release files.
    release_dir: Path | None = None
    # Hub user or organisation that owns the repositories.
    namespace: str = "subcell"  # subcell_hf.variants.DEFAULT_NAMESPACE, written out to keep --help fast
    # Publish only these repository names, e.g. [dna-protein-vit-prots-pool] (default: all 8).
    variants: list[str] = field(default_factory=list)
    # Print every repository, file, size and sha256 a push would upload; push nothing.
    dry_run: bool = False
    # Keep the converted folders here (default: a temporary folder, removed at the end).
    work_dir: Path | None = None
    # Measured results/<repo>.json and recorded sources/<repo>.json for the cards (default: this checkout's hub_cards/).
    cards_dir: Path = CARDS_DIR
    # Create missing repositories as private.
    private: bool = False


def parse_args(argv: list[str] | None = None) -> PushConfig:
    """The config from the command line (and `--config_path` YAML); `ValueError` with a one-line message when invalid.

    `--help` and malformed flags exit as argparse does (status 0 / 2), before the package is imported (fast).
    """
    from subcell_hf.utils.config_cli import parse_config

    config = parse_config(PushConfig, argv, prog="recipes/push_to_hub.py", description=__doc__, exit_on_error=False)
    from subcell_hf.variants import RELEASES

    if config.release_dir is None:
        raise ValueError("--release_dir is required: the folder with the original release files")
    unknown = [name for name in config.variants if name not in RELEASES]
    if unknown:
        raise ValueError(f"--variants: unknown {unknown}; expected names among {list(RELEASES)}")
    return config


def main(argv: list[str] | None = None) -> int:
    try:
        config = parse_args(argv)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from huggingface_hub.errors import HfHubHTTPError
    from tqdm.auto import tqdm

    from subcell_hf.hub.publish import dry_run_listing, prepare_releases, push_release
    from subcell_hf.variants import RELEASES

    if not config.release_dir.is_dir():
        print(f"error: --release_dir {config.release_dir}: not a folder", file=sys.stderr)
        return 2
    releases = [RELEASES[name] for name in config.variants] if config.variants else list(RELEASES.values())
    work = nullcontext(config.work_dir) if config.work_dir else tempfile.TemporaryDirectory(prefix="subcell-publish-")
    failed = []
    with work as work_dir:
        prepared = prepare_releases(config.release_dir, work_dir, releases, config.namespace, config.cards_dir)
        for item in prepared:
            if not item.ready:
                print(item.refusal(), file=sys.stderr)
                failed.append(item.release.name)
        ready = [item for item in prepared if item.ready]

        if config.dry_run:
            print(dry_run_listing(ready, config.namespace))
        else:
            for item in tqdm(ready, desc="pushing", unit="repo"):
                try:
                    result = push_release(item, config.namespace, private=config.private or None)
                except HfHubHTTPError as error:
                    print(f"{item.repo_id(config.namespace)}: push failed: {error}", file=sys.stderr)
                    failed.append(item.release.name)
                    continue
                print(f"{result.repo_id}: {result.commit_url}" if result.changed
                      else f"{result.repo_id}: up to date, no commit")

    if failed:
        print(f"{len(failed)} of {len(prepared)} variants not published: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
