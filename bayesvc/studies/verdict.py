"""Is this variance component there? One verdict per component, joining the frequentist answer
(REML estimate, profile-likelihood interval, a test that the variance is zero) with the Bayesian
one (posterior median and interval, the posterior mass below a negligible size, prior
sensitivity), as an extension of the sensitivity study's boundary-aware verdicts
(:func:`bayesvc.sensitivity`).

A component SD is *negligible* below ``negligible`` times the residual SD (default
:data:`~bayesvc.studies.sensitivity.NEAR_ZERO`, 0.1: a variance under 1% of the residual
variance). The verdict, in this order:

1. ``"at the boundary: the data cannot tell it from zero"`` when the test does not reject zero
   at ``alpha`` (default 0.05). A REML estimate of 0 gives statistic 0 and p = 1.
2. ``"prior-driven"`` when the test rejects zero but the posterior depends on the prior: power-
   scaling prior sensitivity above the threshold (diagnosis ``prior-dominated`` or
   ``prior-data conflict``), or a prior sweep moving the posterior median by more than
   :data:`~bayesvc.studies.sensitivity.SWEEP_CHANGE`.
3. ``"supported"`` otherwise.

The sentence gives the numbers behind the verdict. It also warns when the profile interval still
reaches 0 although the test rejects zero (the chi-square(1) cut-off of the interval is more
conservative than the boundary-aware null of the test), and when most of the posterior lies below
the negligible size (present but small). Without a posterior the verdict is frequentist only.
Components of correlated terms cannot be tested alone, and their SDs are not profiled. Their
verdict comes from the posterior: at the boundary when most of the posterior mass is negligible.

>>> v = component_verdicts(reml, post, seed=1)
>>> v.table.loc["g", "verdict"], list(v.table.columns[:4])
('supported', ['reml_sd', 'ci_lower', 'ci_upper', 'ci_at_zero'])
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..design.reduce import locate_component
from ..errors import SpecificationError, fail
from ..validate import validate_alpha, validate_ci_prob
from .sensitivity import NEAR_ZERO, SWEEP_CHANGE, sensitivity

SUPPORTED = "supported"
BOUNDARY = "at the boundary: the data cannot tell it from zero"
PRIOR_DRIVEN = "prior-driven"
VERDICTS = (SUPPORTED, BOUNDARY, PRIOR_DRIVEN)
#: short labels for tables
SHORT = {SUPPORTED: "supported", BOUNDARY: "boundary", PRIOR_DRIVEN: "prior-driven"}

COLUMNS = ["reml_sd", "ci_lower", "ci_upper", "ci_at_zero", "statistic", "p_value", "test", "median",
           "lower", "upper", "p_negligible", "psense_prior", "diagnosis", "sweep_change", "verdict", "label",
           "sentence"]


def _f(x) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def _json(v):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    return v


@dataclass(frozen=True)
class ComponentVerdicts:
    """One verdict per component (module docstring).

    Attributes
    ----------
    table : DataFrame
        Per component: ``reml_sd``, the interval ``ci_lower, ci_upper, ci_at_zero``, the test's
        ``statistic, p_value, test`` (its label), the posterior ``median, lower, upper`` of the SD
        and ``p_negligible`` (posterior mass below ``negligible`` residual SDs), the sensitivity's
        ``psense_prior, diagnosis, sweep_change``, ``verdict`` (one of :data:`VERDICTS`), its short
        ``label`` (``supported``, ``boundary``, ``prior-driven``) and ``sentence``. NaN where an
        input was not available.
    alpha, negligible, level, ci_prob : float
        The test's level, the negligible size (fraction of the residual SD), the interval level and
        the posterior interval probability.
    test, interval : str
        The test method and the interval method.

    Examples
    --------
    >>> v = component_verdicts(reml, seed=1)          # no posterior: frequentist only
    >>> v.verdicts, bool(np.isnan(v.table.loc["g", "median"]))
    ({'g': 'supported'}, True)
    """

    table: pd.DataFrame
    alpha: float
    negligible: float
    level: float
    ci_prob: float
    test: str
    interval: str

    @property
    def verdicts(self) -> dict[str, str]:
        """``{component: verdict}``."""
        return dict(self.table.verdict)

    def to_dict(self) -> list[dict]:
        """One JSON-ready object per component (``component`` and every column; NaN -> None)."""
        return [{"component": c, **{k: _json(v) for k, v in r.items()}} for c, r in self.table.iterrows()]

    def __str__(self) -> str:
        lines = [f"Component verdicts (test {self.test} at alpha {self.alpha:g}; {100 * self.level:g}% "
                 f"{self.interval} intervals; negligible: SD below {self.negligible:g} residual SD)"]
        lines += [f"  {c}: {s}" for c, s in self.table.sentence.items()]
        return "\n".join(lines)


def _test_row(reml, c, test, nsim, seed):
    """The test's numbers, or NaN and the reason where the component cannot be tested this way (a
    component of a correlated term; the exact LRT among other components of an ML fit)."""
    try:
        locate_component(reml.design, c)
        t = reml.test_component(c, method=test, nsim=nsim, seed=seed)
    except SpecificationError as err:
        why = "a component of a correlated term" if "correlated term" in str(err) else str(err).split(";")[0]
        return {"statistic": np.nan, "p_value": np.nan, "test": f"none ({why})", "statistic_name": "",
                "nsim": 0}
    label = t.method + (", approximate" if t.approximate else "")
    return {"statistic": t.statistic, "p_value": t.p_value, "test": label, "statistic_name": t.statistic_name,
            "nsim": t.nsim}


def _posterior_rows(posterior, reml, sens, sweep, threshold, negligible, ci_prob, kernel):
    """The sensitivity study's verdict rows (posterior summaries and sensitivities), or posterior
    summaries alone when the posterior has no prior to power-scale."""
    if posterior is None:
        return None
    if sens is None:
        try:
            sens = sensitivity(posterior, threshold=threshold, reml=reml, sweep=sweep, kernel=kernel,
                               negligible=negligible, ci_prob=ci_prob, scale="sd")
        except SpecificationError:
            sens = None
    if sens is not None:
        rows = sens.verdicts.rename(columns={"p_near_zero": "p_negligible"})
        if "scale" in rows and (rows["scale"] == "variance").any():  # the verdicts quote SDs
            rows[["median", "lower", "upper"]] = np.sqrt(rows[["median", "lower", "upper"]])
        return rows
    post = posterior.posterior
    sigma = post["sigma"].values.ravel()
    rows = {}
    for c in posterior.design.component_names:
        x = post["sd"].sel(component=c).values.ravel()
        rows[c] = {"median": float(np.median(x)), "lower": float(np.quantile(x, (1 - ci_prob) / 2)),
                   "upper": float(np.quantile(x, (1 + ci_prob) / 2)),
                   "p_negligible": float(np.mean(x < negligible * sigma)), "psense_prior": np.nan,
                   "diagnosis": None, "sweep_change": np.nan}
    return pd.DataFrame.from_dict(rows, orient="index")


def _verdict(r, alpha) -> str:
    if np.isfinite(r["p_value"]):
        rejects = r["p_value"] < alpha
    elif np.isfinite(r["ci_lower"]):
        rejects = not r["ci_at_zero"]
    else:
        rejects = not (np.isfinite(r["p_negligible"]) and r["p_negligible"] >= 0.5)
    if not rejects:
        return BOUNDARY
    driven = r["diagnosis"] in ("prior-dominated", "prior-data conflict") or (
        np.isfinite(r["sweep_change"]) and r["sweep_change"] > SWEEP_CHANGE)
    return PRIOR_DRIVEN if driven else SUPPORTED


def _sentence(r, v: ComponentVerdicts) -> str:
    parts = []
    if np.isfinite(r["p_value"]):
        p = f"< {1 / r['nsim']:.0e}" if r["p_value"] == 0 and r["nsim"] else f"= {r['p_value']:.3g}"
        parts.append(f"{r['statistic_name']} p {p} ({r['test']})")
    if np.isfinite(r["ci_lower"]):
        reach = "reaches 0" if r["ci_at_zero"] else "excludes 0"
        parts.append(f"the {100 * v.level:g}% {v.interval} interval ({_f(r['ci_lower'])}, "
                     f"{_f(r['ci_upper'])}) {reach}")
    freq = f"REML SD {_f(r['reml_sd'])}; " + ", ".join(parts) if parts else f"REML SD {_f(r['reml_sd'])}"
    bayes = ""
    if np.isfinite(r["median"]):
        bayes = (f"; posterior median {_f(r['median'])} ({100 * v.ci_prob:g}% interval {_f(r['lower'])} to "
                 f"{_f(r['upper'])}), {r['p_negligible']:.0%} of it below {v.negligible:g} residual SD")
        if np.isfinite(r["psense_prior"]):
            bayes += f", prior sensitivity {r['psense_prior']:.2f}"
        if np.isfinite(r["sweep_change"]):
            bayes += f", the prior sweep moves its median by {r['sweep_change']:.0%}"
    tail = ""
    if r["verdict"] == BOUNDARY and np.isfinite(r["median"]):
        tail = "; the upper end of its posterior depends on the prior: report the prior and a sweep"
    elif r["verdict"] == PRIOR_DRIVEN:
        tail = "; the data detect it but its size depends on the prior: report the prior and a sweep"
    else:
        if r["ci_at_zero"]:
            tail += "; the interval still reaches 0: weak evidence"
        if np.isfinite(r["p_negligible"]) and r["p_negligible"] > 0.5:
            tail += f"; most of its posterior lies below {v.negligible:g} residual SD: present but small"
    return f"{r['verdict']}: {freq}{bayes}{tail}"


def component_verdicts(reml, posterior=None, *, sensitivity_result=None, sweep=None, test: str = "exact",
                       nsim: int | None = None, seed=None, interval: str = "profile", level: float = 0.95,
                       ci_prob: float = 0.95, negligible: float = NEAR_ZERO, alpha: float = 0.05,
                       threshold: float = 0.05, kernel=None) -> ComponentVerdicts:
    """One verdict per component of ``reml`` (a REML or ML fit), with the posterior if given.

    Parameters
    ----------
    reml : REMLResult
    posterior : PosteriorResult, optional
        A NUTS fit of the same model; its prior sensitivity is measured by :func:`bayesvc.sensitivity`
        unless ``sensitivity_result`` is given.
    sensitivity_result : SensitivityResult, optional
    sweep : SweepResult, optional
        A prior sweep of the same model (enters the prior-driven rule).
    test : {'exact', 'bootstrap', 'chibar'}
        The test of each component (:meth:`bayesvc.REMLResult.test_component`), with ``nsim`` and
        ``seed``.
    interval : {'profile', 'wald'}
        :meth:`bayesvc.REMLResult.conf_int`, at ``level``.
    ci_prob : float
        Probability of the posterior intervals.
    negligible : float
        The negligible SD, as a fraction of the residual SD.
    alpha : float
        Level of the test.
    threshold : float
        Power-scaling sensitivity threshold.
    kernel : Kernel, optional
        The model's kernel, for the power-scaled likelihood.

    Returns
    -------
    ComponentVerdicts
    """
    alpha, level, ci_prob = validate_alpha(alpha), validate_ci_prob(level, "level"), validate_ci_prob(ci_prob)
    if not negligible > 0:
        fail(f"negligible must be a positive fraction of the residual SD, got {negligible}")
    ci = reml.conf_int(method=interval, level=level).table
    post = _posterior_rows(posterior, reml, sensitivity_result, sweep, threshold, negligible, ci_prob, kernel)
    rows = {}
    for c in reml.vcomp.index:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = {"reml_sd": float(np.sqrt(reml.vcomp[c])), "ci_lower": ci.loc[c, "lower"],
                 "ci_upper": ci.loc[c, "upper"], "ci_at_zero": bool(ci.loc[c, "at_zero"]),
                 **_test_row(reml, c, test, nsim, seed)}
        for k in ("median", "lower", "upper", "p_negligible", "psense_prior", "diagnosis", "sweep_change"):
            missing = None if k == "diagnosis" else np.nan
            r[k] = post.loc[c, k] if post is not None and c in post.index else missing
        r["verdict"] = _verdict(r, alpha)
        r["label"] = SHORT[r["verdict"]]
        rows[c] = r
    v = ComponentVerdicts(table=pd.DataFrame(), alpha=alpha, negligible=negligible, level=level,
                          ci_prob=ci_prob, test=test, interval=interval)
    for c, r in rows.items():
        r["sentence"] = _sentence(r, v)
    table = pd.DataFrame.from_dict(rows, orient="index")[COLUMNS]
    return ComponentVerdicts(table=table, alpha=alpha, negligible=negligible, level=level, ci_prob=ci_prob,
                             test=test, interval=interval)
