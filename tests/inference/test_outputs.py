"""Chunk files, the merged table and its writers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subcell_hf.inference import attention as layout
from subcell_hf.inference.attention import OUTLINE_COLOR, attention_panels, attention_picture, save_attention_png
from subcell_hf.inference.chunks import ChunkResult, ChunkStore, plan_chunks
from subcell_hf.inference.outputs import build_table, cell_file_path, summary_frame, top_k_table


def _chunk(ids, item0, probabilities=True, failures=()):
    n = len(ids)
    rng = np.random.default_rng(item0)
    return ChunkResult(
        rng.normal(size=(n, 8)).astype(np.float32),
        rng.uniform(size=(n, 5)).astype(np.float32) if probabilities else None,
        [{"id": i, "item": item0 + k, "source": f"row {item0 + k}", "metadata": {"plate": "p1", "n": k}}
         for k, i in enumerate(ids)],
        list(failures),
    )


def test_plan_chunks_covers_every_item_once():
    chunks = plan_chunks(10, 4)
    assert [list(c.items) for c in chunks] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert [c.index for c in chunks] == [0, 1, 2]
    with pytest.raises(ValueError):
        plan_chunks(3, 0)


def test_chunk_store_round_trip_and_empty_chunks(tmp_path):
    store = ChunkStore(tmp_path / "chunks")
    full = _chunk(["a", "b"], 0, failures=[{"item": 2, "id": "c", "source": "row 2", "error": "boom"}])
    empty = ChunkResult(np.zeros((0, 8), np.float32), None, [], [{"item": 3, "id": "d", "source": "", "error": "x"}])
    store.write(0, full)
    store.write(1, empty)
    assert store.completed(plan_chunks(4, 2)) == set()  # both hold failed inputs: a rerun retries them
    back = store.read(0)
    np.testing.assert_array_equal(back.embeddings, full.embeddings)
    np.testing.assert_array_equal(back.probabilities, full.probabilities)
    assert back.cells == full.cells and back.failures == full.failures
    assert store.read(1).probabilities is None and store.read(1).embeddings.shape == (0, 8)
    assert not list((tmp_path / "chunks").glob(".*tmp"))  # nothing half-written left behind
    with pytest.raises(FileNotFoundError, match="chunk 7 is missing"):
        store.read(7)


def test_top_k_table_orders_by_probability():
    probabilities = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]], np.float32)
    top = top_k_table(probabilities, ["A", "B", "C"], k=2)
    assert top["top_1"].tolist() == ["B", "A"] and top["top_2"].tolist() == ["C", "C"]
    assert top["top_1_score"].tolist() == pytest.approx([0.9, 0.7])


def test_build_table_types_columns_makes_ids_unique_and_summary_keeps_input_order():
    merged = ChunkResult.concatenate(
        [_chunk(["x", "y"], 0), _chunk(["x"], 3, failures=[{"item": 2, "id": "bad", "source": "row 2", "error": "e"}])],
        embedding_size=8,
    )
    merged.cells[2]["metadata"]["extra"] = 1.5  # a column only some cells have
    merged.cells[0]["metadata"]["source"] = "microscope 2"  # a metadata column named like one of ours
    table = build_table(merged, ["A", "B", "C", "D", "E"], {"model_id": "m"})
    assert table.obs["source"].tolist() == ["row 0", "row 1", "row 3"]
    assert table.obs["metadata_source"].tolist() == ["microscope 2", "", ""]
    assert list(table.obs.index) == ["x", "y", "x-1"]
    assert table.obs["n"].dtype == np.int64 and table.obs["plate"].tolist() == ["p1"] * 3
    assert table.obs["extra"].dtype == np.float64 and np.isnan(table.obs["extra"].iloc[0])
    summary = summary_frame(table)
    assert summary["id"].tolist() == ["x", "y", "bad", "x-1"]
    assert summary["status"].tolist() == ["ok", "ok", "failed", "ok"]
    assert set(summary.columns) >= {"top_1", "top_3_score", "error", "source"}


def test_cell_file_path_stays_inside_the_output_folder(tmp_path):
    assert cell_file_path(tmp_path, "plate1/cellA", "_embedding.npy") == tmp_path / "plate1" / "cellA_embedding.npy"
    assert cell_file_path(tmp_path, "../../etc/x", ".png") == tmp_path / "etc" / "x.png"
    assert cell_file_path(tmp_path, "/abs/y", ".png") == tmp_path / "abs" / "y.png"


def test_attention_picture_is_readable_and_outlines_the_cell(tmp_path):
    from PIL import Image

    protein = np.zeros((32, 32), np.float32)
    protein[:16] = 1.0  # top half bright
    pixels = np.stack([np.zeros_like(protein), protein])  # dna, protein
    attention = np.zeros((2, 2, 2), np.float32)
    attention[0, 1, 1] = 1.0  # head 0 looks at the bottom-right patch
    attention[1, 0, 0] = 1.0  # head 1 at the top-left one
    mask = np.zeros((32, 32), bool)
    mask[8:24, 4:20] = True
    composite, head0, head1 = (p.astype(int) for p in attention_panels(pixels, attention, ["dna", "protein"], mask))
    assert composite.shape == (256, 256, 3)  # 32-px crop enlarged 8 times to MIN_PANEL
    np.testing.assert_array_equal(composite[10, 200], [0, 255, 0])  # the protein in green, outside the cell
    # the colour map is brighter where the head attends (bottom-right for head 0, top-left for head 1)
    assert head0[240, 240].sum() > head0[160, 30].sum() and head1[30, 30].sum() > head1[30, 240].sum()
    for panel in (composite, head0, head1):  # the outline: the mask's border (8 x 4 = 32 px from the left edge)
        assert (panel[64:192, 32] == OUTLINE_COLOR).all() and (panel[64:192, 159] == OUTLINE_COLOR).all()
        assert not (panel[100, 40:150] == OUTLINE_COLOR).all(axis=-1).any()  # the inside is not drawn over
    path = save_attention_png(tmp_path / "c_attention_map.png", pixels, attention, ["dna", "protein"], mask, title="c")
    with Image.open(path) as picture:
        width, height = picture.size
        rgb = np.asarray(picture.convert("RGB"))
    assert width >= 3 * 256 > 512 and height >= 256
    top = layout._HEADER + layout._TITLE  # the panels sit in one row under the header and their titles
    for index, panel in enumerate((composite, head0, head1)):
        left = layout._MARGIN + index * (256 + layout._MARGIN)
        np.testing.assert_array_equal(rgb[top : top + 256, left : left + 256], panel)  # outline included
    without = attention_picture(pixels, attention, ["dna", "protein"])
    assert without.shape == rgb.shape
    assert not (without[top : top + 256, layout._MARGIN : 256] == OUTLINE_COLOR).all(axis=-1).any()
    with pytest.raises(ValueError, match="heads, h, w"):
        attention_panels(pixels, attention[0], ["dna", "protein"])


def test_summary_of_a_run_where_everything_failed():
    merged = ChunkResult(np.zeros((0, 8), np.float32), np.zeros((0, 5), np.float32), [],
                         [{"item": 0, "id": "a", "source": "row 0", "error": "gone"}])
    table = build_table(merged, list("ABCDE"), {})
    summary = summary_frame(table)
    assert summary[["id", "status", "error"]].values.tolist() == [["a", "failed", "gone"]]
    assert isinstance(summary, pd.DataFrame) and table.num_cells == 0
