"""REML and ML with one residual SD per level of a factor (nlme's ``varIdent(form = ~ 1 | grp)``,
glmmTMB's ``dispformula = ~ grp``).

With ``sd_g = sigma * rho_g`` (``rho = 1`` at the reference level, the first in sorted order),
observation ``i`` has residual variance ``sigma^2 / w_i`` with ``w_i = rho_{g(i)}^{-2}``: the prior-
weight likelihood of :mod:`bayesvc.kernel` (cross-products of rows scaled by ``sqrt(w_i)``). The
ratios move the weights, so the criterion is profiled twice: for given log ratios, the weighted
REML/ML fit (:func:`~bayesvc.estimators.reml.fit_reml`) profiles theta, beta and sigma; an outer
L-BFGS-B (finite differences over the ``G - 1`` log ratios, then a Nelder-Mead polish) maximizes
the profiled log-likelihood.

Standard errors of the fixed effects and the component variances are those of the weighted fit at
the estimated ratios (conditional on them, as nlme's fixed-effect SEs are).
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from ..design import Design
from ..errors import BoundaryFitWarning
from ..results.residual_by import ResidualByResult
from .reml import fit_reml


def _weighted(design: Design, log_rho: np.ndarray) -> Design:
    rho = np.exp(np.append(0.0, log_rho))[design.residual_codes]
    w = 1.0 / rho**2 if design.weights is None else design.weights / rho**2
    return dataclasses.replace(design, weights=w, residual_codes=None, residual_levels=None)


def fit_residual_by(design: Design, reml: bool = True) -> ResidualByResult:
    """Fit by REML or ML with one residual SD per level of ``design.residual_levels``.

    Examples
    --------
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "h": np.tile(["a", "b"], 30)})
    >>> rng = np.random.default_rng(0)
    >>> d["y"] = rng.normal(size=10)[d.g] + np.where(d.h == "a", 0.5, 2.0) * rng.normal(size=60)
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", d, residual_by="h").fit_reml()
    >>> list(r.residual_sd.index), bool(r.residual_sd["a"] < r.residual_sd["b"])
    (['a', 'b'], True)
    """
    t0 = time.perf_counter()
    G = len(design.residual_levels)

    def negll(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundaryFitWarning)
            return -fit_reml(_weighted(design, x), reml=reml).llf

    res = minimize(negll, np.zeros(G - 1), method="L-BFGS-B", options={"ftol": 1e-14, "gtol": 1e-9,
                                                                      "eps": 1e-7})
    res2 = minimize(negll, res.x, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12})
    x = res2.x if res2.fun <= res.fun else res.x
    inner = fit_reml(_weighted(design, x), reml=reml)
    rho = np.exp(np.append(0.0, x))
    sd = pd.Series(np.sqrt(inner.scale) * rho, index=list(design.residual_levels), name="residual_sd")
    fields = {f.name: getattr(inner, f.name) for f in dataclasses.fields(inner)}
    fields["design"] = design
    # profiles and tests would hold the ratios fixed: not offered until they profile them too
    fields["inference"] = None
    return ResidualByResult(**fields, residual_sd=sd, residual_by=design.residual_name,
                            seconds=time.perf_counter() - t0)
