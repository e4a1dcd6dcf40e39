"""JUMP-CP style retrieval on well profiles, with the image-profiling field's libraries.

1. `well_profiles`: cell embeddings -> one profile per well (mean over its cells; `pycytominer.aggregate`),
   carrying the metadata columns that are constant within each well (perturbation, MoA, plate...).
2. `normalize_per_plate`: each plate's profiles normalised on their own (`pycytominer.normalize`, by default
   `mad_robustize`: minus the plate median, divided by the median absolute deviation), optionally against a
   control query; `feature_select` optionally drops features (`pycytominer.feature_select`).
3. `profile_retrieval`: `copairs.map.average_precision` ranks, for every profile, all others by cosine
   similarity; positives share the query's group (the perturbation for replicate retrieval, the MoA for MoA
   retrieval) and differ in every `exclude` column (the compound, for MoA retrieval); negatives differ in the group
   and in every `exclude` column. `copairs.map.mean_average_precision` averages the APs per group and tests each
   group's mAP against a permutation null (`null_size` draws), Benjamini-Hochberg corrected. Reported:
   `mean_average_precision` (mean of the per-group mAPs), `fraction_retrieved` (share of groups whose corrected
   p-value is below `threshold`, copairs' `below_corrected_p`) and `nearest_neighbor_accuracy` (share of profiles
   whose nearest neighbour on another plate, and with other `exclude` values, has the query's group).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .functional import nearest_neighbor_accuracy

FEATURE_PREFIX = "emb_"
NORMALIZATION_METHODS = ("mad_robustize", "robustize", "standardize", "spherize", "none")


@dataclass
class Profiles:
    """Profiles as pycytominer and copairs take them: metadata columns plus one column per feature."""

    table: pd.DataFrame
    features: list[str]

    @property
    def meta(self) -> pd.DataFrame:
        return self.table.drop(columns=self.features)

    @property
    def values(self) -> np.ndarray:
        return self.table[self.features].to_numpy(dtype=np.float64)

    def __len__(self) -> int:
        return len(self.table)


@dataclass
class RetrievalResult:
    """The three headline numbers and copairs' per-group table (mAP, p-value, corrected p-value...)."""

    metrics: dict[str, float]
    per_group: pd.DataFrame


def feature_names(dimension: int) -> list[str]:
    return [f"{FEATURE_PREFIX}{index:04d}" for index in range(dimension)]


def well_profiles(embeddings: np.ndarray, obs: pd.DataFrame, by: Sequence[str] = ("plate", "well")) -> Profiles:
    """Mean cell embedding per `by` group (e.g. plate + well), with the metadata constant within each group."""
    from pycytominer import aggregate

    by = list(by)
    missing = [column for column in by if column not in obs.columns]
    if missing:
        raise KeyError(f"no per-cell column {missing} to build profiles by; the shards give {sorted(obs.columns)}")
    obs = obs.reset_index(drop=True)
    features = feature_names(np.asarray(embeddings).shape[1])
    cells = pd.concat(
        [obs[by].astype(str), pd.DataFrame(np.asarray(embeddings, dtype=np.float64), columns=features)], axis=1
    )
    profiles = aggregate(cells, strata=by, features=features, operation="mean", output_type=None)
    constant = [
        column
        for column in obs.columns
        if column not in by and (obs.groupby(by, sort=False)[column].nunique(dropna=False) <= 1).all()
    ]
    meta = obs.astype({column: str for column in by}).groupby(by, as_index=False, sort=False)[constant].first()
    counts = obs.astype({column: str for column in by}).groupby(by, as_index=False, sort=False).size()
    table = meta.merge(counts.rename(columns={"size": "num_cells"}), on=by).merge(profiles, on=by)
    return Profiles(table.reset_index(drop=True), features)


def normalize_per_plate(
    profiles: Profiles, plate: str = "plate", method: str = "mad_robustize", samples: str = "all"
) -> Profiles:
    """Normalise each plate's profiles on their own with `pycytominer.normalize` (`samples`: a pandas query of the
    reference wells, e.g. "pert_type == 'control'"; "all" uses every well). `method="none"` returns them as they are."""
    if method not in NORMALIZATION_METHODS:
        raise ValueError(f"normalization must be one of {NORMALIZATION_METHODS}, found {method!r}")
    if method == "none":
        return profiles
    if plate not in profiles.table.columns:
        raise KeyError(f"no column {plate!r} to normalise per plate; the profiles have {sorted(profiles.meta.columns)}")
    from pycytominer import normalize

    meta_columns = list(profiles.meta.columns)
    parts = [
        normalize(
            table.reset_index(drop=True),
            features=profiles.features,
            meta_features=meta_columns,
            samples=samples,
            method=method,
            output_type=None,
        )
        for _, table in profiles.table.groupby(plate, sort=False)
    ]
    table = pd.concat(parts, ignore_index=True)[list(profiles.table.columns)]
    return Profiles(table, list(profiles.features))


def feature_select(
    profiles: Profiles, operations: Sequence[str] = ("variance_threshold", "correlation_threshold")
) -> Profiles:
    """Drop features with `pycytominer.feature_select` (its operation names)."""
    from pycytominer import feature_select as select

    table = select(profiles.table, features=profiles.features, operation=list(operations), output_type=None)
    return Profiles(table, [name for name in profiles.features if name in table.columns])


def profile_retrieval(
    profiles: np.ndarray,
    meta: pd.DataFrame,
    group: str,
    exclude: Sequence[str] = (),
    plate: str | None = None,
    null_size: int = 10000,
    threshold: float = 0.05,
    seed: int = 0,
    cache_dir: str | None = None,
    progress: bool = False,
) -> RetrievalResult:
    """copairs mAP, fraction retrieved and nearest-neighbour accuracy of `group` (module docstring).

    Args:
        profiles: (N, D) features; `meta`: N rows of metadata holding `group`, `exclude` and `plate`.
        null_size: permutations of copairs' null distribution per (positives, total) configuration.
        cache_dir: where copairs caches null distributions (default: a temporary folder, removed afterwards).
    """
    from copairs.map import average_precision, mean_average_precision

    exclude = list(exclude)
    meta = meta.reset_index(drop=True)
    missing = [column for column in [group, *exclude, *([plate] if plate else [])] if column not in meta.columns]
    if missing:
        raise KeyError(f"no column {missing} in the profiles' metadata; it has {sorted(meta.columns)}")
    meta = meta[[group, *exclude, *([plate] if plate and plate not in exclude else [])]].astype(str)
    profiles = np.asarray(profiles, dtype=np.float64)
    ap = average_precision(
        meta,
        profiles,
        pos_sameby=[group],
        pos_diffby=exclude,
        neg_sameby=[],
        neg_diffby=[group, *exclude],
        distance="cosine",
        progress_bar=progress,
    )
    with tempfile.TemporaryDirectory(prefix="copairs-") as scratch:
        per_group = mean_average_precision(
            ap,
            sameby=[group],
            null_size=null_size,
            threshold=threshold,
            seed=seed,
            progress_bar=progress,
            cache_dir=cache_dir or scratch,
        )
    per_group = per_group.drop(columns=["indices"], errors="ignore")
    exclude_nn = [meta[column].to_numpy() for column in exclude + ([plate] if plate else [])]
    metrics = {
        "mean_average_precision": float(per_group["mean_average_precision"].mean()),
        "fraction_retrieved": float(per_group["below_corrected_p"].mean()),
        "nearest_neighbor_accuracy": nearest_neighbor_accuracy(
            profiles, meta[group].to_numpy(), exclude_nn or None
        ),
    }
    return RetrievalResult(metrics, per_group.reset_index(drop=True))
