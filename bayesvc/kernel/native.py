"""The collapsed log posterior on the unconstrained scale as C callbacks for nutpie, compiled once.

nutpie samples any model given as two C function pointers (log density with gradient, and the
"expand" map to the stored draws) plus an opaque ``user_data`` pointer. The two :func:`numba.cfunc`
callbacks here read *everything* that depends on the data and the priors through that pointer (a
header of addresses and sizes, :func:`pack`): the kernel's arrays (:class:`~.compiled.KernelArrays`),
the prior families and their parameters. Nothing is frozen into the machine code, so one compilation
serves every design, response and prior of the full collapse, and ``cache=True`` keeps it on disk:
a second process loads it instead of compiling (PyTensor's graph for the same model, embedded data
and all, is re-optimised by LLVM on every compilation, 15-30 s here). Hand-written because nutpie's
PyMC route embeds the data into the compiled callback.

Coordinates ``x = (beta, log sigma, u_1 .. u_K)`` with ``sd_k = c_k softplus(u_k)`` (``c_k`` the
SD prior's scale, as on the PyMC route); the log posterior is the collapsed log-likelihood plus
the priors' log densities (up to constants) plus the log-Jacobian. SD prior codes: :data:`PRIOR_CODES`.

>>> sorted(PRIOR_CODES)
['Exponential', 'HalfCauchy', 'HalfFlat', 'HalfNormal', 'HalfStudentT']
"""

from __future__ import annotations

import numpy as np
from functools import lru_cache

from numba import carray, cfunc, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .compiled import KernelArrays, logp_grad

#: SD-prior family -> code (parameters in the prior table: HalfNormal sigma; HalfStudentT nu, sigma;
#: HalfCauchy beta; Exponential lam)
PRIOR_CODES = {"HalfFlat": 0, "HalfNormal": 1, "HalfStudentT": 2, "HalfCauchy": 3, "Exponential": 4}

#: header: p, K, first, dense, diag_s, n (float bits), fixed-prior code, 0.5 sum log w (float
#: bits), then address / size / rows / cols of every array (:data:`_ARRAYS`, then the prior tables)
_HEAD = 8
_ARRAYS = ("rest_comp", "a1", "C1d", "Pd", "Pi", "Pp", "pair_i", "pair_j", "Pzd", "Pzi", "Pzp", "pz_i",
           "pz_j", "pz_w", "Czd", "Czi", "Czp", "Arr", "ZtWf")
_INT = {"rest_comp", "Pi", "Pp", "pair_i", "pair_j", "Pzi", "Pzp", "pz_i", "pz_j", "Czi", "Czp"}
_TABLES = ("sd_codes", "sd_params", "fixed_params")


def pack(arrays: KernelArrays, sd_codes, sd_params, fixed_code: int, fixed_params) -> tuple[np.ndarray, list]:
    """``(header, keep_alive)``: the int64 header the callbacks read, and the arrays it points to
    (they must outlive every use of the header).

    ``sd_codes`` (K + 1,) and ``sd_params`` (K + 1, 2) describe the residual's prior and then each
    component's (``design.component_names`` order); ``fixed_code`` 0 (flat) or 1 (Normal, with
    ``fixed_params`` (p, 2) the means and SDs).
    """
    keep = []
    for name in _ARRAYS:
        a = getattr(arrays, name)
        keep.append(np.ascontiguousarray(a, dtype=np.int64 if name in _INT else np.float64))
    keep.append(np.ascontiguousarray(sd_codes, dtype=np.int64))
    keep.append(np.ascontiguousarray(np.asarray(sd_params, dtype=np.float64).reshape(-1, 2)))
    keep.append(np.ascontiguousarray(np.asarray(fixed_params, dtype=np.float64).reshape(-1, 2)))
    p = arrays.ZtWf.shape[1] - 1
    head = [p, len(keep[-3]) - 1, arrays.first, int(arrays.dense), int(arrays.diag_s),
            int(np.float64(arrays.n).view(np.int64)), int(fixed_code),
            int(np.float64(arrays.half_log_w).view(np.int64))]
    for a in keep:
        shape = a.shape if a.ndim == 2 else (a.size, 1)
        head += [a.ctypes.data, a.size, shape[0], shape[1]]
    return np.array(head, dtype=np.int64), keep


@intrinsic
def _as_pointer(typingctx, address):
    """An int64 address as a void pointer."""
    sig = types.voidptr(address)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return sig, codegen


@njit(cache=True)
def _f1(h, i):
    j = _HEAD + 4 * i
    return carray(_as_pointer(h[j]), (h[j + 1],), np.float64)


@njit(cache=True)
def _i1(h, i):
    j = _HEAD + 4 * i
    return carray(_as_pointer(h[j]), (h[j + 1],), np.int64)


@njit(cache=True)
def _f2(h, i):
    j = _HEAD + 4 * i
    return carray(_as_pointer(h[j]), (h[j + 2], h[j + 3]), np.float64)


@njit(cache=True)
def _unpack(h):
    """The :class:`KernelArrays` the header points to."""
    n = np.array([h[5]]).view(np.float64)[0]
    half_log_w = np.array([h[7]]).view(np.float64)[0]
    return KernelArrays(h[2], _i1(h, 0), _f1(h, 1), h[3] != 0, _f2(h, 2), _f1(h, 3), _i1(h, 4), _i1(h, 5),
                        _i1(h, 6), _i1(h, 7), _f1(h, 8), _i1(h, 9), _i1(h, 10), _i1(h, 11), _i1(h, 12),
                        _f1(h, 13), _f1(h, 14), _i1(h, 15), _i1(h, 16), _f2(h, 17), _f2(h, 18),
                        h[4] != 0, n, half_log_w)


@njit(cache=True)
def _sd_prior(code, a, b, s):
    """``(log density up to a constant, its derivative)`` of an SD prior at ``s > 0``."""
    if code == 1:
        return -0.5 * s * s / (a * a), -s / (a * a)
    if code == 2:
        return -0.5 * (a + 1.0) * np.log1p(s * s / (a * b * b)), -(a + 1.0) * s / (a * b * b + s * s)
    if code == 3:
        return -np.log1p(s * s / (a * a)), -2.0 * s / (a * a + s * s)
    if code == 4:
        return -a * s, -a
    return 0.0, 0.0


@njit(cache=True)
def _sd_scale(code, a, b):
    """The prior's scale ``c`` of the SD transform ``sd = c * softplus(u)`` (1 without one), as
    :func:`bayesvc.estimators.bayes.transform.scaled_softplus` takes it on the PyMC route."""
    if code == 1 or code == 3:
        return a
    if code == 2:
        return b
    if code == 4:
        return 1.0 / a
    return 1.0


@njit(cache=True)
def _softplus(u):
    return u + np.log1p(np.exp(-u)) if u > 0.0 else np.log1p(np.exp(u))


@njit(cache=True)
def _sigmoid(u):
    return 1.0 / (1.0 + np.exp(-u)) if u >= 0.0 else np.exp(u) / (1.0 + np.exp(u))


@njit(cache=True)
def _scales(x, p, nk, codes, prm):
    """``(sigma, sd_1 .. sd_K)`` at unconstrained ``x``: ``log sigma``; each SD by the scaled
    softplus (a linear upper tail: see :mod:`bayesvc.estimators.bayes.transform` for why)."""
    out = np.empty(nk + 1)
    out[0] = np.exp(x[p])
    for i in range(1, nk + 1):
        out[i] = _sd_scale(codes[i], prm[i, 0], prm[i, 1]) * _softplus(x[p + i])
    return out


@njit(cache=True)
def log_posterior(x, h, grad):
    """Log posterior at unconstrained ``x``; writes its gradient into ``grad``."""
    p, nk = h[0], h[1]
    k = _unpack(h)
    codes, prm, fx = _i1(h, 19), _f2(h, 20), _f2(h, 21)
    beta = x[:p].copy()
    if np.max(np.abs(x[p:])) > 700.0:
        return -np.inf
    scales = _scales(x, p, nk, codes, prm)
    ll, db, ds, dt = logp_grad(beta, scales[0], scales[1:].copy(), k)
    if not np.isfinite(ll):
        return -np.inf
    lp = ll
    for j in range(p):
        grad[j] = db[j]
        if h[6] == 1:
            z = (beta[j] - fx[j, 0]) / fx[j, 1]
            lp -= 0.5 * z * z
            grad[j] -= z / fx[j, 1]
    for i in range(nk + 1):
        s = scales[i]
        v, d = _sd_prior(codes[i], prm[i, 0], prm[i, 1], s)
        dl = ds if i == 0 else dt[i - 1]
        u = x[p + i]
        if i == 0:  # log sigma: ds/du = s, log-Jacobian u
            lp += v + u
            grad[p + i] = (dl + d) * s + 1.0
        else:  # s = c softplus(u): ds/du = c sigmoid(u), log-Jacobian log c + log sigmoid(u)
            c = _sd_scale(codes[i], prm[i, 0], prm[i, 1])
            sg = _sigmoid(u)
            lp += v + np.log(c) - _softplus(-u)
            grad[p + i] = (dl + d) * c * sg + (1.0 - sg)
    return lp


@njit(cache=True)
def expand(x, h, out):
    """The stored draw: ``beta, sigma, sd (K), var (K), scale``."""
    p, nk = h[0], h[1]
    scales = _scales(x, p, nk, _i1(h, 19), _f2(h, 20))
    out[:p] = x[:p]
    out[p] = scales[0]
    for i in range(nk):
        s = scales[i + 1]
        out[p + 1 + i] = s
        out[p + 1 + nk + i] = s * s
    out[p + 1 + 2 * nk] = scales[0] * scales[0]


@njit(cache=True)
def callback_status(v, grad):
    """nutpie's status code for a log density ``v`` and its gradient: 0 ok, 4 value not finite,
    3 gradient not finite (shared by every native callback)."""
    if not np.isfinite(v):
        return 4
    for j in range(grad.size):
        if not np.isfinite(grad[j]):
            return 3
    return 0


_LOGP_SIG = types.int64(types.uint64, types.CPointer(types.double), types.CPointer(types.double),
                        types.CPointer(types.double), types.voidptr)
_EXPAND_SIG = types.int64(types.uint64, types.uint64, types.CPointer(types.double),
                          types.CPointer(types.double), types.voidptr)


def _logp_callback(dim, x_, grad_, logp_, user_data):
    """nutpie's log-density callback (0: ok, 1: failed, 3/4: gradient / value not finite)."""
    h = carray(user_data, (_HEAD + 4 * 22,), np.int64)
    x = carray(x_, (dim,))
    grad = carray(grad_, (dim,))
    out = carray(logp_, (1,))
    try:
        v = log_posterior(x, h, grad)
    except Exception:  # noqa: BLE001 - a factorization that failed inside LAPACK: reject the point
        return 1
    out[0] = v
    return callback_status(v, grad)


def _expand_callback(dim, expanded, x_, out_, user_data):
    """nutpie's expand callback."""
    h = carray(user_data, (_HEAD + 4 * 22,), np.int64)
    expand(carray(x_, (dim,)), h, carray(out_, (expanded,)))
    return 0


#: how many times this process compiled (or loaded from Numba's disk cache) the callbacks
COMPILATIONS = {"callbacks": 0}


@lru_cache(maxsize=1)
def callbacks():
    """``(logp, expand)`` :func:`numba.cfunc` objects, compiled on first use in a process (from
    Numba's on-disk cache when it holds them) and shared by every model afterwards."""
    COMPILATIONS["callbacks"] += 1
    return cfunc(_LOGP_SIG, cache=True)(_logp_callback), cfunc(_EXPAND_SIG, cache=True)(_expand_callback)
