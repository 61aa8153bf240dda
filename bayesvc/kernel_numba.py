"""The collapsed log-likelihood and its gradient as one Numba function (variance-component designs).

Same mathematics as :meth:`bayesvc.likelihood.Kernel.loglik_grad` (see that module), compiled so
that nutpie's Numba backend calls it natively: no Python object mode, no GIL, so chains run in
parallel and a gradient costs tens of microseconds instead of a millisecond of NumPy overheads.
Used when the design's first term is scalar and the arrays are small enough to embed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

LOG2PI = float(np.log(2 * np.pi))

#: arrays larger than this (total elements) are not embedded in compiled code
MAX_EMBEDDED = 6_000_000


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
def _reduced_rhs(beta, lam1, lv, D, dense, C1d, Czd, Czi, Czp, Arr, ZtWf, rz):
    """First half of the blocked solve of ``A u = Lambda' Z'(y - X beta)``: returns
    ``y1 = D^{-1} c1`` and the rest block's right-hand side ``c_r - B y1``."""
    p = beta.shape[0]
    wv = np.empty(p + 1)
    wv[:p] = -beta
    wv[p] = 1.0
    y1 = lam1 * (ZtWf @ wv) / D
    cr = (np.ascontiguousarray(Arr[:rz, rz:]) @ wv) * lv
    if dense:
        By = lv * (C1d[:rz] @ (lam1 * y1))
    else:
        By = lv * _csr_matvec(Czd, Czi, Czp, lam1 * y1, rz)
    return y1, cr - By


@njit(cache=True)
def _back_substitute(y1, xr, lam1, lv, D, dense, C1d, Czd, Czi, Czp, q1):
    """Second half: ``x1 = y1 - D^{-1} B' x_r`` given the rest block's solution ``x_r``."""
    if dense:
        Btx = C1d[:lv.shape[0]].T @ (lv * xr)
    else:
        Btx = _csr_rmatvec(Czd, Czi, Czp, lv * xr, q1)
    return y1 - lam1 * Btx / D


@njit(cache=True)
def _logp_grad_nested(beta, sigma, tau, first, rest_comp, a1, Pd, Pi, Pp, pair_i, pair_j,
                      Pzd, Pzi, Pzp, pz_i, pz_j, Czd, Czi, Czp, Arr, ZtWf, n):
    """Nested (tree) designs: the rest block's Schur complement is diagonal, so every step is
    O(levels + nonzeros); no m x m temporaries."""
    nc = tau.shape[0]
    p = beta.shape[0]
    m = Arr.shape[0]
    rz = m - p - 1
    q1 = a1.shape[0]
    pw = p + 1
    theta = tau / sigma
    lam1 = theta[first]
    D = lam1 * lam1 * a1 + 1.0
    w = lam1 * lam1 / D
    lv = np.empty(rz)
    for j in range(rz):
        lv[j] = theta[rest_comp[j]]
    vals = _csr_matvec(Pd, Pi, Pp, w, pair_i.shape[0])
    Izz = np.zeros(rz)
    Iwz = np.zeros((pw, rz))
    Iww = np.zeros((pw, pw))
    for k in range(vals.shape[0]):
        i, j = pair_i[k], pair_j[k]
        if j < rz:
            Izz[i] += vals[k]
        elif i < rz:
            Iwz[j - rz, i] += vals[k]
        else:
            Iww[i - rz, j - rz] += vals[k]
            if i != j:
                Iww[j - rz, i - rz] += vals[k]
    Szz = np.empty(rz)
    for j in range(rz):
        Szz[j] = (Arr[j, j] - Izz[j]) * lv[j] * lv[j] + 1.0
        if Szz[j] <= 0.0:
            return -np.inf, np.zeros(p), 0.0, np.zeros(nc)
    Lwz = np.empty((pw, rz))
    for a in range(pw):
        for j in range(rz):
            Lwz[a, j] = (Arr[rz + a, j] - Iwz[a, j]) * lv[j] / np.sqrt(Szz[j])
    Sw = Arr[rz:, rz:] - Iww - Lwz @ Lwz.T
    for i in range(pw):
        if Sw[i, i] <= 0.0:
            return -np.inf, np.zeros(p), 0.0, np.zeros(nc)
    Lw = np.linalg.cholesky(Sw)
    logdet = 0.0
    for l in range(q1):
        logdet += np.log(D[l])
    for j in range(rz):
        logdet += np.log(Szz[j])
    Mxy = Lw @ Lw.T
    wv = np.empty(pw)
    wv[:p] = -beta
    wv[p] = 1.0
    Q = wv @ (Mxy @ wv)
    s2 = sigma * sigma
    ll = -0.5 * (n * (LOG2PI + np.log(s2)) + logdet + Q / s2)
    t = np.zeros(nc)
    for j in range(rz):
        t[rest_comp[j]] += (Szz[j] - 1.0) / Szz[j]
    w2 = (lam1 / D) ** 2
    t1 = 0.0
    for l in range(q1):
        t1 += (D[l] - 1.0) / D[l]
    vz = _csr_matvec(Pzd, Pzi, Pzp, w2, pz_i.shape[0])
    for k in range(vz.shape[0]):
        j = pz_i[k]
        t1 -= vz[k] * lv[j] * lv[j] / Szz[j]
    t[first] += t1
    y1, rhs = _reduced_rhs(beta, lam1, lv, D, False, Arr[:1, :1], Czd, Czi, Czp, Arr, ZtWf, rz)
    xr = rhs / Szz
    x1 = _back_substitute(y1, xr, lam1, lv, D, False, Arr[:1, :1], Czd, Czi, Czp, q1)
    uk2 = np.zeros(nc)
    uk2[first] = np.sum(x1 * x1)
    for j in range(rz):
        uk2[rest_comp[j]] += xr[j] * xr[j]
    dlogtheta = -t + uk2 / s2
    dbeta = (Mxy[:p, p] - Mxy[:p, :p] @ beta) / s2
    dsigma = (-n + Q / s2 - np.sum(dlogtheta)) / sigma
    dtau = dlogtheta / tau
    return ll, dbeta, dsigma, dtau


@njit(cache=True)
def logp_grad(beta, sigma, tau, first, rest_comp, a1, dense, C1d, Pd, Pi, Pp, pair_i, pair_j,
              Pzd, Pzi, Pzp, pz_i, pz_j, pz_w, Czd, Czi, Czp, Arr, ZtWf, diag_s, n):
    if diag_s and not dense:
        return _logp_grad_nested(beta, sigma, tau, first, rest_comp, a1, Pd, Pi, Pp, pair_i, pair_j,
                                 Pzd, Pzi, Pzp, pz_i, pz_j, Czd, Czi, Czp, Arr, ZtWf, n)
    nc = tau.shape[0]
    p = beta.shape[0]
    m = Arr.shape[0]
    rz = m - p - 1
    q1 = a1.shape[0]
    theta = tau / sigma
    lam1 = theta[first]
    D = lam1 * lam1 * a1 + 1.0
    w = lam1 * lam1 / D
    # C1 diag(w) C1'
    if dense:
        inner = (C1d * w) @ C1d.T
    else:
        vals = _csr_matvec(Pd, Pi, Pp, w, pair_i.shape[0])
        inner = np.zeros((m, m))
        for k in range(vals.shape[0]):
            inner[pair_i[k], pair_j[k]] = vals[k]
            inner[pair_j[k], pair_i[k]] = vals[k]
    lv = np.ones(m)
    for j in range(rz):
        lv[j] = theta[rest_comp[j]]
    S = (Arr - inner) * np.outer(lv, lv)
    SmI = S[:rz, :rz].copy()
    for j in range(rz):
        S[j, j] += 1.0
    L = np.zeros((m, m))
    if diag_s:
        dz = np.empty(rz)
        for j in range(rz):
            if S[j, j] <= 0.0:
                return -np.inf, np.zeros(p), 0.0, np.zeros(nc)
            dz[j] = np.sqrt(S[j, j])
            L[j, j] = dz[j]
        Lwz = S[rz:, :rz] / dz
        L[rz:, :rz] = Lwz
        Sw = S[rz:, rz:] - Lwz @ Lwz.T
        for i in range(m - rz):
            if Sw[i, i] <= 0.0:
                return -np.inf, np.zeros(p), 0.0, np.zeros(nc)
        L[rz:, rz:] = np.linalg.cholesky(Sw)
    else:
        for i in range(m):
            if S[i, i] <= 0.0:
                return -np.inf, np.zeros(p), 0.0, np.zeros(nc)
        L = np.linalg.cholesky(S)
    logdet = 0.0
    for l in range(q1):
        logdet += np.log(D[l])
    for j in range(rz):
        logdet += 2.0 * np.log(L[j, j])
    Lw = L[rz:, rz:].copy()
    Mxy = Lw @ Lw.T
    wv = np.empty(p + 1)
    wv[:p] = -beta
    wv[p] = 1.0
    Q = wv @ (Mxy @ wv)
    s2 = sigma * sigma
    ll = -0.5 * (n * (LOG2PI + np.log(s2)) + logdet + Q / s2)
    # S_zz^{-1}
    if diag_s:
        Sinv = np.zeros((rz, rz))
        for j in range(rz):
            Sinv[j, j] = 1.0 / (L[j, j] * L[j, j])
    else:
        Linv = np.linalg.inv(L[:rz, :rz].copy())
        Sinv = Linv.T @ Linv
    # t_k = tr_k(I - A^{-1})
    t = np.zeros(nc)
    for j in range(rz):
        acc = 0.0
        for i in range(rz):
            acc += Sinv[j, i] * SmI[j, i]
        t[rest_comp[j]] += acc
    w2 = (lam1 / D) ** 2
    t1 = 0.0
    for l in range(q1):
        t1 += (D[l] - 1.0) / D[l]
    if rz > 0:
        if dense:
            Cz = C1d[:rz]
            BD2B = ((Cz * w2) @ Cz.T) * np.outer(lv[:rz], lv[:rz])
            t1 -= np.sum(Sinv * BD2B)
        else:
            vz = _csr_matvec(Pzd, Pzi, Pzp, w2, pz_i.shape[0])
            for k in range(vz.shape[0]):
                t1 -= pz_w[k] * vz[k] * lv[pz_i[k]] * lv[pz_j[k]] * Sinv[pz_i[k], pz_j[k]]
    t[first] += t1
    # u = A^{-1} Lambda' Z'(y - X beta), blockwise
    lvz = lv[:rz].copy()
    y1, rhs = _reduced_rhs(beta, lam1, lvz, D, dense, C1d, Czd, Czi, Czp, Arr, ZtWf, rz)
    xr = Sinv @ rhs
    x1 = _back_substitute(y1, xr, lam1, lvz, D, dense, C1d, Czd, Czi, Czp, q1)
    uk2 = np.zeros(nc)
    uk2[first] = np.sum(x1 * x1)
    for j in range(rz):
        uk2[rest_comp[j]] += xr[j] * xr[j]
    dlogtheta = -t + uk2 / s2
    dbeta = (Mxy[:p, p] - Mxy[:p, :p] @ beta) / s2
    dsigma = (-n + Q / s2 - np.sum(dlogtheta)) / sigma
    dtau = dlogtheta / tau
    return ll, dbeta, dsigma, dtau


def pack(kernel) -> tuple | None:
    """The kernel's precomputed arrays in :func:`logp_grad`'s argument order, or None when the
    design is not supported (no scalar first term) or too large to embed."""
    if not kernel.scalar or kernel.first is None:
        return None
    rz = kernel.rz
    rest_comp = np.zeros(rz, dtype=np.int64)
    for i in kernel.rest:
        a, b = kernel.rest_offsets[i]
        rest_comp[a:b] = i
    dense = kernel.C1_dense is not None
    e = np.zeros(1)
    ei = np.zeros(1, dtype=np.int32)
    C1d = kernel.C1_dense if dense else np.zeros((1, 1))
    P, Pz, Cz = kernel.P.tocsr(), kernel.Pz.tocsr(), kernel.C1z.tocsr()
    arrays = (
        int(kernel.first), rest_comp, np.ascontiguousarray(kernel.a1[:, 0, 0]), bool(dense),
        np.ascontiguousarray(C1d),
        P.data if not dense else e, P.indices if not dense else ei, P.indptr if not dense else ei,
        kernel.pair_i.astype(np.int64), kernel.pair_j.astype(np.int64),
        Pz.data if not dense else e, Pz.indices if not dense else ei, Pz.indptr if not dense else ei,
        kernel.pz_i.astype(np.int64), kernel.pz_j.astype(np.int64), kernel.pz_w,
        Cz.data, Cz.indices, Cz.indptr, np.ascontiguousarray(kernel.stats.Arr),
        np.ascontiguousarray(kernel.ZtW_first), bool(getattr(kernel, "diag_S", False)), float(kernel.n),
    )
    size = sum(a.size for a in arrays if isinstance(a, np.ndarray))
    return arrays if size <= MAX_EMBEDDED else None


@njit(cache=True)
def draw_effects(beta, sigma, tau, z1, zr, first, rest_comp, a1, dense, C1d, Pd, Pi, Pp, pair_i, pair_j,
                 Pzd, Pzi, Pzp, pz_i, pz_j, pz_w, Czd, Czi, Czp, Arr, ZtWf, diag_s, n):
    """One exact draw of ``b = Lambda (u_hat + sigma x)``, ``x ~ N(0, A^{-1})``, from standard
    normals ``z1`` (first term) and ``zr`` (rest), via ``L' x = z`` with the blocked factor.
    Returns ``(b1, b_rest)``."""
    p = beta.shape[0]
    m = Arr.shape[0]
    rz = m - p - 1
    theta = tau / sigma
    lam1 = theta[first]
    D = lam1 * lam1 * a1 + 1.0
    w = lam1 * lam1 / D
    lv = np.empty(rz)
    for j in range(rz):
        lv[j] = theta[rest_comp[j]]
    # Schur complement of the rest terms (z part only)
    if dense:
        Cz = C1d[:rz]
        Szz = (Arr[:rz, :rz] - (Cz * w) @ Cz.T) * np.outer(lv, lv)
    else:
        vals = _csr_matvec(Pd, Pi, Pp, w, pair_i.shape[0])
        Szz = np.zeros((rz, rz))
        for k in range(vals.shape[0]):
            i, j = pair_i[k], pair_j[k]
            if j < rz:
                Szz[i, j] -= vals[k]
                if i != j:
                    Szz[j, i] -= vals[k]
        Szz = (Arr[:rz, :rz] + Szz) * np.outer(lv, lv)
    for j in range(rz):
        Szz[j, j] += 1.0
    y1, rhs = _reduced_rhs(beta, lam1, lv, D, dense, C1d, Czd, Czi, Czp, Arr, ZtWf, rz)
    if diag_s and not dense:
        dS = np.empty(rz)
        for j in range(rz):
            dS[j] = Szz[j, j]
        xr = rhs / dS
        xn = zr / np.sqrt(dS)
    else:
        L = np.linalg.cholesky(Szz)
        xr = np.linalg.solve(Szz, rhs)
        xn = np.linalg.solve(np.ascontiguousarray(L.T), zr)
    q1 = a1.shape[0]
    x1 = _back_substitute(y1, xr, lam1, lv, D, dense, C1d, Czd, Czi, Czp, q1)
    # noise: x1n = D^{-1/2} (z1 - D^{-1/2} B' xn), the same back-substitution with D^{1/2} for D
    sD = np.sqrt(D)
    x1n = (z1 + _back_substitute(np.zeros(q1), xn, lam1, lv, sD, dense, C1d, Czd, Czi, Czp, q1)) / sD
    return lam1 * (x1 + sigma * x1n), lv * (xr + sigma * xn)
