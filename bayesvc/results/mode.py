"""The posterior-mode result (:func:`bayesvc.fit_map`): the mode of the marginal posterior with a
Laplace covariance. An immutable record; no fitting."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..design import Design
from ..priors import PriorSet
from ..validate import validate_alpha
from .summaries import mode_summary, variance_dict


@dataclass(frozen=True)
class ModeResult:
    """Posterior mode with a Laplace covariance (on the log-SD scale for SDs).

    Attributes
    ----------
    fe_params, bse_fe : Series
        Fixed effects at the mode (for ``integrate_fixed=True`` their conditional mode given the
        SDs) and their Laplace standard errors.
    sd, vcomp : Series
        Component SDs and variances at the mode.
    scale : float
        Residual variance at the mode.
    cov : DataFrame
        Inverse negative Hessian of the log posterior in (beta, log sigma, log SD) coordinates.
    log_density : float
        Log posterior density (up to a constant) at the mode.
    priors : PriorSet
        The priors used.

    Examples
    --------
    >>> mode.method, mode.converged, list(mode.sd.index), bool(np.allclose(mode.vcomp, mode.sd ** 2))
    ('MAP', True, ['g'], True)
    >>> list(mode.cov.index), list(mode.variances.index)
    (['beta[Intercept]', 'log_sigma', 'log_sd[g]'], ['g', 'Residual'])
    >>> iv = mode.vcomp_ci(alpha=0.1)
    >>> list(iv.columns), bool(iv.lower["g"] < mode.vcomp["g"] < iv.upper["g"])
    (['lower', 'upper'], True)
    >>> bool((mode.vcomp_ci(0.1).upper < mode.vcomp_interval.upper).all())   # 90% inside 95%
    True
    """

    method: str
    design: Design = field(repr=False)
    fe_params: pd.Series
    bse_fe: pd.Series = field(repr=False)
    sd: pd.Series
    vcomp: pd.Series
    scale: float
    cov: pd.DataFrame = field(repr=False)
    log_density: float
    converged: bool
    integrate_fixed: bool
    priors: PriorSet = field(repr=False)
    seconds: float = field(repr=False)

    @property
    def variances(self) -> pd.Series:
        """Component variances plus the residual variance (``"Residual"``) at the mode."""
        return pd.concat([self.vcomp, pd.Series({"Residual": self.scale})])

    def vcomp_ci(self, alpha: float = 0.05) -> pd.DataFrame:
        """Laplace intervals of the variances at level ``1 - alpha`` (normal on the log-SD scale)."""
        q = -norm.ppf(validate_alpha(alpha) / 2)
        rows = {}
        for c in self.vcomp.index:
            se = np.sqrt(self.cov.loc[f"log_sd[{c}]", f"log_sd[{c}]"])
            rows[c] = (self.vcomp[c] * np.exp(-2 * q * se), self.vcomp[c] * np.exp(2 * q * se))
        return pd.DataFrame(rows, index=["lower", "upper"]).T

    @property
    def vcomp_interval(self) -> pd.DataFrame:
        """95% Laplace intervals of the variances (``vcomp_ci(0.05)``)."""
        return self.vcomp_ci(0.05)

    def summary(self, alpha: float = 0.05):
        """The posterior mode in statsmodels' MixedLM summary layout: Laplace (normal) intervals for
        the fixed effects, intervals normal on the log-SD scale for the variances, at ``1 - alpha``.

        Examples
        --------
        >>> s = mode.summary(alpha=0.1)
        >>> s.title, list(s.tables["params"].index), list(s.tables["params"].columns)[2:]
        ('Mixed Linear Model Posterior Mode', ['Intercept', 'g Var'], ['[0.05', '0.95]'])
        """
        return mode_summary(self, alpha=alpha)

    def to_dict(self) -> dict:
        """The CLI's JSON contract (as :meth:`bayesvc.REMLResult.to_dict`); ``llf`` holds the log
        posterior density at the mode, ``method`` is ``"map"``.

        Examples
        --------
        >>> d = mode.to_dict()
        >>> d["method"], list(d["variances"]), d["converged"]
        ('map', ['g', 'Residual'], True)
        """
        return {"method": "map", "llf": float(self.log_density),
                "fe_params": {k: float(v) for k, v in self.fe_params.items()},
                "variances": variance_dict(self.vcomp, self.scale), "covariances": {},
                "converged": bool(self.converged)}
