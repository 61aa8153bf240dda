"""The collapsed log-likelihood, its gradient and exact random-effect draws as Numba functions.

Same mathematics as :func:`bayesvc.kernel.criteria.loglik_grad` and
:func:`bayesvc.kernel.conditional.draw_effects` (a test checks that they agree on nested, crossed
and partially crossed designs), compiled so that nutpie's Numba backend calls them natively: no
Python object mode, no GIL, so chains run in parallel and a gradient costs tens of microseconds
instead of a millisecond of NumPy overheads. Hand-written because no library evaluates this
blocked likelihood. Used for variance-component designs whose first term is scalar, when the
arrays are small enough to embed in compiled code (:data:`MAX_EMBEDDED`).

The kernel's precomputed arrays travel as one :class:`KernelArrays` named tuple.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

LOG2PI = float(np.log(2 * np.pi))

#: arrays larger than this (total elements) are not embedded in compiled code
MAX_EMBEDDED = 6_000_000


class KernelArrays(NamedTuple):
    """The kernel's arrays in the form the compiled functions take (see
    :class:`~bayesvc.kernel.Kernel` and :class:`~bayesvc.kernel.pairs.PairProducts`)."""

    first: int  # index of the (scalar) first term
    rest_comp: np.ndarray  # term index of every rest column (rz,)
    a1: np.ndarray  # diagonal of Z1'Z1 (q1,)
    dense: bool  # C1 is held dense (C1d) rather than as pair products
    C1d: np.ndarray  # C1 (m x q1) when dense, else a 1 x 1 placeholder
    Pd: np.ndarray  # pair products P (CSR data, indices, indptr)
    Pi: np.ndarray
    Pp: np.ndarray
    pair_i: np.ndarray
    pair_j: np.ndarray
    Pzd: np.ndarray  # pair products inside the rest random-effect block
    Pzi: np.ndarray
    Pzp: np.ndarray
    pz_i: np.ndarray
    pz_j: np.ndarray
    pz_w: np.ndarray
    Czd: np.ndarray  # C1z = Zr'Z1 (CSR)
    Czi: np.ndarray
    Czp: np.ndarray
    Arr: np.ndarray  # [Zr X y]'[Zr X y] (m x m)
    ZtWf: np.ndarray  # Z1'[X y] (q1 x (p+1))
    diag_s: bool  # the rest block's Schur complement is diagonal (nested designs)
    n: float  # observations
    half_log_w: float = 0.0  # 0.5 sum(log w): the prior weights' constant of the log-likelihood


def kernel_arrays(kernel) -> KernelArrays | None:
    """The kernel's arrays as :class:`KernelArrays`, or None when the design is not supported (no
    scalar first term, or a non-scalar design) or too large to embed."""
    if not kernel.scalar or kernel.first is None:
        return None
    rest_comp = np.zeros(kernel.rz, dtype=np.int64)
    for i in kernel.rest:
        a, b = kernel.rest_offsets[i]
        rest_comp[a:b] = i
    pairs = kernel.pairs
    dense = pairs.dense is not None
    e, ei = np.zeros(1), np.zeros(1, dtype=np.int32)
    P, Pz, Cz = pairs.P.tocsr(), pairs.Pz.tocsr(), kernel.C1z.tocsr()
    out = KernelArrays(
        int(kernel.first), rest_comp, np.ascontiguousarray(kernel.a1[:, 0, 0]), bool(dense),
        np.ascontiguousarray(pairs.dense if dense else np.zeros((1, 1))),
        *((e, ei, ei) if dense else (P.data, P.indices, P.indptr)),
        pairs.pair_i.astype(np.int64), pairs.pair_j.astype(np.int64),
        *((e, ei, ei) if dense else (Pz.data, Pz.indices, Pz.indptr)),
        pairs.pz_i.astype(np.int64), pairs.pz_j.astype(np.int64), pairs.pz_w,
        Cz.data, Cz.indices, Cz.indptr, np.ascontiguousarray(kernel.stats.Arr),
        np.ascontiguousarray(kernel.ZtW_first), bool(kernel.diag_S), float(kernel.n),
        0.5 * kernel.log_weight_sum,
    )
    size = sum(a.size for a in out if isinstance(a, np.ndarray))
    return out if size <= MAX_EMBEDDED else None


@njit(cache=True)
def _csr_matvec(data, ind, ptr, x, nrows):
    out = np.zeros(nrows)
    for i in range(nrows):
        s = 0.0
        for k in range(ptr[i], ptr[i + 1]):
            s += data[k] * x[ind[k]]
        out[i] = s
    return out


@njit(cache=True)
def _csr_rmatvec(data, ind, ptr, x, ncols):
    out = np.zeros(ncols)
    for i in range(ptr.shape[0] - 1):
        xi = x[i]
        for k in range(ptr[i], ptr[i + 1]):
            out[ind[k]] += data[k] * xi
    return out


@njit(cache=True)
def _prologue(sigma, tau, k, rz):
    """theta, the first term's lambda, ``D``, ``w = lambda^2 / D`` and the rest columns' lambdas."""
    theta = tau / sigma
    lam1 = theta[k.first]
    D = lam1 * lam1 * k.a1 + 1.0
    lv = np.empty(rz)
    for j in range(rz):
        lv[j] = theta[k.rest_comp[j]]
    return theta, lam1, D, lam1 * lam1 / D, lv


@njit(cache=True)
def _scatter_pairs(vals, pair_i, pair_j, size, sign):
    """``sign *`` the symmetric matrix with ``vals`` at the pairs inside ``size x size``."""
    out = np.zeros((size, size))
    for t in range(vals.shape[0]):
        i, j = pair_i[t], pair_j[t]
        if i < size and j < size:
            out[i, j] = sign * vals[t]
            out[j, i] = sign * vals[t]
    return out


@njit(cache=True)
def _reduced_rhs(beta, lam1, lv, D, k, rz):
    """First half of the blocked solve of ``A u = Lambda' Z'(y - X beta)``: returns
    ``y1 = D^{-1} c1`` and the rest block's right-hand side ``c_r - B y1``."""
    p = beta.shape[0]
    wv = np.empty(p + 1)
    wv[:p] = -beta
    wv[p] = 1.0
    y1 = lam1 * (k.ZtWf @ wv) / D
    cr = (np.ascontiguousarray(k.Arr[:rz, rz:]) @ wv) * lv
    if k.dense:
        By = lv * (k.C1d[:rz] @ (lam1 * y1))
    else:
        By = lv * _csr_matvec(k.Czd, k.Czi, k.Czp, lam1 * y1, rz)
    return y1, cr - By


@njit(cache=True)
def _back_substitute(y1, xr, lam1, lv, D, k):
    """Second half: ``x1 = y1 - D^{-1} B' x_r`` given the rest block's solution ``x_r``."""
    if k.dense:
        Btx = k.C1d[:lv.shape[0]].T @ (lv * xr)
    else:
        Btx = _csr_rmatvec(k.Czd, k.Czi, k.Czp, lv * xr, k.a1.shape[0])
    return y1 - lam1 * Btx / D


@njit(cache=True)
def _value(logdet, Lw, beta, sigma, n):
    """``(loglik, M_xy, Q)`` from ``log|A|`` and the Cholesky factor of the [X y] block."""
    p = beta.shape[0]
    Mxy = Lw @ Lw.T
    wv = np.empty(p + 1)
    wv[:p] = -beta
    wv[p] = 1.0
    Q = wv @ (Mxy @ wv)
    s2 = sigma * sigma
    return -0.5 * (n * (LOG2PI + np.log(s2)) + logdet + Q / s2), Mxy, Q


@njit(cache=True)
def _gradient(beta, sigma, tau, t, x1, xr, Mxy, Q, k):
    """``(d/dbeta, d/dsigma, d/dtau)`` from the traces ``t`` and the conditional modes."""
    p = beta.shape[0]
    s2 = sigma * sigma
    uk2 = np.zeros(tau.shape[0])
    uk2[k.first] = np.sum(x1 * x1)
    for j in range(xr.shape[0]):
        uk2[k.rest_comp[j]] += xr[j] * xr[j]
    dlogtheta = -t + uk2 / s2
    dbeta = (Mxy[:p, p] - Mxy[:p, :p] @ beta) / s2
    dsigma = (-k.n + Q / s2 - np.sum(dlogtheta)) / sigma
    return dbeta, dsigma, dlogtheta / tau


@njit(cache=True)
def _failed(p, nc):
    return -np.inf, np.zeros(p), 0.0, np.zeros(nc)


@njit(cache=True)
def _logp_grad_nested(beta, sigma, tau, k):
    """Nested (tree) designs: the rest block's Schur complement is diagonal, so every step is
    O(levels + nonzeros); no m x m temporaries."""
    nc, p, m = tau.shape[0], beta.shape[0], k.Arr.shape[0]
    rz, pw = m - p - 1, p + 1
    theta, lam1, D, w, lv = _prologue(sigma, tau, k, rz)
    vals = _csr_matvec(k.Pd, k.Pi, k.Pp, w, k.pair_i.shape[0])
    Izz, Iwz, Iww = np.zeros(rz), np.zeros((pw, rz)), np.zeros((pw, pw))
    for t in range(vals.shape[0]):
        i, j = k.pair_i[t], k.pair_j[t]
        if j < rz:
            Izz[i] += vals[t]
        elif i < rz:
            Iwz[j - rz, i] += vals[t]
        else:
            Iww[i - rz, j - rz] += vals[t]
            if i != j:
                Iww[j - rz, i - rz] += vals[t]
    Szz = np.empty(rz)
    for j in range(rz):
        Szz[j] = (k.Arr[j, j] - Izz[j]) * lv[j] * lv[j] + 1.0
        if Szz[j] <= 0.0:
            return _failed(p, nc)
    Lwz = np.empty((pw, rz))
    for a in range(pw):
        for j in range(rz):
            Lwz[a, j] = (k.Arr[rz + a, j] - Iwz[a, j]) * lv[j] / np.sqrt(Szz[j])
    Sw = k.Arr[rz:, rz:] - Iww - Lwz @ Lwz.T
    for i in range(pw):
        if Sw[i, i] <= 0.0:
            return _failed(p, nc)
    ll, Mxy, Q = _value(np.sum(np.log(D)) + np.sum(np.log(Szz)), np.linalg.cholesky(Sw), beta, sigma, k.n)
    ll += k.half_log_w
    t = np.zeros(nc)
    for j in range(rz):
        t[k.rest_comp[j]] += (Szz[j] - 1.0) / Szz[j]
    t1 = np.sum((D - 1.0) / D)
    vz = _csr_matvec(k.Pzd, k.Pzi, k.Pzp, (lam1 / D) ** 2, k.pz_i.shape[0])
    for s in range(vz.shape[0]):
        j = k.pz_i[s]
        t1 -= vz[s] * lv[j] * lv[j] / Szz[j]
    t[k.first] += t1
    y1, rhs = _reduced_rhs(beta, lam1, lv, D, k, rz)
    xr = rhs / Szz
    x1 = _back_substitute(y1, xr, lam1, lv, D, k)
    dbeta, dsigma, dtau = _gradient(beta, sigma, tau, t, x1, xr, Mxy, Q, k)
    return ll, dbeta, dsigma, dtau


@njit(cache=True)
def _schur_cholesky(S, rz, diag_s):
    """Lower Cholesky factor of the augmented Schur complement (diagonal rest block when
    ``diag_s``); a zero-size array when it is not positive definite."""
    m = S.shape[0]
    for i in range(m):
        if S[i, i] <= 0.0:
            return np.zeros((0, 0))
    if not diag_s:
        return np.ascontiguousarray(np.linalg.cholesky(S))
    L = np.zeros((m, m))
    dz = np.empty(rz)
    for j in range(rz):
        dz[j] = np.sqrt(S[j, j])
        L[j, j] = dz[j]
    Lwz = S[rz:, :rz] / dz
    L[rz:, :rz] = Lwz
    Sw = S[rz:, rz:] - Lwz @ Lwz.T
    for i in range(m - rz):
        if Sw[i, i] <= 0.0:
            return np.zeros((0, 0))
    L[rz:, rz:] = np.linalg.cholesky(Sw)
    return L


@njit(cache=True)
def _first_traces(lam1, D, lv, Sinv, k, rz):
    """``t_first = tr_1(I - A^{-1})`` of the scalar first term."""
    w2 = (lam1 / D) ** 2
    t1 = np.sum((D - 1.0) / D)
    if rz > 0:
        if k.dense:
            Cz = k.C1d[:rz]
            t1 -= np.sum(Sinv * (((Cz * w2) @ Cz.T) * np.outer(lv, lv)))
        else:
            vz = _csr_matvec(k.Pzd, k.Pzi, k.Pzp, w2, k.pz_i.shape[0])
            for s in range(vz.shape[0]):
                t1 -= k.pz_w[s] * vz[s] * lv[k.pz_i[s]] * lv[k.pz_j[s]] * Sinv[k.pz_i[s], k.pz_j[s]]
    return t1


@njit(cache=True)
def logp_grad(beta, sigma, tau, k):
    """Collapsed log-likelihood and its gradient: ``(loglik, d/dbeta, d/dsigma, d/dtau)``;
    ``-inf`` (and zeros) where ``A`` cannot be factored."""
    if k.diag_s and not k.dense:
        return _logp_grad_nested(beta, sigma, tau, k)
    nc, p, m = tau.shape[0], beta.shape[0], k.Arr.shape[0]
    rz = m - p - 1
    theta, lam1, D, w, lvz = _prologue(sigma, tau, k, rz)
    if k.dense:
        inner = (k.C1d * w) @ k.C1d.T
    else:
        vals = _csr_matvec(k.Pd, k.Pi, k.Pp, w, k.pair_i.shape[0])
        inner = _scatter_pairs(vals, k.pair_i, k.pair_j, m, 1.0)
    lv = np.ones(m)
    lv[:rz] = lvz
    S = (k.Arr - inner) * np.outer(lv, lv)
    SmI = S[:rz, :rz].copy()
    for j in range(rz):
        S[j, j] += 1.0
    L = _schur_cholesky(S, rz, k.diag_s)
    if L.shape[0] == 0:
        return _failed(p, nc)
    logdet = np.sum(np.log(D))
    for j in range(rz):
        logdet += 2.0 * np.log(L[j, j])
    ll, Mxy, Q = _value(logdet, L[rz:, rz:].copy(), beta, sigma, k.n)
    ll += k.half_log_w
    if k.diag_s:
        Sinv = np.zeros((rz, rz))
        for j in range(rz):
            Sinv[j, j] = 1.0 / (L[j, j] * L[j, j])
    else:
        Linv = np.linalg.inv(L[:rz, :rz].copy())
        Sinv = Linv.T @ Linv
    t = np.zeros(nc)
    for j in range(rz):
        t[k.rest_comp[j]] += np.sum(Sinv[j] * SmI[j])
    t[k.first] += _first_traces(lam1, D, lvz, Sinv, k, rz)
    y1, rhs = _reduced_rhs(beta, lam1, lvz, D, k, rz)
    xr = Sinv @ rhs
    x1 = _back_substitute(y1, xr, lam1, lvz, D, k)
    dbeta, dsigma, dtau = _gradient(beta, sigma, tau, t, x1, xr, Mxy, Q, k)
    return ll, dbeta, dsigma, dtau


@njit(cache=True)
def draw_effects(beta, sigma, tau, z1, zr, k):
    """One exact draw of ``b = Lambda (u_hat + sigma x)``, ``x ~ N(0, A^{-1})``, from standard
    normals ``z1`` (first term) and ``zr`` (rest), via ``L' x = z`` with the blocked factor.
    Returns ``(b1, b_rest)``."""
    p, m = beta.shape[0], k.Arr.shape[0]
    rz = m - p - 1
    theta, lam1, D, w, lv = _prologue(sigma, tau, k, rz)
    # Schur complement of the rest terms (z part only)
    if k.dense:
        Cz = k.C1d[:rz]
        Szz = (k.Arr[:rz, :rz] - (Cz * w) @ Cz.T) * np.outer(lv, lv)
    else:
        vals = _csr_matvec(k.Pd, k.Pi, k.Pp, w, k.pair_i.shape[0])
        Szz = (k.Arr[:rz, :rz] + _scatter_pairs(vals, k.pair_i, k.pair_j, rz, -1.0)) * np.outer(lv, lv)
    for j in range(rz):
        Szz[j, j] += 1.0
    y1, rhs = _reduced_rhs(beta, lam1, lv, D, k, rz)
    if k.diag_s and not k.dense:
        dS = np.empty(rz)
        for j in range(rz):
            dS[j] = Szz[j, j]
        xr = rhs / dS
        xn = zr / np.sqrt(dS)
    else:
        L = np.linalg.cholesky(Szz)
        xr = np.linalg.solve(Szz, rhs)
        xn = np.linalg.solve(np.ascontiguousarray(L.T), zr)
    x1 = _back_substitute(y1, xr, lam1, lv, D, k)
    # noise: x1n = D^{-1/2} (z1 - D^{-1/2} B' xn), the same back-substitution with D^{1/2} for D
    sD = np.sqrt(D)
    x1n = (z1 + _back_substitute(np.zeros(k.a1.shape[0]), xn, lam1, lv, sD, k)) / sD
    return lam1 * (x1 + sigma * x1n), lv * (xr + sigma * xn)
