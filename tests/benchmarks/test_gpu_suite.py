"""`benchmarks/gpu_suite.py --quick`: every step's code runs on the CPU at tiny sizes and reports sane numbers;
without --quick and without CUDA every step says it was skipped."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import gpu_suite  # noqa: E402

STEPS = ["correctness", "inference_throughput", "input_pipeline", "pretraining"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    output = tmp_path_factory.mktemp("suite")
    threads = torch.get_num_threads()
    try:
        code = gpu_suite.main(["--quick", "--output", str(output)])
    finally:
        torch.set_num_threads(threads)
    return code, json.loads((output / "suite.json").read_text()), (output / "suite.md").read_text()


def test_quick_runs_every_step_and_writes_both_reports(quick_report):
    code, report, markdown = quick_report
    assert code == 0
    assert list(report["steps"]) == STEPS
    assert [report["steps"][s]["order"] for s in STEPS] == [1, 2, 3, 4]
    assert all(report["steps"][s]["status"] == "ok" for s in STEPS), {s: report["steps"][s]["status"] for s in STEPS}
    for index, step in enumerate(STEPS, start=1):
        assert f"## {index}. {step}: ok" in markdown


def test_quick_correctness_parity_numbers(quick_report):
    result = quick_report[1]["steps"]["correctness"]["result"]
    assert set(result["fp32_max_abs_diff_vs_cpu"]) == {"embeddings", "probabilities", "pool_attentions",
                                                        "cls_attentions"}
    assert max(result["fp32_max_abs_diff_vs_cpu"].values()) <= 1e-4
    assert max(result["sdpa_vs_eager_max_abs_diff"].values()) <= 1e-4
    assert 0.999 <= result["bf16_min_cosine_embeddings"] <= 1.0 + 1e-6
    assert 0 < result["bf16_probabilities_max_abs_diff"] < 0.05  # bf16 does change the numbers, a little
    assert result["embed_loader_raw_transfer_max_abs_diff"] == {"uint8": 0.0, "uint16": 0.0}
    assert result["passed"] and all(result["checks"].values())


def test_quick_throughput_pipeline_and_pretraining_numbers(quick_report):
    steps = quick_report[1]["steps"]
    throughput = steps["inference_throughput"]["result"]
    rows = throughput["rows"]
    assert {(r["precision"], r["attention"], r["compile"]) for r in rows} >= {
        ("bf16", "sdpa", False), ("bf16", "sdpa", True), ("fp32", "eager", False), ("tf32", "sdpa", False)}
    assert all(r["cells_per_s"] > 0 and "error" not in r for r in rows)
    assert throughput["gflops_per_cell_forward"] > 0 and throughput["best"]["cells_per_s"] > 0
    assert throughput["peak_bf16_flops_assumed"] is None  # a CPU has no datasheet peak in the table

    pipeline = steps["input_pipeline"]["result"]["runs"]
    assert set(pipeline) == {"csv_8bit_png_crops", "fields_2048px_manifest"}
    assert pipeline["csv_8bit_png_crops"]["cells"] == 16
    for run in pipeline.values():
        assert run["failures"] == 0 and run["cells"] > 0
        assert 0 < run["forward_share"] <= 1 and run["loader_cells_per_s_per_worker"] > 0
        assert run["workers_needed_at_model_rate"] >= 1

    pretraining = steps["pretraining"]["result"]
    (tiny,) = pretraining["presets"]
    assert tiny["preset"] == "tiny" and tiny["cells_per_step"] == tiny["records_per_gpu"] * 8
    assert tiny["flops_per_cell"] > 0 and tiny["steps_per_s"] > 0
    assert pretraining["augmentation"]["cells_per_s"] > 0
    assert pretraining["streaming_loader"]["cells"] > 0
    assert pretraining["deepspeed_zero2"]["skipped"].startswith("--quick")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only behaviour")
def test_without_cuda_every_step_is_skipped(tmp_path):
    assert gpu_suite.main(["--output", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "suite.json").read_text())
    assert [e["status"] for e in report["steps"].values()] == ["skipped: no CUDA"] * 4
    assert "skipped: no CUDA" in (tmp_path / "suite.md").read_text()


def test_deadline_interrupts_a_step():
    start = time.monotonic()
    with pytest.raises(gpu_suite.StepTimeout):
        with gpu_suite.deadline(0.2):
            while True:
                time.sleep(0.01)
    assert time.monotonic() - start < 5
