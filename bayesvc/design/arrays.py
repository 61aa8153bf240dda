"""statsmodels' array interface -> :class:`~bayesvc.design.Design`: ``MixedLM(endog, exog, groups,
exog_re, exog_vc)`` with ``exog_vc`` a :class:`~bayesvc.spec.VCSpec` (ours or statsmodels')."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import fail
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
    glabels = np.asarray([label(v) for v in glevels], dtype=object)
    terms: list[RandomTerm] = []
    if exog_re is not None:
        E, ecols = _as_2d(exog_re, "exog_re")
        if E.shape[0] != n:
            fail(f"exog_re has {E.shape[0]} rows but endog has {n}")
        checks.check_levels("groups", len(glevels), n)
        coefs = ecols or [f"x_re{j + 1}" for j in range(E.shape[1])]
        Z = block_matrix(gcodes, E, len(glevels))
        terms.append(RandomTerm("groups", "groups", tuple(coefs), tuple(coefs), glabels, Z,
                                correlated=E.shape[1] > 1))
    if exog_vc is not None:
        terms += _vc_terms(VCSpec.coerce(exog_vc), gcodes, glabels, n)
    if not terms:
        fail("no random effects: give exog_re or exog_vc")
    X, names, dropped = checks.drop_rank_deficient(X, _exog_names(X, xcols))
    return Design(y, X, tuple(names), tuple(terms), str(name), g, tuple(dropped), 0, None)


def _vc_terms(vc: VCSpec, gcodes: np.ndarray, glabels: np.ndarray, n: int) -> list[RandomTerm]:
    """One scalar term per variance component of ``vc``: every column of ``vc.mats[k][g]`` is one
    random effect, rows in data order within group ``g`` (groups in sorted order)."""
    order = [np.flatnonzero(gcodes == k) for k in range(len(glabels))]
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
