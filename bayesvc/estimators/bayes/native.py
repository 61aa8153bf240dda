"""The full collapse sampled by nutpie through bayesvc's own compiled callbacks (no PyTensor graph).

:func:`native_model` hands nutpie the two :mod:`bayesvc.kernel.native` C callbacks (compiled once
per process, or loaded from Numba's disk cache) with a header that points at this design's kernel
arrays and this prior set's parameters. Nothing is compiled per model: a new response, new prior
scales or a new data set of any shape only builds a new header (microseconds). The result is a
nutpie compiled model, so :func:`nutpie.sample` runs it as it runs a PyMC one; its draws are named
as the PyMC model's (``beta``, ``sigma``, ``sd``, ``var``, ``scale``).

Sampling starts at the ML estimate of ``(beta, log sigma, log SD)`` (the marginal mode under flat
priors; REML/ML fits cost milliseconds), each chain jittered by ``Uniform(-1, 1)`` on the log
SDs and by one standard error on the fixed effects, so that R-hat still compares dispersed starts.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pandas as pd

from ...kernel.compiled import kernel_arrays
from ...kernel.native import COMPILATIONS, PRIOR_CODES, _sd_scale, callbacks, pack
from ...priors import PriorSet

__all__ = ["native_supported", "native_model", "COMPILATIONS"]


def _prior_tables(design, ps: PriorSet):
    """``(sd_codes, sd_params, fixed_code, fixed_params)`` for :func:`bayesvc.kernel.native.pack`,
    or None when a prior has no native form (then the PyMC route is used)."""
    pri = [ps.residual] + [ps.sd[c] for c in design.component_names]
    if any(p.pm_name not in PRIOR_CODES for p in pri):
        return None
    params = []
    for p in pri:
        v = p.params
        params.append({"HalfFlat": (0.0, 0.0), "HalfNormal": (v.get("sigma", 1.0), 0.0),
                       "HalfStudentT": (v.get("nu", 3.0), v.get("sigma", 1.0)),
                       "HalfCauchy": (v.get("beta", 1.0), 0.0), "Exponential": (v.get("lam", 1.0), 0.0)}[p.pm_name])
    fixed = [ps.fixed[n] for n in design.fe_names]
    if all(p.flat for p in fixed):
        fcode, fpar = 0, np.zeros((len(fixed), 2))
    elif any(p.flat for p in fixed) or any(p.pm_name != "Normal" for p in fixed):
        return None
    else:
        fcode, fpar = 1, np.array([(p.mu, p.sigma) for p in fixed], dtype=float)
    return np.array([PRIOR_CODES[p.pm_name] for p in pri]), np.array(params, dtype=float), fcode, fpar


def native_supported(design, kernel, ps: PriorSet) -> bool:
    """Whether the full collapse of this design and prior set can run natively."""
    return kernel is not None and kernel_arrays(kernel) is not None and _prior_tables(design, ps) is not None


def _start_point(kernel) -> tuple[np.ndarray, np.ndarray]:
    """``(centre, jitter half-widths)`` in ``(beta, log sigma, log SD)``: the ML estimate, SDs kept
    off zero."""
    from ..reml import optimize_deviance

    opt = optimize_deviance(kernel, reml=False)
    theta = np.asarray(opt.theta_final, dtype=float)
    f = kernel.factorize(theta)
    s0 = float(np.sqrt(f.pwrss / kernel.n))
    sd0 = np.maximum(theta * s0, 0.05 * s0)
    beta = np.asarray(f.beta, dtype=float).ravel()
    centre = np.concatenate((beta, [np.log(s0)], np.log(sd0)))
    # one standard error of an intercept-like effect: sigma / sqrt(n) (at least), the SD's scale
    width = np.concatenate((np.full(beta.size, max(float(sd0.max()), s0 / np.sqrt(kernel.n))), np.ones(1 + sd0.size)))
    return centre, width


def softplus_coordinate(sd: float, code: int, a: float, b: float) -> float:
    """The native coordinate ``u = softplus^{-1}(sd / c)`` of an SD, ``c`` the transform's scale for
    the prior ``code`` with parameters ``a, b`` (:func:`bayesvc.kernel.native._sd_scale`)."""
    y = sd / _sd_scale(int(code), float(a), float(b))
    return float(y + np.log(-np.expm1(-y)))


def _softplus_start(centre, p: int, tables):
    """``centre`` (``beta, log sigma, log SD``) with each log SD as the native coordinate
    ``u = softplus^{-1}(sd / c)`` (:func:`bayesvc.kernel.native.log_posterior`)."""
    codes, params = tables[0], tables[1]
    out = np.array(centre, dtype=float)
    for i in range(1, len(codes)):
        out[p + i] = softplus_coordinate(np.exp(out[p + i]), codes[i], *params[i])
    return out


def _coords(design, names):
    return {"fixed": pd.Index(list(design.fe_names)), "component": pd.Index(design.component_names),
            "unconstrained_parameter": pd.Index(names)}


def native_model(design, kernel, ps: PriorSet, start=None):
    """A nutpie compiled model of the full collapse for ``design`` / ``kernel`` and the priors ``ps``
    (:func:`native_supported` must hold). ``start`` reuses a :func:`_start_point` result."""
    logp_cb, expand_cb = callbacks()
    p, nk = design.k_fe, len(design.component_names)
    tables = _prior_tables(design, ps)
    header, keep = pack(kernel_arrays(kernel), *tables)
    centre, width = start if start is not None else _start_point(kernel)
    centre = _softplus_start(centre, p, tables)

    def initial_point(seed=None):
        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(centre + rng.uniform(-1.0, 1.0, centre.size) * width)

    unconstrained = ([f"beta_{j}" for j in range(p)] + ["sigma_log__"]
                     + [f"sd_{c}_scaled_softplus__" for c in design.component_names])
    return nutpie_model(["beta", "sigma", "sd", "var", "scale"], [(p,), (), (nk,), (nk,), ()],
                        {"beta": ("fixed",), "sd": ("component",), "var": ("component",)},
                        _coords(design, unconstrained), (logp_cb, expand_cb), header, keep, initial_point)


def nutpie_model(names, shapes, dims, coords, cbs, header, keep, initial_point):
    """A nutpie compiled model from bayesvc's C callbacks ``cbs = (logp, expand)``: ``header`` is
    their ``user_data`` (``keep`` the arrays it points to), the expanded draw holds ``names`` with
    ``shapes`` (``dims`` naming their axes, ``coords`` the labels)."""
    from nutpie.compile_pymc import CompiledPyMCModel

    sizes = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    slices = [slice(int(a), int(b)) for a, b in zip(sizes[:-1], sizes[1:])]
    return CompiledPyMCModel(
        dims=dims, _coords=coords, _n_dim=len(coords["unconstrained_parameter"]),
        _shapes=dict(zip(names, shapes)), compiled_logp_func=cbs[0], compiled_expand_func=cbs[1],
        initial_point_func=initial_point, shared_data={"keep": keep}, shared_var_keys={},
        user_data=header, n_expanded=int(sizes[-1]), shape_info=(names, slices, shapes),
        logp_func=None, expand_func=None)


def with_priors(compiled, design, kernel, ps: PriorSet):
    """``compiled`` (a :func:`native_model`) with the priors ``ps``: a new header, same callbacks."""
    header, keep = pack(kernel_arrays(kernel), *_prior_tables(design, ps))
    return dataclasses.replace(compiled, user_data=header, shared_data={"keep": keep})


def timed_native_model(design, kernel, ps: PriorSet):
    """``(compiled, seconds)``."""
    t0 = time.perf_counter()
    out = native_model(design, kernel, ps)
    return out, time.perf_counter() - t0
