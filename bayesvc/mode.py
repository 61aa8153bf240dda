"""Posterior mode of the marginal posterior (random effects integrated out), with a Laplace
approximation.

The joint mode of a hierarchical model (random effects included) degenerates at SD = 0; the
marginal mode does not. The density is maximised in the original (beta, sigma, SD) coordinates —
no log-Jacobian — through a log parameterisation for the optimiser, so that with flat priors
the mode equals ML (fixed effects kept) or REML (``integrate_fixed=True``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from .checks import fail
from .likelihood import LOG2PI, Kernel, NotPositiveDefinite
from .priors import resolve_priors


@dataclass(frozen=True)
class ModeResult:
    """Posterior mode with a Laplace covariance (on the log-SD scale for SDs).

    Attributes
    ----------
    fe_params : Series
        Fixed effects at the mode (for ``integrate_fixed=True`` their conditional mode given the SDs).
    sd, vcomp : Series
        Component SDs and variances at the mode.
    scale : float
        Residual variance at the mode.
    cov : DataFrame
        Inverse negative Hessian of the log posterior in (beta, log sigma, log SD) coordinates.
    log_density : float
        Log posterior density (up to a constant) at the mode.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> mode = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_map()
    >>> mode.method, mode.converged, list(mode.sd.index)
    ('MAP', True, ['g'])
    >>> bool(np.allclose(mode.vcomp, mode.sd ** 2))
    True
    >>> list(mode.cov.index)
    ['beta[Intercept]', 'log_sigma', 'log_sd[g]']
    """

    method: str
    design: object = field(repr=False)
    fe_params: pd.Series
    bse_fe: pd.Series = field(repr=False)
    sd: pd.Series
    vcomp: pd.Series
    scale: float
    cov: pd.DataFrame = field(repr=False)
    log_density: float
    converged: bool
    integrate_fixed: bool
    priors: object = field(repr=False)
    seconds: float = field(repr=False)

    @property
    def variances(self) -> pd.Series:
        """Component variances plus the residual variance (``"Residual"``) at the mode.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> mode = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_map()
        >>> list(mode.variances.index)
        ['g', 'Residual']
        """
        return pd.concat([self.vcomp, pd.Series({"Residual": self.scale})])

    @property
    def vcomp_interval(self) -> pd.DataFrame:
        """95% Laplace intervals of the variances (normal on the log-SD scale).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> mode = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_map()
        >>> iv = mode.vcomp_interval
        >>> list(iv.columns), bool(iv.lower["g"] < mode.vcomp["g"] < iv.upper["g"])
        (['lower', 'upper'], True)
        """
        rows = {}
        for c in self.vcomp.index:
            se = np.sqrt(self.cov.loc[f"log_sd[{c}]", f"log_sd[{c}]"])
            rows[c] = (self.vcomp[c] * np.exp(-2 * 1.96 * se), self.vcomp[c] * np.exp(2 * 1.96 * se))
        return pd.DataFrame(rows, index=["lower", "upper"]).T

    def summary(self, alpha: float = 0.05):
        """The posterior mode in statsmodels' MixedLM summary layout (:mod:`bayesvc.summary_bayes`).

        Fixed effects get Laplace (normal) intervals, variances intervals that are normal on the
        log-SD scale.

        Parameters
        ----------
        alpha : float, default 0.05
            The intervals are at level ``1 - alpha``.

        Returns
        -------
        Summary

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> mode = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_map()
        >>> s = mode.summary()
        >>> s.title
        'Mixed Linear Model Posterior Mode'
        >>> list(s.tables["params"].index)
        ['Intercept', 'g Var']
        """
        from .summary_bayes import mode_summary

        return mode_summary(self, alpha=alpha)

    def to_dict(self) -> dict:
        """The CLI's JSON contract (as :meth:`bayesvc.results.REMLResult.to_dict`).

        ``llf`` holds the log posterior density at the mode; ``method`` is ``"map"``.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> mode = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_map()
        >>> d = mode.to_dict()
        >>> d["method"], list(d["variances"]), d["converged"]
        ('map', ['g', 'Residual'], True)
        """
        return {"method": "map", "llf": float(self.log_density),
                "fe_params": {k: float(v) for k, v in self.fe_params.items()},
                "variances": {**{k: float(v) for k, v in self.vcomp.items()}, "Residual": float(self.scale)},
                "covariances": {}, "converged": bool(self.converged)}


def fit_map(design, priors=None, integrate_fixed: bool = False, kernel: Kernel | None = None) -> ModeResult:
    """Mode of p(beta, sigma, SD | y) with the random effects integrated out.

    ``integrate_fixed=True`` also integrates the fixed effects out under a flat prior (the mode of
    p(sigma, SD | y)); with flat SD priors that is the REML estimate.

    Parameters
    ----------
    design : Design
        The model's design (``VCModel.design``); scalar variance components only.
    priors : dict or PriorSet, optional
        Overrides of the default priors (see :mod:`bayesvc.priors`).
    integrate_fixed : bool, default False
    kernel : Kernel, optional
        The model's kernel (``VCModel.kernel``), to avoid rebuilding it.

    Returns
    -------
    ModeResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> mode = bvc.fit_map(model.design, priors={"g": bvc.HalfNormal(5.0)})
    >>> mode.converged, mode.priors.sd["g"]
    (True, HalfNormal(sigma=5.0))

    With flat priors and the fixed effects integrated out, the mode is the REML estimate:

    >>> flat = bvc.fit_map(model.design, priors={"g": "flat", "Residual": "flat"}, integrate_fixed=True)
    >>> bool(np.isclose(flat.vcomp["g"], model.fit_reml().vcomp["g"], rtol=1e-3))
    True
    """
    from threadpoolctl import threadpool_limits

    if not all(t.p == 1 for t in design.terms):
        fail("fit_map needs scalar variance components; correlated terms are not supported yet")
    t0 = time.perf_counter()
    kernel = kernel or Kernel(design)
    ps = resolve_priors(design, priors)
    comps = design.component_names
    p = design.k_fe
    if integrate_fixed and not all(ps.fixed[n].flat for n in design.fe_names):
        ps = resolve_priors(design, {**{c: ps.sd[c] for c in comps}, "Residual": ps.residual, "fixed": "flat"})

    def log_prior(sigma, tau, beta):
        lp = float(ps.residual.logpdf(sigma)) + sum(float(ps.sd[c].logpdf(t)) for c, t in zip(comps, tau))
        if beta is not None:
            lp += sum(float(ps.fixed[n].logpdf(b)) for n, b in zip(design.fe_names, beta))
        return lp

    def neg(x):
        if integrate_fixed:
            beta = None
            log_s, log_t = x[0], x[1:]
        else:
            beta, log_s, log_t = x[:p], x[p], x[p + 1:]
        sigma, tau = np.exp(log_s), np.exp(log_t)
        try:
            if integrate_fixed:
                f = kernel.factor(tau / sigma)
                s2 = sigma**2
                nu = kernel.n - p
                ll = -0.5 * (nu * (LOG2PI + np.log(s2)) + f.logdet_A + f.logdet_RX2 + f.pwrss / s2)
            else:
                ll = kernel.loglik(beta, sigma, tau)
        except NotPositiveDefinite:
            return np.inf
        v = ll + log_prior(sigma, tau, beta)
        return -v if np.isfinite(v) else np.inf

    with threadpool_limits(1):
        from .reml import fit_reml

        start = fit_reml(design, reml=integrate_fixed, kernel=kernel)
        s0 = np.sqrt(start.scale)
        t_start = np.maximum(np.sqrt(start.vcomp.to_numpy()), 1e-3 * s0)
        x0 = np.concatenate(([] if integrate_fixed else start.fe_params.to_numpy(), [np.log(s0)], np.log(t_start)))
        res = minimize(neg, x0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-9, "maxiter": 5000})
        res = minimize(neg, res.x, method="Nelder-Mead",
                       options={"xatol": 1e-10, "fatol": 1e-13, "maxfev": 4000 + 400 * len(x0)})
        x = res.x
        H = _hessian(neg, x)
    names = ([] if integrate_fixed else [f"beta[{n}]" for n in design.fe_names]) + ["log_sigma"] + \
        [f"log_sd[{c}]" for c in comps]
    try:
        cov = np.linalg.inv(H)
    except np.linalg.LinAlgError:
        cov = np.full_like(H, np.nan)
    if integrate_fixed:
        sigma, tau = np.exp(x[0]), np.exp(x[1:])
        f = kernel.factor(tau / sigma)
        M = f.Mxy
        beta = np.linalg.solve(M[:p, :p], M[:p, p])
        bse = np.sqrt(np.diag(sigma**2 * np.linalg.inv(M[:p, :p])))
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


def _hessian(f, x, h=1e-4):
    k = len(x)
    H = np.empty((k, k))
    E = np.eye(k) * h
    for a in range(k):
        for b in range(a, k):
            H[a, b] = H[b, a] = (f(x + E[a] + E[b]) - f(x + E[a] - E[b]) - f(x - E[a] + E[b])
                                 + f(x - E[a] - E[b])) / (4 * h * h)
    return H
