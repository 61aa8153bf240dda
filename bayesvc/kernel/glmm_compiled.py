"""Numba kernels of :mod:`bayesvc.kernel.glmm_laplace` for scalar terms with one level per row:
PIRLS and the Laplace log-likelihood with its gradient in ``(sd, beta)``, the same formulas as
:meth:`~bayesvc.kernel.glmm_laplace.LaplaceDensity.value_and_grad_sparse` without SciPy's sparse
matrices.

Why hand-written: NUTS calls the gradient thousands of times per chain, and the SciPy version spends
its 3-6 ms per call in Python and sparse-matrix overhead (cbpp, grouseticks; measured) where the
arithmetic takes microseconds.

Layout: the caller orders the terms so that term 0 has the most levels; columns ``0..q1-1`` are its
levels and the rest (``q2`` columns) the other terms'. Row ``i`` touches column ``cols[i, k]`` of
term ``k`` with value ``zv[i, k]``. Because every row has one level of term 0, the block of
``H = I + D Z'WZ D`` for term 0 is diagonal (``A``); with ``B`` the term-0 / rest block and ``C``
the rest's, ``H`` is factored through the Schur complement ``S = C - B'A^-1 B`` (``q2 x q2``, dense):
``log|H| = sum log A + log|S|``, and the entries of ``H^-1`` the gradient needs are
``[H^-1]_22 = S^-1``, ``[H^-1]_12 = -A^-1 B S^-1`` and ``diag [H^-1]_11 = 1/A + diag(A^-1 B S^-1 B' A^-1)``
(each row meets one term-0 level, so no other entry of ``[H^-1]_11`` is used). lme4 eliminates the
largest term first for the same reason.
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
def _blocks(family, y, n, eta, cols, zv, lam, q1, q):
    """``(A, B, C, D Z's)`` of ``H`` at ``eta`` (module docstring)."""
    q2 = q - q1
    A, B, C = np.ones(q1), np.zeros((q1, q2)), np.eye(q2)
    g = np.zeros(q)
    K = cols.shape[1]
    for i in range(y.size):
        s, w, _ = _moments(family, y[i], n[i], eta[i])
        j, a0 = cols[i, 0], lam[0] * zv[i, 0]
        A[j] += w * a0 * a0
        g[j] += a0 * s
        for k in range(1, K):
            r, a = cols[i, k] - q1, lam[k] * zv[i, k]
            g[cols[i, k]] += a * s
            B[j, r] += w * a0 * a
            for m in range(1, K):
                C[r, cols[i, m] - q1] += w * a * lam[m] * zv[i, m]
    return A, B, C, g


@njit(cache=True, nogil=True)
def _factor(A, B, C):
    """Lower Cholesky factor of the Schur complement ``S = C - B' A^-1 B``."""
    if C.shape[0] == 0:  # a single term: H is diagonal
        return np.zeros((0, 0))
    S = C - B.T @ (B / A[:, None])
    return np.linalg.cholesky(S)


@njit(cache=True, nogil=True)
def _tri_solve(L, b):
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
def _solve(A, B, Ls, b):
    """``H^-1 b`` by block elimination."""
    q1 = A.size
    b1, b2 = b[:q1], b[q1:]
    x2 = _tri_solve(Ls, b2 - B.T @ (b1 / A))
    x = np.empty(b.size)
    x[:q1] = (b1 - B @ x2) / A
    x[q1:] = x2
    return x


@njit(cache=True, nogil=True)
def pirls(family, y, n, eta0, cols, zv, lam, u0, q1, tol=1e-12, maxiter=100):
    """Conditional mode ``u*``, ``eta``, the blocks ``A, B``, the Schur factor and whether the
    deviance is finite (Newton steps with step halving, as :meth:`LaplaceGLMM.pirls`)."""
    q = u0.size
    u = u0.copy()
    eta = _eta(eta0, cols, zv, lam, u)
    pdev = _pdev(family, y, n, eta, u)
    for _ in range(maxiter):
        A, B, C, g = _blocks(family, y, n, eta, cols, zv, lam, q1, q)
        g -= u
        step = _solve(A, B, _factor(A, B, C), g)
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
        if not np.isfinite(pdev) or decrement < tol * (1 + abs(pdev)):
            break
    A, B, C, _ = _blocks(family, y, n, eta, cols, zv, lam, q1, q)
    return u, eta, A, B, _factor(A, B, C), np.isfinite(pdev)


@njit(cache=True, nogil=True)
def _hinv_parts(A, B, Ls):
    """``(S^-1, M = A^-1 B S^-1, diag [H^-1]_11)``."""
    Sinv = np.zeros((0, 0))
    if Ls.shape[0] > 0:
        Linv = np.linalg.inv(Ls)
        Sinv = Linv.T @ Linv
    M = (B / A[:, None]) @ Sinv
    d11 = 1.0 / A + np.sum(M * B, axis=1) / A
    return Sinv, M, d11


@njit(cache=True, nogil=True)
def _hv(i, cols, zv, lam, q1, Sinv, M, d11):
    """``[H^-1 (D Z')_i]`` at row ``i``'s columns: ``hv[k] = sum_m [H^-1]_{c_k c_m} a_m``."""
    K = cols.shape[1]
    j = cols[i, 0]
    a = np.empty(K)
    for k in range(K):
        a[k] = lam[k] * zv[i, k]
    hv = np.empty(K)
    hv[0] = d11[j] * a[0]
    for m in range(1, K):
        hv[0] -= M[j, cols[i, m] - q1] * a[m]
    for k in range(1, K):
        r = cols[i, k] - q1
        hv[k] = -M[j, r] * a[0]
        for m in range(1, K):
            hv[k] += Sinv[r, cols[i, m] - q1] * a[m]
    return a, hv


@njit(cache=True, nogil=True)
def value_and_grad(family, y, n, X, off, cols, zv, col_term, sd, beta, u0, q1):
    """``(l, dl/dsd, dl/dbeta, u*, ok)``: the Laplace log-likelihood and its gradient
    (:mod:`bayesvc.kernel.glmm_laplace`, module docstring), terms in the caller's order."""
    K, q, nobs = cols.shape[1], u0.size, y.size
    u, eta, A, B, Ls, ok = pirls(family, y, n, off + X @ beta, cols, zv, sd, u0, q1)
    ll = -0.5 * _pdev(family, y, n, eta, u) - 0.5 * np.sum(np.log(A)) - np.sum(np.log(np.diag(Ls)))
    Sinv, M, d11 = _hinv_parts(A, B, Ls)
    s, w, cv = np.empty(nobs), np.empty(nobs), np.empty(nobs)
    ZDc, Zs, expl = np.zeros(q), np.zeros(q), np.zeros(K)
    for i in range(nobs):
        s[i], w[i], wp = _moments(family, y[i], n[i], eta[i])
        a, hv = _hv(i, cols, zv, sd, q1, Sinv, M, d11)
        h = np.dot(a, hv)
        cv[i] = h * wp
        for k in range(K):
            Zs[cols[i, k]] += zv[i, k] * s[i]
            expl[k] += 2 * w[i] * zv[i, k] * hv[k]
            ZDc[cols[i, k]] += a[k] * cv[i]
    v = _solve(A, B, Ls, ZDc)
    g_sd, g_beta, Zr = -0.5 * expl, np.zeros(beta.size), np.zeros(q)
    for i in range(nobs):
        zdv = 0.0
        for k in range(K):
            zdv += sd[k] * zv[i, k] * v[cols[i, k]]
        r = cv[i] - w[i] * zdv
        for k in range(K):
            Zr[cols[i, k]] += zv[i, k] * r
        g_beta += X[i] * (s[i] - 0.5 * r)
    for j in range(q):
        g_sd[col_term[j]] += u[j] * Zs[j] - 0.5 * (u[j] * Zr[j] + v[j] * Zs[j])
    return ll, g_sd, g_beta, u, ok
