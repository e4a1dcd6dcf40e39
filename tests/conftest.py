"""Shared fixtures: tiny SubCell configs and converted synthetic checkpoints, all built in memory or tmp dirs."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile

# Before any Hugging Face library is imported: datasets, evaluate and hub caches of the test run (and of the
# processes it launches) live in a throwaway folder, never in the user's ~/.cache/huggingface.
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="subcell-hf-tests-")
atexit.register(shutil.rmtree, os.environ["HF_HOME"], ignore_errors=True)

import pytest  # noqa: E402
import torch  # noqa: E402
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

import subcell_hf  # noqa: E402, F401  (registers the Auto classes)
from subcell_hf import SubCellConfig  # noqa: E402
from subcell_hf.data.synthetic import TINY_ARCHITECTURE, write_release_files  # noqa: E402
from subcell_hf.variants import RELEASES  # noqa: E402


def free_port() -> int:
    """A free local port for a launched process group's rendezvous (accelerate's default, 29500, may be taken by
    another launch on the machine, which would join it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_config(**overrides) -> SubCellConfig:
    """A 2-layer, 64-wide SubCell on 64-px crops: same code paths as ViT-B/16, milliseconds per step."""
    values = dict(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        image_size=64,
        pool_hidden_size=32,
        classifier_hidden_sizes=[32, 16],
        num_classifiers=3,
    )
    values.update(overrides)
    return SubCellConfig(**values)


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


def reset_accelerate_state() -> None:
    """Forget accelerate's process-wide singletons, so that the next `Accelerator` / `PartialState` starts afresh."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


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
