"""The REML/ML result: :class:`OptSummary` (how the fit was obtained), :class:`RandomEffects`
(conditional modes and variances) and :class:`REMLResult`. Immutable records; no fitting."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design import Design
from ..errors import fail
from ..design.covariance import coef_labels, covariance_name
from .summaries import reml_summary, variance_dict


@dataclass(frozen=True)
class OptSummary:
    """How a REML/ML fit was obtained (cf. MixedModels.jl's ``OptSummary``).

    Attributes
    ----------
    method : {'REML', 'ML'}
    optimizer : str
    gradient : {'analytic', 'finite differences'}
    theta_start, theta_final : tuple of float
        Starting and final theta.
    deviance : float
        Minimized profiled deviance.
    n_evals : int
        Deviance evaluations.
    converged : bool
    message : str
        The optimizer's message.
    boundary : tuple of str
        Components whose variance is exactly zero at the optimum.
    seconds : float
    xtol_zero, ftol_zero : float
        Boundary snapping: a diagonal theta below ``xtol_zero`` is set to zero when the deviance
        rises by at most ``ftol_zero`` (MixedModels.jl's ``xtol_zero_abs``, ``ftol_zero_abs``).
    singular : tuple of str
        Terms whose covariance matrix is singular (lme4's ``isSingular``), boundary ones included.

    Examples
    --------
    >>> reml.opt.method, reml.opt.gradient, reml.opt.converged, reml.opt.boundary
    ('REML', 'analytic', True, ())
    """

    method: str
    optimizer: str
    gradient: str
    theta_start: tuple[float, ...]
    theta_final: tuple[float, ...]
    deviance: float
    n_evals: int
    converged: bool
    message: str
    boundary: tuple[str, ...]
    seconds: float
    xtol_zero: float = 1e-4
    ftol_zero: float = 1e-9
    singular: tuple[str, ...] = ()


@dataclass(frozen=True)
class RandomEffects:
    """Tidy table of random effects: one row per (component, level).

    ``table`` has columns ``component, term, level, coef`` and estimator-specific value columns
    (``mode, cond_var`` for REML/ML). Indexing by a component name gives that component's rows,
    indexed by level.

    Examples
    --------
    >>> re = reml.random_effects
    >>> list(re.table.columns), re.components, re["g"].shape
    (['component', 'term', 'level', 'coef', 'mode', 'cond_var'], ['g'], (8, 5))
    """

    table: pd.DataFrame

    @classmethod
    def from_arrays(cls, terms, modes, cond_covs) -> RandomEffects:
        """Build the table from per-term arrays: conditional modes ``(n_levels, p)`` and
        conditional covariances ``(n_levels, p, p)``, as the REML fit computes them."""
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
        """Component names, in table order."""
        return list(dict.fromkeys(self.table.component))

    #: rows shown by ``print`` and in notebooks (the whole table is :attr:`table`)
    SHOW = 10

    def _title(self) -> str:
        return f"RandomEffects({len(self.table)} rows; components {self.components})"

    def __repr__(self) -> str:
        """The row count and components, then the table's first :attr:`SHOW` rows.

        Examples
        --------
        >>> print(reml.ranef())  # doctest: +NORMALIZE_WHITESPACE
        RandomEffects(8 rows; components ['g'])
          component term level       coef    mode cond_var
        0         g    g     0  Intercept -1.3014   0.1000
        1         g    g     1  Intercept -1.2027   0.1000
        2         g    g     2  Intercept  0.8110   0.1000
        3         g    g     3  Intercept -1.0255   0.1000
        4         g    g     4  Intercept -1.7295   0.1000
        5         g    g     5  Intercept  0.7136   0.1000
        6         g    g     6  Intercept  2.8168   0.1000
        7         g    g     7  Intercept  0.9177   0.1000
        """
        head = self.table.head(self.SHOW).to_string(float_format=_four)
        more = len(self.table) - self.SHOW
        return f"{self._title()}\n{head}" + (f"\n... {more} more rows (.table holds them all)" if more > 0 else "")

    __str__ = __repr__

    def _repr_html_(self) -> str:
        more = len(self.table) - self.SHOW
        tail = f"<p>... {more} more rows (<code>.table</code> holds them all)</p>" if more > 0 else ""
        table = self.table.head(self.SHOW).to_html(float_format=_four)
        return f"<p>{html.escape(self._title())}</p>" + table + tail


def _four(x: float) -> str:
    return f"{x:.4f}"


class FitAccessors:
    """What every likelihood fit (:class:`REMLResult`, :class:`~bayesvc.results.glmm.GLMMResult`)
    derives the same way from its ``vcomp``, ``scale``, ``opt``, ``design`` and ``random_effects``."""

    @property
    def variances(self) -> pd.Series:
        """Component variances plus the residual variance (``"Residual"``)."""
        return pd.concat([self.vcomp, pd.Series({"Residual": self.scale})])

    @property
    def boundary(self) -> tuple[str, ...]:
        """Components whose variance was estimated as exactly zero (a singular fit)."""
        return self.opt.boundary

    @property
    def nobs(self) -> int:
        """Number of observations used in the fit."""
        return self.design.nobs

    def ranef(self) -> RandomEffects:
        """The random effects' conditional modes and variances (``random_effects``); see
        :func:`bayesvc.ranef` for a tidy table with conditional SDs."""
        return self.random_effects


@dataclass(frozen=True)
class REMLResult(FitAccessors):
    """A REML or ML fit.

    Attributes
    ----------
    method : {'REML', 'ML'}
    design : Design
    fe_params : pandas.Series
        Fixed-effect estimates.
    cov_fe : pandas.DataFrame
        Their covariance, ``scale * (X' V^{-1} X)^{-1}`` at the estimates.
    vcomp : pandas.Series
        Variance of each random-effect component (one per random-effect column of each term).
    scale : float
        Residual variance.
    cov_vc : pandas.DataFrame
        Inverse observed information of the REML/ML criterion in (component variances, covariances
        of correlated terms, residual variance), for the parameters not held on the boundary and
        ``"Residual"`` (computed once by the estimator; the views read it). Covariances are named as
        the JSON ``covariances`` keys, ``"<term>: <coef j>,<coef i>"``.
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
    inference : object
        What :meth:`conf_int` and :meth:`test_component` call: the estimator's
        :class:`~bayesvc.estimators.inference.FitInference`, which holds the fit's kernel (set by
        the estimator; ``None`` for a result assembled by hand).

    Examples
    --------
    >>> reml.method, reml.converged, reml.nobs, list(reml.fe_params.index), list(reml.vcomp.index)
    ('REML', True, 48, ['Intercept'], ['g'])
    >>> list(reml.variances.index), bool(reml.variances["Residual"] == reml.scale)
    (['g', 'Residual'], True)
    >>> list(reml.cov_vc.index), bool(np.isclose(reml.bse_fe["Intercept"] ** 2, reml.cov_fe.iloc[0, 0]))
    (['g', 'Residual'], True)
    >>> bool(np.isclose(reml.aic, -2 * reml.llf + 2 * 3)), reml.boundary, reml.ranef().components
    (True, (), ['g'])
    """

    method: str
    design: Design = field(repr=False)
    fe_params: pd.Series
    cov_fe: pd.DataFrame = field(repr=False)
    vcomp: pd.Series
    scale: float
    cov_vc: pd.DataFrame = field(repr=False)
    cov_re: dict = field(repr=False)
    llf: float
    converged: bool
    theta: np.ndarray = field(repr=False)
    opt: OptSummary = field(repr=False)
    random_effects: RandomEffects = field(repr=False)
    inference: object = field(default=None, repr=False, compare=False)

    @property
    def bse_fe(self) -> pd.Series:
        """Standard errors of the fixed effects (square roots of the diagonal of ``cov_fe``)."""
        return pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index, name="bse_fe")

    @property
    def vcomp_se(self) -> pd.Series:
        """Standard errors of ``vcomp`` from ``cov_vc`` (NaN on the boundary)."""
        d = pd.Series(np.sqrt(np.diag(self.cov_vc)), index=self.cov_vc.index)
        return d.reindex(self.vcomp.index).rename("vcomp_se")

    @property
    def cov_re_se(self) -> dict:
        """Standard errors of each correlated term's covariance matrix (``cov_re``), from
        ``cov_vc`` (NaN for a term held on the boundary).

        Examples
        --------
        >>> rng = np.random.default_rng(1)
        >>> d = pd.DataFrame({"g": np.repeat(np.arange(12), 8), "x": np.tile(np.arange(8.0), 12)})
        >>> d["y"] = rng.normal(size=12)[d.g] + (1 + 0.5 * rng.normal(size=12)[d.g]) * d.x + rng.normal(size=96)
        >>> r = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=d).fit_reml()
        >>> se = r.cov_re_se["g"]
        >>> list(se.index), bool(se.loc["x", "Intercept"] == se.loc["Intercept", "x"] > 0)
        (['Intercept', 'x'], True)
        """
        out = {}
        for t in self.design.terms:
            if t.name not in self.cov_re:
                continue
            se = np.full((t.p, t.p), np.nan)
            for i in range(t.p):
                for j in range(i + 1):
                    key = t.component_names[i] if i == j else covariance_name(t, i, j)
                    if key in self.cov_vc.index:
                        se[i, j] = se[j, i] = np.sqrt(self.cov_vc.loc[key, key])
            labels = coef_labels(t)
            out[t.name] = pd.DataFrame(se, index=labels, columns=labels)
        return out

    @property
    def scale_se(self) -> float:
        """Standard error of the residual variance (from ``cov_vc``)."""
        return float(np.sqrt(self.cov_vc.loc["Residual", "Residual"]))

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``-2 llf + 2 k`` with ``k`` fixed effects + thetas + 1.
        Compare AIC across models only for ML fits."""
        return -2 * self.llf + 2 * (len(self.fe_params) + len(self.theta) + 1)

    def _inference(self):
        if self.inference is None:
            fail("this result holds no estimator to profile or test with: fit with bvc.fit_reml or "
                 "VCModel.fit_reml")
        return self.inference

    def conf_int(self, method: str = "profile", level: float = 0.95):
        """Confidence intervals for every component SD, the residual SD and the fixed effects: a
        :class:`~bayesvc.results.inference.ConfIntResult` (:mod:`bayesvc.estimators.profile`).

        ``method="profile"``: profile likelihood on the fit's criterion (REML profiles for REML
        fits, ML for ML fits; fixed effects always ML), boundary-aware; ``"wald"``: estimate
        +- z SE. SD scale for the components and the residual.

        Examples
        --------
        >>> ci = reml.conf_int()
        >>> lo, hi = ci.to_dict()["Residual"]; bool(lo < np.sqrt(reml.scale) < hi)
        True
        """
        return self._inference().conf_int(self, method=method, level=level)

    def test_component(self, name: str, method: str = "exact", nsim: int | None = None, seed=None,
                       **kwargs):
        """Test that the variance of component ``name`` is zero: a
        :class:`~bayesvc.results.inference.ComponentTest`
        (:func:`bayesvc.estimators.lrt.test_component`; ``method`` ``"exact"``,
        ``"bootstrap"`` or ``"chibar"``; ``executor=``, ``workers=`` for the bootstrap).

        Examples
        --------
        >>> t = reml.test_component("g", nsim=10_000, seed=1)
        >>> t.statistic_name, bool(t.statistic > 10), t.p_value
        ('RLRT', True, 0.0)
        """
        return self._inference().test_component(self, name, method=method, nsim=nsim, seed=seed, **kwargs)

    def summary(self, alpha: float = 0.05):
        """statsmodels' MixedLM summary layout (a :class:`~bayesvc.results.table.Summary`, which
        prints as text and renders as HTML, Markdown and LaTeX), intervals at level ``1 - alpha``.

        Examples
        --------
        >>> print(reml.summary())  # doctest: +NORMALIZE_WHITESPACE
                Mixed Linear Model Regression Results
        ======================================================
        Model:            MixedLM Dependent Variable: y
        No. Observations: 48      Method:             REML
        No. Groups:       8       Scale:              0.6247
        Min. group size:  6       Log-Likelihood:     -68.8989
        Max. group size:  6       Converged:          Yes
        Mean group size:  6.0
        ------------------------------------------------------
                      Coef. Std.Err.   z   P>|z| [0.025 0.975]
        ------------------------------------------------------
        Intercept     0.757    0.576 1.315 0.189 -0.371  1.885
        g Var         2.547    1.417
        ======================================================
        >>> reml.summary().to_markdown().splitlines()[0]
        '**Mixed Linear Model Regression Results**'
        """
        return reml_summary(self, alpha=alpha)

    def predict(self, newdata: pd.DataFrame | None = None, random_effects: bool = True,
                new_levels: str = "population") -> pd.Series:
        """The fitted mean at ``newdata`` (``None``: the fitting data), as lme4's ``predict()``.

        ``random_effects=False`` gives ``X beta`` alone (lme4's ``re.form = NA``); with random
        effects each row adds the conditional modes of its levels. A level not seen in fitting
        gets the population value for that term (``new_levels="population"``, lme4's
        ``allow.new.levels = TRUE``) or an error naming the column and the levels
        (``"error"``). See :mod:`bayesvc.results.predict`.

        Examples
        --------
        >>> nd = pd.DataFrame({"g": [0, 99]})
        >>> p = reml.predict(nd)
        >>> bool(np.isclose(p[1], reml.fe_params["Intercept"])), bool(p[0] < p[1])
        (True, True)
        """
        from .predict import reml_predict

        return reml_predict(self, newdata, random_effects=random_effects, new_levels=new_levels)

    def r2(self) -> dict:
        """Nakagawa and Schielzeth's marginal and conditional R-squared at the estimates
        (:mod:`bayesvc.results.r2`): ``{"marginal": ..., "conditional": ...}``.

        Examples
        --------
        >>> sorted(reml.r2())
        ['conditional', 'marginal']
        """
        from .r2 import reml_r2

        return reml_r2(self)

    def to_dict(self) -> dict:
        """The CLI's JSON contract: ``method, llf, fe_params, variances, covariances, correlations
        (of correlated terms, keyed as the covariances), converged``.

        Examples
        --------
        >>> d = reml.to_dict()
        >>> d["method"], list(d["variances"]), d["converged"]
        ('reml', ['g', 'Residual'], True)
        """
        covs, corrs = {}, {}
        for t in self.design.terms:
            if t.name in self.cov_re:
                C = self.cov_re[t.name].to_numpy()
                for i in range(t.p):
                    for j in range(i):
                        covs[covariance_name(t, i, j)] = float(C[i, j])
                        corrs[covariance_name(t, i, j)] = float(C[i, j] / np.sqrt(C[i, i] * C[j, j]))
        return {
            "method": self.method.lower(),
            "llf": float(self.llf),
            "fe_params": {k: float(v) for k, v in self.fe_params.items()},
            "variances": variance_dict(self.vcomp, self.scale),
            "covariances": covs,
            "correlations": corrs,
            "converged": bool(self.converged),
        }
