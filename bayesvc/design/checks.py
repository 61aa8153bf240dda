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
    # inf and -inf are missing values too (a failed log, a division by zero upstream); numeric
    # columns only, since the others cannot hold them
    sub = data[columns]
    na = sub.isna()
    num = sub.select_dtypes(include="number").columns
    if len(num):
        na[num] |= ~np.isfinite(sub[num].to_numpy(dtype=float))
    counts = na.sum()
    if not counts.any():
        return data, 0
    if missing == "error":
        bad = counts[counts > 0]
        detail = ", ".join(f"{c!r} ({n})" for c, n in bad.items())
        fail(
            f"missing values (NaN or infinite) in column {detail}; pass missing='drop' to drop "
            f"{int(na.any(axis=1).sum())} incomplete rows"
        )
    keep = ~na.any(axis=1)
    n_drop = int((~keep).sum())
    warn(f"dropped {n_drop} rows with missing values (NaN or infinite) in the model's columns")
    out = data.loc[keep]
    check_not_empty(out)
    return out, n_drop


def check_response(y: pd.Series | np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        fail(f"response {name!r} must be numeric, got dtype {arr.dtype}")
    if arr.dtype.kind == "b":
        warn(f"response {name!r} is boolean: it is fitted as 0/1 with a Gaussian linear mixed model "
             "(a linear probability model); convert it to float to silence this warning")
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


def check_fixed_rank(X: np.ndarray, names, data: pd.DataFrame | None = None, columns=()) -> None:
    """The fixed effects must leave residual degrees of freedom: fewer columns of X (after dropping
    rank-deficient ones) than observations. Names a fixed factor with a level per row, if any."""
    n, p = X.shape
    if p < n:
        return
    culprit = ""
    if data is not None:
        per_row = [c for c in columns if c in data.columns and data[c].dtype.kind not in "iufc"
                   and data[c].nunique() >= n]
        if per_row:
            culprit = f"; column {per_row[0]!r} has a different value in every row"
    fail(f"fixed effects: the model matrix has {p} independent columns for {n} observations, "
         f"leaving no residual degrees of freedom{culprit}")


def check_labels(name: str, values, labels) -> None:
    """Distinct levels must have distinct labels (``1`` and ``'1'`` in one column would both be
    labelled ``'1'``)."""
    if len(set(labels)) < len(labels):
        seen, dup = set(), None
        for lab in labels:
            if lab in seen:
                dup = lab
                break
            seen.add(lab)
        kinds = sorted({type(v).__name__ for v in values})
        fail(f"grouping column {name!r} has distinct values that print alike ({dup!r}; value types "
             f"{', '.join(kinds)}): convert the column to one type, e.g. data[{name!r}].astype(str)")


def check_distinct_terms(terms) -> None:
    """Two random-effect terms with the same model matrix whose grouping factors partition the rows
    alike (one factor a relabelling of the other, or an interaction that adds no split) are not
    identifiable: only the sum of their variances is."""
    coded = [t for t in terms if t.codes is not None]
    for i, a in enumerate(coded):
        for b in coded[i + 1:]:
            if a.n_levels != b.n_levels or a.p != b.p or not np.array_equal(a.zvals, b.zvals):
                continue
            ok = (a.codes >= 0) == (b.codes >= 0)
            if not ok.all():
                continue
            pairs = np.unique(a.codes[a.codes >= 0].astype(np.int64) * b.n_levels + b.codes[a.codes >= 0])
            if len(pairs) == a.n_levels:
                fail(f"random-effect terms {a.name!r} and {b.name!r} group the observations identically "
                     f"(the levels of {b.factor!r} are a relabelling of those of {a.factor!r}): their "
                     "variances are not identifiable; drop one of the terms")
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
