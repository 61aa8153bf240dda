"""Checks of data against a specification, each failing with one line that names the column
(:class:`~bayesvc.errors.SpecificationError`) or warning with a named warning."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import RankDeficiencyWarning, fail, warn


def check_columns(data: pd.DataFrame, columns: list[str], what: str) -> None:
    """Every column a formula uses must exist."""
    missing = [c for c in columns if c not in data.columns]
    if missing:
        fail(
            f"unknown column {missing[0]!r} in {what}; "
            f"data has columns {list(map(str, data.columns))}"
        )


def check_not_empty(data: pd.DataFrame) -> None:
    if len(data) == 0:
        fail("data is empty: it has no rows")


def handle_missing(data: pd.DataFrame, columns: list[str], missing: str) -> tuple[pd.DataFrame, int]:
    """Apply the missing-data policy ``missing`` ('error' or 'drop') to ``columns``.

    Returns the (possibly filtered) frame and the number of dropped rows. Never drops silently:
    ``'drop'`` warns with the count.
    """
    if missing not in ("error", "drop"):
        fail(f"missing must be 'error' or 'drop', not {missing!r}")
    na = data[columns].isna()
    counts = na.sum()
    if not counts.any():
        return data, 0
    if missing == "error":
        bad = counts[counts > 0]
        detail = ", ".join(f"{c!r} ({n})" for c, n in bad.items())
        fail(
            f"missing values in column {detail}; pass missing='drop' to drop "
            f"{int(na.any(axis=1).sum())} incomplete rows"
        )
    keep = ~na.any(axis=1)
    n_drop = int((~keep).sum())
    warn(f"dropped {n_drop} rows with missing values in the model's columns")
    out = data.loc[keep]
    check_not_empty(out)
    return out, n_drop


def check_response(y: pd.Series | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        fail(f"response {name!r} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.ndim != 1:
        fail(f"response {name!r} must be one-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        fail(f"response {name!r} has {int((~np.isfinite(arr)).sum())} non-finite values")
    if arr.size > 1 and np.ptp(arr) == 0:
        fail(f"response {name!r} is constant: there is no variance to decompose")
    return arr


def check_levels(name: str, n_levels: int, n_obs: int) -> None:
    """Like lme4's checkNlevels: a grouping factor needs at least two levels."""
    if n_levels < 2:
        fail(f"grouping factor {name!r} has {n_levels} level; a random effect needs at least 2")
    if n_levels >= n_obs:
        fail(f"grouping factor {name!r} has {n_levels} levels for {n_obs} observations; a random "
             "effect needs fewer levels than observations")


def drop_rank_deficient(X: np.ndarray, names: list[str], tol: float = 1e-7) -> tuple[np.ndarray, list[str], list[str]]:
    """Drop columns of X that are linear combinations of earlier ones, with a warning (as lme4).

    Columns are visited in order; each is kept when what remains of it after projecting out the
    columns already kept (Gram-Schmidt, twice for stability) is not negligible. Written by hand
    because it must keep the *earlier* columns, as lme4's ``chkRank.drop.cols`` does with LINPACK's
    pivoting; SciPy's pivoted QR would drop different columns.
    """
    keep, basis = [], []
    for j in range(X.shape[1]):
        v = X[:, j].astype(float)
        norm0 = np.linalg.norm(v)
        for _ in range(2):
            for q in basis:
                v = v - (q @ v) * q
        nv = np.linalg.norm(v)
        if norm0 > 0 and nv > tol * norm0:
            keep.append(j)
            basis.append(v / nv)
    if len(keep) == X.shape[1]:
        return X, names, []
    dropped = [names[j] for j in range(X.shape[1]) if j not in keep]
    warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
         f"column(s): {', '.join(dropped)}", RankDeficiencyWarning)
    return X[:, keep], [names[j] for j in keep], dropped


def check_weights(w, name: str, n: int) -> np.ndarray:
    """Prior weights: one finite, positive number per observation."""
    arr = np.asarray(w)
    if arr.dtype.kind not in "biuf":
        fail(f"weights {name!r} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if arr.shape != (n,):
        fail(f"weights {name!r} must have one value per observation ({n}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        fail(f"weights {name!r} has {int((~np.isfinite(arr)).sum())} missing or non-finite values")
    if np.any(arr <= 0):
        fail(f"weights {name!r} must be positive; {int((arr <= 0).sum())} are <= 0 (min {arr.min():g})")
    return arr
