"""REML and ML by optimizing the profiled deviance of :class:`~bayesvc.kernel.Kernel`.

As lme4's ``mkLmerDevfun -> optimizeLmer -> mkMerMod``: :func:`make_devfun` returns the deviance
as a function of theta, :func:`optimize_deviance` minimizes it (L-BFGS-B with the kernel's
analytic gradient for variance-component designs, finite differences otherwise) and records how
in an :class:`~bayesvc.OptSummary`, and :func:`reml_result` assembles the
:class:`~bayesvc.REMLResult`, including the information matrix of the variance parameters
(:mod:`bayesvc.estimators.information`). :func:`fit_reml` is these three calls.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..design import Design
from ..design.covariance import (
    covariances, singular_terms, theta_lower_bounds, theta_start,
    vcomp_from_theta, zero_variance_components,
)
from ..errors import BoundaryFitWarning, warn
from ..kernel import Kernel
from ..kernel.conditional import conditional_covariances, conditional_modes
from ..results import OptSummary, RandomEffects, REMLResult
from .inference import FitInference
from .information import parameter_covariance

#: a diagonal theta below this is tried at exactly zero (MixedModels.jl's ``xtol_zero_abs``)
XTOL_ZERO = 1e-4
#: ... and kept there if the deviance rises by at most this (``ftol_zero_abs``)
FTOL_ZERO = 1e-9
#: restarts away from a zero bound are tried at these values of the component's theta
BOUNDARY_PROBES = (1e-3, 1e-2, 0.1, 0.3, 1.0)


def make_devfun(design: Design, reml: bool = True, kernel: Kernel | None = None):
    """The profiled deviance as a function of theta (lme4's ``mkLmerDevfun``).

    ``kernel`` is reused if given and is available as the function's ``kernel`` attribute.

    Examples
    --------
    >>> devfun = bvc.make_devfun(model.design)
    >>> bool(np.isclose(devfun(reml.theta), -2 * reml.llf)), bool(devfun([0.5]) > devfun(reml.theta))
    (True, True)
    """
    k = kernel or Kernel(design)

    def devfun(theta):
        return k.deviance(theta, reml=reml)

    devfun.kernel = k
    return devfun


def _minimize(kernel: Kernel, reml: bool, theta0, bounds, ftol, gtol, maxiter):
    """L-BFGS-B (analytic gradient, or finite differences plus a Nelder-Mead polish); returns the
    scipy result, the objective used and the number of evaluations (a one-element list)."""
    evals = [0]
    lb = np.array([-np.inf if b[0] is None else b[0] for b in bounds])
    if kernel.scalar:
        def fun(th):
            evals[0] += 1
            return kernel.deviance_grad(th, reml)
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": gtol, "maxiter": maxiter, "maxcor": 20})
        return res, fun, evals
    def fun(th):
        evals[0] += 1
        return kernel.deviance(th, reml)
    res = minimize(fun, theta0, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": ftol, "gtol": 1e-7, "maxiter": maxiter, "eps": 1e-7})
    # polish derivative-free (finite differences stall near the optimum)
    res2 = minimize(fun, res.x, method="Nelder-Mead",
                    options={"xatol": 1e-8, "fatol": 1e-10, "maxfev": 1000 + 200 * len(theta0)})
    if res2.fun <= res.fun and np.all(res2.x >= lb):
        res.x, res.fun = res2.x, res2.fun
    return res, fun, evals


def _probe_boundary(kernel, reml, theta, dev, lb, fun, bounds, options):
    """theta_j = 0 is a stationary point of the deviance (it is even in a scalar theta_j), so a
    quasi-Newton step can land on the bound and stop there: probe away from it, restart once."""
    for j in np.flatnonzero(lb == 0):
        if theta[j] >= XTOL_ZERO:
            continue
        best = None
        for v in BOUNDARY_PROBES:
            trial = theta.copy()
            trial[j] = v
            d = kernel.deviance(trial, reml)
            if d < dev - 1e-10 and (best is None or d < best[0]):
                best = (d, trial)
        if best is not None:
            res = minimize(fun, best[1], jac=kernel.scalar or None, method="L-BFGS-B", bounds=bounds,
                           options=options)
            if res.fun < dev:
                theta, dev = np.asarray(res.x, dtype=float), float(res.fun)
    return theta, dev


def _snap_to_zero(kernel, reml, theta, dev, lb):
    """A diagonal element that is essentially zero is set to exactly zero when that costs at most
    ``FTOL_ZERO`` of deviance."""
    for j in np.flatnonzero(lb == 0):
        if theta[j] < XTOL_ZERO:
            trial = theta.copy()
            trial[j] = 0.0
            dtrial = kernel.deviance(trial, reml)
            if dtrial <= dev + FTOL_ZERO:
                theta, dev = trial, dtrial
    return theta, dev


def optimize_deviance(kernel: Kernel, reml: bool = True, theta0=None, ftol: float = 1e-12,
                      gtol: float = 1e-8, maxiter: int = 2000) -> OptSummary:
    """Minimize the profiled deviance over theta >= 0 (diagonal elements); lme4's ``optimizeLmer``.

    ``theta0`` defaults to lme4's start (ones on the diagonal); ``ftol``, ``gtol``, ``maxiter`` are
    L-BFGS-B settings.

    Examples
    --------
    >>> opt = bvc.optimize_deviance(model.kernel, reml=False, theta0=[0.5])
    >>> opt.method, opt.converged, opt.theta_start, bool(np.isclose(opt.deviance, -2 * model.fit_ml().llf))
    ('ML', True, (0.5,), True)
    """
    t0 = time.perf_counter()
    terms = kernel.terms
    theta0 = theta_start(terms) if theta0 is None else np.asarray(theta0, dtype=float)
    lb = theta_lower_bounds(terms)
    bounds = [(None if np.isinf(b) else b, None) for b in lb]
    options = {"ftol": ftol, "gtol": gtol, "maxiter": maxiter, "maxcor": 20}
    res, fun, evals = _minimize(kernel, reml, theta0, bounds, ftol, gtol, maxiter)
    theta, dev = np.asarray(res.x, dtype=float), float(res.fun)
    theta, dev = _probe_boundary(kernel, reml, theta, dev, lb, fun, bounds, options)
    theta, dev = _snap_to_zero(kernel, reml, theta, dev, lb)
    converged = bool(res.success) or (np.isfinite(dev) and "ABNORMAL" in str(res.message))
    return OptSummary(
        method="REML" if reml else "ML", optimizer="scipy L-BFGS-B",
        gradient="analytic" if kernel.scalar else "finite differences",
        theta_start=tuple(map(float, theta0)), theta_final=tuple(map(float, theta)), deviance=dev,
        n_evals=evals[0], converged=converged, message=str(res.message),
        boundary=tuple(zero_variance_components(terms, theta)), seconds=time.perf_counter() - t0,
        xtol_zero=XTOL_ZERO, ftol_zero=FTOL_ZERO, singular=tuple(singular_terms(terms, theta)),
    )


def _vc_frame(kernel, theta, scale: float, reml: bool) -> pd.DataFrame:
    """``cov_vc``: inverse information in (free component variances, covariances of correlated
    terms, residual variance)."""
    labels, cov = parameter_covariance(kernel, theta, scale, reml)
    return pd.DataFrame(cov, index=labels, columns=labels)


def reml_result(design: Design, kernel: Kernel, opt: OptSummary) -> REMLResult:
    """Assemble the :class:`~bayesvc.REMLResult` at the optimum ``opt`` (lme4's ``mkMerMod``):
    fixed effects and their covariance, variances, the information matrix, random effects."""
    reml = opt.method == "REML"
    theta = np.asarray(opt.theta_final)
    f = kernel.factorize(theta)
    p = kernel.p
    beta = f.beta
    scale = f.pwrss / (kernel.n - p if reml else kernel.n)
    names = list(design.fe_names)
    vcomp = vcomp_from_theta(design.terms, theta, scale)
    cov_re = {}
    for t, S in zip(design.terms, covariances(design.terms, theta, scale)):
        if t.p > 1:
            labels = [c or t.name for c in t.coef_names]
            cov_re[t.name] = pd.DataFrame(S, index=labels, columns=labels)
    ranef = RandomEffects.from_arrays(design.terms, conditional_modes(kernel, f, beta),
                                      conditional_covariances(kernel, f, scale))
    return REMLResult(
        method=opt.method, design=design, fe_params=pd.Series(beta, index=names, name="fe_params"),
        cov_fe=pd.DataFrame(scale * np.linalg.inv(f.Mxy[:p, :p]), index=names, columns=names),
        vcomp=pd.Series(vcomp, name="vcomp"), scale=float(scale),
        cov_vc=_vc_frame(kernel, theta, scale, reml), cov_re=cov_re, llf=-0.5 * opt.deviance,
        converged=opt.converged, theta=theta, opt=opt, random_effects=ranef,
        inference=FitInference(kernel),
    )


def fit_reml(design: Design, reml: bool = True, kernel: Kernel | None = None, theta0=None) -> REMLResult:
    """Fit by REML (``reml=True``) or ML: :func:`make_devfun`, :func:`optimize_deviance`,
    :func:`reml_result` (the functional form of :meth:`bayesvc.VCModel.fit_reml`).

    Warns with :class:`~bayesvc.BoundaryFitWarning` when a variance is estimated as zero.
    ``kernel`` (the model's, ``VCModel.kernel``) avoids rebuilding it; ``theta0`` starts the
    optimizer.

    Examples
    --------
    >>> r = bvc.fit_reml(model.design)
    >>> r.method, r.converged, r.vcomp.round(2).to_dict(), round(r.scale, 2)
    ('REML', True, {'g': 2.55}, 0.62)
    """
    # small dense factorizations: BLAS threading costs far more than it gains here
    with threadpool_limits(1):
        kernel = make_devfun(design, reml, kernel).kernel
        opt = optimize_deviance(kernel, reml=reml, theta0=theta0)
        result = reml_result(design, kernel, opt)
    if opt.boundary:
        warn(f"boundary (singular) fit: variance of {', '.join(opt.boundary)} estimated as 0",
             BoundaryFitWarning)
    singular = [t for t in opt.singular
                if not any(c in opt.boundary for c in design.terms[_term_index(design, t)].component_names)]
    if singular:
        warn(f"boundary (singular) fit: the covariance matrix of {', '.join(singular)} is singular "
             "(a correlation of +-1 or a zero variance in a linear combination)", BoundaryFitWarning)
    return result


def _term_index(design, name: str) -> int:
    return next(i for i, t in enumerate(design.terms) if t.name == name)
