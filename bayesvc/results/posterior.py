"""The NUTS result: the labelled ArviZ DataTree, with diagnostics and summaries as methods (an
immutable record: building it computes and warns nothing; :meth:`bayesvc.VCModel.sample` warns)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..design import Design
from ..design.covariance import covariance_name
from ..priors import PriorSet
from ..validate import validate_ci_kind, validate_ci_prob
from .summaries import posterior_summary

RHAT_MAX, ESS_MIN = 1.01, 400


@dataclass(frozen=True)
class PosteriorResult:
    """A NUTS fit.

    Attributes
    ----------
    design : Design
    idata : xarray.DataTree
        ArviZ object with groups ``posterior`` (``beta`` [fixed], ``sd``/``var`` [component],
        ``sigma``, ``scale``, ``re_<term>`` [<term>_level]), ``sample_stats``,
        ``log_likelihood`` (pointwise, conditional on the drawn random effects), ``log_prior`` and
        ``observed_data``.
    priors : PriorSet
        The priors used.
    sampler, marginalize, draws, tune, chains, seed
        How the draws were made (``marginalize``: ``"full"``, ``"partial"``, ``"none"`` or, for a
        GLMM, ``"laplace"``: Laplace + importance sampling, with an ``importance`` group).
    method : str
        ``"NUTS"``, or ``"NUTS (Laplace + IS)"`` for the approximate-then-corrected GLMM engine.
    seconds, sampling_seconds : float
        Wall time of the fit, and of the NUTS run within it.

    Examples
    --------
    >>> post.method, post.chains, post.draws, post.marginalize
    ('NUTS', 2, 200, 'full')
    >>> list(post.param_summary().index), post.posterior["var"].dims
    (['Intercept', 'g', 'Residual'], ('chain', 'draw', 'component'))
    >>> list(post.diagnostics().columns), list(post.vcomp.index), list(post.fe_params.index)
    (['r_hat', 'ess_bulk', 'ess_tail', 'ok'], ['g'], ['Intercept'])
    >>> post.divergences >= 0, post.scale > 0
    (True, True)
    """

    design: Design = field(repr=False)
    idata: object = field(repr=False)
    priors: PriorSet = field(repr=False)
    sampler: str
    marginalize: str  # "full", "partial", "none" or "laplace"
    draws: int
    tune: int
    chains: int
    seed: int
    seconds: float
    sampling_seconds: float = field(repr=False)
    method: str = "NUTS"

    @property
    def posterior(self):
        """The ``posterior`` group as an ``xarray.Dataset`` (``beta``, ``sd``, ``var``, ``sigma``,
        ``scale`` and the ``re_<term>`` draws)."""
        return self.idata["posterior"].to_dataset()

    @property
    def divergences(self) -> int:
        """Number of divergent transitions over all chains."""
        ss = self.idata["sample_stats"].to_dataset()
        return int(ss["diverging"].sum()) if "diverging" in ss else 0

    def param_summary(self, ci_prob: float = 0.95, ci_kind: str = "eti") -> pd.DataFrame:
        """Posterior summary (arviz-stats) of fixed effects, component variances, the residual
        (``"Residual"``) and, for correlated terms, each covariance (named
        ``"<term>: <coef j>,<coef i>"``, as the JSON ``covariances`` keys) and correlation (the same
        name plus ``" (corr)"``): one row each, arviz-stats' columns (mean, sd, the ``ci_kind``
        interval at ``ci_prob``, MCSE, ESS, R-hat) plus ``median``."""
        from arviz_stats import summary

        validate_ci_prob(ci_prob)
        validate_ci_kind(ci_kind)
        p = self.posterior
        pairs = [v for t in self.design.terms for v in (f"cov_{t.name}", f"corr_{t.name}") if v in p]
        with np.errstate(invalid="ignore", divide="ignore"):  # a constant (a GLMM's latent scale): R-hat NaN
            df = summary(self.idata, var_names=["beta", "var", "scale", *pairs], ci_prob=ci_prob,
                         ci_kind=ci_kind, round_to="none")
        df.index = [_row_name(str(s)) for s in df.index]
        med = {n: float(p["beta"].sel(fixed=n).median()) for n in self.design.fe_names}
        med.update({c: float(p["var"].sel(component=c).median()) for c in self.design.component_names})
        med["Residual"] = float(p["scale"].median())
        for v in pairs:
            da = p[v]
            for pair in da[da.dims[-1]].values:
                med[_row_name(f"{v}[{pair}]")] = float(da.sel({da.dims[-1]: pair}).median())
        df["median"] = [med[k] for k in df.index]
        return df

    def diagnostics(self) -> pd.DataFrame:
        """R-hat, bulk/tail ESS per parameter (index ``beta[<name>]``, ``sd[<component>]``,
        ``sigma``), with ``ok`` against R-hat <= 1.01 and ESS >= 400; ``attrs["divergences"]``
        holds the count."""
        from arviz_stats import ess, rhat

        # a binomial GLMM's sigma is the constant latent SD (pi / sqrt(3)): nothing to diagnose
        names = [n for n in ("beta", "sd", "sigma") if n != "sigma" or np.ptp(self.posterior["sigma"].values) > 0]
        post = self.posterior[names]
        r, eb, et = rhat(post), ess(post, method="bulk"), ess(post, method="tail")
        rows = []
        for name in names:
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

    def diagnostic_messages(self) -> list[str]:
        """What the diagnostics say a user should act on (empty when every check passes); the
        messages :meth:`bayesvc.VCModel.sample` issues as :class:`~bayesvc.SamplingWarning`."""
        try:
            d = self.diagnostics()
        except Exception:  # noqa: BLE001 - too few draws for the estimators
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
        """Posterior means of the component variances."""
        v = self.posterior["var"].mean(("chain", "draw"))
        return pd.Series(v.values, index=self.design.component_names, name="vcomp")

    @property
    def fe_params(self) -> pd.Series:
        """Posterior means of the fixed effects."""
        b = self.posterior["beta"].mean(("chain", "draw"))
        return pd.Series(b.values, index=list(self.design.fe_names), name="fe_params")

    @property
    def scale(self) -> float:
        """Posterior mean of the residual variance."""
        return float(self.posterior["scale"].mean())

    def predict(self, newdata: pd.DataFrame | None = None, kind: str = "mean",
                random_effects: bool = True, new_levels: str = "population", seed=None):
        """Posterior draws of the mean (``kind="mean"``) or of new observations
        (``"observation"``) at ``newdata`` (``None``: the fitting data): an ``xarray.DataArray``
        (chain, draw, obs); :func:`bayesvc.predictive_summary` tabulates it.

        ``random_effects=False`` gives ``X beta`` only. A level not seen in fitting gets the
        population value (``new_levels="population"``), a fresh draw from its term's population
        distribution in each posterior draw (``"sample"``), or an error (``"error"``). See
        :mod:`bayesvc.results.posterior_predict`.

        Examples
        --------
        >>> da = post.predict(pd.DataFrame({"g": [0, 99]}), kind="observation", seed=1)
        >>> da.dims, bool(da.sel(obs=1).std() > da.sel(obs=0).std() * 0.5)
        (('chain', 'draw', 'obs'), True)
        """
        from .posterior_predict import posterior_predict

        return posterior_predict(self, newdata, kind=kind, random_effects=random_effects,
                                 new_levels=new_levels, seed=seed)

    def posterior_predictive(self, seed=None):
        """``idata`` plus the ``posterior_predictive`` group (``y``, one replicated data set per
        draw, random effects of the fitted levels), beside ``observed_data``: what ArviZ's
        predictive checks read.

        Examples
        --------
        >>> dt = post.posterior_predictive(seed=1)
        >>> dt["posterior_predictive"]["y"].dims, "observed_data" in dt.children
        (('chain', 'draw', 'obs'), True)
        """
        from .posterior_predict import with_posterior_predictive

        return with_posterior_predictive(self, seed=seed)

    def r2(self, ci_prob: float = 0.95) -> dict:
        """Nakagawa and Schielzeth's marginal and conditional R-squared per draw, each as
        ``{"mean", "median", "lower", "upper"}`` (:func:`bayesvc.results.r2.posterior_r2`)."""
        from .r2 import posterior_r2

        return posterior_r2(self, ci_prob=ci_prob)

    def summary(self, ci_prob: float = 0.95, ci_kind: str = "eti"):
        """NUTS summary in the MixedLM layout (``ci_kind`` 'eti' or 'hdi' at ``ci_prob``).

        Examples
        --------
        >>> s = post.summary(ci_kind="hdi")
        >>> s.title, list(s.tables["params"].index), list(s.tables["params"].columns)[:3]
        ('Mixed Linear Model Posterior Summary (NUTS)', ['Intercept', 'g Var', 'Residual Var'], ['Mean', 'SD', 'HDI 95% lower'])
        """
        return posterior_summary(self, ci_prob=ci_prob, ci_kind=ci_kind)

    def to_dict(self, ci_prob: float = 0.95) -> dict:
        """The CLI's JSON contract for NUTS: each estimate a dict of ``mean, sd, median, lower,
        upper, r_hat, ess_bulk, ess_tail``, for the fixed effects, ``variances``, ``covariances`` and
        ``correlations`` (correlated terms). ``llf`` is ``None`` (NUTS maximizes nothing) and
        ``converged`` is ``None`` (it is an optimizer's verdict); whether the draws can be trusted
        is ``diagnostics`` (:meth:`diagnostic_verdicts`), and ``divergences`` the count.

        Examples
        --------
        >>> d = post.to_dict()
        >>> d["method"], list(d["variances"]), sorted(d["variances"]["g"])[:3]
        ('nuts', ['g', 'Residual'], ['ess_bulk', 'ess_tail', 'lower'])
        >>> d["converged"], d["llf"], d["diagnostics"]["divergences"] == d["divergences"]
        (None, None, True)
        """
        s = self.param_summary(ci_prob=ci_prob)
        lo, hi = [c for c in s.columns if c.startswith(("eti", "hdi"))][:2]

        def entry(k):
            r = s.loc[k]
            return {"mean": float(r["mean"]), "sd": float(r["sd"]), "median": float(r["median"]),
                    "lower": float(r[lo]), "upper": float(r[hi]), "r_hat": float(r["r_hat"]),
                    "ess_bulk": float(r["ess_bulk"]), "ess_tail": float(r["ess_tail"])}

        covs = [k for k in s.index if k in self.covariance_names]
        extra = {}
        if "importance" in self.idata.children:  # Laplace + importance sampling: say so
            a = self.idata["importance"].attrs
            keys = ("khat", "efficiency", "min_ess_nuts", "min_ess_reweighted")
            extra = {"engine": self.method, "importance": {k: float(a[k]) for k in keys}}
        return {
            "method": "nuts", "llf": None,
            "fe_params": {k: entry(k) for k in self.design.fe_names},
            "variances": {**{c: entry(c) for c in self.design.component_names},
                          "Residual": entry("Residual")},
            "covariances": {k: entry(k) for k in covs},
            "correlations": {k: entry(f"{k} (corr)") for k in covs},
            "converged": None, "divergences": self.divergences,
            "diagnostics": self.diagnostic_verdicts(), **extra,
        }

    @property
    def covariance_names(self) -> list[str]:
        """Names of the covariances of correlated terms (``"<term>: <coef j>,<coef i>"``)."""
        return [covariance_name(t, i, j) for t in self.design.terms if t.correlated and t.p > 1
                for i in range(t.p) for j in range(i)]

    def diagnostic_verdicts(self) -> dict:
        """The convergence verdicts of the draws, as the CLI's JSON ``diagnostics`` entry:
        ``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences`` and ``ok`` (R-hat at most
        1.01, bulk and tail ESS at least 400, no divergent transition).

        Examples
        --------
        >>> v = post.diagnostic_verdicts()
        >>> sorted(v), v["ok"] == (v["max_r_hat"] <= 1.01 and min(v["min_ess_bulk"], v["min_ess_tail"]) >= 400
        ...                         and v["divergences"] == 0)
        (['divergences', 'max_r_hat', 'min_ess_bulk', 'min_ess_tail', 'ok'], True)
        """
        d = self.diagnostics()
        return {"max_r_hat": float(d.r_hat.max()), "min_ess_bulk": float(d.ess_bulk.min()),
                "min_ess_tail": float(d.ess_tail.min()), "divergences": int(self.divergences),
                "ok": bool(d.ok.all() and self.divergences == 0)}


def _row_name(s: str) -> str:
    """arviz-stats' row label -> ours: ``beta[x]`` -> ``x``, ``var[g]`` -> ``g``, ``scale`` ->
    Residual, ``cov_g[a,b]`` -> ``g: a,b``, ``corr_g[a,b]`` -> ``g: a,b (corr)``."""
    if s.startswith("beta["):
        return s[5:-1]
    if s.startswith("var["):
        return s[4:-1]
    for prefix, suffix in (("cov_", ""), ("corr_", " (corr)")):
        if s.startswith(prefix) and s.endswith("]"):
            term, pair = s[len(prefix):-1].split("[", 1)
            return f"{term}: {pair}{suffix}"
    return "Residual" if s == "scale" else s
