"""Posterior mode of the marginal posterior (random effects integrated out), with a Laplace
approximation.

The joint mode of a hierarchical model (random effects included) degenerates at SD = 0; the
marginal mode does not. The density is maximised in the original (beta, sigma, SD) coordinates —
no log-Jacobian — through a log parameterisation for the optimiser, so that with flat priors
the mode equals ML (fixed effects kept) or REML (``integrate_fixed=True``).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..errors import fail
from ..kernel import Kernel, NotPositiveDefinite
from ..priors import PriorSet, resolve_priors
from ..results import ModeResult
from .information import hessian, safe_inverse
from .reml import optimize_deviance


def _neg_log_posterior(kernel: Kernel, ps: PriorSet, integrate_fixed: bool):
    """``x -> -log p(x | y)`` with ``x = (beta, log sigma, log SD)`` (no beta when integrated)."""
    design = kernel.design
    comps, p = design.component_names, design.k_fe

    def neg(x):
        beta = None if integrate_fixed else x[:p]
        log_s, log_t = (x[0], x[1:]) if integrate_fixed else (x[p], x[p + 1:])
        sigma, tau = np.exp(log_s), np.exp(log_t)
        try:
            if integrate_fixed:
                ll = -0.5 * kernel.objective(tau**2, sigma**2, reml=True)
            else:
                ll = kernel.loglik(beta, sigma, tau)
        except NotPositiveDefinite:
            return np.inf
        lp = float(ps.residual.logpdf(sigma)) + sum(float(ps.sd[c].logpdf(t)) for c, t in zip(comps, tau))
        if beta is not None:
            lp += sum(float(ps.fixed[n].logpdf(b)) for n, b in zip(design.fe_names, beta))
        v = ll + lp
        return -v if np.isfinite(v) else np.inf

    return neg


def _neg_log_posterior_grad(kernel: Kernel, ps: PriorSet, integrate_fixed: bool):
    """``x -> d(-log p(x | y)) / dx`` in the coordinates of :func:`_neg_log_posterior`: the
    likelihood's analytic gradient (:mod:`bayesvc.kernel.criteria`) plus the priors' (each prior is
    one smooth univariate density: a central difference of its log density, step 1e-6 relative,
    is accurate to ~1e-11)."""
    design = kernel.design
    comps, p = design.component_names, design.k_fe

    def prior_terms(beta, sigma, tau) -> np.ndarray:
        vals = [float(ps.residual.logpdf(sigma))] + [float(ps.sd[c].logpdf(t)) for c, t in zip(comps, tau)]
        if beta is not None:
            vals += [float(ps.fixed[n].logpdf(b)) for n, b in zip(design.fe_names, beta)]
        return np.array(vals)

    def prior_grad(beta, sigma, tau) -> np.ndarray:
        """d log prior / d (sigma, tau..., beta...), coordinate by coordinate (the prior is separable)."""
        x = np.concatenate([[sigma], tau, [] if beta is None else beta])
        h = 1e-6 * np.maximum(np.abs(x), 1.0)
        out = np.empty(len(x))
        for i in range(len(x)):
            up, dn = x.copy(), x.copy()
            up[i] += h[i]
            dn[i] -= h[i]
            split = (lambda z: (None if beta is None else z[1 + len(tau):], z[0], z[1:1 + len(tau)]))
            out[i] = (prior_terms(*split(up))[i] - prior_terms(*split(dn))[i]) / (2 * h[i])
        return out

    def grad(x):
        beta = None if integrate_fixed else x[:p]
        log_s, log_t = (x[0], x[1:]) if integrate_fixed else (x[p], x[p + 1:])
        sigma, tau = np.exp(log_s), np.exp(log_t)
        g_prior = prior_grad(beta, sigma, tau)
        if integrate_fixed:
            _, g = kernel.objective_grad(tau**2, sigma**2, reml=True)
            d_log_s = -g[-1] * sigma**2 + g_prior[0] * sigma
            d_log_t = -g[:-1] * tau**2 + g_prior[1:] * tau
            return -np.concatenate([[d_log_s], d_log_t])
        _, dbeta, dsigma, dtau = kernel.loglik_grad(beta, sigma, tau)
        d_log_s = (dsigma + g_prior[0]) * sigma
        d_log_t = (dtau + g_prior[1:1 + len(tau)]) * tau
        return -np.concatenate([dbeta + g_prior[1 + len(tau):], [d_log_s], d_log_t])

    return grad


def _start(kernel: Kernel, integrate_fixed: bool) -> np.ndarray:
    """The REML (``integrate_fixed``) or ML estimate as the optimizer's start, SDs kept off zero."""
    opt = optimize_deviance(kernel, reml=integrate_fixed)
    f = kernel.factorize(np.asarray(opt.theta_final))
    s0 = np.sqrt(f.pwrss / (kernel.n - kernel.p if integrate_fixed else kernel.n))
    t_start = np.maximum(np.asarray(opt.theta_final) * s0, 1e-3 * s0)
    return np.concatenate(([] if integrate_fixed else f.beta, [np.log(s0)], np.log(t_start)))


def fit_map(design, priors=None, integrate_fixed: bool = False, kernel: Kernel | None = None) -> ModeResult:
    """Mode of p(beta, sigma, SD | y) with the random effects integrated out.

    ``integrate_fixed=True`` also integrates the fixed effects out under a flat prior (the mode of
    p(sigma, SD | y)); with flat SD priors that is the REML estimate. ``design`` must have scalar
    variance components only; ``priors`` overrides the defaults (:mod:`bayesvc.priors`);
    ``kernel`` (``VCModel.kernel``) avoids rebuilding it.

    Examples
    --------
    >>> m = bvc.fit_map(model.design, priors={"g": bvc.HalfNormal(5.0)})
    >>> m.converged, m.priors.sd["g"]
    (True, HalfNormal(sigma=5.0))

    With flat priors and the fixed effects integrated out, the mode is the REML estimate:

    >>> flat = bvc.fit_map(model.design, priors={"g": "flat", "Residual": "flat"}, integrate_fixed=True)
    >>> bool(np.isclose(flat.vcomp["g"], reml.vcomp["g"], rtol=1e-3))
    True
    """
    if not design.scalar:
        fail("fit_map needs scalar variance components; correlated terms are not supported yet")
    t0 = time.perf_counter()
    kernel = kernel or Kernel(design)
    ps = resolve_priors(design, priors)
    comps, p = design.component_names, design.k_fe
    if integrate_fixed and not all(ps.fixed[n].flat for n in design.fe_names):
        ps = resolve_priors(design, {**{c: ps.sd[c] for c in comps}, "Residual": ps.residual,
                                     "fixed": "flat"})
    neg = _neg_log_posterior(kernel, ps, integrate_fixed)
    with threadpool_limits(1):
        x0 = _start(kernel, integrate_fixed)
        res = minimize(neg, x0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 5000})
        res = minimize(neg, res.x, method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-13, "maxfev": 4000 + 400 * len(x0)})
        x = res.x
        # differences of the analytic gradient: second differences of ``neg`` (noise ~1e-11 relative
        # of |log p|, over a step of 1e-4) would leave errors near 1e-3 on large data sets
        cov = safe_inverse(hessian(x=x, grad=_neg_log_posterior_grad(kernel, ps, integrate_fixed),
                                   rel_step=1e-5, abs_step=1e-5))
    names = ([] if integrate_fixed else [f"beta[{n}]" for n in design.fe_names]) + ["log_sigma"] + \
        [f"log_sd[{c}]" for c in comps]
    if integrate_fixed:
        sigma, tau = np.exp(x[0]), np.exp(x[1:])
        f = kernel.factorize(tau / sigma)
        beta = f.beta
        bse = np.sqrt(np.diag(sigma**2 * np.linalg.inv(f.Mxy[:p, :p])))
    else:
        beta, sigma, tau = x[:p], np.exp(x[p]), np.exp(x[p + 1:])
        bse = np.sqrt(np.abs(np.diag(cov)[:p]))
    return ModeResult(
        method="MAP", design=design, fe_params=pd.Series(beta, index=list(design.fe_names), name="fe_params"),
        bse_fe=pd.Series(bse, index=list(design.fe_names)), sd=pd.Series(tau, index=comps, name="sd"),
        vcomp=pd.Series(tau**2, index=comps, name="vcomp"), scale=float(sigma**2),
        cov=pd.DataFrame(cov, index=names, columns=names), log_density=float(-res.fun),
        converged=bool(np.isfinite(res.fun)), integrate_fixed=integrate_fixed, priors=ps,
        seconds=time.perf_counter() - t0)
