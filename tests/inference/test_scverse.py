"""The AnnData output in scverse conventions. (The scanpy flow on it, neighbors, UMAP and Leiden, is the
docs/embedding.md example that tests/test_docs.py runs.)"""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd

from subcell_hf.inference import embed

from .conftest import FIELD_OPTIONS


def test_field_run_in_scverse_layout(tiny_converted, synthetic_fields, tmp_path):
    result = embed(tiny_converted, synthetic_fields, tmp_path / "out", num_workers=0, progress=False, **FIELD_OPTIONS)
    adata = anndata.read_h5ad(result.outputs["h5ad"])
    np.testing.assert_array_equal(adata.obsm["X_subcell"], adata.X)
    by_class = adata.obsm["probabilities_by_class"]
    assert isinstance(by_class, pd.DataFrame) and list(by_class.index) == list(adata.obs_names)
    assert list(by_class.columns) == list(adata.uns["probability_classes"])
    np.testing.assert_array_equal(by_class.to_numpy(), adata.obsm["probabilities"])
    # centroids as (x, y) = (column, row) in field pixels, inside each cell's bounding box
    spatial = adata.obsm["spatial"]
    assert spatial.shape == (adata.n_obs, 2)
    assert (spatial[:, 0] >= adata.obs["bbox_left"]).all() and (spatial[:, 0] < adata.obs["bbox_right"]).all()
    assert (spatial[:, 1] >= adata.obs["bbox_top"]).all() and (spatial[:, 1] < adata.obs["bbox_bottom"]).all()



def test_wrapper_csv_has_no_spatial(tiny_converted, wrapper_csv, tmp_path):
    result = embed(tiny_converted, wrapper_csv, tmp_path / "out", num_workers=0, progress=False)
    adata = anndata.read_h5ad(result.outputs["h5ad"])
    assert "spatial" not in adata.obsm and adata.obsm["X_subcell"].shape == adata.X.shape
