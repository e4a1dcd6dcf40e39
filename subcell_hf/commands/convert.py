"""Convert original SubCell checkpoints (docs/model.md, section 6) into a `save_pretrained` folder.

Either name a published release and the folder holding the release files:
    subcell-hf convert --release all_channels-vit-prots-pool --release_dir ./subcell_release --output ./converted
or give the files and the architecture facts yourself:
    subcell-hf convert --encoder all_channels_ViT-ProtS-Pool.pth --family vit-prots-pool --output ./converted
        --classifiers 'all_channels_ViT_MLP_classifier/classifier_seed_*.pth'
        --channels '[microtubules, er, dna, protein]'
(one command line; --classifiers takes a list or one glob pattern, quoted so that the shell leaves it alone).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Optional, Union

from ..options import ChannelName, ModelFamilyName, ReleaseName  # no torch: fast --help


@dataclass
class Config:
    """Either --release and --release_dir, or --encoder, --classifiers, --channels and --family."""

    output: str
    """folder to write (save_pretrained layout); required"""
    release: Optional[ReleaseName] = None
    """a published release (Hub repo name)"""
    release_dir: Optional[str] = None
    """folder with the published file layout (with --release)"""
    encoder: Optional[str] = None
    """original encoder .pth (instead of --release)"""
    classifiers: Union[list[str], str] = field(default_factory=list)
    """original classifier_seed_<k>.pth files (with --encoder): a list, or one glob pattern such as
    'dir/classifier_seed_*.pth'"""
    channels: Optional[list[ChannelName]] = None
    """channel names in order (with --encoder), e.g. [dna, protein]"""
    family: Optional[ModelFamilyName] = None
    """model family (with --encoder)"""
    no_classifiers: bool = False
    """with --release: convert the encoder alone"""
    overwrite: bool = False
    """replace a previous output of subcell-hf convert (never a folder it did not write)"""
    any_classifier_architecture: bool = False
    """accept classifiers other than the released 3-layer, 31-class MLPs (all files must still match)"""


def run(args: Config) -> int:
    from ..hub.convert import CheckpointMismatchError, convert_checkpoint, convert_release, position_embedding_type_for
    from ..variants import get_release

    try:
        if args.release:
            if not args.release_dir:
                raise ValueError("--release needs --release_dir")
            _, report = convert_release(
                get_release(args.release), args.release_dir, args.output, not args.no_classifiers, args.overwrite,
                released_classifiers=not args.any_classifier_architecture,
            )
        else:
            if not (args.encoder and args.channels and args.family):
                raise ValueError("give either --release and --release_dir, or --encoder, --channels and --family")
            _, report = convert_checkpoint(
                args.encoder,
                sorted(_expand(args.classifiers), key=_seed_order),
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


def _expand(classifiers: list[str] | str) -> list[str]:
    """The classifier files: a list as given, or one glob pattern expanded (an error when it matches nothing)."""
    if not isinstance(classifiers, str):
        return list(classifiers)
    import glob

    found = glob.glob(classifiers)
    if not found and any(mark in classifiers for mark in "*?["):
        raise ValueError(f"--classifiers {classifiers}: no file matches the pattern")
    return found or [classifiers]
