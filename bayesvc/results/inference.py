"""Records of frequentist inference on a REML/ML fit: :class:`ComponentTest` (is a variance
component zero?) and :class:`ConfIntResult` (profile-likelihood or Wald intervals). Built by
:mod:`bayesvc.estimators.lrt` and :mod:`bayesvc.estimators.profile`; immutable."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: the quantiles of the null sample that :attr:`ComponentTest.null_summary` reports
NULL_QUANTILES = (0.5, 0.9, 0.95, 0.99)


def _num(x):
    x = float(x)
    return x if math.isfinite(x) else None


@dataclass(frozen=True)
class ComponentTest:
    """A test of ``H0``: the variance of one component is zero.

    Attributes
    ----------
    component : str
    statistic : float
        ``2 (llf - llf0)`` of the fit against the fit without the component, on the fit's scale:
        the restricted likelihood ratio (``"RLRT"``) for REML fits, the likelihood ratio (``"LRT"``)
        for ML fits; 0 when the component is estimated as zero.
    statistic_name : {'RLRT', 'LRT'}
    p_value : float
        ``P(T > statistic)`` under the null (``P(T >= 0) = 1`` for a zero statistic); the bootstrap
        uses ``(1 + #{T* >= statistic}) / (1 + nsim)``.
    method : {'exact', 'bootstrap', 'chibar'}
    nsim : int
        Simulated null statistics (0 for ``"chibar"``).
    mc_se : float
        Monte Carlo standard error of ``p_value``, ``sqrt(p (1 - p) / nsim)`` (0 without simulation).
    approximate : bool
        ``True`` where the null distribution is an approximation: the chi-bar-squared asymptotic,
        and the exact test of a component in the presence of others (Greven et al. 2008).
    reference : str
        How the null distribution was obtained, in words.
    criterion : {'REML', 'ML'}
    seed : int or None
        The seed of the simulation.
    null_sample : ndarray
        The simulated null statistics (empty for ``"chibar"``).
    executor : str
        Where bootstrap refits ran (``"serial"``, ``"threads(n)"``, ...); empty otherwise.

    Examples
    --------
    >>> t = reml.test_component("g", method="exact", nsim=10_000, seed=1)
    >>> t.statistic_name, t.method, t.nsim, t.approximate, t.p_value < 1e-3
    ('RLRT', 'exact', 10000, False, True)
    >>> sorted(t.to_dict())[:5]
    ['approximate', 'component', 'criterion', 'mc_se', 'method']
    """

    component: str
    statistic: float
    statistic_name: str
    p_value: float
    method: str
    nsim: int
    mc_se: float
    approximate: bool
    reference: str
    criterion: str
    seed: int | None = None
    null_sample: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    executor: str = ""

    @property
    def null_summary(self) -> dict:
        """``{n, mean, var, prob_zero, quantiles}`` of :attr:`null_sample` (as RLRsim's sample is
        summarised in ``tests/data/rlrsim_reference.json``); empty without a sample."""
        s = self.null_sample
        if s.size == 0:
            return {}
        return {"n": int(s.size), "mean": float(s.mean()), "var": float(s.var(ddof=1)),
                "prob_zero": float(np.mean(s == 0)),
                "quantiles": {f"{q:g}": float(np.quantile(s, q)) for q in NULL_QUANTILES}}

    def to_dict(self) -> dict:
        """The CLI's JSON contract (``component, statistic, p_value, method, nsim``) plus
        ``statistic_name, mc_se, approximate, reference, criterion, seed``."""
        return {"component": self.component, "statistic": float(self.statistic),
                "p_value": float(self.p_value), "method": self.method, "nsim": int(self.nsim),
                "statistic_name": self.statistic_name, "mc_se": float(self.mc_se),
                "approximate": bool(self.approximate), "reference": self.reference,
                "criterion": self.criterion, "seed": self.seed}

    def __str__(self) -> str:
        mc = f" (Monte Carlo SE {self.mc_se:.2g}, {self.nsim} simulations)" if self.nsim else ""
        return (f"{self.statistic_name} test of {self.component!r} = 0 ({self.criterion} fit): "
                f"statistic {self.statistic:.4g}, p = {self.p_value:.4g}{mc}\n"
                f"null distribution: {self.reference}")


@dataclass(frozen=True)
class ConfIntResult:
    """Confidence intervals for the SDs, the residual SD and the fixed effects of a REML/ML fit.

    Attributes
    ----------
    table : DataFrame
        One row per component SD (named as the component), ``"Residual"`` (the residual SD) and
        fixed effect, and (correlated terms) one per correlation, ``"<term>: <coef>,<coef> (corr)"``:
        ``kind`` (``sd``, ``cor``, ``sigma``, ``fixed``), ``estimate``, ``lower``, ``upper``,
        ``criterion`` (the likelihood that was profiled, ``REML`` or ``ML``, or ``Wald``),
        ``at_zero`` (the lower end is 0 because the profile stays below the critical value down to
        zero, or a Wald interval was cut at zero) and ``note``.
    level : float
    method : {'profile', 'wald'}
    criterion : {'REML', 'ML'}
        The fit's criterion.
    curves : dict of DataFrame
        Profile method: per parameter, the evaluated points ``value, zeta`` (the signed square root
        of the deviance difference), for :func:`bayesvc.views.plots.plot_profile`.

    Examples
    --------
    >>> ci = reml.conf_int(method="profile")
    >>> list(ci.table.index), ci.method, ci.criterion, list(ci.table.criterion)
    (['g', 'Residual', 'Intercept'], 'profile', 'REML', ['REML', 'REML', 'ML'])
    >>> lo, hi = ci.to_dict()["g"]; bool(0 < lo < np.sqrt(reml.vcomp["g"]) < hi)
    True
    """

    table: pd.DataFrame
    level: float
    method: str
    criterion: str
    curves: dict = field(default_factory=dict, repr=False)

    @property
    def lower_at_zero(self) -> list[str]:
        """Parameters whose interval reaches zero (:attr:`table`'s ``at_zero``)."""
        return [k for k, v in self.table.at_zero.items() if v]

    def to_dict(self) -> dict:
        """``{parameter: [lower, upper]}`` (SD scale for components and the residual; NaN -> None),
        the ``"conf_int"`` of the CLI's ``fit --ci``."""
        return {str(k): [_num(r.lower), _num(r.upper)] for k, r in self.table.iterrows()}

    def __str__(self) -> str:
        t = self.table[["estimate", "lower", "upper", "criterion"]].copy()
        t["at zero"] = ["yes" if z else "" for z in self.table.at_zero]
        head = (f"{100 * self.level:g}% {self.method} confidence intervals ({self.criterion} fit; SD scale "
                "for components and the residual)")
        notes = [f"  {k}: {n}" for k, n in self.table.note.items() if n]
        return "\n".join([head, t.to_string(float_format=lambda v: f"{v:.4g}")] + notes)
