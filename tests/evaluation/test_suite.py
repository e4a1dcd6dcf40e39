"""The evaluation suite on in-memory labelled embeddings: the protocol (split, grouping, seeds), which metric
families run, and the results they make."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from huggingface_hub import ModelCardData

from subcell_hf.evaluation import (
    EvaluationOptions,
    LabelledEmbeddings,
    evaluate_embeddings,
    group_scores,
    localization_metrics,
    model_index_from_results,
    published_split,
    results_from_evaluation,
)

DATASET = {"name": "Synthetic", "type": "synthetic", "split": "test"}
RANDOM = dict(split="random", clustering=("kmeans",))


def _labelled(locations, probabilities=None, classes=(), antibodies=None, **columns):
    rng = np.random.default_rng(0)
    antibodies = antibodies if antibodies is not None else [f"HPA{i % 4}" for i in range(len(locations))]
    obs = pd.DataFrame({"antibody": antibodies, "locations": locations, **columns})
    return LabelledEmbeddings(
        rng.normal(size=(len(locations), 8)).astype(np.float32), obs, probabilities, list(classes)
    )


def test_encoder_only_gets_embedding_metrics_and_its_own_task():
    labelled = _labelled(["Nucleoli", "Cytosol;Nucleoli", "Cytosol", "Mitochondria"] * 5)
    evaluation = evaluate_embeddings(labelled, EvaluationOptions(**RANDOM))
    assert set(evaluation.metrics) == {"clustering_kmeans"}
    assert evaluation.counts["clustering_cells"] == 15 and evaluation.counts["clusters"] == 3
    results = results_from_evaluation("me/encoder", evaluation, DATASET)
    assert results["task"]["type"] == "image-feature-extraction"
    assert [m["name"] for m in results["metrics"]][0] == "Adjusted Rand index (k-means)"
    assert results["protocol"]["split"] == "random" and results["protocol"]["library_versions"]["copairs"]


def test_published_split_evaluates_only_test_antibodies_per_seed_and_ensemble():
    split = published_split()
    test_ids, train_ids = sorted(split.antibodies["test"])[:4], sorted(split.antibodies["train"])[:2]
    classes = ["Nucleoli", "Cytosol", "Mitochondria", "Vesicles"]  # no test cell is in Vesicles
    locations = ["Nucleoli", "Cytosol", "Nucleoli;Cytosol", "Mitochondria", "Cytosol", "Nucleoli"] * 2
    antibodies = [test_ids[i % 4] for i in range(6)] + [train_ids[i % 2] for i in range(6)]
    rng = np.random.default_rng(5)
    heads = rng.random((12, 3, 4))
    labelled = _labelled(locations, heads.mean(axis=1), classes, antibodies=antibodies)
    evaluation = evaluate_embeddings(labelled, EvaluationOptions(split="published", clustering=()), heads)
    y_true = labelled.labels(classes)[:6]
    assert evaluation.counts["cells"] == 6 and evaluation.counts["cells_in_data"] == 12
    report = evaluation.localization
    assert report["absent_classes"] == ["Vesicles"]
    assert evaluation.metrics["localization"] == pytest.approx(localization_metrics(y_true, heads[:6].mean(axis=1)))
    seed_values = [localization_metrics(y_true, heads[:6, h]) for h in range(3)]
    assert report["seeds"]["values"]["micro_average_precision"] == pytest.approx(
        [m["micro_average_precision"] for m in seed_values]
    )
    assert report["seeds"]["ids"] == [0, 1, 2]
    split_report = evaluation.protocol["split_report"]
    assert split_report["test"]["antibodies_found"] == 4 and split_report["train"]["cells"] == 6

    results = results_from_evaluation("me/model", evaluation, DATASET)
    names = [m["name"] for m in results["metrics"]]
    assert names[0] == "Micro average precision (ensemble of 3 heads)"
    assert "Micro average precision (mean of 3 seeds)" in names
    card = ModelCardData(**{"model-index": model_index_from_results(results)})
    assert [(r.metric_name, r.metric_config, r.metric_value) for r in card.eval_results][:1] == [
        ("Micro average precision (ensemble of 3 heads)", "ensemble", results["metrics"][0]["value"])
    ]


def test_grouping_scores_groups_instead_of_classes():
    classes = ["Nucleoli", "Nucleoli rim", "Nucleoplasm", "Cytosol"]
    locations = ["Nucleoli", "Nucleoli rim", "Nucleoplasm", "Cytosol", "Nucleoli;Cytosol", "Nucleoplasm"]
    probabilities = np.random.default_rng(6).random((6, 4))
    labelled = _labelled(locations, probabilities, classes)
    options = EvaluationOptions(split="random", grouping="Grouping 2", clustering=())
    evaluation = evaluate_embeddings(labelled, options)
    y_true, y_score, groups = group_scores(labelled.labels(classes), probabilities, classes, "Grouping 2")
    assert evaluation.localization["classes"] == groups == ["Nucleoli", "Nucleus", "Cytosol"]
    assert evaluation.metrics["localization"] == pytest.approx(localization_metrics(y_true, y_score))
    assert "Grouping 2" in results_from_evaluation("me/model", evaluation, DATASET)["metrics"][0]["name"]


def test_replicate_and_moa_retrieval_on_well_profiles_with_a_well_metadata_table(tmp_path):
    # 3 plates x 8 wells, one compound per well column, 2 MoAs; 3 cells per well; compound and MoA come from a
    # per-well table joined on plate + well (one well of it is missing: its cells get "").
    rows = [(f"P{p}", f"W{w}") for p in range(3) for w in range(8) for _ in range(3)]
    plate, well = map(list, zip(*rows))
    wells = pd.DataFrame([(f"P{p}", f"W{w}", f"C{w}", f"M{w % 2}") for p in range(3) for w in range(8)],
                         columns=["plate", "well", "compound", "moa"])
    wells.iloc[1:].to_csv(tmp_path / "wells.csv", index=False)
    rng = np.random.default_rng(7)
    compound_ids = np.array([int(w[1:]) for w in well])
    embeddings = rng.normal(size=(72, 8)) + 2 * np.eye(8)[compound_ids] + 2 * np.eye(8)[compound_ids % 2]
    labelled = _labelled(["Cytosol"] * 72, plate=plate, well=well)
    labelled.embeddings = embeddings.astype(np.float32)
    options = EvaluationOptions(
        split="random", clustering=(), metadata=tmp_path / "wells.csv", replicate_column="compound",
        moa_column="moa", null_size=500,
    )
    evaluation = evaluate_embeddings(labelled, options)
    assert "3 cells have no row in wells.csv (joined on ['plate', 'well'])" in evaluation.notes
    assert evaluation.counts["profiles"] == 24
    assert set(evaluation.metrics) == {"replicate_retrieval", "moa_retrieval"}
    assert evaluation.metrics["replicate_retrieval"]["mean_average_precision"] > 0.8
    assert len(evaluation.retrieval_tables["replicate_retrieval"]) == 8  # the unmatched well ("") has no replicate
    assert len(evaluation.retrieval_tables["moa_retrieval"]) == 2
    assert evaluation.protocol["retrieval"]["normalization"] == "mad_robustize"


def test_an_evaluation_without_any_metric_is_refused_and_bad_options_fail_early():
    evaluation = evaluate_embeddings(_labelled(["Nucleoli"] * 6), EvaluationOptions(**RANDOM))
    assert "fewer than 2 distinct single-location classes" in evaluation.notes[0]
    with pytest.raises(ValueError, match="no metric"):
        results_from_evaluation("me/encoder", evaluation, DATASET)
    with pytest.raises(ValueError, match="unknown grouping"):
        EvaluationOptions(grouping="Grouping 7")
    with pytest.raises(ValueError, match="none of the 4 antibodies"):
        evaluate_embeddings(_labelled(["Nucleoli"] * 6), EvaluationOptions(split="published"))
