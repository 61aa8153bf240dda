"""The response of a binomial or Poisson GLMM, checked: what ``family=`` changes in a design.

Binomial responses come as a 0/1 column, as proportions with ``weights=`` the numbers of trials, or
as lme4's ``cbind(k, n - k)``; they are stored as proportions ``y`` with the trials as the design's
``weights``. Poisson responses are non-negative whole counts, with an optional ``offset`` column
(``log`` exposure), added to the linear predictor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import fail

FAMILIES = ("gaussian", "binomial", "poisson")


def validate_family(family) -> str:
    if family not in FAMILIES:
        fail(f"family must be one of {', '.join(FAMILIES)}, got {family!r}")
    return family


def _whole(a) -> bool:
    return bool(np.all(np.abs(a - np.round(a)) < 1e-8 * np.maximum(1.0, np.abs(a))))


def _numeric(col, what: str) -> np.ndarray:
    arr = np.asarray(col)
    if arr.dtype.kind not in "biuf":
        fail(f"{what} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if not np.all(np.isfinite(arr)):
        fail(f"{what} has {int((~np.isfinite(arr)).sum())} missing or non-finite values")
    return arr


def binomial_response(spec, data: pd.DataFrame, weights) -> tuple[np.ndarray, np.ndarray]:
    """``(proportions, trials)`` of a binomial response (module docstring)."""
    if spec.cbind:
        if weights is not None:
            fail("weights= cannot be combined with cbind(k, n - k): the trials are k + (n - k)")
        k = _numeric(data[spec.response], f"response {spec.response!r}")
        try:
            f = _numeric(data.eval(spec.cbind[1]), f"failures {spec.cbind[1]!r}")
        except Exception as err:  # pandas raises many types for a bad expression
            fail(f"cannot evaluate the failures {spec.cbind[1]!r} of cbind(): {err}")
        if np.any(k < 0) or not _whole(k):
            fail(f"response {spec.response!r} must hold non-negative whole numbers of successes")
        if np.any(f < 0) or not _whole(f):
            fail(f"failures {spec.cbind[1]!r} must be non-negative whole numbers: "
                 f"{int((f < 0).sum())} rows have more successes than trials")
        n = k + f
        if np.any(n <= 0):
            fail(f"cbind({spec.response}, {spec.cbind[1]}) has {int((n <= 0).sum())} rows with no trials")
        return k / n, n
    y = _numeric(data[spec.response], f"response {spec.response!r}")
    if np.any((y < 0) | (y > 1)):
        fail(f"binomial response {spec.response!r} must lie in [0, 1] (a 0/1 column or proportions with "
             f"weights= the trials); {int(((y < 0) | (y > 1)).sum())} values lie outside "
             "(for counts use cbind(k, n - k))")
    n = np.ones_like(y) if weights is None else weights
    if not _whole(y * n):
        fail(f"binomial response {spec.response!r} times the trials (weights) must be whole numbers of "
             "successes")
    return y, n


def poisson_response(spec, data: pd.DataFrame, weights) -> np.ndarray:
    """The counts of a Poisson response, checked."""
    if weights is not None:
        fail("weights= is not supported with family='poisson' (use offset= for exposures)")
    y = _numeric(data[spec.response], f"response {spec.response!r}")
    if np.any(y < 0) or not _whole(y):
        fail(f"Poisson response {spec.response!r} must hold non-negative whole counts; "
             f"{int(((y < 0) | (np.abs(y - np.round(y)) > 1e-8)).sum())} values are not")
    return y


def offset_column(data: pd.DataFrame, offset) -> np.ndarray:
    """The ``offset`` column (added to the linear predictor as is: pass ``log`` exposures)."""
    if not isinstance(offset, str):
        fail(f"offset must name a column of data, got {type(offset).__name__}")
    if offset not in data.columns:
        fail(f"unknown column {offset!r} in offset; data has columns {list(map(str, data.columns))}")
    return _numeric(data[offset], f"offset {offset!r}")
