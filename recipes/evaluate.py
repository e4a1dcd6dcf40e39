"""Measure a SubCell model on a labelled shard set with the model card's metrics, and write them for the card.

    python recipes/evaluate.py --model outputs/classifiers/model --shards data/shards/test --output outputs/eval \
        --model-name myorg/my-subcell --dataset-name "HPA v23" --dataset-type hpa-v23 --split test
    accelerate launch recipes/evaluate.py ...      # several processes share the embedding pass

Metrics: localization (micro / macro average precision, label ranking average precision, coverage error) when
the model has classifiers; clustering (ARI, V-measure, Fowlkes-Mallows of k-means clusters of single-location
cells); retrieval (mAP and nearest-neighbour accuracy) with --retrieval-groups, e.g. `antibody`.
Writes `<output>/results.json` (the Hub cards' results schema) and `<output>/model-index.yaml` (the card's
`model-index` block); --card-results also writes the results JSON where the cards read it
(e.g. hub_cards/results/<repo-name>.json). Embeddings are cached in `<output>/embeddings/`.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is named like the `evaluate` library: keep its folder off the import path so that `import evaluate`
# anywhere below finds the library, not this script.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="SubCell model folder or Hub id (with or without classifiers)")
    parser.add_argument(
        "--shards", required=True, nargs="+", help="labelled shards: a folder, a brace pattern or files"
    )
    parser.add_argument("--output", required=True, type=Path, help="output folder")
    parser.add_argument("--model-name", help="the model as the results name it, e.g. a Hub repo id (default: --model)")
    parser.add_argument(
        "--dataset-name", default="SubCell shards", help="dataset name on the card (default: %(default)s)"
    )
    parser.add_argument(
        "--dataset-type", default="subcell-shards", help="dataset id on the card (default: %(default)s)"
    )
    parser.add_argument("--split", default="test", help="dataset split on the card (default: %(default)s)")
    parser.add_argument(
        "--card-results", type=Path, help="also write the results JSON here (hub_cards/results/<repo>.json)"
    )
    parser.add_argument("--no-clustering", action="store_true", help="skip the clustering metrics")
    parser.add_argument(
        "--retrieval-groups", help="per-cell column whose equal values count as matches (e.g. antibody)"
    )
    parser.add_argument("--retrieval-exclude", help="per-cell column; candidates sharing the query's value are skipped")
    parser.add_argument("--embedding-cache", type=Path, help="embedding cache folder (default: <output>/embeddings)")
    parser.add_argument("--batch-size", type=int, default=64, help="cells per forward pass (default: %(default)s)")
    parser.add_argument("--num-workers", type=int, default=2, help="data loader workers (default: %(default)s)")
    parser.add_argument(
        "--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto", help="autocast (default: %(default)s)"
    )
    parser.add_argument("--overwrite", action="store_true", help="discard a cache computed with other settings")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from subcell_hf.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()

    import yaml

    from subcell_hf.atomic import atomic_write_text
    from subcell_hf.evaluation import evaluate_shards, model_index_from_results, results_from_evaluation, write_results
    from subcell_hf.processes import process_state
    from subcell_hf.inference import EmbeddingSettingsError

    state = process_state()
    try:
        evaluation = evaluate_shards(
            args.model,
            args.shards[0] if len(args.shards) == 1 else args.shards,
            args.embedding_cache or args.output / "embeddings",
            clustering=not args.no_clustering,
            retrieval_groups=args.retrieval_groups,
            retrieval_exclude=args.retrieval_exclude,
            embed_options={
                "batch_size": args.batch_size,
                "num_workers": args.num_workers,
                "precision": args.precision,
                "overwrite": args.overwrite,
                "progress": state.is_main_process,
            },
        )
        dataset = {"name": args.dataset_name, "type": args.dataset_type, "split": args.split}
        results = results_from_evaluation(args.model_name or str(args.model), evaluation, dataset)
    except (EmbeddingSettingsError, OSError, KeyError, ValueError) as error:  # OSError: missing, read-only, busy
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    if state.is_main_process:
        paths = [write_results(results, args.output / "results.json")]
        model_index = yaml.safe_dump({"model-index": model_index_from_results(results)}, sort_keys=False)
        paths.append(atomic_write_text(args.output / "model-index.yaml", model_index))
        if args.card_results:
            paths.append(write_results(results, args.card_results))
        for metric in results["metrics"]:
            print(f"{metric['name']}: {metric['value']:.4f}")
        print("wrote " + ", ".join(str(p) for p in paths))
        if evaluation.failed_inputs:
            print(f"evaluate: {evaluation.notes[-1]}", file=sys.stderr)
    return 1 if evaluation.failed_inputs else 0  # 1: written, but some inputs were skipped


if __name__ == "__main__":
    sys.exit(main())
