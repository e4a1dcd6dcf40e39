"""Loading a SubCell folder or Hub repo with every tensor accounted for.

`load_subcell` is the one way the package loads a SubCell model for use (the `LocalizationPredictor`, `subcell-hf
embed`, classifier training, pretraining from an encoder): the model, its image processor and the channels they
read, checked to agree.

`from_pretrained` in transformers initialises whatever the weights lack at random and only logs a report, so a
folder whose weights hold no (or fewer) classifier tensors than its `config.json` claims would give random
localization probabilities. `load_checked`, under `load_subcell`, turns a missing, unexpected or mismatched
tensor into `ModelLoadingError` naming the tensors; `weights_hold_classifiers` lets a caller load an encoder-only
folder as the encoder it is (docs/reliability.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

logger = logging.getLogger(__name__)

CLASSIFIER_PREFIX = "classifiers."
#: `from_pretrained` arguments that say where files come from: passed to the config and image processor as well.
_HUB_KWARGS = ("revision", "cache_dir", "token", "local_files_only", "force_download", "subfolder")


class ModelLoadingError(ValueError):
    """The weights of a model folder do not match the architecture its config describes."""


def _listed(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return f"{shown}{f', ... ({len(names)} in all)' if len(names) > limit else ''}"


class LoadedSubCell(NamedTuple):
    """What `load_subcell` returns: the model, its image processor and the channels (names, in order) both read."""

    model: Any  # SubCellModel (encoder + pooler) or SubCellForProteinLocalization
    processor: Any  # SubCellImageProcessor
    channel_names: list[str]


def load_subcell(
    name_or_path: str | os.PathLike, classifiers: bool | None = None, revision: str | None = None, **kwargs
) -> LoadedSubCell:
    """Load a SubCell folder or Hub repo with its image processor, every tensor and both channel lists checked.

    Args:
        classifiers: `True` for the localization model (`SubCellForProteinLocalization`; a folder without the
            ensemble is an error), `False` for the encoder alone (`SubCellModel`; classifier tensors in the weights
            are left out), `None` for what the folder holds (the localization model when its config names
            classifiers and its weights hold them; else the encoder, with a warning when the config promised heads).
        revision, kwargs: passed to `from_pretrained` (e.g. `cache_dir`, `torch_dtype`).

    A folder without `preprocessor_config.json` gets the processor its config implies. Raises `ModelLoadingError`
    naming the path with the expected and found values (not a SubCell model, tensors missing or extra, the
    processor reading other channels than the model), `OSError` naming the repo and cache for a missing repo.
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

    from .data.channels import check_channels
    from .models import SubCellImageProcessor

    name = str(name_or_path)
    if revision:
        kwargs["revision"] = revision
    hub_kwargs = {key: value for key, value in kwargs.items() if key in _HUB_KWARGS}
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local and not Path(name).expanduser().is_dir():
        raise ModelLoadingError(f"{name}: model folder not found (expected a save_pretrained folder or a Hub id)")
    try:
        config = AutoConfig.from_pretrained(name, **hub_kwargs)
    except OSError as error:
        raise OSError(hub_error_message(name, error)) from None
    if getattr(config, "model_type", None) != "subcell":
        raise ModelLoadingError(f"{name}: expected a SubCell model (model_type 'subcell'), found model_type "
                                f"{getattr(config, 'model_type', None)!r}")
    names_heads = "SubCellForProteinLocalization" in (config.architectures or []) and bool(config.num_classifiers)
    if classifiers is None:
        classifiers = names_heads
        if names_heads and weights_hold_classifiers(name, kwargs.get("revision")) is False:
            logger.warning("%s: config.json names %d classifiers but the weights hold none: loading the encoder "
                           "alone, no localization probabilities", name, config.num_classifiers)
            classifiers = False
    elif classifiers and not names_heads:
        raise ModelLoadingError(
            f"{name}: expected a localization model (architectures ['SubCellForProteinLocalization'] with "
            f"classifiers), found architectures {config.architectures} with num_classifiers "
            f"{getattr(config, 'num_classifiers', None)}: an encoder only; embed it instead (`subcell-hf embed`)"
        )
    auto_class = AutoModelForImageClassification if classifiers else AutoModel
    model = load_checked(auto_class, name, **kwargs)  # a missing or extra tensor is an error, never random
    try:
        processor = AutoImageProcessor.from_pretrained(name, **hub_kwargs)
    except OSError:  # a folder without preprocessor_config.json
        processor = SubCellImageProcessor.from_config(model.config)
    if not isinstance(processor, SubCellImageProcessor):
        raise ModelLoadingError(f"{name}: expected a SubCellImageProcessor in preprocessor_config.json, found "
                                f"{type(processor).__name__}")
    channel_names = list(model.config.channel_names)
    check_channels(processor.channel_names, channel_names, f"{name}: preprocessor_config.json", exact=True,
                   hint="the image processor must read the model's channels (config.json)", error=ModelLoadingError)
    return LoadedSubCell(model, processor, channel_names)


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
    "LoadedSubCell",
    "ModelLoadingError",
    "hub_error_message",
    "load_checked",
    "load_subcell",
    "weight_names",
    "weights_hold_classifiers",
]
