"""The posterior mode of a binomial or Poisson GLMM with the random effects integrated out by the
Laplace approximation (the GLMM counterpart of :func:`bayesvc.fit_map`).

The mode of ``L_Laplace(sd, beta) p(beta) p(sd)`` (:class:`~bayesvc.kernel.glmm.LaplaceGLMM`,
latent-scale default priors of :func:`bayesvc.priors.glmm_priors`), found by L-BFGS-B then
Nelder-Mead in ``(beta, log sd)``, with a Laplace covariance from central second differences there.
``scale`` is the latent residual variance (:mod:`bayesvc.results.glmm`); ``cov`` holds a
``log_sigma`` row of zeros so that variance shares read the mode as for a linear mixed model.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from ..errors import fail
from ..kernel.glmm import LaplaceGLMM
from ..priors import glmm_priors
from ..results import ModeResult
from ..results.glmm import latent_residual_variance
from .laplace import _hessian, fit_laplace


def fit_map_glmm(design, priors=None) -> ModeResult:
    """Posterior mode of a GLMM, random effects integrated out by Laplace (module docstring).

    Examples
    --------
    >>> m = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=counts, family="poisson").fit_map()
    >>> m.method, m.converged, list(m.cov.index)
    ('MAP', True, ['beta[Intercept]', 'log_sigma', 'log_sd[g]'])
    """
    if not design.scalar:
        fail("fit_map needs scalar variance components; correlated terms are not supported yet")
    t0 = time.perf_counter()
    ps = glmm_priors(design, priors)
    comps, fe, p = design.component_names, list(design.fe_names), design.k_fe
    lap = LaplaceGLMM(design)

    def neg(x):
        beta, tau = x[:p], np.exp(x[p:])
        dev = lap.deviance(tau, beta)[0]
        lp = sum(float(ps.fixed[n].logpdf(b)) for n, b in zip(fe, beta))
        lp += sum(float(ps.sd[c].logpdf(t)) for c, t in zip(comps, tau))
        v = -0.5 * dev + lp
        return -v if np.isfinite(v) else np.inf

    with threadpool_limits(1):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ml = fit_laplace(design)
        x0 = np.concatenate([ml.fe_params.to_numpy(), np.log(np.maximum(np.sqrt(ml.vcomp.to_numpy()), 0.05))])
        res = minimize(neg, x0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9, "eps": 1e-7})
        res = minimize(neg, res.x, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12,
                                                                  "maxfev": 2000 + 400 * len(x0)})
        x = res.x
        H = _hessian(neg, x)
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    k = len(x)
    full = np.zeros((k + 1, k + 1))
    idx = list(range(p)) + list(range(p + 1, k + 1))
    full[np.ix_(idx, idx)] = cov
    names = [f"beta[{n}]" for n in fe] + ["log_sigma"] + [f"log_sd[{c}]" for c in comps]
    beta, tau = x[:p], np.exp(x[p:])
    vcomp = pd.Series(tau**2, index=comps, name="vcomp")
    return ModeResult(
        method="MAP", design=design, fe_params=pd.Series(beta, index=fe, name="fe_params"),
        bse_fe=pd.Series(np.sqrt(np.abs(np.diag(cov)[:p])), index=fe), sd=pd.Series(tau, index=comps, name="sd"),
        vcomp=vcomp, scale=latent_residual_variance(design.family, design, beta, vcomp),
        cov=pd.DataFrame(full, index=names, columns=names), log_density=float(-res.fun),
        converged=bool(np.isfinite(res.fun)), integrate_fixed=False, priors=ps,
        seconds=time.perf_counter() - t0)
