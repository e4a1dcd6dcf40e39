"""Measure a SubCell model on labelled shards with the paper's protocol, and write the numbers for the model card.

    # HPA test set (published antibody split, the default): only the cells of test antibodies are scored
    python recipes/evaluate_model.py --model outputs/classifiers/model --shards data/shards/hpa --output outputs/eval \
        --model_name myorg/my-subcell --dataset.name "HPA v23" --dataset.type hpa-v23
    # JUMP-CP style: well profiles, replicate and MoA retrieval with copairs
    python recipes/evaluate_model.py --model subcell/all_channels-vit-prots-pool --shards data/shards/jump \
        --output outputs/eval-jump --protocol.split random --protocol.clustering '[]' \
        --protocol.metadata wells.csv --protocol.replicate_column compound --protocol.moa_column moa
    accelerate launch recipes/evaluate_model.py ...      # several processes share the embedding pass

Every field of `EvaluateModelConfig` below is a flag (`--section.field value` for the nested `protocol`, `dataset`
and `embedding` sections; values are YAML), and `--config_path FILE.yaml` reads the same fields from a file.
Metrics (definitions in docs/evaluation.md): localization (micro / macro AP, label ranking AP, coverage error,
per classifier seed and for the ensemble, classes absent from the test cells dropped first; --protocol.grouping
scores the paper's location groups instead); clustering (ARI, V-measure, Fowlkes-Mallows of k-means and Leiden
clusters of single-location cells); retrieval (copairs mAP, fraction retrieved at p < 0.05, nearest-neighbour
accuracy on other plates) with --protocol.replicate_column / --protocol.moa_column.
Writes `<output>/results.json` (the Hub cards' results schema, with the protocol and the full report),
`<output>/model-index.yaml`, `<output>/report.md`, `<output>/per_class_average_precision.png` and the retrieval
tables; --card_results also writes the results JSON where the cards read it (hub_cards/results/<repo-name>.json).
Embeddings are cached in `<output>/embeddings/` (or --embedding.cache).
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `evaluate` library: keep its folder off the import path so that `import evaluate`
# anywhere below finds the library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(argv: list[str] | None = None) -> int:
    from subcell_hf.evaluation.config import EvaluateModelConfig
    from subcell_hf.utils.config_cli import parse_config

    config = parse_config(EvaluateModelConfig, argv, prog="evaluate_model.py", description=__doc__)
    from subcell_hf.utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()

    import dataclasses

    import yaml

    from subcell_hf.evaluation import evaluate_shards, model_index_from_results, results_from_evaluation, write_results
    from subcell_hf.evaluation.report import write_report
    from subcell_hf.inference import EmbeddingSettingsError
    from subcell_hf.utils.atomic_writes import atomic_write_text
    from subcell_hf.utils.processes import process_state

    state = process_state()
    output = Path(config.output)
    try:
        evaluation = evaluate_shards(
            config.model,
            config.shards,
            config.embedding.cache_dir(output),
            config.protocol,
            embed_options={
                **config.embedding.embed_options(),
                "overwrite": config.overwrite,
                "progress": state.is_main_process,
            },
        )
        dataset = dataclasses.asdict(config.dataset)
        results = results_from_evaluation(config.model_name or config.model, evaluation, dataset)
    except (EmbeddingSettingsError, OSError, KeyError, ValueError) as error:  # OSError: missing, read-only, busy
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    if state.is_main_process:
        paths = [write_results(results, output / "results.json")]
        model_index = yaml.safe_dump({"model-index": model_index_from_results(results)}, sort_keys=False)
        paths.append(atomic_write_text(output / "model-index.yaml", model_index))
        paths += write_report(results, output, evaluation.retrieval_tables)
        if config.card_results:
            paths.append(write_results(results, config.card_results))
        for note in evaluation.notes:
            print(note)
        for metric in results["metrics"]:
            print(f"{metric['name']}: {metric['value']:.4f}")
        print("wrote " + ", ".join(str(p) for p in paths))
        if evaluation.failed_inputs:
            print(f"evaluate: {evaluation.notes[-1]}", file=sys.stderr)
    return 1 if evaluation.failed_inputs else 0  # 1: written, but some inputs were skipped


if __name__ == "__main__":
    sys.exit(main())
