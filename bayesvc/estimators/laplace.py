"""Maximum likelihood for binomial and Poisson GLMMs by the Laplace approximation (lme4's
``glmer(nAGQ = 1)``).

glmer's second stage optimizes the Laplace deviance jointly over ``(theta, beta)``; so does
:func:`fit_laplace`, with scipy's L-BFGS-B (finite-difference gradients; each evaluation runs PIRLS
from the previous conditional modes, :class:`~bayesvc.kernel.glmm.LaplaceGLMM`) and a Nelder-Mead
polish. The fixed effects' covariance is the inverse of half the deviance's Hessian in
``(theta, beta)`` (central differences), restricted to beta, as glmer's ``vcov`` does by default.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..design import Design
from ..design.covariance import (
    covariances, singular_terms, theta_lower_bounds, theta_start, vcomp_from_theta,
    zero_variance_components,
)
from ..errors import BoundaryFitWarning, fail, warn
from ..validate import validate_count
from ..kernel.glmm import FAMILIES, LaplaceGLMM, glm_moments, log_density
from ..results import OptSummary, RandomEffects
from ..results.glmm import GLMMResult


def glm_start(lap: LaplaceGLMM) -> np.ndarray:
    """The fixed effects of the GLM without random effects (a convex problem): glmer's start."""
    def f(beta):
        eta = lap.offset + lap.X @ beta
        score, _ = glm_moments(lap.family, lap.y, lap.n, eta)
        return -np.sum(log_density(lap.family, lap.y, lap.n, eta)), -(lap.X.T @ score)
    return minimize(f, np.zeros(lap.p), jac=True, method="L-BFGS-B").x


def _hessian(fun, x, h=1e-4):
    """Central-difference Hessian of ``fun`` at ``x`` (relative steps)."""
    k = len(x)
    H = np.zeros((k, k))
    hs = h * np.maximum(np.abs(x), 0.1)
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * hs[i], np.eye(k)[j] * hs[j]
            H[i, j] = H[j, i] = (fun(x + e_i + e_j) - fun(x + e_i - e_j) - fun(x - e_i + e_j)
                                 + fun(x - e_i - e_j)) / (4 * hs[i] * hs[j])
    return H


def optimize_laplace(lap: LaplaceGLMM, theta0=None, beta0=None, nagq: int = 1):
    """Minimize the Laplace deviance over ``(theta, beta)``; returns ``(x, deviance, scipy result,
    evaluations)``."""
    nt = lap.n_theta
    theta0 = theta_start(lap.terms) if theta0 is None else np.asarray(theta0, dtype=float)
    beta0 = glm_start(lap) if beta0 is None else np.asarray(beta0, dtype=float)
    lb = theta_lower_bounds(lap.terms)
    bounds = [(None if np.isinf(b) else b, None) for b in lb] + [(None, None)] * lap.p
    evals = [0]

    def fun(x):
        evals[0] += 1
        # a finite-difference step may cross theta_j = 0: the deviance is even in a scalar
        # term's theta (Lambda enters through Lambda Lambda'), so evaluate at |theta_j|
        th = np.where(lb == 0, np.abs(x[:nt]), x[:nt])
        if nagq > 1:
            return lap.agq_deviance(th, x[nt:], nagq)[0]
        return lap.deviance(th, x[nt:])[0]

    x0 = np.concatenate([theta0, beta0])
    res = minimize(fun, x0, method="L-BFGS-B", bounds=bounds,
                   options={"ftol": 1e-14, "gtol": 1e-9, "maxiter": 2000, "eps": 1e-7})
    res2 = minimize(fun, res.x, method="Nelder-Mead",
                    options={"xatol": 1e-9, "fatol": 1e-11, "maxfev": 2000 + 400 * len(x0)})
    x, dev = (res2.x, float(res2.fun)) if res2.fun <= res.fun else (res.x, float(res.fun))
    x = np.concatenate([np.where(lb == 0, np.abs(x[:nt]), x[:nt]), x[nt:]])
    return x, dev, res, evals[0], fun


def _random_effects(lap, design, theta, beta) -> RandomEffects:
    b, C = lap.conditional(theta, beta)
    modes, covs, k = [], [], 0
    for t in design.terms:
        blk = b[k:k + t.q].reshape(t.n_levels, t.p)
        Ct = C[k:k + t.q, k:k + t.q]
        covs.append(np.stack([Ct[i * t.p:(i + 1) * t.p, i * t.p:(i + 1) * t.p] for i in range(t.n_levels)]))
        modes.append(blk)
        k += t.q
    return RandomEffects.from_arrays(design.terms, modes, covs)


def fit_laplace(design: Design, theta0=None, nagq: int = 1) -> GLMMResult:
    """ML fit of a binomial or Poisson GLMM by the Laplace approximation (glmer, ``nAGQ = 1``), or
    with ``nagq > 1`` by adaptive Gauss-Hermite quadrature (a single scalar term only, as glmer).

    Examples
    --------
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=counts, family="poisson").fit_ml()
    >>> r.method, r.family, r.link, r.converged
    ('ML', 'poisson', 'log', True)
    """
    t0 = time.perf_counter()
    with threadpool_limits(1):
        lap = LaplaceGLMM(design)
        nagq = validate_count(nagq, "nagq")
        if nagq > 1:
            t = design.terms
            if len(t) != 1 or not t[0].scalar:
                fail(f"nAGQ = {nagq} needs a single scalar random-effect term such as (1|g); "
                     "use nagq=1 (Laplace)")
            x0, _, _, _, _ = optimize_laplace(lap, theta0)  # start at the Laplace fit
            x, dev, res, nev, fun = optimize_laplace(lap, x0[:lap.n_theta], x0[lap.n_theta:], nagq=nagq)
        else:
            x, dev, res, nev, fun = optimize_laplace(lap, theta0)
        nt = lap.n_theta
        theta, beta = x[:nt], x[nt:]
        names = list(design.fe_names)
        H = _hessian(fun, x)
        try:
            cov = 2 * np.linalg.inv(H)
        except np.linalg.LinAlgError:
            cov = np.full_like(H, np.nan)
        vcomp = vcomp_from_theta(design.terms, theta, 1.0)
        cov_re = {}
        for t, S in zip(design.terms, covariances(design.terms, theta, 1.0)):
            if t.p > 1:
                labels = [c or t.name for c in t.coef_names]
                cov_re[t.name] = pd.DataFrame(S, index=labels, columns=labels)
        ranef = _random_effects(lap, design, theta, beta)
    boundary = tuple(zero_variance_components(design.terms, theta))
    opt = OptSummary(method="ML" if nagq == 1 else f"ML (nAGQ = {nagq})",
                     optimizer="scipy L-BFGS-B + Nelder-Mead", gradient="finite differences",
                     theta_start=tuple(map(float, theta_start(design.terms))),
                     theta_final=tuple(map(float, theta)), deviance=dev, n_evals=nev,
                     converged=bool(np.isfinite(dev)), message=str(res.message), boundary=boundary,
                     seconds=time.perf_counter() - t0, singular=tuple(singular_terms(design.terms, theta)))
    if boundary:
        warn(f"boundary (singular) fit: variance of {', '.join(boundary)} estimated as 0",
             BoundaryFitWarning)
    scalar_var_se = {}
    for t, s in zip(design.terms, lap.slices):
        if t.scalar:  # delta method: Var(theta^2) = (2 theta)^2 Var(theta)
            th = theta[s.start]
            scalar_var_se[t.component_names[0]] = (2 * th) ** 2 * cov[s.start, s.start]
    return GLMMResult(
        method="ML", design=design, family=design.family, link=FAMILIES[design.family],
        fe_params=pd.Series(beta, index=names, name="fe_params"),
        cov_fe=pd.DataFrame(cov[nt:, nt:], index=names, columns=names),
        vcomp=pd.Series(vcomp, name="vcomp"), cov_re=cov_re, llf=-0.5 * dev,
        converged=opt.converged, theta=theta, opt=opt, random_effects=ranef,
        vcomp_var=pd.Series(scalar_var_se, dtype=float).reindex(list(vcomp)), nagq=nagq,
    )
