r"""The bad-input matrix of the command-line tools: bad files, bad options, a kill mid-run then a rerun, two runs on
one output. Each case runs the real command (in-process where it can, a subprocess for kills) on tiny synthetic
models and data, and prints one line: case, expected, observed, verdict. Results go to
benchmarks/results/fault_matrix.{md,json}; the guarantees they check are in docs/reliability.md.

    python benchmarks/fault_matrix.py                       # a few minutes on 2 CPU cores
    python benchmarks/fault_matrix.py --output /tmp/matrix  # write the results elsewhere
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HOME", tempfile.mkdtemp(prefix="fault-matrix-hf-"))  # never the user's cache

import numpy as np  # noqa: E402
import torch  # noqa: E402

import tests.utils  # noqa: E402
from tests.utils import PicklePayload, corrupt_shard_record, write_crop_files, write_wrapper_csv  # noqa: E402

RELEASE = "all_channels-vit-prots-pool"
RESULTS = ROOT / "benchmarks" / "results"


@dataclass
class Case:
    command: str
    case: str
    expected: str
    observed: str
    passed: bool


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`subcell-hf <argv>` in this process: (exit status, stderr + stdout); -1 and the error for a traceback."""
    try:
        return tests.utils.run_cli(argv)
    except Exception as error:  # noqa: BLE001 - a traceback is what the matrix looks for
        return -1, f"traceback: {type(error).__name__}: {error}"


def run_pretrain(argv: list[str]) -> tuple[int, str]:
    """`recipes/pretrain.py <argv>` in this process, as run_cli."""
    try:
        return tests.utils.run_main(tests.utils.load_recipe("pretrain").main, argv)
    except Exception as error:  # noqa: BLE001
        return -1, f"traceback: {type(error).__name__}: {error}"
    finally:
        tests.utils.reset_accelerate_state()


def summary(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if "error" in line or "traceback" in line or "refused" in line]
    return (lines[-1] if lines else text.strip().splitlines()[-1] if text.strip() else "").strip()[:160]


class Matrix:
    def __init__(self, work: Path):
        self.work = work
        self.cases: list[Case] = []

    def check(self, command: str, case: str, expected: str, status: int, text: str, extra: bool = True,
              want: int = 2, note: str = "") -> None:
        passed = status == want and extra
        observed = f"exit {status}: {note or summary(text)}"
        self.cases.append(Case(command, case, expected, observed, passed))
        print(f"{'ok  ' if passed else 'FAIL'} {command:8s} {case:55s} expected: {expected} | observed: {observed}",
              flush=True)


def build_fixtures(work: Path) -> dict:
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.data.synthetic import TINY_ARCHITECTURE, write_release_files
    from subcell_hf.variants import RELEASES

    release_dir = work / "release"
    write_release_files(release_dir, [RELEASES[RELEASE]], arch=TINY_ARCHITECTURE)
    model = work / "model"
    convert_release(RELEASES[RELEASE], release_dir, model)
    rng = np.random.default_rng(0)
    crops = work / "crops"
    crops.mkdir()
    rows = [{**write_crop_files(crops, f"cell{i}", rng), "output_prefix": f"cell{i}"} for i in range(24)]
    return {"release_dir": release_dir, "model": model, "crops": crops, "rows": rows, "csv": write_wrapper_csv}


def convert_cases(matrix: Matrix, fx: dict) -> None:
    import torch as _torch

    from subcell_hf.variants import RELEASES

    release_dir, work = fx["release_dir"], matrix.work
    base = ["convert", "--release", RELEASE, "--release_dir", str(release_dir)]
    user = work / "user_folder"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    cwd = os.getcwd()
    os.chdir(user)
    try:
        status, text = run_cli(base + ["--output", ".", "--overwrite", "true"])
    finally:
        os.chdir(cwd)
    matrix.check("convert", "--output . --overwrite (current folder)", "exit 2, nothing deleted", status, text,
                 (user / "notes.txt").exists() and len(list(user.iterdir())) == 1)
    status, text = run_cli(base + ["--output", str(user), "--overwrite", "true"])
    matrix.check("convert", "--overwrite of a folder it did not write", "exit 2, nothing deleted", status, text,
                 (user / "notes.txt").exists())
    status, text = run_cli(base + ["--output", str(release_dir.parent), "--overwrite", "true"])
    matrix.check("convert", "--overwrite of a parent of the inputs", "exit 2, nothing deleted", status, text,
                 release_dir.is_dir())
    out = work / "converted"
    run_cli(base + ["--output", str(out)])
    status, text = run_cli(base + ["--output", str(out), "--overwrite", "true"])
    matrix.check("convert", "--overwrite of its own previous output", "exit 0, replaced", status, text,
                 (out / "model.safetensors").is_file(), want=0, note="replaced")
    mode = oct(out.stat().st_mode & 0o777)
    matrix.check("convert", "output permissions under umask 022", "folder 0o755", 0 if mode == "0o755" else 1,
                 "", want=0, note=f"folder {mode}")

    bad_release = work / "bad_release"
    shutil.copytree(release_dir, bad_release)
    classifiers = RELEASES[RELEASE].source_paths(bad_release)[1]
    state = _torch.load(classifiers[3], weights_only=True)
    del state["6.weight"], state["6.bias"]
    _torch.save(state, classifiers[3])
    status, text = run_cli(["convert", "--release", RELEASE, "--release_dir", str(bad_release),
                            "--output", str(work / "bad_out")])
    matrix.check("convert", "one classifier without its last layer", "exit 2 naming classifier_seed_3", status, text,
                 "classifier_seed_3" in text and "classifier_seed_0" not in text)
    _torch.save({}, classifiers[3])
    status, text = run_cli(["convert", "--release", RELEASE, "--release_dir", str(bad_release),
                            "--output", str(work / "bad_out"), "--any_classifier_architecture", "true"])
    matrix.check("convert", "an empty classifier file", "exit 2 naming the file", status, text,
                 "classifier_seed_3" in text)
    payload = work / "payload_release"
    shutil.copytree(release_dir, payload)
    encoder = RELEASES[RELEASE].source_paths(payload)[0]
    marker = work / "convert_payload_ran"
    _torch.save({"x": PicklePayload(marker)}, encoder)
    status, text = run_cli(["convert", "--release", RELEASE, "--release_dir", str(payload),
                            "--output", str(work / "payload_out")])
    matrix.check("convert", "encoder .pth with a pickle payload", "exit 2, payload not run", status, text,
                 not marker.exists())


def embed_cases(matrix: Matrix, fx: dict) -> None:
    from safetensors.torch import load_file, save_file

    work, model, crops, rows, write_csv = matrix.work, fx["model"], fx["crops"], fx["rows"], fx["csv"]
    csv = write_csv(crops, rows[:4])
    base = ["embed", "--model", str(model), "--inputs", str(csv), "--num_workers", "0", "--progress", "false"]
    for option in (["--chunk_size", "0"], ["--size", "0"], ["--size", "-16"]):
        status, text = run_cli(base + ["--output", str(work / "e_opts"), *option])
        matrix.check("embed", " ".join(option), "exit 2 with a message", status, text)

    broken = [dict(row) for row in rows[:4]]
    missing = crops / broken[1]["protein"]
    kept = missing.read_bytes()
    missing.unlink()
    broken_csv = write_csv(crops, broken)
    out = work / "e_broken"
    status, text = run_cli(["embed", "--model", str(model), "--inputs", str(broken_csv), "--output", str(out),
                            "--num_workers", "0", "--progress", "false", "--chunk_size", "1"])
    matrix.check("embed", "a missing image", "exit 1, 3 cells, the file named", status, text,
                 "file not found" in text and '"cells": 3' in text, want=1)
    missing.write_bytes(kept)
    status, text = run_cli(["embed", "--model", str(model), "--inputs", str(broken_csv), "--output", str(out),
                            "--num_workers", "0", "--progress", "false", "--chunk_size", "1"])
    matrix.check("embed", "rerun after fixing the images", "exit 0, failed rows retried", status, text,
                 '"cells": 4' in text, want=0, note="4 cells" if '"cells": 4' in text else summary(text))

    folder_row = [dict(row) for row in rows[:2]]
    folder_row[1]["dna"] = "crops"
    status, text = run_cli(["embed", "--model", str(model), "--inputs", str(write_csv(crops, folder_row)), "--output",
                            str(work / "e_folder"), "--num_workers", "0", "--progress", "false"])
    matrix.check("embed", "a folder given as an image", "exit 1, named as a folder", status, text,
                 "is a folder" in text, want=1)
    dup = [dict(row) for row in rows[:3]]
    dup[0]["output_prefix"], dup[1]["output_prefix"], dup[2]["output_prefix"] = "a", "./a", "a/"
    status, text = run_cli(["embed", "--model", str(model), "--inputs", str(write_csv(crops, dup)), "--output",
                            str(work / "e_dup"), "--num_workers", "0", "--progress", "false"])
    matrix.check("embed", "prefixes a, ./a, a/ (one file)", "exit 2, duplicate named", status, text,
                 "repeats line" in text)
    csv = write_csv(crops, rows[:4])
    lines = csv.read_text().splitlines()
    lines[-1] += ",surplus"
    csv.write_text("\n".join(lines) + "\n")
    status, text = run_cli(["embed", "--model", str(model), "--inputs", str(csv), "--output", str(work / "e_extra"),
                            "--num_workers", "0", "--progress", "false"])
    matrix.check("embed", "a row with an extra value", "exit 2 naming the line", status, text, "line" in text)
    csv = write_csv(crops, rows[:4])

    busy = work / "e_busy"
    busy.mkdir()
    with open(busy / ".subcell_hf.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        status, text = run_cli(base + ["--output", str(busy)])
    matrix.check("embed", "a second run on an output being written", "exit 2, first run untouched", status, text,
                 not (busy / "chunks").exists())

    fewer = work / "model_fewer_heads"
    shutil.copytree(model, fewer)
    tensors = load_file(fewer / "model.safetensors")
    save_file({k: v for k, v in tensors.items() if not k.startswith("classifiers.9.")}, fewer / "model.safetensors",
              metadata={"format": "pt"})
    status, text = run_cli(["embed", "--model", str(fewer), "--inputs", str(csv), "--output", str(work / "e_fewer"),
                            "--num_workers", "0", "--progress", "false"])
    matrix.check("embed", "weights hold 9 of the config's 10 classifiers", "exit 2 naming the tensors", status,
                 text, "classifiers.9" in text)
    os.environ["HF_HUB_OFFLINE"] = "1"
    from huggingface_hub import constants

    constants.HF_HUB_OFFLINE = True
    try:
        status, text = run_cli(["embed", "--model", "nobody/not-cached", "--inputs", str(csv), "--output", str(work / "e_off"),
                                "--num_workers", "0", "--progress", "false"])
    finally:
        os.environ.pop("HF_HUB_OFFLINE")
        constants.HF_HUB_OFFLINE = False
    matrix.check("embed", "HF_HUB_OFFLINE=1, repo not in the cache", "exit 2 naming repo and cache", status, text,
                 "nobody/not-cached" in text and "cache" in text)

    moved = work / "model_elsewhere"
    shutil.copytree(model, moved)
    run_cli(base + ["--output", str(work / "e_resume"), "--chunk_size", "1"])
    status, text = run_cli(["embed", "--model", str(moved), "--inputs", str(csv), "--output", str(work / "e_resume"),
                            "--num_workers", "0", "--progress", "false", "--chunk_size", "1"])
    matrix.check("embed", "rerun with the same model at another path", "exit 0, every chunk reused", status, text,
                 '"chunks_computed": 0' in text, want=0, note="chunks_computed 0" if '"chunks_computed": 0' in text
                 else summary(text))

    # kill mid-run (SIGKILL, nothing can be cleaned up), then rerun
    big = write_csv(crops, rows)
    killed = work / "e_killed"
    command = [sys.executable, "-m", "subcell_hf.cli", "embed", "--model", str(model), "--inputs", str(big), "--output",
               str(killed), "--num_workers", "0", "--progress", "false", "--chunk_size", "1", "--batch_size", "1"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list((killed / "chunks").glob("chunk-*.npz"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list((killed / "chunks").glob("chunk-*.npz")))
    status, text = run_cli(command[3:])
    clean = work / "e_clean"
    run_cli([str(clean) if argument == str(killed) else argument for argument in command[3:]])
    import anndata

    same = np.array_equal(anndata.read_h5ad(killed / "embeddings.h5ad").X,
                          anndata.read_h5ad(clean / "embeddings.h5ad").X)
    leftovers = [p for p in killed.rglob(".*partial*")]
    matrix.check("embed", f"SIGKILL after {done_before} of 24 chunks, then rerun", "exit 0, same as a clean run",
                 status, text, same and not leftovers and 0 < done_before < 24, want=0,
                 note=f"identical embeddings: {same}, leftovers: {len(leftovers)}")

    shard_cases(matrix, fx)


def shard_cases(matrix: Matrix, fx: dict) -> None:
    from subcell_hf.data.crops import CropOptions
    from subcell_hf.data.shards import write_shards
    from subcell_hf.data.synthetic import generate_dataset

    work = matrix.work
    manifest = generate_dataset(work / "fields", num_fields=2, num_antibodies=2, image_size=256, seed=0,
                                show_progress=False)
    shards = work / "shards"
    write_shards(manifest, shards, num_workers=0, show_progress=False, records_per_shard=100,
                 crop=CropOptions(size=64, output_size=64, min_area=100))
    status, text = run_cli(["shards", "--manifest", str(manifest), "--output", str(work / "fields"), "--overwrite", "true"])
    matrix.check("shards", "--overwrite of the folder holding the manifest", "exit 2, nothing deleted", status,
                 text, manifest.is_file())
    shard = sorted(shards.glob("shard-*.tar"))[0]
    first = corrupt_shard_record(shard)  # the first record's arrays become garbage
    status, text = run_cli(["embed", "--model", str(fx["model"]), "--inputs", str(shards), "--output", str(work / "e_shards"),
                            "--num_workers", "0", "--progress", "false"])
    matrix.check("embed", "one corrupt record in a shard", "exit 1, only that record lost", status, text,
                 first in text and '"failed_inputs": 1' in text, want=1)


def pretrain_cases(matrix: Matrix) -> None:
    from subcell_hf.pretraining.checkpoints import list_checkpoints
    from subcell_hf.data.synthetic import prepare_synthetic_shards

    work = matrix.work
    status, text = run_pretrain(["--config_path", str(work / "nowhere.yaml")])
    matrix.check("pretrain", "--config_path of a missing file", "exit 2 naming the file", status, text,
                 "nowhere.yaml" in text)
    bad = work / "bad.yaml"
    bad.write_text("model:\n  family: vit-prots-pool\ndata: [unclosed\n")
    status, text = run_pretrain(["--config_path", str(bad)])
    matrix.check("pretrain", "a YAML syntax error", "exit 2 naming file and line", status, text, "line" in text)

    train, validation = prepare_synthetic_shards(work / "synthetic", num_fields=4, num_validation_fields=4,
                                                 num_antibodies=4, show_progress=False)
    run = work / "pretrain_run"
    argv = ["--config_path", "tiny", f"--data.shards={train}", f"--data.validation_shards={validation}",
            "--data.records_per_batch=2", "--optim.max_steps=4", "--optim.warmup_steps=1",
            f"--train.output_dir={run}", "--train.report_to=none", "--train.log_every=1", "--train.save_every=2",
            "--eval.every=0"]
    status, text = run_pretrain(argv)
    latest = list_checkpoints(run)[-1]
    marker = work / "resume_payload_ran"
    for planted in sorted(p for p in latest.iterdir() if p.suffix in (".pkl", ".bin")):
        original = planted.read_bytes()
        torch.save({"payload": PicklePayload(marker)}, planted)
        status, text = run_pretrain(argv + ["--resume", "auto"])
        matrix.check("pretrain", f"--resume with a payload in {planted.name}", "exit 2, payload not run", status,
                     text, not marker.exists() and planted.name in text)
        planted.write_bytes(original)
    weights = latest / "model.safetensors"
    original = weights.read_bytes()
    weights.write_bytes(original[: len(original) // 2])
    status, text = run_pretrain(argv + ["--resume", "auto"])
    matrix.check("pretrain", "--resume from a truncated checkpoint", "exit 2 offering step_00000002", status, text,
                 "step_00000002" in text)
    weights.write_bytes(original)
    shutil.rmtree(latest)  # as if killed after logging step 4, before its checkpoint completed
    status, text = run_pretrain(argv + ["--resume", "auto"])
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()
             if "train/loss" in line]
    matrix.check("pretrain", "resume after a kill: metrics.jsonl", "exit 0, each step logged once", status, text,
                 steps == [1, 2, 3, 4], want=0, note=f"steps {steps}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=RESULTS, help="folder for fault_matrix.{md,json}")
    args = parser.parse_args(argv)
    os.umask(0o022)
    started, load_start = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="fault-matrix-") as folder:
        work = Path(folder)
        matrix = Matrix(work)
        fixtures = build_fixtures(work)
        convert_cases(matrix, fixtures)
        embed_cases(matrix, fixtures)
        pretrain_cases(matrix)
    seconds = time.perf_counter() - started
    passed = sum(case.passed for case in matrix.cases)
    print(f"{passed}/{len(matrix.cases)} cases as expected in {seconds:.0f} s")
    args.output.mkdir(parents=True, exist_ok=True)
    payload = {"passed": passed, "cases": len(matrix.cases), "seconds": round(seconds, 1),
               "cpu_cores": os.cpu_count(), "load_average_1min": [round(load_start, 2), round(os.getloadavg()[0], 2)],
               "note": "the time is indicative only (load averages at the start and the end of the run)",
               "results": [asdict(case) for case in matrix.cases]}
    (args.output / "fault_matrix.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        "# Fault matrix", "",
        f"`python benchmarks/fault_matrix.py`: {passed} of {len(matrix.cases)} cases as expected "
        f"({seconds:.0f} s on a {os.cpu_count()}-core CPU, 1-min load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end). Guarantees: docs/reliability.md.", "",
        "| command | case | expected | observed | verdict |", "|---|---|---|---|---|",
    ]
    for case in matrix.cases:
        observed = case.observed.replace("|", "\\|")
        lines.append(f"| {case.command} | {case.case} | {case.expected} | {observed} | "
                     f"{'ok' if case.passed else 'FAIL'} |")
    (args.output / "fault_matrix.md").write_text("\n".join(lines) + "\n")
    return 0 if passed == len(matrix.cases) else 1


if __name__ == "__main__":
    sys.exit(main())
