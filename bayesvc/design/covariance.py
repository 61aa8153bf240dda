"""theta <-> Lambda <-> (SDs, correlations), shared by every estimator.

As in lme4, each term's random effects are ``b = Lambda u`` with ``u ~ N(0, sigma^2 I)`` and a
per-level lower-triangular relative covariance factor ``Lambda_t`` (p x p). For a scalar term
``Lambda_t = theta_t`` is the ratio of the component SD to the residual SD. Correlated terms
hold the lower triangle column by column (lme4's order); uncorrelated p > 1 terms hold the diagonal.
"""

from __future__ import annotations

import numpy as np


def theta_slices(terms) -> list[slice]:
    out, k = [], 0
    for t in terms:
        out.append(slice(k, k + t.n_theta))
        k += t.n_theta
    return out


def tril_index(p: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangle indices, column-major (lme4's theta order)."""
    r, c = np.tril_indices(p)
    order = np.lexsort((r, c))
    return r[order], c[order]


def term_lambda(term, theta_t: np.ndarray) -> np.ndarray:
    p = term.p
    L = np.zeros((p, p))
    if term.correlated and p > 1:
        r, c = tril_index(p)
        L[r, c] = theta_t
    else:
        L[np.diag_indices(p)] = theta_t
    return L


def theta_start(terms) -> np.ndarray:
    parts = []
    for t in terms:
        parts.append(term_lambda_inverse(t, np.eye(t.p)))
    return np.concatenate(parts)


def term_lambda_inverse(term, L: np.ndarray) -> np.ndarray:
    if term.correlated and term.p > 1:
        r, c = tril_index(term.p)
        return L[r, c].copy()
    return np.diag(L).copy()


def theta_lower_bounds(terms) -> np.ndarray:
    """0 for diagonal elements (SDs), -inf for off-diagonal ones, as lme4."""
    parts = []
    for t in terms:
        if t.correlated and t.p > 1:
            r, c = tril_index(t.p)
            parts.append(np.where(r == c, 0.0, -np.inf))
        else:
            parts.append(np.zeros(t.p))
    return np.concatenate(parts)


def covariances(terms, theta: np.ndarray, scale: float) -> list[np.ndarray]:
    """Per term, the p x p covariance matrix ``scale * Lambda_t Lambda_t'``."""
    return [scale * (L @ L.T) for L in (term_lambda(t, theta[s]) for t, s in zip(terms, theta_slices(terms)))]


def vcomp_from_theta(terms, theta: np.ndarray, scale: float) -> dict[str, float]:
    """Variance per component name (diagonal of each term's covariance ``scale * Lambda Lambda'``)."""
    out = {}
    for t, S in zip(terms, covariances(terms, theta, scale)):
        for name, v in zip(t.component_names, np.diag(S)):
            out[name] = float(v)
    return out


def zero_variance_components(terms, theta: np.ndarray) -> list[str]:
    """Components whose variance is exactly zero at ``theta`` (their whole row of ``Lambda_t`` is
    zero). A correlated term whose diagonal element is zero but whose row is not has a singular
    covariance, not a zero variance (see :func:`singular_terms`)."""
    out = []
    for t, s in zip(terms, theta_slices(terms)):
        L = term_lambda(t, theta[s])
        out += [name for name, row in zip(t.component_names, L) if not np.any(row)]
    return out


def singular_terms(terms, theta: np.ndarray) -> list[str]:
    """Terms whose covariance matrix is singular (a zero on the diagonal of ``Lambda_t``), lme4's
    ``isSingular``."""
    return [t.name for t, s in zip(terms, theta_slices(terms))
            if np.any(np.diag(term_lambda(t, theta[s])) == 0.0)]


def coef_labels(term) -> list[str]:
    """Row and column labels of a term's covariance matrix (``REMLResult.cov_re``)."""
    return [c or term.name for c in term.coef_names]


def covariance_name(term, i: int, j: int) -> str:
    """Name of the covariance of coefficients ``j < i`` of ``term``, ``"<term>: <coef j>,<coef i>"``
    (the key of the JSON ``covariances`` entry and of ``REMLResult.cov_vc``)."""
    labels = coef_labels(term)
    return f"{term.name}: {labels[j]},{labels[i]}"


def vc_parameters(terms) -> list[tuple[str, int, int, int]]:
    """The variance parameters ``(name, term index, i, j)``: per term the lower triangle of its
    covariance matrix by rows (statsmodels' order: var 0, cov 1-0, var 1, ...) for correlated terms,
    the variances only for the others. Variances are named by component, covariances by
    :func:`covariance_name`."""
    out = []
    for k, t in enumerate(terms):
        full = t.correlated and t.p > 1
        for i in range(t.p):
            for j in range(i + 1) if full else (i,):
                out.append((t.component_names[i] if i == j else covariance_name(t, i, j), k, i, j))
    return out


def theta_from_vc(terms, values, scale: float) -> np.ndarray | None:
    """theta at the variance parameters ``values`` (in :func:`vc_parameters` order) and residual
    variance ``scale``; ``None`` outside the parameter space (a negative variance, a covariance
    matrix that is not positive definite)."""
    if not scale > 0:
        return None
    values = np.asarray(values, dtype=float)
    mats = [np.zeros((t.p, t.p)) for t in terms]
    for (_, k, i, j), v in zip(vc_parameters(terms), values):
        mats[k][i, j] = mats[k][j, i] = v
    parts = []
    for t, S in zip(terms, mats):
        if t.correlated and t.p > 1:
            try:
                L = np.linalg.cholesky(S / scale)
            except np.linalg.LinAlgError:
                return None
        else:
            d = np.diag(S)
            if np.any(d < 0):
                return None
            L = np.diag(np.sqrt(d / scale))
        parts.append(term_lambda_inverse(t, L))
    return np.concatenate(parts)
