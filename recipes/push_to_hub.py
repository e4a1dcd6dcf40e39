"""Publish the 8 SubCell releases to the Hugging Face Hub, or into a local Hugging Face cache.

From a folder of original release files (the published layout: `<prefix>_<ModelFamily>.pth` and
`<prefix>_<ViT|MAE>_MLP_classifier/classifier_seed_<k>.pth`), each variant is converted, checked, given its
ensemble and its model card, then:

  python recipes/push_to_hub.py --release-dir ./subcell_release               # push to subcell/* (one commit each)
  python recipes/push_to_hub.py --release-dir ./subcell_release --dry-run     # list repos, files, sizes, sha256
  python recipes/push_to_hub.py --release-dir ./subcell_release --to-cache /shared/hf/hub   # offline cache

A variant whose conversion fails any check is refused with the reason; the others go on and the exit code is 1.
Pushing needs a write token (`hf auth login` or HF_TOKEN); HF_ENDPOINT selects another Hub. A rerun with nothing
changed makes no commit.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

CARDS_DIR = Path(__file__).resolve().parents[1] / "hub_cards"


def build_parser() -> argparse.ArgumentParser:
    from subcell_hf.variants import DEFAULT_NAMESPACE, RELEASES

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release-dir", required=True, type=Path, help="folder with the original release files")
    parser.add_argument(
        "--namespace", default=DEFAULT_NAMESPACE, help="Hub user or organisation (default: %(default)s)"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(RELEASES), metavar="REPO_NAME",
        help=f"publish only these (default: all 8): {', '.join(RELEASES)}",
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--dry-run", action="store_true", help="print what would be uploaded; push nothing")
    action.add_argument(
        "--to-cache", nargs="?", const="", metavar="HUB_CACHE_DIR",
        help="instead of pushing, fill a Hugging Face hub cache (default: this machine's, $HF_HOME/hub); load with "
        "HF_HUB_OFFLINE=1 and HF_HUB_CACHE=HUB_CACHE_DIR",
    )
    parser.add_argument(
        "--work-dir", type=Path,
        help="keep the converted folders here (default: a temporary folder, removed at the end)",
    )
    parser.add_argument(
        "--cards-dir", type=Path, default=CARDS_DIR,
        help="measured results/<repo>.json and recorded sources/<repo>.json for the cards (default: this "
        "checkout's hub_cards/)",
    )
    parser.add_argument("--private", action="store_true", help="create missing repositories as private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    from huggingface_hub.errors import HfHubHTTPError
    from tqdm.auto import tqdm

    from subcell_hf.hub.publish import dry_run_listing, fill_cache, prepare_releases, push_release
    from subcell_hf.variants import RELEASES

    if not args.release_dir.is_dir():
        print(f"error: --release-dir {args.release_dir}: not a folder", file=sys.stderr)
        return 2
    releases = [RELEASES[name] for name in args.variants] if args.variants else list(RELEASES.values())
    work = nullcontext(args.work_dir) if args.work_dir else tempfile.TemporaryDirectory(prefix="subcell-publish-")
    failed = []
    with work as work_dir:
        prepared = prepare_releases(args.release_dir, work_dir, releases, args.namespace, args.cards_dir)
        for item in prepared:
            if not item.ready:
                print(item.refusal(), file=sys.stderr)
                failed.append(item.release.name)
        ready = [item for item in prepared if item.ready]

        if args.dry_run:
            print(dry_run_listing(ready, args.namespace))
        elif args.to_cache is not None:
            cache_dir = args.to_cache or None
            for item in ready:
                print(f"{item.repo_id(args.namespace)} -> {fill_cache(item, cache_dir, args.namespace)}")
        else:
            for item in tqdm(ready, desc="pushing", unit="repo"):
                try:
                    result = push_release(item, args.namespace, private=args.private or None)
                except HfHubHTTPError as error:
                    print(f"{item.repo_id(args.namespace)}: push failed: {error}", file=sys.stderr)
                    failed.append(item.release.name)
                    continue
                if result.changed:
                    print(f"{result.repo_id}: {result.commit_url} ({len(result.uploaded)} uploaded, "
                          f"{len(result.deleted)} deleted)")
                else:
                    print(f"{result.repo_id}: up to date, no commit")

    if failed:
        print(f"{len(failed)} of {len(prepared)} variants not published: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
