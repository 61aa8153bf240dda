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
