"""Train the localization ensemble of a SubCell encoder: N MLP heads on frozen embeddings, saved with the encoder as
a `SubCellForProteinLocalization` folder (the layout of the published models, ready for the Hub).

    python recipes/train_classifiers.py --encoder outputs/pretrain/encoder --shards data/shards/train \
        --output outputs/classifiers
    python recipes/train_classifiers.py --config_path my_run.yaml --training.max_epochs 50   # YAML + overrides
    accelerate launch recipes/train_classifiers.py ...    # several processes share embedding and heads

Every field of `TrainClassifiersConfig` below is a flag (`--section.field value` for the nested `training` and
`embedding` sections; values are YAML: `--classes '[Nucleoplasm, Cytosol]'`, `--overwrite true`), and
`--config_path FILE.yaml` reads the same fields from a file.
Writes `<output>/model/` (weights, config, image processor; loads with `AutoModelForImageClassification`),
`<output>/training.json` (per head: seed, best epoch, validation macro AP, history) and caches the embeddings in
`<output>/embeddings/` (or --embedding.cache): a rerun with the same encoder and shards does not embed again.
Training and validation cells follow --split: `published` (default; the paper's antibody lists: heads train on
the `train` antibodies and stop early on the `valid` ones; test antibodies are left out), `random` (for other
data: --training.validation_fraction of the antibodies validate) or a split file (a folder of
<split>_antibodies.txt, or a .csv/.tsv with columns antibody,split). The counts of each list found in the shards
are printed and recorded. Heads use seeds 0..N-1 and stop early on the validation macro average precision.
Defaults follow the published heads (docs/evaluation.md): sigmoid focal loss, AdamW 1e-3, batches of 8192,
learning rate halved after 4 epochs without improvement, at most 200 epochs, early-stopping patience 20.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from subcell_hf.classifiers.config import TrainClassifiersConfig
    from subcell_hf.utils.config_cli import parse_config

    config = parse_config(TrainClassifiersConfig, argv, prog="train_classifiers.py", description=__doc__)
    from subcell_hf.classifiers import train_localization_model
    from subcell_hf.inference import EmbeddingSettingsError
    from subcell_hf.utils.processes import process_state, quiet_deepspeed_probe

    quiet_deepspeed_probe()
    output = Path(config.output)
    try:
        model_dir = train_localization_model(
            config.encoder,
            config.shards,
            output,
            classes=config.classes,
            split=config.split,
            num_classifiers=config.num_classifiers,
            training=config.training,
            embedding_cache=config.embedding.cache_dir(output),
            embed_options=config.embedding.embed_options(),
            overwrite=config.overwrite,
        )
    except (EmbeddingSettingsError, OSError, KeyError, ValueError) as error:  # OSError: missing, read-only, busy
        print(f"train_classifiers: error: {error}", file=sys.stderr)
        return 2
    if process_state().is_main_process:
        import json

        from subcell_hf.evaluation.splits import format_report

        log = json.loads((output / "training.json").read_text())
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
