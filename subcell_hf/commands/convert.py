"""Convert original SubCell checkpoints (docs/model.md, section 6) into a `save_pretrained` folder.

Either name a published release and the folder holding the release files:
    subcell-hf convert --release all_channels-vit-prots-pool --release-dir ./subcell_release --output ./converted
or give the files and the architecture facts yourself:
    subcell-hf convert --encoder all_channels_ViT-ProtS-Pool.pth \
        --classifiers all_channels_ViT_MLP_classifier/classifier_seed_*.pth \
        --channels microtubules er dna protein --family vit-prots-pool --output ./converted
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..models import HPA_CHANNELS
    from ..variants import MODEL_FAMILIES, RELEASES

    parser.add_argument("--release", choices=sorted(RELEASES), help="a published release (Hub repo name)")
    parser.add_argument("--release-dir", help="folder with the published file layout (with --release)")
    parser.add_argument("--encoder", help="original encoder .pth (instead of --release)")
    parser.add_argument("--classifiers", nargs="*", default=[], help="original classifier_seed_<k>.pth files")
    parser.add_argument("--channels", nargs="+", choices=HPA_CHANNELS, help="channel names in order (with --encoder)")
    parser.add_argument("--family", choices=sorted(MODEL_FAMILIES), help="model family (with --encoder)")
    parser.add_argument("--no-classifiers", action="store_true", help="with --release: convert the encoder alone")
    parser.add_argument("--output", required=True, help="folder to write (save_pretrained layout)")
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace a previous output of subcell-hf convert (never a folder it did not write)",
    )
    parser.add_argument(
        "--any-classifier-architecture", action="store_true",
        help="accept classifiers other than the released 3-layer, 31-class MLPs (all files must still match)",
    )


def run(args: argparse.Namespace) -> int:
    from ..hub.convert import CheckpointMismatchError, convert_checkpoint, convert_release, position_embedding_type_for
    from ..variants import get_release

    try:
        if args.release:
            if not args.release_dir:
                raise ValueError("--release needs --release-dir")
            _, report = convert_release(
                get_release(args.release), args.release_dir, args.output, not args.no_classifiers, args.overwrite,
                released_classifiers=not args.any_classifier_architecture,
            )
        else:
            if not (args.encoder and args.channels and args.family):
                raise ValueError("give either --release and --release-dir, or --encoder, --channels and --family")
            _, report = convert_checkpoint(
                args.encoder,
                sorted(args.classifiers, key=_seed_order),
                channel_names=args.channels,
                position_embedding_type=position_embedding_type_for(args.family),
                output_dir=args.output,
                overwrite=args.overwrite,
                released_classifiers=not args.any_classifier_architecture,
            )
    except (CheckpointMismatchError, OSError, ValueError) as error:  # OSError: missing, unreadable, read-only
        print(f"subcell-hf convert: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"output": args.output, "passed": report.passed, "checks": report.checks}, indent=2))
    return 0


def _seed_order(path: str) -> tuple[int, str]:
    """classifier_seed_10 after classifier_seed_9."""
    import re

    match = re.search(r"seed_(\d+)", path)
    return (int(match.group(1)) if match else -1, path)
