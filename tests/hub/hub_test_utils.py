"""Helpers shared by the Hub tests (imported by module name: pytest puts this folder on sys.path)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "hub_cards"


def load_recipe():
    """`recipes/push_to_hub.py` as a module (recipes are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("push_to_hub_recipe", REPO_ROOT / "recipes" / "push_to_hub.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is being made
    spec.loader.exec_module(module)
    return module


def break_release(release_dir: Path, release, how: str) -> None:
    """Corrupt one release's original files: drop an encoder key, or put NaN in a classifier."""
    encoder_path, classifier_paths = release.source_paths(release_dir)
    if how == "missing_key":
        state = torch.load(encoder_path, weights_only=True)
        del state["pool_model.attention.bias"]
        torch.save(state, encoder_path)
    elif how == "nan_classifier":
        state = torch.load(classifier_paths[3], weights_only=True)
        state["6.bias"][0] = float("nan")
        torch.save(state, classifier_paths[3])
    else:
        raise ValueError(how)
