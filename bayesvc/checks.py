"""Input checks that return messages, and one reporting policy.

Every user-facing error is a :class:`SpecificationError` (a ``ValueError``) whose message
names the column or argument and what is wrong with it, so that the CLI can print it as one
line and a notebook user sees the cause rather than a traceback from deep inside a library.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd


class SpecificationError(ValueError):
    """Bad input: the message names the argument or column and what was wrong.

    A subclass of ``ValueError``, raised by every input check of bayesvc.

    Examples
    --------
    >>> import pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"y": [1.0, 2, 3, 4], "g": ["a", "a", "b", "b"]})
    >>> try:
    ...     bvc.VCModel.from_formula("y ~ x + (1|g)", data=df)
    ... except bvc.SpecificationError as err:
    ...     print(err)
    unknown column 'x' in formula 'y ~ x + (1|g)'; data has columns ['y', 'g']
    """


class BoundaryFitWarning(UserWarning):
    """A variance component was estimated at (or next to) zero.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "y": np.tile([1.0, 2, 3, 5, 8], 6)})
    >>> m = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)   # identical group means
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     r = m.fit_reml()
    >>> [str(w.message) for w in caught if w.category is bvc.BoundaryFitWarning]
    ['boundary (singular) fit: variance of g estimated as 0']
    """


class RankDeficiencyWarning(UserWarning):
    """Fixed-effect columns were dropped because X is rank deficient.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"g": np.repeat(np.arange(4), 3), "x": np.arange(12.0)})
    >>> df["x2"], df["y"] = 2 * df.x, np.arange(12.0) % 5
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     m = bvc.VCModel.from_formula("y ~ x + x2 + (1|g)", data=df)
    >>> [str(w.message) for w in caught if w.category is bvc.RankDeficiencyWarning]
    ['fixed-effect model matrix is rank deficient so dropping 1 column(s): x2']
    >>> m.design.fe_names, m.design.dropped_fe
    (('Intercept', 'x'), ('x2',))
    """


def fail(message: str) -> None:
    raise SpecificationError(message)


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
    warnings.warn(f"dropped {n_drop} rows with missing values in the model's columns", stacklevel=3)
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
    columns already kept (Gram-Schmidt, twice for stability) is not negligible.
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
    warnings.warn(
        f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
        f"column(s): {', '.join(dropped)}",
        RankDeficiencyWarning,
        stacklevel=3,
    )
    return X[:, keep], [names[j] for j in keep], dropped
