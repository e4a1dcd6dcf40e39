"""Put an encoder and trained heads together into one `SubCellForProteinLocalization`, the published layout."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch

from ..models import SubCellConfig, SubCellForProteinLocalization, SubCellModel
from .training import TrainedClassifier


def localization_config(
    encoder_config: SubCellConfig,
    id2label: Mapping[int, str] | Sequence[str] | None = None,
    num_classifiers: int | None = None,
) -> SubCellConfig:
    """A copy of the encoder's config describing the ensemble: its classes (default: the encoder config's, i.e. the
    31 `LOCALIZATION_CLASSES` unless set) and its size. The heads' architecture is the config's
    `classifier_hidden_sizes` / `classifier_dropout`."""
    config = copy.deepcopy(encoder_config)
    if id2label is not None:
        names = list(id2label.values()) if isinstance(id2label, Mapping) else list(id2label)
        if len(set(names)) != len(names):
            raise ValueError(f"class names must be unique, found {names}")
        config.id2label = dict(enumerate(names))
        config.label2id = {name: index for index, name in config.id2label.items()}
    if num_classifiers is not None:
        config.num_classifiers = num_classifiers
    return config


def attach_ensemble(
    encoder: SubCellModel,
    heads: Sequence[TrainedClassifier | Mapping[str, torch.Tensor] | torch.nn.Module],
    id2label: Mapping[int, str] | Sequence[str] | None = None,
) -> SubCellForProteinLocalization:
    """The encoder (weights copied unchanged) plus one classifier per head, in the given order (seed order).

    Every head must match `localization_config(encoder.config, id2label)`: loading is strict, so a head trained
    for other classes or sizes fails with the offending parameter named.
    """
    if not heads:
        raise ValueError("attach_ensemble needs at least one head")
    config = localization_config(encoder.config, id2label, num_classifiers=len(heads))
    model = SubCellForProteinLocalization(config)
    model.subcell.load_state_dict(encoder.state_dict())
    for index, (classifier, head) in enumerate(zip(model.classifiers, heads)):
        state_dict = _state_dict_of(head)
        try:
            classifier.load_state_dict(state_dict)
        except RuntimeError as error:
            raise ValueError(f"head {index} does not fit the ensemble config: {error}") from None
    return model.to(next(encoder.parameters()).dtype).eval()


def _state_dict_of(head) -> Mapping[str, torch.Tensor]:
    if isinstance(head, TrainedClassifier):
        return head.state_dict
    if isinstance(head, torch.nn.Module):
        return head.state_dict()
    return head
