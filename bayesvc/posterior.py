"""Result of a NUTS fit: the labelled ArviZ DataTree plus diagnostics and summaries."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pandas as pd

RHAT_MAX, ESS_MIN = 1.01, 400


class SamplingWarning(UserWarning):
    """R-hat, ESS or divergences suggest the draws are not trustworthy.

    Issued when a :class:`PosteriorResult` is created (thresholds: R-hat above 1.01, bulk or
    tail ESS below 400, any divergent transition); the message says what to change.

    Examples
    --------
    >>> import warnings, bayesvc as bvc
    >>> issubclass(bvc.SamplingWarning, UserWarning)
    True

    Turn it into an error for a scripted run (``model`` is a :class:`~bayesvc.VCModel`; not run
    here: it samples):

    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", bvc.SamplingWarning)
    ...     post = model.sample(draws=100, tune=100)      # doctest: +SKIP
    """


@dataclass(frozen=True)
class PosteriorResult:
    """A NUTS fit.

    Attributes
    ----------
    idata : xarray.DataTree
        ArviZ object with groups ``posterior`` (``beta`` [fixed], ``sd``/``var`` [component],
        ``sigma``, ``scale``, ``re_<term>`` [<term>_level]), ``sample_stats``,
        ``log_likelihood`` (pointwise, conditional on the drawn random effects), ``log_prior`` and
        ``observed_data``.
    priors : PriorSet
        The priors used.
    sampler, marginalize, draws, tune, chains, seed
        How the draws were made (``marginalize``: ``"full"``, ``"partial"`` or ``"none"``).
    seconds : float
        Wall time of the fit.

    Examples
    --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
    ...                     progressbar=False)                      # doctest: +SKIP
    >>> post.method, post.chains, post.draws                               # doctest: +SKIP
    ('NUTS', 2, 500)
    >>> list(post.param_summary().index)                                  # doctest: +SKIP
    ['Intercept', 'g', 'Residual']
    >>> post.diagnostics().ok.all()                                       # doctest: +SKIP
    True
    >>> print(post.summary())                                             # doctest: +SKIP
    """

    design: object = field(repr=False)
    idata: object = field(repr=False)
    priors: object = field(repr=False)
    sampler: str
    marginalize: str  # "full", "partial" or "none"
    draws: int
    tune: int
    chains: int
    seed: int
    seconds: float
    sampling_seconds: float = field(repr=False)
    method: str = "NUTS"

    def __post_init__(self):
        msgs = self._diagnostic_messages()
        for m in msgs:
            warnings.warn(m, SamplingWarning, stacklevel=4)

    @property
    def posterior(self):
        """The ``posterior`` group as an ``xarray.Dataset`` (``beta``, ``sd``, ``var``, ``sigma``,
        ``scale`` and the ``re_<term>`` draws).

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> post.posterior["var"].dims                               # doctest: +SKIP
        ('chain', 'draw', 'component')
        """
        return self.idata["posterior"].to_dataset()

    @property
    def divergences(self) -> int:
        """Number of divergent transitions over all chains.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> post.divergences                                         # doctest: +SKIP
        0
        """
        ss = self.idata["sample_stats"].to_dataset()
        return int(ss["diverging"].sum()) if "diverging" in ss else 0

    def param_summary(self, ci_prob: float = 0.95, ci_kind: str = "eti") -> pd.DataFrame:
        """Posterior summary (arviz-stats) of fixed effects, component variances and the residual.

        Parameters
        ----------
        ci_prob : float, default 0.95
        ci_kind : {'eti', 'hdi'}
            Equal-tailed or highest-density interval.

        Returns
        -------
        DataFrame
            One row per fixed effect, component variance and ``"Residual"``: arviz-stats'
            columns (mean, sd, interval bounds, MCSE, ESS, R-hat) plus ``median``.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> s = post.param_summary(ci_prob=0.9, ci_kind="hdi")        # doctest: +SKIP
        >>> list(s.index)                                            # doctest: +SKIP
        ['Intercept', 'g', 'Residual']
        >>> {"mean", "median", "r_hat", "ess_bulk"} <= set(s.columns)  # doctest: +SKIP
        True
        """
        from arviz_stats import summary

        df = summary(self.idata, var_names=["beta", "var", "scale"], ci_prob=ci_prob, ci_kind=ci_kind,
                     round_to="none")
        med = self._medians()
        df.index = self._row_names(df.index)
        df["median"] = [med[k] for k in df.index]
        return df

    def _row_names(self, idx) -> list[str]:
        out = []
        for s in idx:
            s = str(s)
            if s.startswith("beta["):
                out.append(s[5:-1])
            elif s.startswith("var["):
                out.append(s[4:-1])
            elif s == "scale":
                out.append("Residual")
            else:
                out.append(s)
        return out

    def _medians(self) -> dict:
        p = self.posterior
        out = {n: float(p["beta"].sel(fixed=n).median()) for n in self.design.fe_names}
        out.update({c: float(p["var"].sel(component=c).median()) for c in self.design.component_names})
        out["Residual"] = float(p["scale"].median())
        return out

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk/tail ESS per parameter, with flags against R-hat <= 1.01 and ESS >= 400.

        Returns
        -------
        DataFrame
            Index ``beta[<name>]``, ``sd[<component>]``, ``sigma``; columns ``r_hat``,
            ``ess_bulk``, ``ess_tail``, ``ok``; ``attrs["divergences"]`` holds the count.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> d = post.diagnostics()                                   # doctest: +SKIP
        >>> list(d.index), list(d.columns)                           # doctest: +SKIP
        (['beta[Intercept]', 'sd[g]', 'sigma'], ['r_hat', 'ess_bulk', 'ess_tail', 'ok'])
        """
        from arviz_stats import ess, rhat

        post = self.idata["posterior"].to_dataset()[["beta", "sd", "sigma"]]
        r, eb, et = rhat(post), ess(post, method="bulk"), ess(post, method="tail")
        rows = []
        for name in ("beta", "sd", "sigma"):
            da = r[name]
            labels = [None] if da.ndim == 0 else list(da[da.dims[0]].values)
            for lab in labels:
                sel = {} if lab is None else {da.dims[0]: lab}
                rows.append({"parameter": name if lab is None else f"{name}[{lab}]",
                             "r_hat": float(r[name].sel(sel)), "ess_bulk": float(eb[name].sel(sel)),
                             "ess_tail": float(et[name].sel(sel))})
        df = pd.DataFrame(rows).set_index("parameter")
        df["ok"] = (df.r_hat <= RHAT_MAX) & (df.ess_bulk >= ESS_MIN) & (df.ess_tail >= ESS_MIN)
        df.attrs["divergences"] = self.divergences
        return df

    def _diagnostic_messages(self) -> list[str]:
        try:
            d = self.diagnostics()
        except Exception:  # too few draws for the estimators
            return []
        msgs = []
        bad = d[d.r_hat > RHAT_MAX]
        if len(bad):
            msgs.append(f"R-hat above {RHAT_MAX} for {', '.join(bad.index)} (max {bad.r_hat.max():.3f}): "
                        "run longer chains (more tune and draws) before trusting these results")
        low = d[(d.ess_bulk < ESS_MIN) | (d.ess_tail < ESS_MIN)]
        if len(low):
            msgs.append(f"effective sample size below {ESS_MIN} for {', '.join(low.index)} "
                        f"(min {min(low.ess_bulk.min(), low.ess_tail.min()):.0f}): increase draws")
        if self.divergences:
            other = "False" if self.marginalize != "none" else "'full'"
            msgs.append(f"{self.divergences} divergent transitions: increase tune, or try another "
                        f"parameterization (marginalize={other})")
        return msgs

    @property
    def vcomp(self) -> pd.Series:
        """Posterior means of the component variances.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> list(post.vcomp.index)                                   # doctest: +SKIP
        ['g']
        """
        v = self.posterior["var"].mean(("chain", "draw"))
        return pd.Series(v.values, index=self.design.component_names, name="vcomp")

    @property
    def fe_params(self) -> pd.Series:
        """Posterior means of the fixed effects.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> list(post.fe_params.index)                               # doctest: +SKIP
        ['Intercept']
        """
        b = self.posterior["beta"].mean(("chain", "draw"))
        return pd.Series(b.values, index=list(self.design.fe_names), name="fe_params")

    @property
    def scale(self) -> float:
        """Posterior mean of the residual variance.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> post.scale > 0                                           # doctest: +SKIP
        True
        """
        return float(self.posterior["scale"].mean())

    def random_effects_summary(self, ci_prob: float = 0.95) -> pd.DataFrame:
        """Tidy posterior summaries of every random effect (:func:`bayesvc.decomposition.ranef`).

        Parameters
        ----------
        ci_prob : float, default 0.95
            Equal-tailed interval in ``lower``/``upper``.

        Returns
        -------
        DataFrame
            One row per (component, level): ``component, term, level, coef, mean, sd, median,
            lower, upper``.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> re = post.random_effects_summary(ci_prob=0.9)           # doctest: +SKIP
        >>> list(re.columns)                                         # doctest: +SKIP
        ['component', 'term', 'level', 'coef', 'mean', 'sd', 'median', 'lower', 'upper']
        >>> len(re)                                                  # doctest: +SKIP
        8
        """
        from .decomposition import ranef

        return ranef(self, ci_prob=ci_prob)

    def sensitivity(self, threshold: float = 0.05, **kwargs):
        """Power-scaling prior/likelihood sensitivity with a verdict per component
        (:func:`bayesvc.sensitivity.sensitivity`).

        Returns
        -------
        SensitivityResult

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> sens = post.sensitivity()                                # doctest: +SKIP
        >>> list(sens.verdicts.index)                                # doctest: +SKIP
        ['g', 'Residual']
        """
        from .sensitivity import sensitivity

        return sensitivity(self, threshold=threshold, **kwargs)

    def summary(self, ci_prob: float = 0.95, ci_kind: str = "eti"):
        """NUTS summary in the MixedLM layout (:func:`bayesvc.summary_bayes.posterior_summary`).

        Parameters
        ----------
        ci_prob : float, default 0.95
        ci_kind : {'eti', 'hdi'}

        Returns
        -------
        Summary
            Prints as text; also renders as HTML, Markdown and LaTeX.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> print(post.summary(ci_kind="hdi"))                       # doctest: +SKIP
        >>> post.summary().to_markdown()                             # doctest: +SKIP
        """
        from .summary_bayes import posterior_summary

        return posterior_summary(self, ci_prob=ci_prob, ci_kind=ci_kind)

    def to_dict(self, ci_prob: float = 0.95) -> dict:
        """The CLI's JSON contract for NUTS.

        Each estimate is a dict of ``mean, sd, median, lower, upper, r_hat, ess_bulk, ess_tail``;
        ``llf`` is ``None``; ``converged`` means every diagnostic passed and nothing diverged.

        Examples
        --------
        Sampling takes seconds to minutes, so the lines that need ``post`` are not run as doctests.

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                      # doctest: +SKIP
        >>> d = post.to_dict()                                       # doctest: +SKIP
        >>> d["method"], list(d["variances"])                        # doctest: +SKIP
        ('nuts', ['g', 'Residual'])
        """
        s = self.param_summary(ci_prob=ci_prob)
        lo, hi = [c for c in s.columns if c.startswith(("eti", "hdi"))][:2]

        def entry(k):
            r = s.loc[k]
            return {"mean": float(r["mean"]), "sd": float(r["sd"]), "median": float(r["median"]),
                    "lower": float(r[lo]), "upper": float(r[hi]), "r_hat": float(r["r_hat"]),
                    "ess_bulk": float(r["ess_bulk"]), "ess_tail": float(r["ess_tail"])}

        return {
            "method": "nuts", "llf": None,
            "fe_params": {k: entry(k) for k in self.design.fe_names},
            "variances": {**{c: entry(c) for c in self.design.component_names}, "Residual": entry("Residual")},
            "covariances": {}, "converged": bool(self.diagnostics().ok.all() and self.divergences == 0),
            "divergences": self.divergences,
        }
