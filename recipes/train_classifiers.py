"""Train the localization ensemble of a SubCell encoder: N MLP heads on frozen embeddings, saved with the encoder as
a `SubCellForProteinLocalization` folder (the layout of the published models, ready for the Hub).

    python recipes/train_classifiers.py --encoder outputs/pretrain/encoder --shards data/shards/train \
        --output outputs/classifiers
    accelerate launch recipes/train_classifiers.py ...    # several processes share embedding and heads

Writes `<output>/model/` (weights, config, image processor; loads with `AutoModelForImageClassification`),
`<output>/training.json` (per head: seed, best epoch, validation macro AP, history) and caches the embeddings in
`<output>/embeddings/` (or --embedding-cache): a rerun with the same encoder and shards does not embed again.
Training and validation cells follow --split: `published` (default; the paper's antibody lists: heads train on
the `train` antibodies and stop early on the `valid` ones; test antibodies are left out), `random` (for other
data: --validation-fraction of the antibodies validate) or a split file (a folder of <split>_antibodies.txt, or
a .csv/.tsv with columns antibody,split). The counts of each list found in the shards are printed and recorded.
Heads use seeds 0..N-1 and stop early on the validation macro average precision. Defaults follow the published
heads (docs/evaluation.md): sigmoid focal loss, AdamW 1e-3, batches of 8192, learning rate halved after 4 epochs
without improvement, at most 200 epochs, early-stopping patience 20.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from subcell_hf.classifiers import CLASS_SETS, LOSSES, ClassifierTrainingConfig

    defaults = ClassifierTrainingConfig()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True, help="SubCell encoder folder or Hub id (heads it has are dropped)")
    parser.add_argument(
        "--shards", required=True, nargs="+", help="labelled shards: a folder, a brace pattern or files"
    )
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument(
        "--classes",
        default=["localization"],
        nargs="+",
        help=f"one of {', '.join(CLASS_SETS)} (31 released classes / 35 pretraining classes / those in the data), "
        "or class names (default: localization)",
    )
    parser.add_argument(
        "--split",
        default="published",
        help="antibody split: published, random or a split file (default: %(default)s)",
    )
    parser.add_argument("--num-classifiers", type=int, default=10, help="ensemble size (default: %(default)s)")
    parser.add_argument("--loss", choices=sorted(LOSSES), default=defaults.loss, help="default: %(default)s")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="default: %(default)s")
    parser.add_argument("--weight-decay", type=float, default=defaults.weight_decay, help="default: %(default)s")
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="embeddings per step (default: %(default)s)"
    )
    parser.add_argument("--max-epochs", type=int, default=defaults.max_epochs, help="default: %(default)s")
    parser.add_argument(
        "--patience",
        type=int,
        default=defaults.patience,
        help="epochs without improvement before stopping (default: %(default)s)",
    )
    parser.add_argument(
        "--lr-patience",
        type=int,
        default=defaults.lr_patience,
        help="epochs without improvement before the learning rate is multiplied by --lr-factor (default: %(default)s)",
    )
    parser.add_argument("--lr-factor", type=float, default=defaults.lr_factor, help="default: %(default)s")
    parser.add_argument(
        "--validation-fraction",
        type=float,
        default=defaults.validation_fraction,
        help="share of antibodies held out with --split random (default: %(default)s)",
    )
    parser.add_argument("--split-seed", type=int, default=defaults.split_seed, help="default: %(default)s")
    parser.add_argument("--embedding-cache", type=Path, help="embedding cache folder (default: <output>/embeddings)")
    parser.add_argument(
        "--embed-batch-size", type=int, default=64, help="cells per encoder forward (default: %(default)s)"
    )
    parser.add_argument(
        "--num-workers", type=int, default=2, help="data loader workers for embedding (default: %(default)s)"
    )
    parser.add_argument(
        "--precision",
        choices=("auto", "fp32", "bf16", "fp16"),
        default="auto",
        help="encoder autocast (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an existing <output>/model, and recompute an embedding cache made with another encoder or shards",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from subcell_hf.utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()
    from subcell_hf.classifiers import CLASS_SETS, ClassifierTrainingConfig, train_localization_model
    from subcell_hf.inference import EmbeddingSettingsError

    classes = args.classes[0] if len(args.classes) == 1 and args.classes[0] in CLASS_SETS else args.classes
    try:
        training = ClassifierTrainingConfig(
            loss=args.loss,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            batch_size=args.batch_size,
            max_epochs=args.max_epochs,
            patience=args.patience,
            lr_patience=args.lr_patience,
            lr_factor=args.lr_factor,
            validation_fraction=args.validation_fraction,
            split_seed=args.split_seed,
        )
        model_dir = train_localization_model(
            args.encoder,
            args.shards[0] if len(args.shards) == 1 else args.shards,
            args.output,
            classes=classes,
            split=args.split,
            num_classifiers=args.num_classifiers,
            training=training,
            embedding_cache=args.embedding_cache,
            embed_options={
                "batch_size": args.embed_batch_size,
                "num_workers": args.num_workers,
                "precision": args.precision,
            },
            overwrite=args.overwrite,
        )
    except (EmbeddingSettingsError, OSError, KeyError, ValueError) as error:  # OSError: missing, read-only, busy
        print(f"train_classifiers: error: {error}", file=sys.stderr)
        return 2
    from subcell_hf.utils.processes import process_state

    if process_state().is_main_process:
        import json

        from subcell_hf.evaluation.splits import format_report

        log = json.loads((args.output / "training.json").read_text())
        if log.get("split_report"):
            print(format_report(log["split_report"], log["split"]))
        print(f"wrote {model_dir}")
        if log.get("failed_inputs"):
            print(
                f"train_classifiers: {log['failed_inputs']} input(s) could not be read and were left out "
                f"(listed in {log['failures_listed_in']})",
                file=sys.stderr,
            )
            return 1  # written, but some inputs were skipped (the same status as embed and evaluate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
