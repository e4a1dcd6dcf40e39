"""Shared fixtures: tiny SubCell configs and converted synthetic checkpoints, all built in memory or tmp dirs
(the helpers they call live in tests/utils.py)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

# Before any Hugging Face library is imported: datasets, evaluate and hub caches of the test run (and of the
# processes it launches) live in a throwaway folder, never in the user's ~/.cache/huggingface.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="subcell-hf-tests-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402

import subcell_hf  # noqa: E402, F401  (registers the Auto classes)
from subcell_hf import SubCellConfig  # noqa: E402
from subcell_hf.data.synthetic import TINY_ARCHITECTURE, write_release_files  # noqa: E402
from subcell_hf.variants import RELEASES  # noqa: E402
from tests.utils import free_port, reset_accelerate_state, tiny_config  # noqa: E402, F401  (also imported from here)


@pytest.fixture
def tiny_subcell_config() -> SubCellConfig:
    return tiny_config()


@pytest.fixture(scope="session")
def tiny_release_dir(tmp_path_factory):
    """All 8 releases as tiny original-format files (published key names and layout, 10 classifiers each)."""
    root = tmp_path_factory.mktemp("release")
    write_release_files(root, arch=TINY_ARCHITECTURE)
    return root


@pytest.fixture(scope="session")
def tiny_converted(tiny_release_dir, tmp_path_factory):
    """`all_channels-vit-prots-pool` converted from tiny original files: a save_pretrained folder path."""
    from subcell_hf.hub.convert import convert_release

    out = tmp_path_factory.mktemp("converted") / "all_channels-vit-prots-pool"
    convert_release(RELEASES["all_channels-vit-prots-pool"], tiny_release_dir, out)
    return out


@pytest.fixture(autouse=True)
def _isolated_process_state():
    """No test sees environment variables or an accelerate state left behind by another."""
    environment = dict(os.environ)
    yield
    reset_accelerate_state()
    os.environ.clear()
    os.environ.update(environment)


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield
