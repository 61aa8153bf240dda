"""Spec + data -> :class:`~bayesvc.design.Design`: validate every input first, then build the
fixed-effects matrix (formulae) and one sparse random-effect block per term (from level codes,
never a dense N x q matrix). Also the statsmodels array interface (``endog, exog, groups,
exog_re, exog_vc``).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import checks
from .checks import fail
from .design import Design, RandomTerm
from .spec import ModelSpec, RETerm, VCSpec

_INDICATOR = re.compile(r"^\s*(?:0\s*\+\s*C\((\w+)\)|C\((\w+)\)\s*-\s*1|-1\s*\+\s*C\((\w+)\))\s*$")


def _factorize(data: pd.DataFrame, cols: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    if len(cols) == 1:
        codes, uniq = pd.factorize(data[cols[0]], sort=True)
        return codes, np.asarray([_label(u) for u in uniq], dtype=object)
    key = pd.MultiIndex.from_frame(data[list(cols)])
    codes, uniq = pd.factorize(key, sort=True)
    return codes, np.asarray([":".join(_label(v) for v in u) for u in uniq], dtype=object)


def _label(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _expr_matrix(expr: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    import formulae

    e = expr.strip()
    if e == "1":
        return np.ones((len(data), 1)), ["Intercept"]
    try:
        dm = formulae.design_matrices(e, data, na_action="error")
    except Exception as err:  # formulae raises plain Exceptions for parse errors
        fail(f"malformed random-effect expression {expr!r}: {err}")
    df = dm.common.as_dataframe()
    return df.to_numpy(dtype=float), [str(c) for c in df.columns]


def _block(codes: np.ndarray, E: np.ndarray, n_levels: int) -> sp.csc_matrix:
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
    E, coefs = _expr_matrix(t.expr, data)
    name = t.name or t.factor_name
    Z = _block(codes, E, len(levels))
    return [RandomTerm(name, t.factor_name, tuple(coefs), _component_names(name, coefs), levels, Z,
                       correlated=t.correlated and len(coefs) > 1)]


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


def build_design(spec: ModelSpec, data: pd.DataFrame, missing: str = "error") -> Design:
    """Validate ``data`` against ``spec`` and build the :class:`Design`.

    Examples
    --------
    >>> import pandas as pd
    >>> from bayesvc.spec import parse_lme4
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4], "g": ["a", "a", "b", "b"]})
    >>> d = build_design(parse_lme4("y ~ 1 + (1|g)"), df)
    >>> d.nobs, d.fe_names, [t.n_levels for t in d.terms]
    (4, ('Intercept',), [2])
    """
    import formulae

    if not isinstance(data, pd.DataFrame):
        fail(f"data must be a pandas DataFrame, got {type(data).__name__}")
    checks.check_not_empty(data)
    cols = spec.columns
    checks.check_columns(data, cols, f"formula {spec.formula!r}")
    data, n_drop = checks.handle_missing(data, cols, missing)
    data = data.reset_index(drop=True)
    y = checks.check_response(data[spec.response], spec.response)
    try:
        dm = formulae.design_matrices(f"{spec.response} ~ {spec.fixed}", data, na_action="error")
    except Exception as err:
        fail(f"malformed fixed-effects formula {spec.fixed!r}: {err}")
    Xdf = dm.common.as_dataframe()
    X, names, dropped = checks.drop_rank_deficient(Xdf.to_numpy(dtype=float), [str(c) for c in Xdf.columns])
    terms: list[RandomTerm] = []
    for t in spec.re_terms:
        terms.extend([_vc_term(t, data)] if t.within else _bar_term(t, data))
    if spec.groups is not None:
        groups = data[spec.groups].to_numpy()
    else:
        groups = _factorize(data, spec.re_terms[0].factor)[0]
    return Design(y, X, tuple(names), tuple(terms), spec.response, groups, tuple(dropped), n_drop, spec)


def _exog_names(X: np.ndarray, given) -> list[str]:
    if given is not None:
        return [str(c) for c in given]
    names = []
    for j in range(X.shape[1]):
        col = X[:, j]
        names.append("const" if np.ptp(col) == 0 and col[0] != 0 else f"x{j + 1}")
    return names


def _as_2d(a, name: str) -> tuple[np.ndarray, list[str] | None]:
    cols = list(a.columns) if isinstance(a, pd.DataFrame) else None
    try:
        arr = np.asarray(a, dtype=float) if not isinstance(a, pd.DataFrame) else a.to_numpy(dtype=float)
    except (TypeError, ValueError) as err:
        fail(f"{name} must be numeric: {err}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        fail(f"{name} must be one- or two-dimensional, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        fail(f"{name} has {int((~np.isfinite(arr)).sum())} missing or non-finite values")
    return arr, cols


def design_from_arrays(endog, exog, groups, exog_re=None, exog_vc=None) -> Design:
    """Arrays as statsmodels' ``MixedLM(endog, exog, groups, exog_re, exog_vc)`` takes them.

    ``exog_re`` columns are correlated random coefficients per group (named ``x_re1, ...`` unless
    a DataFrame names them); ``exog_vc`` is a :class:`VCSpec` (ours or statsmodels').

    Parameters
    ----------
    endog : array_like (n,)
        The response.
    exog : array_like (n, p)
        Fixed-effects design matrix (named ``const, x1, ...`` unless a DataFrame names the
        columns).
    groups : array_like (n,)
        Group labels.
    exog_re : array_like (n, k), optional
    exog_vc : VCSpec, optional

    Returns
    -------
    Design

    Examples
    --------
    >>> import numpy as np, bayesvc as bvc
    >>> groups = np.repeat([0, 1, 2], 4)
    >>> y = np.repeat([1.0, 4, 2], 4) + np.tile([0.0, 1, -1, 0.5], 3)
    >>> d = bvc.design_from_arrays(y, np.ones((12, 1)), groups, exog_re=np.ones((12, 1)))
    >>> d.nobs, d.fe_names, d.component_names
    (12, ('const',), ['x_re1'])

    Variance components as a :class:`VCSpec` (here one indicator column per observation pair):

    >>> mats = [[np.kron(np.eye(2), np.ones((2, 1)))] * 3]
    >>> vc = bvc.VCSpec(["pair"], [[["p0", "p1"]] * 3], mats)
    >>> d = bvc.design_from_arrays(y, np.ones((12, 1)), groups, exog_re=np.ones((12, 1)), exog_vc=vc)
    >>> d.component_names, list(d.terms[1].levels)
    (['x_re1', 'pair'], ['0:p0', '0:p1', '1:p0', '1:p1', '2:p0', '2:p1'])
    """
    name = getattr(endog, "name", None) or "y"
    y = checks.check_response(endog, "endog")
    n = len(y)
    if n == 0:
        fail("endog is empty: it has no rows")
    X, xcols = _as_2d(exog, "exog")
    if X.shape[0] != n:
        fail(f"exog has {X.shape[0]} rows but endog has {n}")
    g = np.asarray(groups)
    if g.shape != (n,):
        fail(f"groups must have one label per observation ({n}), got shape {g.shape}")
    if pd.isna(g).any():
        fail(f"groups has {int(pd.isna(g).sum())} missing labels")
    gcodes, glevels = pd.factorize(g, sort=True)
    glabels = np.asarray([_label(v) for v in glevels], dtype=object)
    terms: list[RandomTerm] = []
    if exog_re is not None:
        E, ecols = _as_2d(exog_re, "exog_re")
        if E.shape[0] != n:
            fail(f"exog_re has {E.shape[0]} rows but endog has {n}")
        checks.check_levels("groups", len(glevels), n)
        coefs = ecols or [f"x_re{j + 1}" for j in range(E.shape[1])]
        Z = _block(gcodes, E, len(glevels))
        terms.append(RandomTerm("groups", "groups", tuple(coefs), tuple(coefs), glabels, Z,
                                correlated=E.shape[1] > 1))
    if exog_vc is not None:
        vc = VCSpec.coerce(exog_vc)
        order = [np.flatnonzero(gcodes == k) for k in range(len(glevels))]
        for k, cname in enumerate(vc.names):
            if len(vc.mats[k]) != len(glevels):
                fail(f"exog_vc.mats[{k}] ({cname!r}) has {len(vc.mats[k])} group matrices "
                     f"but groups has {len(glevels)} levels")
            rows, cols, vals, labels = [], [], [], []
            offset = 0
            for gi, idx in enumerate(order):
                M = np.asarray(vc.mats[k][gi], dtype=float)
                if M.ndim == 1:
                    M = M[:, None]
                if M.shape[0] != len(idx):
                    fail(f"exog_vc.mats[{k}][{gi}] ({cname!r}) has {M.shape[0]} rows but group "
                         f"{glabels[gi]!r} has {len(idx)} observations")
                r, j = np.nonzero(M)
                rows.append(idx[r])
                cols.append(offset + j)
                vals.append(M[r, j])
                cn = vc.colnames[k][gi]
                labels += [f"{glabels[gi]}:{c}" if len(order) > 1 else str(c) for c in cn]
                offset += M.shape[1]
            Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                              shape=(n, offset))
            used = np.flatnonzero(np.diff(Z.indptr) > 0)
            Z = Z[:, used].tocsc()
            labs = np.asarray(labels, dtype=object)[used]
            checks.check_levels(f"exog_vc[{cname!r}]", len(labs), n)
            terms.append(RandomTerm(cname, cname, ("",), (cname,), labs, Z, correlated=False))
    if not terms:
        fail("no random effects: give exog_re or exog_vc")
    X, names, dropped = checks.drop_rank_deficient(X, _exog_names(X, xcols))
    return Design(y, X, tuple(names), tuple(terms), str(name), g, tuple(dropped), 0, None)
