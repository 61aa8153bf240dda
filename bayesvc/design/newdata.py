"""New data -> the fixed-effects rows and the random-effect rows of a fitted design, built with the
fit's encodings (formulae's matrices kept on the :class:`~bayesvc.design.Design`), so that
categorical covariates are coded as in fitting and grouping labels are matched to the fit's levels.

A level not seen in fitting gets code ``-1``: the predictors give it the population value (lme4's
``allow.new.levels = TRUE``: that term contributes nothing), draw a fresh effect, or refuse it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import fail
from . import checks
from .build import label
from .design import Design

NEW_LEVELS = ("population", "error", "sample")


@dataclass(frozen=True)
class NewRows:
    """The rows of a design on new data (or on the fitting data).

    Attributes
    ----------
    X : ndarray (m, k)
        Fixed-effects rows, the fit's columns (rank-deficient ones dropped as in fitting).
    codes : list of ndarray (m,)
        Per term, the fit's level index of each row (``-1``: a level not seen in fitting).
    zvals : list of ndarray (m, p)
        Per term, the term's model-matrix values of each row.
    new_levels : dict
        Per term with unseen levels, their labels (sorted).
    new_index : list of ndarray (m,)
        Per term, each row's index into that term's ``new_levels`` (``-1`` for a seen level).
    Z : list of sparse matrices or None
        On the fitting data, each term's ``Z`` (for terms that are not block diagonal).

    Examples
    --------
    >>> from bayesvc.design.newdata import new_rows
    >>> nd = pd.DataFrame({"g": ["a", "zz"], "x": [1.0, 2.0]})
    >>> r = new_rows(slopes.design, nd)
    >>> r.X.tolist(), [c.tolist() for c in r.codes], r.new_levels
    ([[1.0, 1.0], [1.0, 2.0]], [[0, -1]], {'g': ['zz']})
    """

    X: np.ndarray
    codes: list
    zvals: list
    new_levels: dict
    new_index: list
    Z: list | None = None

    @property
    def nobs(self) -> int:
        """Number of rows."""
        return self.X.shape[0]


def _fixed_rows(design: Design, data: pd.DataFrame) -> np.ndarray:
    try:
        df = design.fixed_encoding.evaluate_new_data(data).as_dataframe()
    except ValueError as err:  # formulae: levels not present in the original data set
        fail(f"newdata: {err}")
    names = [str(c) for c in df.columns]
    return df[[n for n in names if n in design.fe_names]].to_numpy(dtype=float)


def _term_rows(term, re_term, data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list]:
    cols = list(re_term.factor)
    if len(cols) == 1:
        labels = [label(v) for v in data[cols[0]]]
    else:
        labels = [":".join(label(v) for v in row) for row in data[cols].itertuples(index=False)]
    index = {lev: i for i, lev in enumerate(term.levels)}
    codes = np.asarray([index.get(lev, -1) for lev in labels], dtype=np.int64)
    unseen = sorted({lev for lev, c in zip(labels, codes) if c < 0})
    pos = {lev: i for i, lev in enumerate(unseen)}
    new_index = np.asarray([pos[lev] if c < 0 else -1 for lev, c in zip(labels, codes)], dtype=np.int64)
    if term.encoding is None:
        E = np.ones((len(data), 1))
    else:
        try:
            E = term.encoding.evaluate_new_data(data).as_dataframe().to_numpy(dtype=float)
        except ValueError as err:
            fail(f"newdata: {err}")
    return codes, E, unseen, new_index


def new_rows(design: Design, newdata: pd.DataFrame | None = None, new_levels: str = "population") -> NewRows:
    """The :class:`NewRows` of ``newdata`` (``None``: the fitting data) under ``design``'s encodings.

    ``new_levels="error"`` refuses levels not seen in fitting, naming the grouping column and the
    levels; the other choices (``"population"``, ``"sample"``) mark them with code ``-1``.

    Examples
    --------
    >>> from bayesvc.design.newdata import new_rows
    >>> new_rows(slopes.design, pd.DataFrame({"g": ["q"], "x": [0.0]}), new_levels="error")
    Traceback (most recent call last):
    ...
    bayesvc.errors.SpecificationError: newdata column 'g' has levels not seen in fitting: ['q']; pass new_levels='population' (or 'sample' for posterior draws) to predict them
    """
    if new_levels not in NEW_LEVELS:
        fail(f"new_levels must be one of {', '.join(map(repr, NEW_LEVELS))}, not {new_levels!r}")
    if newdata is None:
        n = design.nobs
        return NewRows(design.X, [t.codes for t in design.terms], [t.zvals for t in design.terms], {},
                       [np.full(n, -1) for _ in design.terms], [t.Z for t in design.terms])
    if isinstance(design.fixed_encoding, str) or any(isinstance(t.encoding, str) for t in design.terms):
        fail("newdata: this model was unpickled, and its fixed-effect encodings (formulae's) cannot be "
             "pickled; predict on new data in the process that built the model")
    if design.spec is None or design.fixed_encoding is None:
        fail("newdata needs a model built from a formula: a model built from arrays has no "
             "encodings to apply to new data (predict with newdata=None)")
    if not isinstance(newdata, pd.DataFrame):
        fail(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
    checks.check_not_empty(newdata)
    spec = design.spec
    used = [c for c in spec.columns if c != spec.response]
    checks.check_columns(newdata, used, f"newdata for formula {spec.formula!r}")
    nas = [c for c in used if newdata[c].isna().any()]
    if nas:
        fail(f"newdata column {nas[0]!r} has {int(newdata[nas[0]].isna().sum())} missing values")
    data = newdata.reset_index(drop=True)
    codes, zvals, unseen, index = [], [], {}, []
    for term, re_term in zip(design.terms, spec.re_terms):
        if re_term.within:
            fail(f"newdata for the statsmodels variance component {term.name!r} is not supported: "
                 "state it as an lme4 term, e.g. (1 | group/column), or predict with newdata=None")
        c, E, new, idx = _term_rows(term, re_term, data)
        if new and new_levels == "error":
            fail(f"newdata column {term.factor!r} has levels not seen in fitting: {new}; pass "
                 "new_levels='population' (or 'sample' for posterior draws) to predict them")
        if new:
            unseen[term.name] = new
        codes.append(c)
        zvals.append(E)
        index.append(idx)
    return NewRows(_fixed_rows(design, data), codes, zvals, unseen, index)


def random_part(rows: NewRows, effects: list[np.ndarray]) -> np.ndarray:
    """``sum_t z_t' b_t[code]`` per row for per-term effects ``(..., levels, p)`` (leading axes
    broadcast, e.g. chain and draw); rows of an unseen level (code ``-1``) get zero from that term.
    A term that is not block diagonal (``codes`` None, fitting data only) goes through its ``Z``.

    Examples
    --------
    >>> from bayesvc.design.newdata import new_rows, random_part
    >>> r = new_rows(slopes.design, pd.DataFrame({"g": ["a", "zz"], "x": [2.0, 2.0]}))
    >>> random_part(r, [np.array([[1.0, 0.5], [0, 0], [0, 0]])]).tolist()
    [2.0, 0.0]
    """
    out = np.zeros(rows.nobs)
    for k, (codes, z, b) in enumerate(zip(rows.codes, rows.zvals, effects)):
        b = np.asarray(b, dtype=float)
        if codes is None:
            flat = b.reshape(b.shape[:-2] + (-1,))
            out = out + np.moveaxis(rows.Z[k] @ np.moveaxis(flat, -1, 0).reshape(flat.shape[-1], -1), 0, -1
                                    ).reshape(flat.shape[:-1] + (rows.nobs,))
            continue
        seen = codes >= 0
        picked = np.take(b, np.where(seen, codes, 0), axis=-2)  # (..., m, p)
        out = out + np.where(seen, np.einsum("...mp,mp->...m", picked, z), 0.0)
    return out
