"""Measure a SubCell model on labelled shards with the paper's protocol, and write the numbers for the model card.

    # HPA test set (published antibody split, the default): only the cells of test antibodies are scored
    python recipes/evaluate_model.py --model outputs/classifiers/model --shards data/shards/hpa --output outputs/eval \
        --model-name myorg/my-subcell --dataset-name "HPA v23" --dataset-type hpa-v23
    # JUMP-CP style: well profiles, replicate and MoA retrieval with copairs
    python recipes/evaluate_model.py --model subcell/all_channels-vit-prots-pool --shards data/shards/jump \
        --output outputs/eval-jump --split random --clustering none --metadata wells.csv \
        --replicate-column compound --moa-column moa
    accelerate launch recipes/evaluate_model.py ...      # several processes share the embedding pass

Metrics (definitions in docs/evaluation.md): localization (micro / macro AP, label ranking AP, coverage error,
per classifier seed and for the ensemble, classes absent from the test cells dropped first; --grouping scores the
paper's location groups instead); clustering (ARI, V-measure, Fowlkes-Mallows of k-means and Leiden clusters of
single-location cells); retrieval (copairs mAP, fraction retrieved at p < 0.05, nearest-neighbour accuracy on
other plates) with --replicate-column / --moa-column.
Writes `<output>/results.json` (the Hub cards' results schema, with the protocol and the full report),
`<output>/model-index.yaml`, `<output>/report.md`, `<output>/per_class_average_precision.png` and the retrieval
tables; --card-results also writes the results JSON where the cards read it (hub_cards/results/<repo-name>.json).
Embeddings are cached in `<output>/embeddings/`.
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
    parser.add_argument(
        "--split",
        default="published",
        help="antibody split: 'published' (the paper's lists; only test antibodies are scored), 'random' (score "
        "every cell given), or a split file (folder of <split>_antibodies.txt, or .csv/.tsv with antibody,split) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--grouping", help="score the paper's location groups, e.g. 'Grouping 1' (default: the classes)"
    )
    parser.add_argument(
        "--clustering",
        nargs="+",
        default=["kmeans", "leiden"],
        choices=["kmeans", "leiden", "none"],
        help="clustering methods (default: kmeans leiden)",
    )
    parser.add_argument("--leiden-neighbors", type=int, default=15, help="kNN graph size (default: %(default)s)")
    parser.add_argument("--leiden-resolution", type=float, default=1.0, help="Leiden resolution (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="clustering and null-distribution seed (default: 0)")
    parser.add_argument(
        "--metadata",
        type=Path,
        help="CSV/TSV/Parquet table joined to the cells on the columns it shares with them (e.g. plate, well) "
        "adding columns such as compound, moa",
    )
    parser.add_argument("--replicate-column", help="per-cell column naming the perturbation: replicate retrieval")
    parser.add_argument("--moa-column", help="per-cell column naming the mechanism of action: MoA retrieval")
    parser.add_argument(
        "--profile-by", nargs="+", default=["plate", "well"], help="columns defining a profile (default: plate well)"
    )
    parser.add_argument("--plate-column", default="plate", help="plate column for normalisation (default: plate)")
    parser.add_argument(
        "--normalization",
        default="mad_robustize",
        choices=["mad_robustize", "robustize", "standardize", "spherize", "none"],
        help="pycytominer per-plate normalisation (default: %(default)s)",
    )
    parser.add_argument(
        "--normalization-samples",
        default="all",
        help="reference wells for normalisation, a pandas query such as \"pert_type == 'control'\" (default: all)",
    )
    parser.add_argument("--null-size", type=int, default=10000, help="copairs null size (default: %(default)s)")
    parser.add_argument("--model-name", help="the model as the results name it, e.g. a Hub repo id (default: --model)")
    parser.add_argument(
        "--dataset-name", default="SubCell shards", help="dataset name on the card (default: %(default)s)"
    )
    parser.add_argument(
        "--dataset-type", default="subcell-shards", help="dataset id on the card (default: %(default)s)"
    )
    parser.add_argument("--dataset-split", default="test", help="dataset split on the card (default: %(default)s)")
    parser.add_argument(
        "--card-results", type=Path, help="also write the results JSON here (hub_cards/results/<repo>.json)"
    )
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
    from subcell_hf.utils.processes import quiet_deepspeed_probe

    quiet_deepspeed_probe()

    import yaml

    from subcell_hf.utils.atomic_writes import atomic_write_text
    from subcell_hf.evaluation import (
        EvaluationOptions,
        evaluate_shards,
        model_index_from_results,
        results_from_evaluation,
        write_results,
    )
    from subcell_hf.evaluation.report import write_report
    from subcell_hf.inference import EmbeddingSettingsError
    from subcell_hf.utils.processes import process_state

    state = process_state()
    try:
        options = EvaluationOptions(
            split=args.split,
            grouping=args.grouping,
            clustering=tuple(method for method in args.clustering if method != "none"),
            seed=args.seed,
            leiden_neighbors=args.leiden_neighbors,
            leiden_resolution=args.leiden_resolution,
            metadata=args.metadata,
            replicate_column=args.replicate_column,
            moa_column=args.moa_column,
            profile_by=tuple(args.profile_by),
            plate_column=args.plate_column,
            normalization=args.normalization,
            normalization_samples=args.normalization_samples,
            null_size=args.null_size,
        )
        evaluation = evaluate_shards(
            args.model,
            args.shards[0] if len(args.shards) == 1 else args.shards,
            args.embedding_cache or args.output / "embeddings",
            options,
            embed_options={
                "batch_size": args.batch_size,
                "num_workers": args.num_workers,
                "precision": args.precision,
                "overwrite": args.overwrite,
                "progress": state.is_main_process,
            },
        )
        dataset = {"name": args.dataset_name, "type": args.dataset_type, "split": args.dataset_split}
        results = results_from_evaluation(args.model_name or str(args.model), evaluation, dataset)
    except (EmbeddingSettingsError, OSError, KeyError, ValueError) as error:  # OSError: missing, read-only, busy
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 2
    if state.is_main_process:
        paths = [write_results(results, args.output / "results.json")]
        model_index = yaml.safe_dump({"model-index": model_index_from_results(results)}, sort_keys=False)
        paths.append(atomic_write_text(args.output / "model-index.yaml", model_index))
        paths += write_report(results, args.output, evaluation.retrieval_tables)
        if args.card_results:
            paths.append(write_results(results, args.card_results))
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
