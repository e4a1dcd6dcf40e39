"""Fixtures for the Hub tests: all 8 tiny releases prepared once, the push recipe as a module, a local Hub."""

from __future__ import annotations

import sys
from pathlib import Path

import huggingface_hub.constants
import pytest

from subcell_hf.hub.publish import prepare_releases
from subcell_hf.data.synthetic import TINY_ARCHITECTURE, write_release_files
from subcell_hf.variants import RELEASES

sys.path.insert(0, str(Path(__file__).parent))  # hub_stand_in, hub_test_utils (also under --import-mode=importlib)

from hub_stand_in import LocalHub  # noqa: E402
from hub_test_utils import break_release, load_recipe  # noqa: E402


@pytest.fixture(scope="session")
def push_recipe():
    return load_recipe()


@pytest.fixture(scope="session")
def prepared_all(tiny_release_dir, tmp_path_factory):
    """All 8 tiny releases converted, carded and checked (no results, no recorded sources)."""
    return prepare_releases(tiny_release_dir, tmp_path_factory.mktemp("prepared"), cards_dir=None, progress=False)


@pytest.fixture
def local_hub(monkeypatch):
    """A loopback Hub stand-in, with offline mode forced off for this test's requests."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with LocalHub() as hub:
        yield hub


@pytest.fixture
def broken_release_dir(tmp_path):
    """Three tiny releases: one intact, one with a missing encoder key, one with NaN classifier weights."""
    names = ["dna-protein-vit-prots-pool", "er-dna-protein-mae-cells-prots-pool", "mt-dna-protein-vit-prots-pool"]
    write_release_files(tmp_path, [RELEASES[n] for n in names], arch=TINY_ARCHITECTURE)
    break_release(tmp_path, RELEASES[names[1]], "missing_key")
    break_release(tmp_path, RELEASES[names[2]], "nan_classifier")
    return tmp_path, names
