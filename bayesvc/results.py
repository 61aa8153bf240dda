"""One immutable result object per fit, with shared accessors."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class RandomEffects:
    """Tidy table of random effects: one row per (component, level).

    ``table`` has columns ``component, term, level, coef`` and estimator-specific value columns
    (``mode, cond_var`` for REML/ML; posterior summaries for NUTS). Indexing by a component name
    gives that component's rows, indexed by level.

    Attributes
    ----------
    table : DataFrame
        One row per (component, level).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
    >>> re = r.random_effects
    >>> re
    RandomEffects(8 rows; components ['g'])
    >>> list(re.table.columns)
    ['component', 'term', 'level', 'coef', 'mode', 'cond_var']
    >>> re["g"].shape
    (8, 5)
    """

    table: pd.DataFrame

    @classmethod
    def from_arrays(cls, terms, modes, cond_covs) -> "RandomEffects":
        """Build the table from per-term arrays (as the REML fit computes them).

        Parameters
        ----------
        terms : sequence of RandomTerm
        modes : sequence of ndarray
            Per term, conditional modes of shape ``(n_levels, p)``.
        cond_covs : sequence of ndarray
            Per term, conditional covariances of shape ``(n_levels, p, p)``.

        Returns
        -------
        RandomEffects

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "y": np.arange(12.0) % 5})
        >>> terms = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).design.terms
        >>> re = RandomEffects.from_arrays(terms, [np.zeros((3, 1))], [np.ones((3, 1, 1))])
        >>> list(re.table.level), list(re.table.cond_var)
        (['a', 'b', 'c'], [1.0, 1.0, 1.0])
        """
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
        """Component names, in table order.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + np.tile([0.0, 1, -1, 0.5], 3)
        >>> bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml().random_effects.components
        ['g']
        """
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

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
    >>> r.method, r.converged, r.nobs
    ('REML', True, 48)
    >>> list(r.fe_params.index), list(r.vcomp.index)
    (['Intercept'], ['g'])
    >>> bool(r.vcomp["g"] > r.scale)          # the group effect dominates here
    True
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
        """Standard errors of the fixed effects (square roots of the diagonal of ``cov_fe``).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> bool(np.isclose(r.bse_fe["Intercept"] ** 2, r.cov_fe.loc["Intercept", "Intercept"]))
        True
        """
        return pd.Series(np.sqrt(np.diag(self.cov_fe)), index=self.fe_params.index, name="bse_fe")

    @property
    def variances(self) -> pd.Series:
        """Component variances plus the residual variance (``"Residual"``).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> list(r.variances.index)
        ['g', 'Residual']
        >>> bool(r.variances["Residual"] == r.scale)
        True
        """
        return pd.concat([self.vcomp, pd.Series({"Residual": self.scale})])

    @property
    def boundary(self) -> tuple[str, ...]:
        """Components whose variance was estimated as exactly zero (a singular fit).

        Examples
        --------
        >>> import warnings
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "y": np.tile([1.0, 2, 3, 5, 8], 6)})
        >>> m = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)   # identical group means
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore", bvc.BoundaryFitWarning)
        ...     r = m.fit_reml()
        >>> r.boundary
        ('g',)
        """
        return self.opt.boundary

    @property
    def nobs(self) -> int:
        """Number of observations used in the fit.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> r.nobs
        48
        """
        return self.design.nobs

    def ranef(self) -> RandomEffects:
        """The random effects' conditional modes and variances (``random_effects``).

        See :func:`bayesvc.decomposition.ranef` for a tidy table with conditional SDs.

        Returns
        -------
        RandomEffects

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> r.ranef()
        RandomEffects(8 rows; components ['g'])
        """
        return self.random_effects

    @property
    def aic(self) -> float:
        """Akaike information criterion, ``-2 llf + 2 k`` with ``k`` fixed effects + thetas + 1.

        Compare AIC across models only for ML fits (REML likelihoods of models with different
        fixed effects are not comparable).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> bool(np.isclose(r.aic, -2 * r.llf + 2 * 3))
        True
        """
        return -2 * self.llf + 2 * (len(self.fe_params) + len(self.theta) + 1)

    def summary(self, alpha: float = 0.05):
        """statsmodels' MixedLM summary layout (see :mod:`bayesvc.summary`).

        Parameters
        ----------
        alpha : float, default 0.05
            The confidence intervals are at level ``1 - alpha``.

        Returns
        -------
        Summary
            Prints as text; also renders as HTML, Markdown and LaTeX.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> print(r.summary())  # doctest: +NORMALIZE_WHITESPACE
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
        >>> r.summary().to_markdown().splitlines()[0]
        '**Mixed Linear Model Regression Results**'
        """
        from .summary import reml_summary

        return reml_summary(self, alpha=alpha)

    def to_dict(self) -> dict:
        """The CLI's JSON contract.

        Returns
        -------
        dict
            ``method, llf, fe_params, variances, covariances, converged`` (plain Python values).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml()
        >>> d = r.to_dict()
        >>> d["method"], list(d["variances"]), d["converged"]
        ('reml', ['g', 'Residual'], True)
        """
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
