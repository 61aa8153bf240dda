"""statsmodels' array interface -> :class:`~bayesvc.design.Design`: ``MixedLM(endog, exog, groups,
exog_re, exog_vc)`` with ``exog_vc`` a :class:`~bayesvc.spec.VCSpec` (ours or statsmodels')."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import fail, warn
from ..spec import VCSpec
from . import checks
from .build import block_matrix, label
from .design import Design, RandomTerm


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
    if isinstance(a, pd.Series) and a.name is not None:
        cols = [a.name]  # statsmodels names a Series column after the Series
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


def design_from_arrays(endog, exog, groups, exog_re=None, exog_vc=None, weights=None) -> Design:
    """Arrays as statsmodels' ``MixedLM(endog, exog, groups, exog_re, exog_vc)`` takes them.

    ``exog_re`` columns are correlated random coefficients per group (named ``x_re1, ...`` unless
    a DataFrame or Series names them); ``exog_vc`` is a :class:`VCSpec` (ours or statsmodels'). With
    neither, each group gets a random intercept (component ``"Group"``), as in statsmodels.
    statsmodels' deprecated dict form of ``exog_vc``, ``{name: {group label: matrix}}``, is
    accepted with the ``FutureWarning`` statsmodels gives (see :func:`vcspec_from_dict`).

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
    exog_vc : VCSpec or dict, optional
    weights : array_like (n,), optional
        Prior weights: residual variance ``sigma^2 / w_i`` (lme4's ``weights=``).

    Returns
    -------
    Design

    Examples
    --------
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

    Neither ``exog_re`` nor ``exog_vc``: a random intercept per group, as statsmodels fits it:

    >>> bvc.design_from_arrays(y, np.ones((12, 1)), groups).component_names
    ['Group']
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
    try:
        gcodes, glevels = pd.factorize(g, sort=True)
    except TypeError:  # mixed types cannot be sorted
        gcodes, glevels = pd.factorize(g, sort=False)
    glabels = np.asarray([label(v) for v in glevels], dtype=object)
    checks.check_labels("groups", glevels, list(glabels))
    terms: list[RandomTerm] = []
    if exog_re is None and not _has_components(exog_vc):
        # statsmodels' default random-effects structure: a random intercept per group
        exog_re = pd.DataFrame({"Group": np.ones(n)})
    if exog_re is not None:
        E, ecols = _as_2d(exog_re, "exog_re")
        if E.shape[0] != n:
            fail(f"exog_re has {E.shape[0]} rows but endog has {n}")
        checks.check_levels("groups", len(glevels), n)
        coefs = ecols or [f"x_re{j + 1}" for j in range(E.shape[1])]
        Z = block_matrix(gcodes, E, len(glevels))
        terms.append(RandomTerm("groups", "groups", tuple(coefs), tuple(coefs), glabels, Z,
                                correlated=E.shape[1] > 1))
    if isinstance(exog_vc, dict):
        warn("Using deprecated variance components format (as statsmodels): pass "
             "exog_vc=bvc.VCSpec(names, colnames, mats) instead of {name: {group: matrix}}",
             FutureWarning)
        exog_vc = vcspec_from_dict(exog_vc, glevels)
    if exog_vc is not None:
        terms += _vc_terms(VCSpec.coerce(exog_vc), gcodes, glabels, n)
    X, names, dropped = checks.drop_rank_deficient(X, _exog_names(X, xcols))
    checks.check_fixed_rank(X, names)
    checks.check_distinct_terms(terms)
    w = None if weights is None else checks.check_weights(weights, "weights", n)
    return Design(y, X, tuple(names), tuple(terms), str(name), g, tuple(dropped), 0, None, weights=w)


def _has_components(exog_vc) -> bool:
    """Whether ``exog_vc`` (a VCSpec, statsmodels' or its dict form, or None) names a component."""
    if exog_vc is None:
        return False
    names = exog_vc if isinstance(exog_vc, dict) else getattr(exog_vc, "names", None)
    return names is None or len(names) > 0  # no names: let VCSpec.coerce say what is wrong


def vcspec_from_dict(exog_vc: dict, group_levels) -> VCSpec:
    """statsmodels' deprecated ``exog_vc`` dict, ``{name: {group label: matrix}}``, as a
    :class:`~bayesvc.VCSpec`: names sorted and groups in sorted order, as statsmodels'
    ``_convert_vc`` orders them; columns named by a DataFrame's columns, else ``0, 1, ...``.

    Examples
    --------
    >>> from bayesvc.design.arrays import vcspec_from_dict
    >>> vc = vcspec_from_dict({"b": {1: np.ones((2, 1)), 0: np.ones((3, 1))}}, [0, 1])
    >>> vc.names, vc.colnames, [m.shape for m in vc.mats[0]]
    (['b'], [[['0'], ['0']]], [(3, 1), (2, 1)])
    """
    names, colnames, mats = [], [], []
    for name in sorted(exog_vc):
        by_group = exog_vc[name]
        if not isinstance(by_group, dict):
            fail(f"exog_vc[{name!r}] must map each group label to its design matrix, got "
                 f"{type(by_group).__name__}; or pass exog_vc=bvc.VCSpec(names, colnames, mats)")
        cn, ms = [], []
        for g in group_levels:
            if g not in by_group:
                fail(f"exog_vc[{name!r}] has no matrix for group {label(g)!r}: the deprecated dict "
                     "form needs one per group (or pass exog_vc=bvc.VCSpec(names, colnames, mats))")
            m = by_group[g]
            cols = getattr(m, "columns", None)
            shape = np.shape(m)
            cn.append([str(c) for c in cols] if cols is not None else
                      [str(j) for j in range(shape[1] if len(shape) > 1 else 1)])
            ms.append(m)
        names.append(str(name))
        colnames.append(cn)
        mats.append(ms)
    return VCSpec(names, colnames, mats)


def _check_vcspec(vc: VCSpec, n_groups: int) -> None:
    """names, colnames and mats must agree in length: one entry per component, and within one
    component one entry per group (the column counts are checked against each matrix later)."""
    if len(vc.mats) != len(vc.names) or len(vc.colnames) != len(vc.names):
        fail(f"exog_vc has {len(vc.names)} names but {len(vc.mats)} entries in mats and "
             f"{len(vc.colnames)} in colnames: give one of each per variance component")
    for k, cname in enumerate(vc.names):
        if len(vc.colnames[k]) != len(vc.mats[k]):
            fail(f"exog_vc.colnames[{k}] ({cname!r}) has {len(vc.colnames[k])} entries but "
                 f"exog_vc.mats[{k}] has {len(vc.mats[k])}: give one list of column names per group")


def _vc_terms(vc: VCSpec, gcodes: np.ndarray, glabels: np.ndarray, n: int) -> list[RandomTerm]:
    """One scalar term per variance component of ``vc``: every column of ``vc.mats[k][g]`` is one
    random effect, rows in data order within group ``g`` (groups in sorted order)."""
    order = [np.flatnonzero(gcodes == k) for k in range(len(glabels))]
    _check_vcspec(vc, len(glabels))
    terms = []
    for k, cname in enumerate(vc.names):
        if len(vc.mats[k]) != len(glabels):
            fail(f"exog_vc.mats[{k}] ({cname!r}) has {len(vc.mats[k])} group matrices "
                 f"but groups has {len(glabels)} levels")
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
            if len(cn) != M.shape[1]:
                fail(f"exog_vc.colnames[{k}][{gi}] ({cname!r}) has {len(cn)} names but "
                     f"exog_vc.mats[{k}][{gi}] has {M.shape[1]} columns")
            labels += [f"{glabels[gi]}:{c}" if len(order) > 1 else str(c) for c in cn]
            offset += M.shape[1]
        Z = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                          shape=(n, offset))
        used = np.flatnonzero(np.diff(Z.indptr) > 0)
        Z = Z[:, used].tocsc()
        labs = np.asarray(labels, dtype=object)[used]
        checks.check_levels(f"exog_vc[{cname!r}]", len(labs), n)
        terms.append(RandomTerm(cname, cname, ("",), (cname,), labs, Z, correlated=False))
    return terms
