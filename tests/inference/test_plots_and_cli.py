"""`subcell-hf embed` / `subcell-hf plot` and the plotting API (PCA without umap-learn)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from subcell_hf.cli import main
from subcell_hf.inference.plots import attention_grid_figure, plot_attention_grid, plot_embedding_map, reduce_to_2d
from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_reduce_to_2d_falls_back_to_pca_without_umap():
    embeddings = np.random.default_rng(0).normal(size=(20, 16)).astype(np.float32)
    embeddings[:10, 0] += 10  # two clusters along the first axis
    coords, method = reduce_to_2d(embeddings)
    assert coords.shape == (20, 2)
    if importlib.util.find_spec("umap") is None:
        assert method == "pca"
        separation = abs(coords[:10, 0].mean() - coords[10:, 0].mean())
        assert separation > 5 * coords[:, 1].std()
        with pytest.raises(ImportError, match="umap-learn"):
            reduce_to_2d(embeddings, method="umap")
    with pytest.raises(ValueError, match="at least 3"):
        reduce_to_2d(embeddings[:2])


def test_embed_and_plot_commands(tiny_converted, wrapper_csv, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["embed", "--model", str(tiny_converted), "--inputs", str(wrapper_csv), "--output", str(out),
                 "--num_workers", "0", "--progress", "false", "--save_attention", "true", "--formats", "[h5ad, npy]"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["cells"] == 6 and report["failed_inputs"] == 0
    assert Path(report["outputs"]["h5ad"]).is_file() and (out / "cell0_attention_map.png").is_file()

    code = main(["plot", "--h5ad", str(out / "embeddings.h5ad"), "--color", "top_1", "--attention_grid", "true",
                 "--method", "pca"])
    written = json.loads(capsys.readouterr().out)
    assert code == 0 and Path(written["map"]).name == "pca_top_1.png"  # the file says which method it holds
    for key in ("map", "attention_grid"):
        with Image.open(written[key]) as picture:
            assert picture.format == "PNG" and min(picture.size) > 100
    figure = attention_grid_figure(out / "embeddings.h5ad", num_cells=4)  # what the grid shows a reader
    # one axes per cell (the pictures carry their panel titles and colour bar), titled with its id and top-1 class
    assert len(figure.axes) == 4 and all(": " in axes.get_title() for axes in figure.axes)
    assert main(["plot", "--h5ad", str(out / "embeddings.h5ad"), "--color", "no_such_column"]) == 2
    assert "not an obs column" in capsys.readouterr().err


def test_embed_command_exit_status_reports_failed_rows(tiny_converted, broken_csv, tmp_path, capsys):
    code = main(["embed", "--model", str(tiny_converted), "--inputs", str(broken_csv), "--output",
                 str(tmp_path / "out"), "--num_workers", "0", "--progress", "false"])
    captured = capsys.readouterr()
    assert code == 1
    assert json.loads(captured.out)["failed_inputs"] == 3
    assert "path_list.csv line 5" in captured.err and "nowhere.png: file not found" in captured.err
    # a fatal problem (not a CSV the tool understands) is exit status 2 and writes nothing
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["embed", "--model", str(tiny_converted), "--inputs", str(bad), "--output", str(tmp_path / "x")]) == 2
    assert "cannot tell the input kind" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_plot_attention_grid_needs_attention_maps(tiny_converted, wrapper_csv, tmp_path):
    from subcell_hf.inference import embed

    result = embed(tiny_converted, wrapper_csv, tmp_path / "out", num_workers=0, progress=False)
    with pytest.raises(ValueError, match="--save_attention true"):
        plot_attention_grid(result.outputs["h5ad"], tmp_path / "grid.png")
    path = plot_embedding_map(anndata.read_h5ad(result.outputs["h5ad"]), tmp_path / "map.png", color="input_index")
    assert path.is_file()


@pytest.mark.slow
def test_two_process_launch_splits_chunks_and_merges_like_one_process(tiny_converted, wrapper_csv, tmp_path):
    """`accelerate launch` with 2 CPU processes: each rank computes its chunks, rank 0 merges the same file."""
    from subcell_hf.inference import embed

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the launched processes (OMP_NUM_THREADS=1): the files are compared byte for byte
    try:
        single = embed(tiny_converted, wrapper_csv, tmp_path / "single", chunk_size=2, num_workers=0, progress=False)
    finally:
        torch.set_num_threads(threads)
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--main_process_port", str(free_port()), "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "subcell_hf.cli", "embed",
        "--model", str(tiny_converted), "--inputs", str(wrapper_csv), "--output", str(tmp_path / "launched"),
        "--chunk_size", "2", "--num_workers", "0", "--progress", "false",
    ]
    completed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert completed.returncode == 0, completed.stderr[-2000:]
    reports = [json.loads(block) for block in _json_blocks(completed.stdout)]
    assert len(reports) == 1 and reports[0]["chunks_computed"] == 2  # rank 0 computed 2 of the 3 chunks
    launched = tmp_path / "launched"
    assert sorted(p.name for p in (launched / "chunks").glob("chunk-*")) == [f"chunk-00000{i}.npz" for i in range(3)]
    assert (launched / "embeddings.h5ad").read_bytes() == single.outputs["h5ad"].read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(launched / "summary.csv"), pd.read_csv(single.outputs["summary"]))


def _json_blocks(text: str) -> list[str]:
    blocks, current = [], []
    for line in text.splitlines():
        if line == "{":
            current = [line]
        elif current:
            current.append(line)
            if line == "}":
                blocks.append("\n".join(current))
                current = []
    return blocks


def test_embed_exit_status_2_when_every_input_fails_for_one_reason(tiny_converted, tmp_path, capsys):
    rows = ["r_image,y_image,b_image,g_image,output_prefix"]
    rows += [f"m{i}.png,y{i}.png,b{i}.png,g{i}.png,cell{i}" for i in range(3)]
    (tmp_path / "missing.csv").write_text("\n".join(rows) + "\n")
    code = main(["embed", "--model", str(tiny_converted), "--inputs", str(tmp_path / "missing.csv"), "--output",
                 str(tmp_path / "out"), "--num_workers", "0", "--progress", "false"])
    err = capsys.readouterr().err
    assert code == 2
    assert "nothing embedded: all 3 inputs failed for the same reason: file not found" in err
    # no empty embeddings file that would read as a finished run: only the summary, which says why
    assert sorted(p.name for p in (tmp_path / "out").glob("[!.]*") if p.is_file()) == ["summary.csv"]  # not the lock
    assert (tmp_path / "out" / "summary.csv").read_text().count("file not found") == 3


def test_pca_axes_give_the_explained_variance():
    from sklearn.decomposition import PCA

    from subcell_hf.inference.plots import _reduce

    embeddings = np.random.default_rng(0).normal(size=(30, 8)).astype(np.float32) * np.arange(1, 9)
    _, used, labels = _reduce(embeddings, "pca", 0)
    ratios = PCA(n_components=2, random_state=0).fit(embeddings).explained_variance_ratio_
    assert used == "pca" and labels == [f"PC{i + 1} ({100 * r:.1f}% of variance)" for i, r in enumerate(ratios)]
