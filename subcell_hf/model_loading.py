"""Loading a SubCell folder or Hub repo with every tensor accounted for.

`from_pretrained` in transformers initialises whatever the weights lack at random and only logs a report, so a
folder whose weights hold no (or fewer) classifier tensors than its `config.json` claims would give random
localization probabilities. Every load the project does goes through `load_checked`, which turns a missing,
unexpected or mismatched tensor into `ModelLoadingError` naming the tensors; `weights_hold_classifiers` lets a
caller load an encoder-only folder as the encoder it is (docs/reliability.md).
"""

from __future__ import annotations

import os
from typing import Any

CLASSIFIER_PREFIX = "classifiers."


class ModelLoadingError(ValueError):
    """The weights of a model folder do not match the architecture its config describes."""


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return f"{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}"


def load_checked(auto_class: Any, name_or_path: str | os.PathLike, **kwargs):
    """`auto_class.from_pretrained(name_or_path, **kwargs)` that raises `ModelLoadingError` naming the tensors
    when the weights lack any (they would be random), hold extra ones, or have other shapes; Hub errors for a
    missing repo are reworded to name the repo id and the cache searched (`hub_error_message`)."""
    try:
        model, info = auto_class.from_pretrained(str(name_or_path), output_loading_info=True, **kwargs)
    except OSError as error:
        raise OSError(hub_error_message(name_or_path, error)) from error
    unexpected = list(info.get("unexpected_keys") or [])
    if hasattr(model, "classifiers"):  # the base class ignores classifier tensors (right for an encoder-only view)
        names = weight_names(name_or_path, kwargs.get("revision")) or set()
        expected = set(model.state_dict())
        unexpected += [
            n for n in names if n.startswith(CLASSIFIER_PREFIX) and n not in expected and n not in unexpected
        ]
    problems = []
    if info.get("missing_keys"):
        problems.append(f"missing tensors (they would be random): {_listed(list(info['missing_keys']))}")
    if unexpected:
        problems.append(f"unexpected tensors: {_listed(unexpected)}")
    if info.get("mismatched_keys"):
        shapes = [str(k[0] if isinstance(k, tuple) else k) for k in info["mismatched_keys"]]
        problems.append(f"tensors of another shape: {_listed(shapes)}")
    if info.get("error_msgs"):
        problems.append("; ".join(str(message) for message in info["error_msgs"]))
    if problems:
        raise ModelLoadingError(
            f"{name_or_path}: the weights do not match the {type(model).__name__} that config.json describes: "
            + "; ".join(problems)
        )
    return model


def weight_names(name_or_path: str | os.PathLike, revision: str | None = None) -> set[str] | None:
    """Tensor names in a folder's or repo's safetensors weights (read from the headers only), or None when the
    weights are not safetensors."""
    import json

    from safetensors import safe_open
    from transformers.utils import cached_file

    kwargs = {"revision": revision} if revision else {}
    common = dict(_raise_exceptions_for_missing_entries=False, _raise_exceptions_for_connection_errors=False)
    index = cached_file(str(name_or_path), "model.safetensors.index.json", **kwargs, **common)
    if index:
        with open(index, encoding="utf-8") as handle:
            return set(json.load(handle)["weight_map"])
    single = cached_file(str(name_or_path), "model.safetensors", **kwargs, **common)
    if not single:
        return None
    with safe_open(single, framework="pt") as handle:
        return set(handle.keys())


def weights_hold_classifiers(name_or_path: str | os.PathLike, revision: str | None = None) -> bool | None:
    """Whether the weights hold any classifier tensor (None when that cannot be told from the headers)."""
    names = weight_names(name_or_path, revision)
    return None if names is None else any(name.startswith(CLASSIFIER_PREFIX) for name in names)


def hub_error_message(name_or_path: str | os.PathLike, error: BaseException) -> str:
    """An `OSError` of `from_pretrained` with the repo id, the cache searched and the offline switch said."""
    from huggingface_hub import constants

    text = str(error)
    if os.path.exists(str(name_or_path)):
        return text
    offline = constants.HF_HUB_OFFLINE
    first_line = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return (
        f"{name_or_path}: could not load the model ({first_line}); "
        f"searched the Hugging Face cache {constants.HF_HUB_CACHE}"
        + (" with HF_HUB_OFFLINE=1 (no download tried): download it once online, or give a local folder"
           if offline else "")
    )


__all__ = [
    "CLASSIFIER_PREFIX",
    "ModelLoadingError",
    "hub_error_message",
    "load_checked",
    "weight_names",
    "weights_hold_classifiers",
]
