"""One immutable result object per fit, with shared accessors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RandomEffects:
    """Tidy table of random effects: one row per (component, level).

    ``table`` has columns ``component, term, level, coef`` and estimator-specific value columns
    (``mode, cond_var`` for REML/ML; posterior summaries for NUTS).
    """

    table: pd.DataFrame

    @classmethod
    def from_arrays(cls, terms, modes, cond_covs) -> "RandomEffects":
        frames = []
        for t, b, C in zip(terms, modes, cond_covs):
            for j, comp in enumerate(t.component_names):
                frames.append(pd.DataFrame({
                    "component": comp, "term": t.name, "level": t.levels,
                    "coef": t.coef_names[j] or t.name,
                    "mode": b[:, j], "cond_var": C[:, j, j],
                }))
        return cls(pd.concat(frames, ignore_index=True))

    def __getitem__(self, component: str) -> pd.DataFrame:
        out = self.table[self.table.component == component]
        if out.empty:
            raise KeyError(f"no random-effect component {component!r}; have {self.components}")
        return out.set_index("level")

    @property
    def components(self) -> list[str]:
        return list(dict.fromkeys(self.table.component))

    def __repr__(self) -> str:
        return f"RandomEffects({len(self.table)} rows; components {self.components})"


@dataclass(frozen=True)
class REMLResult:
    """A REML or ML fit.

    Attributes
    ----------
    method : {'REML', 'ML'}
    fe_params : pandas.Series
        Fixed-effect estimates.
    cov_fe : pandas.DataFrame
        Their covariance, ``scale * (X' V^{-1} X)^{-1}`` at the estimates.
    vcomp : pandas.Series
        Variance of each random-effect component (one per random-effect column of each term).
    vcomp_se : pandas.Series
        Delta-method standard errors of ``vcomp`` (NaN on the boundary or for correlated terms).
    scale : float
        Residual variance.
    cov_re : dict of DataFrame
        Covariance matrix of each correlated term.
    llf : float
        Maximized (restricted) log-likelihood, on lme4's scale.
    converged : bool
    theta : ndarray
        Relative covariance factor parameters (lme4's theta).
    opt : OptSummary
        How the fit was obtained.
    random_effects : RandomEffects
        Conditional modes and conditional variances.
    """

    method: str
    design: object = field(repr=False)
    fe_params: pd.Series
    cov_fe: pd.DataFrame = field(repr=False)
    vcomp: pd.Series
    vcomp_se: pd.Series = field(repr=False)
    scale: float
    scale_se: float = field(repr=False)
    cov_re: dict = field(repr=False)
    llf: float
    converged: bool
    theta: np.ndarray = field(repr=False)
    opt: object = field(repr=False)
    random_effects: RandomEffects = field(repr=False)

    @property
    def bse_fe(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index, name="bse_fe")

    @property
    def variances(self) -> pd.Series:
        """Component variances plus the residual variance (``"Residual"``)."""
        return pd.concat([self.vcomp, pd.Series({"Residual": self.scale})])

    @property
    def boundary(self) -> tuple[str, ...]:
        return self.opt.boundary

    @property
    def nobs(self) -> int:
        return self.design.nobs

    def ranef(self) -> RandomEffects:
        return self.random_effects

    @property
    def aic(self) -> float:
        return -2 * self.llf + 2 * (len(self.fe_params) + len(self.theta) + 1)

    def summary(self, alpha: float = 0.05):
        """statsmodels' MixedLM summary layout (see :mod:`bayesvc.summary`)."""
        from .summary import reml_summary

        return reml_summary(self, alpha=alpha)

    def to_dict(self) -> dict:
        """The CLI's JSON contract."""
        covs = {}
        for name, C in self.cov_re.items():
            cols = list(C.columns)
            for i in range(len(cols)):
                for j in range(i):
                    covs[f"{name}: {cols[j]},{cols[i]}"] = float(C.iloc[i, j])
        return {
            "method": self.method.lower(),
            "llf": float(self.llf),
            "fe_params": {k: float(v) for k, v in self.fe_params.items()},
            "variances": {**{k: float(v) for k, v in self.vcomp.items()}, "Residual": float(self.scale)},
            "covariances": covs,
            "converged": bool(self.converged),
        }
