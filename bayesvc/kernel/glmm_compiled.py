"""Numba kernels of :mod:`bayesvc.kernel.glmm_laplace` for scalar terms with one level per row:
PIRLS and the Laplace log-likelihood with its gradient in ``(sd, beta)``, the same formulas as
:meth:`~bayesvc.kernel.glmm_laplace.LaplaceDensity.value_and_grad` without SciPy's sparse matrices.

Why hand-written: NUTS calls the gradient thousands of times per chain, and the SciPy version spends
its 3-6 ms per call in Python and sparse-matrix overhead (cbpp, grouseticks; measured) where the
arithmetic takes microseconds. Row ``i`` touches column ``cols[i, k]`` of each term ``k`` with value
``zv[i, k]``, so ``H = I + D Z'WZ D`` is assembled in ``O(n K^2)`` and factored densely.
``family``: 0 binomial (``y`` proportions, ``n`` trials), 1 Poisson.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _loglik_obs(family, y, n, eta):
    if family == 0:
        k = n * y
        log_mu = -np.logaddexp(0.0, -eta)
        log_1mu = -np.logaddexp(0.0, eta)
        comb = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        return comb + k * log_mu + (n - k) * log_1mu
    mu = math.exp(eta)
    ll = -mu - math.lgamma(y + 1)
    if y > 0:
        ll += y * eta
    return ll


@njit(cache=True, nogil=True)
def _moments(family, y, n, eta):
    """score, weight, d weight / d eta"""
    if family == 0:
        mu = 1.0 / (1.0 + math.exp(-eta))
        w = n * mu * (1 - mu)
        return n * (y - mu), w, w * (1 - 2 * mu)
    mu = math.exp(eta)
    return y - mu, mu, mu


@njit(cache=True, nogil=True)
def _eta(eta0, cols, zv, lam, u):
    out = eta0.copy()
    for i in range(eta0.size):
        for k in range(cols.shape[1]):
            out[i] += lam[k] * zv[i, k] * u[cols[i, k]]
    return out


@njit(cache=True, nogil=True)
def _pdev(family, y, n, eta, u):
    s = 0.0
    for i in range(y.size):
        s += _loglik_obs(family, y[i], n[i], eta[i])
    return -2 * s + np.dot(u, u)


@njit(cache=True, nogil=True)
def _hessian(family, y, n, eta, cols, zv, lam, q):
    """``(H = I + D Z'WZ D, g = D Z's - u without the -u, score, weight)``."""
    H = np.eye(q)
    g = np.zeros(q)
    K = cols.shape[1]
    for i in range(y.size):
        s, w, _ = _moments(family, y[i], n[i], eta[i])
        for k in range(K):
            a = lam[k] * zv[i, k]
            g[cols[i, k]] += a * s
            for m in range(K):
                H[cols[i, k], cols[i, m]] += a * w * lam[m] * zv[i, m]
    return H, g


@njit(cache=True, nogil=True)
def pirls(family, y, n, eta0, cols, zv, lam, u0, tol=1e-12, maxiter=100):
    """Conditional mode ``u*``, ``eta`` and the lower Cholesky factor of ``H`` (finite values, or
    ``ok = False`` when ``H`` is not positive definite or the iteration fails)."""
    q = u0.size
    u = u0.copy()
    eta = _eta(eta0, cols, zv, lam, u)
    pdev = _pdev(family, y, n, eta, u)
    for _ in range(maxiter):
        H, g = _hessian(family, y, n, eta, cols, zv, lam, q)
        g -= u
        L = np.linalg.cholesky(H)
        step = _chol_solve(L, g)
        decrement = np.dot(g, step)
        t = 1.0
        new, eta_new = pdev, eta
        for _ in range(30):
            eta_new = _eta(eta0, cols, zv, lam, u + t * step)
            new = _pdev(family, y, n, eta_new, u + t * step)
            if new <= pdev + 1e-12 * abs(pdev):
                break
            t /= 2
        u, pdev, eta = u + t * step, new, eta_new
        if not np.isfinite(pdev):
            break
        if decrement < tol * (1 + abs(pdev)):
            break
    H, _ = _hessian(family, y, n, eta, cols, zv, lam, q)
    L = np.linalg.cholesky(H)
    return u, eta, L, np.isfinite(pdev)


@njit(cache=True, nogil=True)
def _chol_solve(L, b):
    """``(L L')^-1 b`` by forward and back substitution."""
    q = b.size
    x = b.copy()
    for i in range(q):
        for j in range(i):
            x[i] -= L[i, j] * x[j]
        x[i] /= L[i, i]
    for i in range(q - 1, -1, -1):
        for j in range(i + 1, q):
            x[i] -= L[j, i] * x[j]
        x[i] /= L[i, i]
    return x


@njit(cache=True, nogil=True)
def value_and_grad(family, y, n, X, off, cols, zv, col_term, sd, beta, u0):
    """``(l, dl/dsd, dl/dbeta, u*, ok)``: the Laplace log-likelihood and its gradient
    (:mod:`bayesvc.kernel.glmm_laplace`, module docstring)."""
    K, q, nobs = cols.shape[1], u0.size, y.size
    eta0 = off + X @ beta
    u, eta, L, ok = pirls(family, y, n, eta0, cols, zv, sd, u0)
    ll = -0.5 * _pdev(family, y, n, eta, u) - np.sum(np.log(np.diag(L)))
    Linv = np.linalg.inv(L)
    Hinv = Linv.T @ Linv
    s, w, wp = np.empty(nobs), np.empty(nobs), np.empty(nobs)
    ZDc, Zs = np.zeros(q), np.zeros(q)
    expl = np.zeros(K)
    for i in range(nobs):
        s[i], w[i], wp[i] = _moments(family, y[i], n[i], eta[i])
        h = 0.0
        for k in range(K):
            a = sd[k] * zv[i, k]
            Zs[cols[i, k]] += zv[i, k] * s[i]
            for m in range(K):
                hk = Hinv[cols[i, k], cols[i, m]] * sd[m] * zv[i, m]
                h += a * hk
                expl[k] += 2 * w[i] * zv[i, k] * hk
        for k in range(K):
            ZDc[cols[i, k]] += sd[k] * zv[i, k] * h * wp[i]
        wp[i] *= h  # c_i
    v = Hinv @ ZDc
    g_sd = expl.copy()
    g_beta = np.zeros(beta.size)
    Zr = np.zeros(q)
    for i in range(nobs):
        zdv = 0.0
        for k in range(K):
            zdv += sd[k] * zv[i, k] * v[cols[i, k]]
        r = wp[i] - w[i] * zdv
        for k in range(K):
            Zr[cols[i, k]] += zv[i, k] * r
        g_beta += X[i] * (s[i] - 0.5 * r)
    g_sd *= -0.5
    for j in range(q):
        g_sd[col_term[j]] += u[j] * Zs[j] - 0.5 * (u[j] * Zr[j] + v[j] * Zs[j])
    return ll, g_sd, g_beta, u, ok
