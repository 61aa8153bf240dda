"""The Laplace ML fit of a binomial or Poisson GLMM: :class:`GLMMResult`. A record; no fitting.

There is no residual variance on the response scale. On the latent (link) scale Nakagawa and
Schielzeth (2013; Nakagawa, Johnson and Schielzeth 2017) give each family a distribution-specific
residual variance, which :attr:`GLMMResult.scale` holds so that variance shares and the comparison
table read a GLMM as they read a linear mixed model:

* binomial, logit link: ``pi^2 / 3`` (the logistic distribution's variance);
* Poisson, log link: ``log(1 + 1 / lambda)`` (the lognormal approximation), with
  ``lambda = exp(mean(offset + X beta) + sum(vcomp) / 2)`` the expected count.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design import Design
from ..design.covariance import covariance_name
from .reml import FitAccessors, OptSummary, RandomEffects
from .summaries import reml_summary
from .table import Summary


def latent_residual_variance(family: str, design: Design, fe_params, vcomp) -> float:
    """The distribution-specific residual variance on the latent scale (module docstring).

    Examples
    --------
    >>> round(latent_residual_variance("binomial", None, None, None), 4)
    3.2899
    """
    if family == "binomial":
        return float(np.pi**2 / 3)
    off = 0.0 if design.offset is None else design.offset
    lam = np.exp(np.mean(off + design.X @ np.asarray(fe_params)) + 0.5 * float(np.sum(vcomp)))
    return float(np.log1p(1.0 / lam))


@dataclass(frozen=True)
class GLMMResult(FitAccessors):
    """A binomial or Poisson GLMM fitted by ML with the Laplace approximation (glmer, nAGQ = 1).

    Attributes
    ----------
    method : 'ML'
    design : Design
    family, link : str
        ``"binomial"``/``"logit"`` or ``"poisson"``/``"log"``.
    fe_params : pandas.Series
    cov_fe : pandas.DataFrame
        From the inverse Hessian of the Laplace deviance in (theta, beta), as glmer's ``vcov``.
    vcomp : pandas.Series
        Variance of each random-effect component (latent scale).
    cov_re : dict of DataFrame
        Covariance matrix of each correlated term.
    llf : float
        Laplace log-likelihood, on lme4's scale (``logLik`` of the glmer fit).
    converged : bool
    theta : ndarray
        lme4's theta (here the component SDs of scalar terms: there is no residual to scale by).
    opt : OptSummary
    random_effects : RandomEffects
        Conditional modes and conditional variances.
    vcomp_var : pandas.Series
        Sampling variance of each scalar component's variance (delta method from theta).
    nagq : int
        1 for the Laplace approximation, more for adaptive Gauss-Hermite quadrature with that many
        nodes (the comparison table labels the fit ``"ML (Laplace)"`` or ``"ML (AGQ, n nodes)"``).

    Examples
    --------
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=counts, family="poisson").fit_ml()
    >>> list(r.to_dict()["variances"]), r.summary().header[0]
    (['g'], ('Model:', 'GLMM'))
    """

    method: str
    design: Design = field(repr=False)
    family: str
    link: str
    fe_params: pd.Series
    cov_fe: pd.DataFrame = field(repr=False)
    vcomp: pd.Series
    cov_re: dict = field(repr=False)
    llf: float
    converged: bool
    theta: np.ndarray = field(repr=False)
    opt: OptSummary = field(repr=False)
    random_effects: RandomEffects = field(repr=False)
    vcomp_var: pd.Series = field(repr=False, default=None)
    nagq: int = 1

    @property
    def bse_fe(self) -> pd.Series:
        """Standard errors of the fixed effects."""
        return pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index, name="bse_fe")

    @property
    def vcomp_se(self) -> pd.Series:
        """Standard errors of ``vcomp`` (scalar terms; NaN otherwise)."""
        return np.sqrt(self.vcomp_var.reindex(self.vcomp.index)).rename("vcomp_se")

    @property
    def scale(self) -> float:
        """The latent-scale residual variance of Nakagawa and Schielzeth (module docstring)."""
        return latent_residual_variance(self.family, self.design, self.fe_params, self.vcomp)

    @property
    def cov_vc(self) -> pd.DataFrame:
        """Covariance of the scalar component variances; the latent residual variance is held
        fixed (variance 0), so variance shares get delta-method intervals."""
        v = self.vcomp_var.dropna()
        names = list(v.index) + ["Residual"]
        return pd.DataFrame(np.diag(np.append(v.to_numpy(), 0.0)), index=names, columns=names)

    @property
    def scale_se(self) -> float:
        """0: the latent residual variance is a function of the family, not estimated (for the
        comparison table)."""
        return 0.0

    @property
    def cov_re_se(self) -> dict:
        """No standard errors for correlated terms' covariances (NaN)."""
        return {k: v * np.nan for k, v in self.cov_re.items()}

    @property
    def aic(self) -> float:
        """``-2 llf + 2 k`` with ``k`` fixed effects + thetas (glmer's AIC)."""
        return -2 * self.llf + 2 * (len(self.fe_params) + len(self.theta))

    def summary(self, alpha: float = 0.05) -> Summary:
        """The MixedLM layout with the family and link in the header and the latent residual
        variance in place of the scale."""
        s = reml_summary(self, alpha=alpha, title="Generalized Linear Mixed Model Results")
        header = [("Model:", "GLMM"), *[h for h in s.header if h[0] not in ("Model:", "Scale:")]]
        header[4:4] = [("Family:", self.family), ("Link:", self.link)]
        header.append(("Latent resid. var:", self.scale))
        return Summary(s.title, header, s.tables, s.float_formats,
                       notes=["Laplace approximation (glmer nAGQ = 1); variances on the latent "
                              f"({self.link}) scale."])

    def __str__(self) -> str:
        return str(self.summary())

    def to_dict(self) -> dict:
        """The CLI's JSON contract: ``method, family, link, llf, fe_params, variances (no
        Residual), covariances, converged``."""
        covs = {}
        for t in self.design.terms:
            if t.name in self.cov_re:
                C = self.cov_re[t.name].to_numpy()
                for i in range(t.p):
                    for j in range(i):
                        covs[covariance_name(t, i, j)] = float(C[i, j])
        return {
            "method": "ml", "family": self.family, "link": self.link, "llf": float(self.llf),
            "fe_params": {k: float(v) for k, v in self.fe_params.items()},
            "variances": {k: float(v) for k, v in self.vcomp.items()},
            "covariances": covs, "converged": bool(self.converged),
        }
