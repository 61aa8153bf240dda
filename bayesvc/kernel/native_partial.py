"""The partial collapse's log posterior as C callbacks for nutpie, compiled once (no PyTensor graph).

The same model as :func:`bayesvc.estimators.bayes.partial.partial_loglik`: the largest scalar
factor ``k`` integrated out per level, the small block ``W = [Z_S, X]`` (``X`` when the fixed
effects are integrated out under their Normal prior) by Woodbury's identity, the other scalar terms
sampled, centered or non-centered. As :mod:`.native` does for the full collapse, the callbacks read
the data and the priors through nutpie's ``user_data`` pointer (a header of addresses,
:func:`pack`), so one compilation, cached on disk by Numba, serves every design, response and prior
of this form: nutpie's PyMC route compiles the graph with its data embedded, 15-25 s per new data
set on InstEval. Hand-written, with its gradient, because no library marginalizes a Gaussian over a
block-diagonal factor plus a low-rank part.

With ``r = y - X beta - sum_t Z_t b_t`` (``X mu0`` for integrated fixed effects), ``A = I +
theta_k^2 Z_k Z_k'`` (``d_l = 1 + theta_k^2 a_l``), ``G = W'A^{-1}W``, ``M = I + Theta G Theta``::

    V = sigma^2 (A + W Theta^2 W'),   log|V| = n log sigma^2 + sum log d + log|M|
    V^{-1} r = rho / sigma^2,         rho = r - W Theta c - theta_k^2 Z_k ((Z_k'r - N Theta c) / d)

with ``c = M^{-1} Theta W'A^{-1}r`` and ``N = Z_k'W``. The gradient in the sampled effects is
``Z_t' V^{-1} r``; in each variance ``v_j`` (``V = sigma^2 I + sum_j v_j C_j``) it is
``-tr(V^{-1} C_j) / 2 + (V^{-1}r)' C_j (V^{-1}r) / 2``, the traces in ``m``-space::

    sigma^2 tr(V^{-1} Z_k Z_k') = sum a / d - tr(Theta M^{-1} Theta N'D^{-2}N)
    sigma^2 W'V^{-1}W = F = G - G Theta M^{-1} Theta G

and for ``sigma^2`` from ``sigma^2 tr(V^{-1}) = n - sum_j v_j tr(V^{-1} C_j)``. ``N'D^{-1}N`` and
``N'D^{-2}N`` are sums over the levels of ``k``, grouped by equal ``a_l`` when that is shorter.

Coordinates ``x = ([beta], log sigma, u_1 .. u_K, effects of the sampled terms)`` with
``sd_k = c_k softplus(u_k)`` as in :mod:`.native`; centered terms hold ``b``, non-centered ``z``
(``b = sd z``).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numba import carray, cfunc, njit

from .native import (_EXPAND_SIG, _LOGP_SIG, _as_pointer, _f1, _f2, _i1, _sd_prior, _sd_scale, _sigmoid,
                     _softplus)

#: header slots before the array table (unused: the sizes travel in the ``dims`` array)
_HEAD = 8
#: the arrays, in header order
ARRAYS = ("dims", "y", "Xt", "fixed_params", "sd_codes", "sd_params", "codes_k", "z_k", "a_k", "codes_S",
          "z_S", "S_comp", "N", "G0", "group_a", "group_P", "codes_T", "z_T", "T_info", "col_comp", "unit", "UW", "UK_data", "UK_ind", "UK_ptr")
INT_ARRAYS = {"dims", "sd_codes", "codes_k", "codes_S", "S_comp", "codes_T", "T_info", "col_comp", "unit", "UK_ind", "UK_ptr"}
#: ``dims``: observations, fixed effects, components, fixed effects integrated (0/1), fixed prior
#: (0 flat, 1 Normal), sampled terms, small-block columns, of them random-effect columns, levels of
#: k, level groups (0: ungrouped), small terms, k's component, length of x. ``unit``: 1 for each
#: term (k, the small ones, the sampled ones) whose ``z`` values are all 1 (intercepts: their
#: ``z`` arrays are never read, which halves the bytes a pass over the rows moves)
DIMS = ("n", "p", "nk", "fixed_int", "fixed_code", "nT", "m", "mS", "qk", "ng", "nS", "k_comp", "n_x", "nU")
LOG2PI = float(np.log(2 * np.pi))


def pack(arrays: dict) -> tuple[np.ndarray, list]:
    """``(header, keep_alive)`` for ``arrays`` (every name of :data:`ARRAYS`; 2-D where the
    callbacks index rows). Empty arrays are padded to one element (never read)."""
    keep, head = [], [0] * _HEAD
    for name in ARRAYS:
        a = np.asarray(arrays[name], dtype=np.int64 if name in INT_ARRAYS else np.float64)
        if a.size == 0:
            a = np.zeros((1,) * max(a.ndim, 1), dtype=a.dtype)
        a = np.ascontiguousarray(a)
        keep.append(a)
        shape = a.shape if a.ndim == 2 else (a.size, 1)
        head += [a.ctypes.data, a.size, shape[0], shape[1]]
    return np.array(head, dtype=np.int64), keep


@njit(cache=True)
def _i2(h, i):
    j = _HEAD + 4 * i
    return carray(_as_pointer(h[j]), (h[j + 2], h[j + 3]), np.int64)


@njit(cache=True)
def _fwd(L, b):
    """``L^{-1} b`` (``L`` lower triangular)."""
    m = b.size
    v = np.empty(m)
    for i in range(m):
        s = b[i]
        for j in range(i):
            s -= L[i, j] * v[j]
        v[i] = s / L[i, i]
    return v


@njit(cache=True)
def _back(L, v):
    """``L'^{-1} v``."""
    m = v.size
    c = np.empty(m)
    for i in range(m - 1, -1, -1):
        s = v[i]
        for j in range(i + 1, m):
            s -= L[j, i] * c[j]
        c[i] = s / L[i, i]
    return c


@njit(cache=True)
def _segsum(codes, z, v, q):
    out = np.zeros(q)
    for i in range(codes.size):
        out[codes[i]] += z[i] * v[i]
    return out


@njit(cache=True)
def _level_sums(h, th2, d, m):
    """``(G, H2)``: ``G = G0 - theta_k^2 N'D^{-1}N`` and ``H2 = N'D^{-2}N``."""
    dm = _i1(h, 0)
    G = _f2(h, 13)[:m, :m].copy()
    H2 = np.zeros((m, m))
    if dm[9] > 0:
        ga, P = _f1(h, 14), _f2(h, 15)
        for g in range(dm[9]):
            dg = 1.0 + th2 * ga[g]
            wg, hg = th2 / dg, 1.0 / (dg * dg)
            for a in range(m):
                for b in range(m):
                    pab = P[g, a * m + b]
                    G[a, b] -= wg * pab
                    H2[a, b] += hg * pab
    else:
        N = _f2(h, 12)
        for lv in range(dm[8]):
            wl, hl = th2 / d[lv], 1.0 / (d[lv] * d[lv])
            for a in range(m):
                na = N[lv, a]
                if na != 0.0:
                    for b in range(m):
                        G[a, b] -= wl * na * N[lv, b]
                        H2[a, b] += hl * na * N[lv, b]
    return G, H2


@njit(cache=True)
def _small_block(h, wr, s, d, th2, theta):
    """The Woodbury part from ``wr = W'r``: ``(v'v, log|M|, e = Theta c, M^{-1}, G, H2)``."""
    dm = _i1(h, 0)
    m = dm[6]
    N = _f2(h, 12)
    w0 = wr.copy()
    for lv in range(dm[8]):
        f = th2 * s[lv] / d[lv]
        if f != 0.0:
            for a in range(m):
                w0[a] -= f * N[lv, a]
    G, H2 = _level_sums(h, th2, d, m)
    M = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            M[a, b] = theta[a] * G[a, b] * theta[b]
        M[a, a] += 1.0
    L = np.linalg.cholesky(M)
    v = _fwd(L, theta * w0)
    e = theta * _back(L, v)
    logdet = 0.0
    Linv = np.empty((m, m))
    for a in range(m):
        logdet += 2.0 * np.log(L[a, a])
        col = np.zeros(m)
        col[a] = 1.0
        Linv[:, a] = _fwd(L, col)
    return np.dot(v, v), logdet, e, Linv.T @ Linv, G, H2


@njit(cache=True)
def _params(x, h):
    """``(beta, sigma, sd)`` at ``x``: ``beta`` the prior means when integrated out."""
    dm = _i1(h, 0)
    p, nk = dm[1], dm[2]
    off = 0 if dm[3] == 1 else p
    beta = _f2(h, 3)[:p, 0].copy() if dm[3] == 1 else x[:p].copy()
    codes, prm = _i1(h, 4), _f2(h, 5)
    sds = np.empty(nk)
    for i in range(nk):
        sds[i] = _sd_scale(codes[i + 1], prm[i + 1, 0], prm[i + 1, 1]) * _softplus(x[off + 1 + i])
    return beta, np.exp(x[off]), sds


@njit(cache=True)
def _axpy(r, a, v):
    """``r += a v`` in place (no temporary)."""
    for i in range(r.size):
        r[i] += a * v[i]


@njit(cache=True)
def _gather_sub(r, vals, o, codes, z, unit):
    """``r -= z * vals[o + codes]``."""
    if unit:
        for i in range(r.size):
            r[i] -= vals[o + codes[i]]
    else:
        for i in range(r.size):
            r[i] -= z[i] * vals[o + codes[i]]


@njit(cache=True)
def _scatter(out, o, codes, z, unit, v):
    """``out[o + codes] += z * v`` (summed per level)."""
    if unit:
        for i in range(v.size):
            out[o + codes[i]] += v[i]
    else:
        for i in range(v.size):
            out[o + codes[i]] += z[i] * v[i]


@njit(cache=True)
def _fused_residual(r, B, o, cT, zT, uT, hasT, s, ck, zk, uk, wr, cS, zS, uS, hasS, ur, oU):
    """One loop over the rows: ``r -= Z_t b_t`` and ``ur += Z_t'r`` (first sampled term),
    ``s += Z_k'r``, ``wr += Z_S'r`` (first small term). Fused and without inner loops over terms: a loop over a
    runtime number of terms inside the row loop made this pass 3x slower (LLVM reloads every
    array of the header, which may alias the sums, on each row)."""
    for i in range(r.size):
        ri = r[i]
        if hasT:
            ri -= B[o + cT[i]] if uT else zT[i] * B[o + cT[i]]
            r[i] = ri
            ur[oU + cT[i]] += ri if uT else zT[i] * ri
        s[ck[i]] += ri if uk else zk[i] * ri
        if hasS:
            wr[cS[i]] += ri if uS else zS[i] * ri


@njit(cache=True)
def _pass_residual(x, h, beta, sds):
    """With ``r = y - X beta - sum_t Z_t b_t``: ``(s = Z_k'r, W'r, U'r, r'r)`` (``U`` as in
    :func:`_u_gradient`), in one fused loop over the rows (:func:`_fused_residual`) plus one pass
    per further term."""
    dm = _i1(h, 0)
    p, nT, nS, mS = dm[1], dm[5], dm[10], dm[7]
    Xt, Ti, cT, zT = _f2(h, 2), _i2(h, 18), _i2(h, 16), _f2(h, 17)
    ck, zk, cS, zS, unit = _i1(h, 6), _f1(h, 7), _i2(h, 9), _f2(h, 10), _i1(h, 20)
    B = x.copy()
    for t in range(nT):
        if Ti[t, 2] == 0:
            B[Ti[t, 3]:Ti[t, 3] + Ti[t, 1]] *= sds[Ti[t, 0]]
    r = _f1(h, 1).copy()
    for c in range(p):
        _axpy(r, -beta[c], Xt[c])
    for t in range(1, nT):
        _gather_sub(r, B, Ti[t, 3], cT[t], zT[t], unit[1 + nS + t] == 1)
    s, wr, ur = np.zeros(dm[8]), np.zeros(dm[6]), np.zeros(max(dm[13], 1))
    _fused_residual(r, B, Ti[0, 3], cT[0], zT[0], unit[1 + nS] == 1, nT > 0, s, ck, zk, unit[0] == 1,
                    wr, cS[0], zS[0], unit[1] == 1, nS > 0, ur, Ti[0, 4])
    for j in range(1, nS):
        _scatter(wr, 0, cS[j], zS[j], unit[1 + j] == 1, r)
    for t in range(1, nT):
        _scatter(ur, Ti[t, 4], cT[t], zT[t], unit[1 + nS + t] == 1, r)
    for c in range(p):
        xr = np.dot(Xt[c], r)
        if dm[3] == 1 and dm[6] > 0:
            wr[mS + c] = xr
        elif dm[3] == 0:
            ur[c] = xr
    return s, wr, ur, np.dot(r, r)


@njit(cache=True)
def _u_gradient(h, ur, e, g, th2, s2):
    """``U'V^{-1}r`` for the sampled columns ``U = [X (when sampled), Z_t ...]`` without a pass over
    the rows: ``U'rho = U'r - (U'W) e - theta_k^2 (U'Z_k) g`` from the cross-products of the data
    (``U'Z_k`` sparse). On InstEval that replaces a second pass over the 73,421 rows."""
    dm = _i1(h, 0)
    nU, m = dm[13], dm[6]
    out = ur.copy()
    if nU > 0 and m > 0:
        out -= _f2(h, 21) @ e
    data, ind, ptr = _f1(h, 22), _i1(h, 23), _i1(h, 24)
    for row in range(nU):
        acc = 0.0
        for j in range(ptr[row], ptr[row + 1]):
            acc += data[j] * g[ind[j]]
        out[row] = (out[row] - th2 * acc) / s2
    return out


@njit(cache=True)
def _theta(h, sigma, sds):
    """``Theta``: each small-block column's SD over ``sigma`` (prior SDs for fixed effects)."""
    dm = _i1(h, 0)
    colc, fx = _i1(h, 19), _f2(h, 3)
    theta = np.empty(dm[6])
    for a in range(dm[6]):
        theta[a] = sds[colc[a]] / sigma if colc[a] >= 0 else fx[a - dm[7], 1] / sigma
    return theta


@njit(cache=True)
def _traces(Minv, G, H2, theta, trk):
    """``(sigma^2 tr(V^{-1} Z_k Z_k'), diag F)`` given ``trk = sum a / d`` (module docstring)."""
    m = theta.size
    K = np.empty((m, m))
    for a in range(m):
        for b in range(m):
            trk -= Minv[a, b] * theta[a] * theta[b] * H2[b, a]
            K[a, b] = theta[a] * G[a, b]
    T = Minv @ K
    F = np.empty(m)
    for b in range(m):
        acc = G[b, b]
        for a in range(m):
            acc -= K[a, b] * T[a, b]
        F[b] = acc
    return trk, F


@njit(cache=True)
def loglik_grad(x, h, beta, sigma, sds):
    """``(log-likelihood, d/d v_j per component, d/d sigma^2, U'V^{-1}r)`` (module docstring;
    ``U`` as in :func:`_u_gradient`)."""
    dm = _i1(h, 0)
    n, nk, m, qk, kc = dm[0], dm[2], dm[6], dm[8], dm[11]
    ak, colc = _f1(h, 8), _i1(h, 19)
    s2 = sigma * sigma
    th2 = sds[kc] * sds[kc] / s2
    s, wr, ur, Q = _pass_residual(x, h, beta, sds)
    d = 1.0 + th2 * ak
    logdet, trk = 0.0, 0.0
    g = np.empty(qk)
    for lv in range(qk):
        Q -= th2 * s[lv] * s[lv] / d[lv]
        logdet += np.log(d[lv])
        trk += ak[lv] / d[lv]
        g[lv] = s[lv] / d[lv]
    theta = _theta(h, sigma, sds)
    F, e = np.zeros(m), np.zeros(m)
    if m > 0:
        vv, ldM, e, Minv, G, H2 = _small_block(h, wr, s, d, th2, theta)
        Q -= vv
        logdet += ldM
        Ne = _f2(h, 12) @ e
        for lv in range(qk):
            g[lv] = (s[lv] - Ne[lv]) / d[lv]
        trk, F = _traces(Minv, G, H2, theta, trk)
    # V^{-1}r through its products with every column (no second pass over the rows):
    # Z_k'rho = g, W'rho = W'r - G0 e - theta_k^2 N'g, and |rho|^2 from
    # r'V^{-1}r = sigma^2 |V^{-1}r|^2 + sum_j v_j |Z_j'V^{-1}r|^2
    uk = g / s2
    uW = np.zeros(m)
    if m > 0:
        uW = (wr - _f2(h, 13)[:m, :m] @ e - th2 * (g @ _f2(h, 12))) / s2
    uU = _u_gradient(h, ur, e, g, th2, s2)
    tt = Q / (s2 * s2) - th2 * np.dot(uk, uk)
    dv = np.zeros(nk)
    dv[kc] = -0.5 * trk / s2 + 0.5 * np.dot(uk, uk)
    tr_v = n - th2 * trk
    for a in range(m):
        tt -= theta[a] * theta[a] * uW[a] * uW[a]
        tr_v -= theta[a] * theta[a] * F[a]
        if colc[a] >= 0:
            dv[colc[a]] += -0.5 * F[a] / s2 + 0.5 * uW[a] * uW[a]
    ds2 = -0.5 * tr_v / s2 + 0.5 * tt
    ll = -0.5 * (n * LOG2PI + n * np.log(s2) + logdet + Q / s2)
    return ll, dv, ds2, uU


@njit(cache=True)
def _sampled_terms(x, h, uU, sds, grad, dsd):
    """The sampled terms' log prior; writes their gradient (likelihood ``uU`` + prior) into
    ``grad`` and adds their SDs' part to ``dsd``."""
    dm = _i1(h, 0)
    Ti = _i2(h, 18)
    lp = 0.0
    for t in range(dm[5]):
        comp, q, cen, o = Ti[t, 0], Ti[t, 1], Ti[t, 2], Ti[t, 3]
        tau = sds[comp]
        for j in range(o, o + q):
            b, ut = x[j], uU[Ti[t, 4] + j - o]
            if cen == 1:  # b ~ N(0, tau^2)
                grad[j] = ut - b / (tau * tau)
                lp -= 0.5 * b * b / (tau * tau)
                dsd[comp] += b * b / (tau * tau * tau)
            else:  # b = tau z, z ~ N(0, 1)
                grad[j] = tau * ut - b
                lp -= 0.5 * b * b
                dsd[comp] += b * ut
        if cen == 1:
            lp -= q * np.log(tau)
            dsd[comp] -= q / tau
    return lp


@njit(cache=True)
def log_posterior(x, h, grad):
    """Log posterior (up to a constant) at unconstrained ``x``; writes its gradient into ``grad``."""
    dm = _i1(h, 0)
    p, nk = dm[1], dm[2]
    off = 0 if dm[3] == 1 else p
    for i in range(off, off + 1 + nk):
        if abs(x[i]) > 700.0:
            return -np.inf
    beta, sigma, sds = _params(x, h)
    ll, dv, ds2, uU = loglik_grad(x, h, beta, sigma, sds)
    if not np.isfinite(ll):
        return -np.inf
    dsd = 2.0 * sds * dv
    lp = ll + _sampled_terms(x, h, uU, sds, grad, dsd)
    fx, codes, prm = _f2(h, 3), _i1(h, 4), _f2(h, 5)
    for c in range(off):
        grad[c] = uU[c]
        if dm[4] == 1:
            z = (beta[c] - fx[c, 0]) / fx[c, 1]
            lp -= 0.5 * z * z
            grad[c] -= z / fx[c, 1]
    v, dpr = _sd_prior(codes[0], prm[0, 0], prm[0, 1], sigma)
    lp += v + x[off]  # log sigma: d sigma / du = sigma, log-Jacobian u
    grad[off] = (2.0 * sigma * ds2 + dpr) * sigma + 1.0
    for i in range(nk):
        u = x[off + 1 + i]
        v, dpr = _sd_prior(codes[i + 1], prm[i + 1, 0], prm[i + 1, 1], sds[i])
        c = _sd_scale(codes[i + 1], prm[i + 1, 0], prm[i + 1, 1])
        sg = _sigmoid(u)
        lp += v + np.log(c) - _softplus(-u)
        grad[off + 1 + i] = (dsd[i] + dpr) * c * sg + (1.0 - sg)
    return lp


@njit(cache=True)
def expand(x, h, out):
    """The stored draw: ``[beta], sigma, sd (K), var (K), scale``, then each sampled term's ``b``."""
    dm = _i1(h, 0)
    p, nk = dm[1], dm[2]
    beta, sigma, sds = _params(x, h)
    j = 0
    if dm[3] == 0:
        out[:p] = x[:p]
        j = p
    out[j] = sigma
    for i in range(nk):
        out[j + 1 + i] = sds[i]
        out[j + 1 + nk + i] = sds[i] * sds[i]
    out[j + 1 + 2 * nk] = sigma * sigma
    j += 2 + 2 * nk
    Ti = _i2(h, 18)
    for t in range(dm[5]):
        comp, q, cen, o = Ti[t, 0], Ti[t, 1], Ti[t, 2], Ti[t, 3]
        f = 1.0 if cen == 1 else sds[comp]
        for lv in range(q):
            out[j + lv] = x[o + lv] * f
        j += q


_N_HEAD = _HEAD + 4 * len(ARRAYS)


def _logp_callback(dim, x_, grad_, logp_, user_data):
    """nutpie's log-density callback (0: ok, 1: failed, 3/4: gradient / value not finite)."""
    h = carray(user_data, (_N_HEAD,), np.int64)
    x = carray(x_, (dim,))
    grad = carray(grad_, (dim,))
    out = carray(logp_, (1,))
    try:
        v = log_posterior(x, h, grad)
    except Exception:  # noqa: BLE001 - a Cholesky that failed: reject the point
        return 1
    out[0] = v
    if not np.isfinite(v):
        return 4
    for j in range(dim):
        if not np.isfinite(grad[j]):
            return 3
    return 0


def _expand_callback(dim, expanded, x_, out_, user_data):
    """nutpie's expand callback."""
    h = carray(user_data, (_N_HEAD,), np.int64)
    expand(carray(x_, (dim,)), h, carray(out_, (expanded,)))
    return 0


#: how many times this process compiled (or loaded from Numba's disk cache) the callbacks
COMPILATIONS = {"callbacks": 0}


@lru_cache(maxsize=1)
def callbacks():
    """``(logp, expand)`` :func:`numba.cfunc` objects, compiled on first use in a process (from
    Numba's on-disk cache when it holds them) and shared by every partial-collapse model."""
    COMPILATIONS["callbacks"] += 1
    return cfunc(_LOGP_SIG, cache=True)(_logp_callback), cfunc(_EXPAND_SIG, cache=True)(_expand_callback)
