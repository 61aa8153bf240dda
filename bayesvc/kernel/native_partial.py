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

from .compiled import _csr_matvec
from .native import (_EXPAND_SIG, _LOGP_SIG, _f1, _f2, _i1, _sd_prior, _sd_scale, _sigmoid, _softplus,
                     callback_status)

#: header slots before the array table (unused: the sizes travel in the ``dims`` array)
_HEAD = 8
#: the arrays, in header order (``C = [X, Z_t ...]``: every column of the mean, ``r0 = y - C gamma0``
#: the residual at a reference point, ``*_data/_ind/_ptr`` CSR matrices)
ARRAYS = ("dims", "fixed_params", "sd_codes", "sd_params", "a_k", "N", "G0", "group_a", "group_P", "T_info",
          "col_comp", "gamma0", "Cr0", "Kr0", "Wr0", "r0r0", "CC_data", "CC_ind", "CC_ptr", "KC_data",
          "KC_ind", "KC_ptr", "CK_data", "CK_ind", "CK_ptr", "WC")
INT_ARRAYS = {"dims", "sd_codes", "T_info", "col_comp", "CC_ind", "CC_ptr", "KC_ind", "KC_ptr", "CK_ind",
              "CK_ptr"}
#: ``dims``: observations, fixed effects, components, fixed effects integrated (0/1), fixed prior
#: (0 flat, 1 Normal), sampled terms, small-block columns, of them random-effect columns, levels of
#: k, level groups (0: ungrouped), small terms, k's component, length of x, columns of C.
#: ``T_info`` per sampled term: component, levels, centered (0/1), offset in x, offset in C
DIMS = ("n", "p", "nk", "fixed_int", "fixed_code", "nT", "m", "mS", "qk", "ng", "nS", "k_comp", "n_x", "nC")
(_DM, _FX, _SDC, _SDP, _AK, _N, _G0, _GA, _GP, _TI, _COLC, _GAM0, _CR0, _KR0, _WR0, _R0R0, _CCD, _CCI, _CCP,
 _KCD, _KCI, _KCP, _CKD, _CKI, _CKP, _WC) = range(len(ARRAYS))
LOG2PI = float(np.log(2 * np.pi))


def pack(arrays: dict) -> tuple[np.ndarray, list]:
    """``(header, keep_alive)`` for ``arrays`` (every name of :data:`ARRAYS`). Empty arrays are
    padded to one element (never read)."""
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
    return _i1(h, i).reshape(h[j + 2], h[j + 3])


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
def _level_sums(h, th2, d, m):
    """``(G, H2)``: ``G = G0 - theta_k^2 N'D^{-1}N`` and ``H2 = N'D^{-2}N``."""
    dm = _i1(h, _DM)
    G = _f2(h, _G0)[:m, :m].copy()
    H2 = np.zeros((m, m))
    if dm[9] > 0:
        ga, P = _f1(h, _GA), _f2(h, _GP)
        for g in range(dm[9]):
            dg = 1.0 + th2 * ga[g]
            wg, hg = th2 / dg, 1.0 / (dg * dg)
            for a in range(m):
                for b in range(m):
                    pab = P[g, a * m + b]
                    G[a, b] -= wg * pab
                    H2[a, b] += hg * pab
    else:
        N = _f2(h, _N)
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
    dm = _i1(h, _DM)
    m = dm[6]
    N = _f2(h, _N)
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
    dm = _i1(h, _DM)
    p, nk = dm[1], dm[2]
    off = 0 if dm[3] == 1 else p
    beta = _f2(h, _FX)[:p, 0].copy() if dm[3] == 1 else x[:p].copy()
    codes, prm = _i1(h, _SDC), _f2(h, _SDP)
    sds = np.empty(nk)
    for i in range(nk):
        sds[i] = _sd_scale(codes[i + 1], prm[i + 1, 0], prm[i + 1, 1]) * _softplus(x[off + 1 + i])
    return beta, np.exp(x[off]), sds


@njit(cache=True)
def _delta(x, h, beta, sds):
    """``gamma - gamma0``: the mean's coefficients (``beta``, then each sampled term's ``b``) from
    the reference point."""
    dm = _i1(h, _DM)
    p = dm[1]
    Ti = _i2(h, _TI)
    delta = -_f1(h, _GAM0)[:dm[13]].copy()
    delta[:p] += beta
    for t in range(dm[5]):
        f = 1.0 if Ti[t, 2] == 1 else sds[Ti[t, 0]]
        for lv in range(Ti[t, 1]):
            delta[Ti[t, 4] + lv] += f * x[Ti[t, 3] + lv]
    return delta


@njit(cache=True)
def _sufficient(h, delta):
    """``(s = Z_k'r, W'r, C'r, r'r)`` at ``r = r0 - C delta`` from the cross-products alone: no pass
    over the rows. (On InstEval, where every student-lecturer pair is rated once, ``Z_k'C`` has as
    many entries as there are rows, but one sparse product reads a third of the bytes of a pass
    over the rows with its level codes, and on replicated designs far fewer.) Expanding around the
    least-squares point keeps ``r'r`` free of cancellation."""
    dm = _i1(h, _DM)
    nC, qk, m = dm[13], dm[8], dm[6]
    Cd = _csr_matvec(_f1(h, _CCD), _i1(h, _CCI), _i1(h, _CCP), delta, nC)
    Cr0 = _f1(h, _CR0)[:nC]
    Cr = Cr0 - Cd
    rr = _f1(h, _R0R0)[0] - 2.0 * np.dot(Cr0, delta) + np.dot(delta, Cd)
    s = _f1(h, _KR0)[:qk] - _csr_matvec(_f1(h, _KCD), _i1(h, _KCI), _i1(h, _KCP), delta, qk)
    wr = np.zeros(m)
    if m > 0:
        wr = _f1(h, _WR0)[:m] - _f2(h, _WC) @ delta
    return s, wr, Cr, rr


@njit(cache=True)
def _c_gradient(h, Cr, e, g, th2, s2):
    """``C'V^{-1}r = (C'r - (W'C)'e - theta_k^2 (C'Z_k) g) / sigma^2`` (``rho`` in the module
    docstring), from the cross-products: the gradient in every sampled coefficient."""
    dm = _i1(h, _DM)
    nC, m = dm[13], dm[6]
    out = Cr - _csr_matvec(_f1(h, _CKD), _i1(h, _CKI), _i1(h, _CKP), g, nC) * th2
    if m > 0:
        out -= e @ _f2(h, _WC)
    return out / s2


@njit(cache=True)
def _theta(h, sigma, sds):
    """``Theta``: each small-block column's SD over ``sigma`` (prior SDs for fixed effects)."""
    dm = _i1(h, _DM)
    colc, fx = _i1(h, _COLC), _f2(h, _FX)
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
    """``(log-likelihood, d/d v_j per component, d/d sigma^2, C'V^{-1}r)`` (module docstring;
    ``C`` the mean's columns: :func:`_c_gradient`)."""
    dm = _i1(h, _DM)
    n, nk, m, qk, kc = dm[0], dm[2], dm[6], dm[8], dm[11]
    ak, colc = _f1(h, _AK), _i1(h, _COLC)
    s2 = sigma * sigma
    th2 = sds[kc] * sds[kc] / s2
    s, wr, Cr, Q = _sufficient(h, _delta(x, h, beta, sds))
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
        Ne = _f2(h, _N) @ e
        for lv in range(qk):
            g[lv] = (s[lv] - Ne[lv]) / d[lv]
        trk, F = _traces(Minv, G, H2, theta, trk)
    # V^{-1}r through its products with every column (no second pass over the rows):
    # Z_k'rho = g, W'rho = W'r - G0 e - theta_k^2 N'g, and |rho|^2 from
    # r'V^{-1}r = sigma^2 |V^{-1}r|^2 + sum_j v_j |Z_j'V^{-1}r|^2
    uk = g / s2
    uW = np.zeros(m)
    if m > 0:
        uW = (wr - _f2(h, _G0)[:m, :m] @ e - th2 * (g @ _f2(h, _N))) / s2
    uC = _c_gradient(h, Cr, e, g, th2, s2)
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
    return ll, dv, ds2, uC


@njit(cache=True)
def _sampled_terms(x, h, uC, sds, grad, dsd):
    """The sampled terms' log prior; writes their gradient (likelihood ``uC`` + prior) into
    ``grad`` and adds their SDs' part to ``dsd``."""
    dm = _i1(h, _DM)
    Ti = _i2(h, _TI)
    lp = 0.0
    for t in range(dm[5]):
        comp, q, cen, o = Ti[t, 0], Ti[t, 1], Ti[t, 2], Ti[t, 3]
        tau = sds[comp]
        for j in range(o, o + q):
            b, ut = x[j], uC[Ti[t, 4] + j - o]
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
    dm = _i1(h, _DM)
    p, nk = dm[1], dm[2]
    off = 0 if dm[3] == 1 else p
    for i in range(off, off + 1 + nk):
        if abs(x[i]) > 700.0:
            return -np.inf
    beta, sigma, sds = _params(x, h)
    ll, dv, ds2, uC = loglik_grad(x, h, beta, sigma, sds)
    if not np.isfinite(ll):
        return -np.inf
    dsd = 2.0 * sds * dv
    lp = ll + _sampled_terms(x, h, uC, sds, grad, dsd)
    fx, codes, prm = _f2(h, _FX), _i1(h, _SDC), _f2(h, _SDP)
    for c in range(off):
        grad[c] = uC[c]
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
    dm = _i1(h, _DM)
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
    Ti = _i2(h, _TI)
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
    return callback_status(v, grad)


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
