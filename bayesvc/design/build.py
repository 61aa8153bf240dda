"""Spec + data frame -> :class:`~bayesvc.design.Design`: validate every input first, then build the
fixed-effects matrix (formulae) and one sparse random-effect block per term (from level codes,
never a dense N x q matrix). The statsmodels array interface is :mod:`bayesvc.design.arrays`.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import fail
from ..spec import ModelSpec, RETerm
from . import checks
from .design import Design, RandomTerm
from .family import binomial_response, offset_column, poisson_response, validate_family

_INDICATOR = re.compile(r"^\s*(?:0\s*\+\s*C\((\w+)\)|C\((\w+)\)\s*-\s*1|-1\s*\+\s*C\((\w+)\))\s*$")


def _factorize(data: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    for c in cols:
        if data[c].dtype == object:
            u = pd.unique(data[c])
            checks.check_labels(c, u, [label(v) for v in u])
    if len(cols) == 1:
        codes, uniq = _factorize_column(data[cols[0]])
        return codes, np.asarray([label(u) for u in uniq], dtype=object)
    key = pd.MultiIndex.from_frame(data[list(cols)])
    codes, uniq = pd.factorize(key, sort=True)
    return codes, np.asarray([":".join(label(v) for v in u) for u in uniq], dtype=object)


def _factorize_column(col: pd.Series):
    """Level codes and sorted levels; a column mixing types (which cannot be sorted) keeps the
    order of first appearance."""
    try:
        return pd.factorize(col, sort=True)
    except TypeError:
        return pd.factorize(col, sort=False)


def label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _expr_matrix(expr: str, data: pd.DataFrame, with_encoding: bool = False):
    import formulae

    e = expr.strip()
    if e == "1":
        out = np.ones((len(data), 1)), ["Intercept"]
        return (*out, None) if with_encoding else out
    try:
        dm = formulae.design_matrices(e, data, na_action="error")
    except Exception as err:  # formulae raises plain Exceptions for parse errors
        fail(f"malformed random-effect expression {expr!r}: {err}")
    df = dm.common.as_dataframe()
    out = df.to_numpy(dtype=float), [str(c) for c in df.columns]
    return (*out, dm.common) if with_encoding else out


def block_matrix(codes: np.ndarray, E: np.ndarray, n_levels: int) -> sp.csc_matrix:
    n, p = E.shape
    rows = np.repeat(np.arange(n), p)
    cols = (codes[:, None] * p + np.arange(p)[None, :]).ravel()
    Z = sp.csc_matrix((E.ravel(), (rows, cols)), shape=(n, n_levels * p))
    Z.eliminate_zeros()
    return Z


def _component_names(name: str, coefs: list[str], intercept_name: str = "Intercept") -> tuple[str, ...]:
    return tuple(name if c == intercept_name else f"{c}|{name}" for c in coefs)


def _bar_term(t: RETerm, data: pd.DataFrame) -> list[RandomTerm]:
    codes, levels = _factorize(data, t.factor)
    checks.check_levels(t.factor_name, len(levels), len(data))
    E, coefs, enc = _expr_matrix(t.expr, data, with_encoding=True)
    name = t.name or t.factor_name
    Z = block_matrix(codes, E, len(levels))
    return [RandomTerm(name, t.factor_name, tuple(coefs), _component_names(name, coefs), levels, Z,
                       correlated=t.correlated and len(coefs) > 1, encoding=enc)]


def _vc_term(t: RETerm, data: pd.DataFrame) -> RandomTerm:
    """statsmodels variance component: within each group, every column is one random effect."""
    gcodes, glevels = _factorize(data, (t.within,))
    m = _INDICATOR.match(t.expr)
    if m:
        col = next(g for g in m.groups() if g)
        if col not in data.columns:
            fail(f"unknown column {col!r} in vc_formula[{t.name!r}]")
        ccodes, clevels = _factorize(data, (col,))
        E_names = list(clevels)
        vals = np.ones(len(data))
        pair = gcodes.astype(np.int64) * len(clevels) + ccodes
    else:
        E, E_names = _expr_matrix(t.expr, data)
        n, c = E.shape
        r, j = np.nonzero(E)
        vals = E[r, j]
        pair_all = gcodes[r].astype(np.int64) * c + j
        uniq, col_idx = np.unique(pair_all, return_inverse=True)
        levels = np.asarray([f"{glevels[u // c]}:{E_names[u % c]}" for u in uniq], dtype=object)
        Z = sp.csc_matrix((vals, (r, col_idx)), shape=(n, len(uniq)))
        checks.check_levels(f"vc_formula[{t.name!r}]", len(uniq), n)
        return RandomTerm(t.name, t.name, ("",), (t.name,), levels, Z, correlated=False)
    uniq, col_idx = np.unique(pair, return_inverse=True)
    nl = len(E_names)
    levels = np.asarray([f"{glevels[u // nl]}:{E_names[u % nl]}" if len(glevels) > 1 else str(E_names[u % nl])
                         for u in uniq], dtype=object)
    Z = sp.csc_matrix((vals, (np.arange(len(data)), col_idx)), shape=(len(data), len(uniq)))
    checks.check_levels(f"vc_formula[{t.name!r}]", len(uniq), len(data))
    return RandomTerm(t.name, t.name, ("",), (t.name,), levels, Z, correlated=False)


def build_design(spec: ModelSpec, data: pd.DataFrame, missing: str = "error", weights=None,
                 family: str = "gaussian", offset: str | None = None, residual_by: str | None = None) -> Design:
    """Validate ``data`` against ``spec`` and build the :class:`Design`.

    ``weights`` names a column of prior weights (residual variance ``sigma^2 / w_i``, as lme4's
    ``lmer(..., weights = w)``); they must be positive. ``family`` ``"binomial"`` or ``"poisson"``
    makes a GLMM design (:mod:`bayesvc.design.family`), with an optional ``offset`` column.
    ``residual_by`` names a factor with one residual SD per level (nlme's ``varIdent``).

    Examples
    --------
    >>> d = bvc.build_design(bvc.parse_lme4("y ~ 1 + (1|g)"), df)
    >>> d.nobs, d.fe_names, [t.n_levels for t in d.terms]
    (48, ('Intercept',), [8])
    """
    import formulae

    if not isinstance(data, pd.DataFrame):
        fail(f"data must be a pandas DataFrame, got {type(data).__name__}")
    checks.check_not_empty(data)
    family = validate_family(family)
    if offset is not None and family == "gaussian":
        fail("offset= needs family='binomial' or 'poisson'")
    if residual_by is not None and family != "gaussian":
        fail("residual_by= needs family='gaussian' (a GLMM has no residual variance)")
    cols = spec.columns + [c for c in (offset, residual_by) if c is not None and c not in spec.columns]
    checks.check_columns(data, cols, f"formula {spec.formula!r}")
    if weights is not None:
        if not isinstance(weights, str):
            fail(f"weights must name a column of data, got {type(weights).__name__}")
        checks.check_columns(data, [weights], "weights")
        checks.check_weights(data[weights], weights, len(data))  # before rows are dropped
        cols = cols + [weights] if weights not in cols else cols
    data, n_drop = checks.handle_missing(data, cols, missing)
    data = data.reset_index(drop=True)
    w = None if weights is None else checks.check_weights(data[weights], weights, len(data))
    if family == "binomial":
        y, w = binomial_response(spec, data, w)
    elif family == "poisson":
        y = poisson_response(spec, data, w)
    else:
        if spec.cbind:
            fail("cbind(k, n - k) is a binomial response: pass family='binomial'")
        y = checks.check_response(data[spec.response], spec.response)
    try:
        dm = formulae.design_matrices(f"`{spec.response}` ~ {spec.fixed}", data, na_action="error")
    except Exception as err:
        fail(f"malformed fixed-effects formula {spec.fixed!r}: {err}")
    Xdf = dm.common.as_dataframe()
    X, names, dropped = checks.drop_rank_deficient(Xdf.to_numpy(dtype=float), [str(c) for c in Xdf.columns])
    terms: list[RandomTerm] = []
    checks.check_fixed_rank(X, names, data, [c for c in cols if c != spec.response])
    for t in spec.re_terms:
        terms.extend([_vc_term(t, data)] if t.within else _bar_term(t, data))
    checks.check_distinct_terms(terms)
    if spec.groups is not None:
        groups = data[spec.groups].to_numpy()
    else:
        groups = _factorize(data, spec.re_terms[0].factor)[0]
    off = None if offset is None else offset_column(data, offset)
    rcodes = rlevels = None
    if residual_by is not None:
        rcodes, rlevels = _factorize(data, (residual_by,))
        if len(rlevels) < 2:
            fail(f"residual_by {residual_by!r} has {len(rlevels)} level; one residual SD per level needs 2 or more")
        rlevels = tuple(rlevels)
    return Design(y, X, tuple(names), tuple(terms), spec.response, groups, tuple(dropped), n_drop, spec,
                  fixed_encoding=dm.common, weights=w, family=family, offset=off, residual_codes=rcodes,
                  residual_levels=rlevels, residual_name=residual_by)
