"""The embedding engine end to end on tiny converted checkpoints: parity with the single-cell API, the AnnData
layout, resumability, bad rows, fields and shards, encoder-only models."""

from __future__ import annotations

import hashlib

import anndata
import numpy as np
import pandas as pd
import pytest
import torch

from subcell_hf import LocalizationPredictor
from subcell_hf.data.io import read_image
from subcell_hf.inference import EmbeddingModel, EmbeddingSettingsError, embed
from subcell_hf.inference.chunks import ChunkStore
from subcell_hf.inference.inputs import WRAPPER_CHANNEL_COLUMNS
from subcell_hf.models import HPA_CHANNELS, LOCALIZATION_CLASSES

from .conftest import FIELD_OPTIONS

FAST = dict(num_workers=0, progress=False, runtime="eager")  # bit-for-bit against the eager single-cell API


def _sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def _row_cells(csv_path) -> list[dict[str, np.ndarray]]:
    """Every good row of the CSV as the single-cell API takes it: {channel: 2-D array}."""
    frame = pd.read_csv(csv_path, comment="#", skip_blank_lines=True)
    return [
        {c: np.array(read_image(csv_path.parent / row[WRAPPER_CHANNEL_COLUMNS[c]])) for c in HPA_CHANNELS}
        for _, row in frame.iterrows()
    ]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_csv_path_reproduces_the_single_cell_api_for_every_row(tiny_converted, wrapper_csv, tmp_path, batch_size):
    result = embed(tiny_converted, wrapper_csv, tmp_path / "out", batch_size=batch_size, chunk_size=4, **FAST)
    predictor = LocalizationPredictor.from_pretrained(str(tiny_converted), runtime="eager")
    cells = _row_cells(wrapper_csv)
    assert result.ok and result.num_cells == len(cells) == 6
    with torch.inference_mode():
        for row, cell in enumerate(cells):
            expected_probabilities = predictor.probabilities(cell)[0].numpy()
            pixel_values = predictor.processor(cell)["pixel_values"]
            expected_embedding = predictor.model(pixel_values).embeddings[0].numpy()
            if batch_size == 1:  # the same computation, cell by cell: bit for bit
                np.testing.assert_array_equal(result.table.probabilities[row], expected_probabilities)
                np.testing.assert_array_equal(result.table.embeddings[row], expected_embedding)
            else:  # batched matrix products may round differently in the last bit
                np.testing.assert_allclose(result.table.probabilities[row], expected_probabilities, rtol=0, atol=1e-6)
                np.testing.assert_allclose(result.table.embeddings[row], expected_embedding, rtol=0, atol=1e-5)
            top3 = predictor(cell, top_k=3)
            obs = result.table.obs.iloc[row]
            assert [obs["top_1"], obs["top_2"], obs["top_3"]] == [p["label"] for p in top3]
            assert obs["top_1_score"] == pytest.approx(top3[0]["score"], abs=1e-6)


def test_anndata_has_the_documented_fields(tiny_converted, wrapper_csv, tmp_path):
    result = embed(tiny_converted, wrapper_csv, tmp_path / "out", formats=("h5ad", "parquet", "npy"), **FAST)
    adata = anndata.read_h5ad(result.outputs["h5ad"])
    assert adata.shape == (6, 128)  # tiny model: 2 pooling heads x 64
    assert adata.X.dtype == np.float32 and list(adata.var_names[:2]) == ["feat0000", "feat0001"]
    assert list(adata.obs_names) == [f"cell{i}" for i in range(6)]
    assert adata.obsm["probabilities"].shape == (6, 31)
    assert list(adata.uns["probability_classes"]) == list(LOCALIZATION_CLASSES)
    assert {"input_index", "source", "output_prefix", "top_1", "top_1_score", "top_3_score"} <= set(adata.obs.columns)
    assert adata.uns["model_id"] == str(tiny_converted)
    assert adata.uns["model_variant"] == "all_channels-vit-prots-pool"
    assert "model_revision" in adata.uns and adata.uns["precision"] == "fp32"
    assert list(adata.uns["channel_names"]) == list(HPA_CHANNELS)
    assert adata.uns["preprocessing"]["do_normalize"] and adata.uns["preprocessing"]["epsilon"] == 1e-6
    np.testing.assert_array_equal(adata.X, result.table.embeddings)
    # Parquet and the wrapper's per-cell files hold the same numbers
    frame = pd.read_parquet(result.outputs["parquet"])
    np.testing.assert_array_equal(np.stack(frame["embedding"].to_numpy()), adata.X)
    np.testing.assert_array_equal(np.stack(frame["probabilities"].to_numpy()), adata.obsm["probabilities"])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "cell3_embedding.npy"), adata.X[3])
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "cell3_probabilities.npy"), adata.obsm["probabilities"][3])
    summary = pd.read_csv(result.outputs["summary"])
    assert list(summary["status"]) == ["ok"] * 6 and list(summary["top_1"]) == list(adata.obs["top_1"])


def test_resume_after_an_interrupted_run_gives_the_same_files(tiny_converted, wrapper_csv, tmp_path, monkeypatch):
    options = dict(formats=("h5ad", "parquet"), chunk_size=2, batch_size=2, **FAST)
    whole = embed(tiny_converted, wrapper_csv, tmp_path / "whole", **options)

    original_write, calls = ChunkStore.write, []

    def write_then_crash(self, index, result):
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated crash after two chunks")
        calls.append(index)
        return original_write(self, index, result)

    monkeypatch.setattr(ChunkStore, "write", write_then_crash)
    with pytest.raises(KeyboardInterrupt):
        embed(tiny_converted, wrapper_csv, tmp_path / "resumed", **options)
    assert not (tmp_path / "resumed" / "embeddings.h5ad").exists()
    assert sorted(p.name for p in (tmp_path / "resumed" / "chunks").glob("chunk-*")) == [
        "chunk-000000.npz", "chunk-000001.npz"
    ]
    monkeypatch.setattr(ChunkStore, "write", original_write)
    resumed = embed(tiny_converted, wrapper_csv, tmp_path / "resumed", **options)
    assert (resumed.chunks_skipped, resumed.chunks_computed) == (2, 1)
    for name in ("h5ad", "parquet", "summary"):
        assert _sha(resumed.outputs[name]) == _sha(whole.outputs[name]), name
    # a run with two loader workers writes the same bytes too
    workers = embed(tiny_converted, wrapper_csv, tmp_path / "workers", formats=("h5ad",), chunk_size=2, batch_size=2,
                    num_workers=2, progress=False, runtime="eager")
    assert _sha(workers.outputs["h5ad"]) == _sha(whole.outputs["h5ad"])


def test_changed_settings_are_refused_unless_overwrite(tiny_converted, wrapper_csv, tmp_path):
    embed(tiny_converted, wrapper_csv, tmp_path / "out", batch_size=2, **FAST)
    with pytest.raises(EmbeddingSettingsError, match="differs in: batch_size"):
        embed(tiny_converted, wrapper_csv, tmp_path / "out", batch_size=3, **FAST)
    again = embed(tiny_converted, wrapper_csv, tmp_path / "out", batch_size=3, overwrite=True, **FAST)
    assert again.chunks_computed == 2 and again.chunks_skipped == 0  # default: chunks of one batch (3 rows)


def test_a_broken_row_is_reported_and_the_others_are_processed(tiny_converted, broken_csv, tmp_path):
    result = embed(tiny_converted, broken_csv, tmp_path / "out", chunk_size=2, batch_size=2, **FAST)
    assert not result.ok and result.num_cells == 2
    assert list(result.table.obs.index) == ["good0", "good1"]
    summary = pd.read_csv(result.outputs["summary"], keep_default_na=False)
    assert list(summary["id"]) == ["good0", "missing", "other_size", "good1", "garbage"]
    assert list(summary["status"]) == ["ok", "failed", "failed", "ok", "failed"]
    errors = dict(zip(summary["id"], summary["error"]))
    assert "nowhere.png: file not found" in errors["missing"]
    assert "48x48, expected 64x64" in errors["other_size"]
    assert "unreadable image" in errors["garbage"] and errors["good0"] == ""
    assert anndata.read_h5ad(result.outputs["h5ad"]).uns["num_failed_inputs"] == 3


def test_fields_of_view_and_shards_give_the_same_cells(tiny_converted, synthetic_fields, tmp_path):
    from subcell_hf.data.shards import write_shards

    fields = embed(tiny_converted, synthetic_fields, tmp_path / "fields", save_attention=True, **FIELD_OPTIONS, **FAST)
    write_shards(synthetic_fields, tmp_path / "shards", num_workers=0, show_progress=False, **FIELD_OPTIONS)
    shards = embed(tiny_converted, tmp_path / "shards", tmp_path / "from_shards", **FAST)
    assert fields.ok and shards.ok and fields.num_cells == shards.num_cells > 10
    a, b = fields.table, shards.table
    assert set(a.obs.index) == set(b.obs.index)
    order = [b.obs.index.get_loc(i) for i in a.obs.index]
    # same pixels; the cells are batched differently (per field / per antibody record): last-bit differences only
    np.testing.assert_allclose(a.embeddings, b.embeddings[order], rtol=0, atol=1e-5)
    np.testing.assert_allclose(a.probabilities, b.probabilities[order], rtol=0, atol=1e-6)
    for column in ("antibody", "cell_line", "cell_label", "bbox_top", "bbox_right"):  # shards round centroids
        assert list(a.obs[column]) == list(b.obs[column].iloc[order]), column
    # attention pictures: the channels + one panel per pooling head, 64-px crops enlarged to 256 px, with the
    # outline of the cell's mask
    from PIL import Image

    from subcell_hf.inference.attention import OUTLINE_COLOR

    with Image.open(tmp_path / "fields" / a.obs["attention_map"].iloc[0]) as picture:
        assert picture.size[0] > 3 * 256 and picture.size[1] > 256 and picture.mode == "RGB"
        panel = np.asarray(picture)[48 : 48 + 256, 12 : 12 + 256]  # the channel composite, under header and title
        assert (panel == OUTLINE_COLOR).all(axis=-1).sum() > 100


def test_encoder_only_model_gives_embeddings_without_probabilities(tiny_release_dir, wrapper_csv, tmp_path):
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.variants import RELEASES

    encoder_dir = tmp_path / "encoder"
    release = RELEASES["all_channels-mae-cells-prots-pool"]
    convert_release(release, tiny_release_dir, encoder_dir, with_classifiers=False)
    loaded = EmbeddingModel.from_pretrained(str(encoder_dir))
    assert not loaded.has_classifiers
    result = embed(loaded, wrapper_csv, tmp_path / "out", formats=("h5ad", "npy"), **FAST)
    adata = anndata.read_h5ad(result.outputs["h5ad"])
    assert adata.shape == (6, 128) and "probabilities" not in adata.obsm
    assert not any(c.startswith("top_") for c in adata.obs.columns)
    assert not (tmp_path / "out" / "cell0_probabilities.npy").exists()
    with torch.inference_mode():
        cell = _row_cells(wrapper_csv)[0]
        expected = loaded.model(loaded.processor(cell)["pixel_values"]).pooler_output[0].numpy()
    np.testing.assert_allclose(adata.X[0], expected, rtol=0, atol=1e-5)


def test_a_two_channel_variant_reads_only_its_columns(tiny_release_dir, tmp_path):
    from subcell_hf.hub.convert import convert_release
    from subcell_hf.variants import RELEASES

    from .conftest import write_crop_files, write_wrapper_csv

    model_dir = tmp_path / "dna-protein"
    convert_release(RELEASES["dna-protein-vit-prots-pool"], tiny_release_dir, model_dir)
    paths = write_crop_files(tmp_path, "c", np.random.default_rng(0))
    csv = write_wrapper_csv(tmp_path, [{"dna": paths["dna"], "protein": paths["protein"], "output_prefix": "c"}])
    result = embed(model_dir, csv, tmp_path / "out", **FAST)
    assert result.ok and result.num_cells == 1
    predictor = LocalizationPredictor.from_pretrained(str(model_dir), runtime="eager")
    cell = {c: np.array(read_image(tmp_path / paths[c])) for c in ("dna", "protein")}
    np.testing.assert_array_equal(result.table.probabilities[0], predictor.probabilities(cell)[0].numpy())


def test_a_missing_model_folder_is_named_in_the_error(tmp_path):
    from subcell_hf.inference import EmbeddingModel

    with pytest.raises(ValueError, match="nowhere: model folder not found"):
        EmbeddingModel.from_pretrained(str(tmp_path / "nowhere"))


def test_progress_bar_knows_its_total_for_fields_of_view(tiny_converted, synthetic_fields, tmp_path, capsys):
    """Fields hold an unknown number of cells: the bar counts the fields, so it has a total and an ETA."""
    options = {**FAST, "progress": True, "chunk_size": 1}
    result = embed(tiny_converted, synthetic_fields, tmp_path / "fields", **FIELD_OPTIONS, **options)
    bar = capsys.readouterr().err.replace("\r", "\n").splitlines()
    final = [line for line in bar if line.startswith("embedding: 100%")]
    assert final and "2/2" in final[-1] and f"cells={result.num_cells}" in final[-1], bar[-3:]
