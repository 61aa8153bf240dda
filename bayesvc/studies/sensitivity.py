"""Prior sensitivity: power-scaling diagnostics and boundary-aware verdicts per component.

:func:`sensitivity` power-scales the prior and the likelihood of a NUTS fit (arviz-stats
``psense``, Kallioinen et al. 2024: Pareto-smoothed importance weights, no refit) and measures how
much each parameter's posterior moves. With the usual threshold (0.05):

- ``ok``: prior sensitivity below the threshold;
- ``prior-dominated``: prior sensitive, likelihood not (strong prior / weak likelihood);
- ``prior-data conflict``: both sensitive.

The prior is every top-level prior (component SDs, residual SD, fixed effects; the ``log_prior``
group) scaled jointly. The likelihood is, by default, the *collapsed* likelihood
``p(y | beta, sigma, SD)`` with the random effects integrated out (one kernel factorization per
draw): it is the likelihood the posterior of the variance parameters is built on, it needs no
random-effect draws and it carries no extra Monte Carlo noise. ``likelihood="conditional"`` uses
the stored pointwise ``p(y | b, beta, sigma)`` instead (the only choice for correlated terms).

Power-scaling sees local prior influence only. A component whose REML estimate is zero can look
``ok`` under a wide prior (the prior is nearly flat where the posterior lives) and still have a
posterior whose upper tail is set by the prior: the verdict therefore also looks at REML at or near
zero and at the posterior mass near zero, and at a prior sweep (:func:`bayesvc.prior_sweep`)
when one is given.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import BoundaryFitWarning, fail
from ..estimators import fit_reml
from ..estimators.bayes.draws import conditional_loglik_sum, marginal_loglik
from ..kernel import Kernel
from ..validate import validate_choice, validate_ci_prob
from ..views.plots import plot_psense, plot_psense_quantities

DIAGNOSES = ("ok", "prior-dominated", "prior-data conflict")

#: a component SD below this fraction of the residual SD counts as "near zero" (its variance is
#: under 1% of the residual variance)
NEAR_ZERO = 0.1
#: a sweep whose posterior median of the component moves by more than this fraction: prior-driven
SWEEP_CHANGE = 0.25


def _diagnose(prior: float, lik: float, threshold: float) -> str:
    if prior >= threshold and lik >= threshold:
        return "prior-data conflict"
    if prior >= threshold:
        return "prior-dominated"
    return "ok"


def _conditional_loglik(result) -> np.ndarray | None:
    """Summed conditional log-likelihood per draw (stored group, or recomputed from ``re_*``)."""
    if "log_likelihood" in result.idata.children:
        ll = result.idata["log_likelihood"].to_dataset()["y"]
        return ll.sum([d for d in ll.dims if d not in ("chain", "draw")]).values
    post = result.posterior
    if not all(f"re_{t.name}" in post for t in result.design.terms):
        return None
    return conditional_loglik_sum(result.design, post)


def _tree_for_psense(result, likelihood: str, kernel=None):
    if likelihood not in ("auto", "marginal", "conditional"):
        fail(f"likelihood must be 'auto', 'marginal' or 'conditional', got {likelihood!r}")
    if "log_prior" not in result.idata.children:
        fail("sensitivity needs the log_prior group of a bayesvc NUTS fit")
    if likelihood == "auto":
        likelihood = "marginal" if result.design.scalar else "conditional"
    if likelihood == "marginal":
        if not result.design.scalar:
            fail("likelihood='marginal' needs scalar variance components; use 'conditional'")
        ll = marginal_loglik(kernel or Kernel(result.design), result.posterior)
    else:
        ll = _conditional_loglik(result)
        if ll is None:
            fail("no log-likelihood to power-scale: sample with log_likelihood=True (and "
                 "random_effects=True), or use likelihood='marginal'")
    post = result.idata["posterior"].to_dataset()
    groups = {"posterior": post[["beta", "sd", "sigma"]],
              "log_prior": result.idata["log_prior"].to_dataset(),
              "log_likelihood": xr.Dataset({"y": (("chain", "draw"), ll)},
                                           coords={"chain": post.chain, "draw": post.draw})}
    return xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()}), likelihood


def _psense_table(tree, design, threshold, alphas) -> pd.DataFrame:
    from arviz_stats import psense

    kw = {"var_names": ["sd", "sigma", "beta"], "alphas": alphas}
    pri, lik = psense(tree, group="prior", **kw), psense(tree, group="likelihood", **kw)
    rows = []
    for c in design.component_names:
        rows.append(("sd", c, f"sd[{c}]", pri["sd"].sel(component=c), lik["sd"].sel(component=c)))
    rows.append(("sigma", "Residual", "sigma", pri["sigma"], lik["sigma"]))
    for n in design.fe_names:
        rows.append(("beta", n, f"beta[{n}]", pri["beta"].sel(fixed=n), lik["beta"].sel(fixed=n)))
    df = pd.DataFrame([{"parameter": lab, "kind": kind, "name": name, "psense_prior": float(p),
                        "psense_likelihood": float(q)} for kind, name, lab, p, q in rows])
    df["diagnosis"] = [_diagnose(p, q, threshold) for p, q in zip(df.psense_prior, df.psense_likelihood)]
    return df.set_index("parameter")


def _fmt(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def _verdicts(result, table, reml, sweep, threshold, ci_prob=0.95, negligible=NEAR_ZERO,
              scale="variance") -> pd.DataFrame:
    """One row per component and the residual, with one sentence a user can act on; a component SD
    below ``negligible`` residual SDs counts as near zero; values in ``scale`` (variances or SDs;
    the near-zero rule and the sweep's change are the SD's)."""
    post = result.posterior
    sigma = post["sigma"].values.ravel()
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2
    reml_sigma = float(np.sqrt(reml.scale))
    change = sweep.change(scale="sd") if sweep is not None else None  # SWEEP_CHANGE is an SD's
    power = 2 if scale == "variance" else 1
    unit = "variance" if power == 2 else "SD"
    below = f"{negligible**2:g} of the residual variance" if power == 2 else f"{negligible:g} residual SD"
    rows = []
    for c in list(result.design.component_names) + ["Residual"]:
        is_res = c == "Residual"
        lab = "sigma" if is_res else f"sd[{c}]"
        x = sigma if is_res else post["sd"].sel(component=c).values.ravel()
        reml_sd = reml_sigma if is_res else float(np.sqrt(max(float(reml.vcomp[c]), 0.0)))
        at_boundary = (not is_res) and c in tuple(reml.boundary)
        near_zero = (not is_res) and (at_boundary or reml_sd < negligible * reml_sigma)
        p0 = float(np.mean(x < negligible * sigma)) if not is_res else 0.0
        ps_p, ps_l = float(table.loc[lab, "psense_prior"]), float(table.loc[lab, "psense_likelihood"])
        diag = table.loc[lab, "diagnosis"]
        ch = np.nan
        if change is not None and not is_res:
            mine = [v for (fam, comp), v in change.items() if comp == c]
            ch = float(max(mine)) if mine else np.nan
        swept_driven = bool(np.isfinite(ch) and ch > SWEEP_CHANGE)
        xs = x**power
        med, lo, hi = float(np.median(xs)), float(np.quantile(xs, lo_q)), float(np.quantile(xs, hi_q))
        what = f"residual {unit}" if is_res else f"{c} {unit}"
        reml_txt = "REML is 0" if at_boundary else f"REML is {_fmt(reml_sd**power)}"
        sweep_txt = f" (the sweep moves the median of its SD by {ch:.0%})" if swept_driven else ""
        if near_zero:
            flagged = True
            if diag != "ok" or swept_driven:
                verdict = (f"data hardly inform the {what}: {reml_txt} and its posterior follows the "
                           f"prior{sweep_txt}; report the prior and the sweep")
            else:
                verdict = (f"data hardly inform the {what}: {reml_txt}, {p0:.0%} of its posterior lies "
                           f"below {below} and the upper end of its interval "
                           f"({_fmt(lo)}, {_fmt(hi)}) depends on the prior; report the prior and a "
                           "prior sweep")
        elif diag == "prior-data conflict":
            flagged = True
            verdict = (f"prior-data conflict on the {what} (prior sensitivity {ps_p:.2f}, likelihood "
                       f"{ps_l:.2f}; {reml_txt}): check the prior scale against the data")
        elif diag == "prior-dominated" or swept_driven:
            flagged = True
            verdict = (f"the prior dominates the {what} (prior sensitivity {ps_p:.2f}, likelihood "
                       f"{ps_l:.2f}){sweep_txt} although {reml_txt}: widen the prior or report the sweep")
        else:
            flagged = False
            verdict = (f"ok: the data inform the {what} ({reml_txt}, posterior median {_fmt(med)}); "
                       "the prior matters little")
        rows.append({"component": c, "parameter": lab, "reml_sd": reml_sd, "reml_variance": reml_sd**2,
                     "reml_boundary": at_boundary, "near_zero": near_zero, "p_near_zero": p0,
                     "scale": unit.lower(), "median": med, "lower": lo, "upper": hi,
                     "psense_prior": ps_p, "psense_likelihood": ps_l, "diagnosis": diag,
                     "sweep_change": ch, "flagged": flagged, "verdict": verdict})
    return pd.DataFrame(rows).set_index("component")


@dataclass(frozen=True)
class SensitivityResult:
    """Power-scaling sensitivity of a NUTS fit, with a verdict per component.

    Attributes
    ----------
    table : DataFrame
        Per parameter (index ``sd[<component>]``, ``sigma``, ``beta[<name>]``): ``kind``,
        ``name``, ``psense_prior``, ``psense_likelihood``, ``diagnosis`` (``ok``,
        ``prior-dominated``, ``prior-data conflict``).
    verdicts : DataFrame
        Per component and ``"Residual"``: REML SD and variance and boundary flag, posterior mass
        below ``negligible`` (default :data:`NEAR_ZERO`) residual SDs (``p_near_zero``), the
        posterior median and interval of the variance (or SD: column ``scale``), the sensitivities
        and diagnosis, the sweep's relative change of the median SD (if a sweep was given),
        ``flagged`` and ``verdict`` (one sentence, quoting values in ``scale``).
    likelihood : str
        ``"marginal"`` (collapsed) or ``"conditional"``: the likelihood that was power-scaled.
    threshold : float
        The sensitivity threshold used.
    scale : {'variance', 'sd'}
        The scale of the verdicts' values and sentences.

    Examples
    --------
    >>> sens = bvc.sensitivity(post, reml=reml)
    >>> list(sens.table.index), list(sens.verdicts.index), sens.likelihood
    (['sd[g]', 'sigma', 'beta[Intercept]'], ['g', 'Residual'], 'marginal')
    >>> set(sens.flagged) <= {"g", "Residual"}, sorted(sens.to_dict())
    (True, ['components', 'fixed', 'likelihood', 'threshold'])
    """

    table: pd.DataFrame
    verdicts: pd.DataFrame
    threshold: float
    likelihood: str
    idata: object = field(repr=False)
    sweep: object = field(default=None, repr=False)
    scale: str = "variance"

    @property
    def flagged(self) -> list[str]:
        """Components (or ``"Residual"``) whose verdict asks for attention.

        """
        return [c for c, f in self.verdicts.flagged.items() if f]

    def plot(self, var_names=("sd", "sigma"), **kwargs):
        """Power-scaled posteriors (:func:`bayesvc.views.plots.plot_psense`); a PlotCollection."""
        return plot_psense(self, var_names=var_names, **kwargs)

    def plot_quantities(self, var_names=("sd", "sigma"), **kwargs):
        """Posterior summaries against the power-scaling factor
        (:func:`bayesvc.views.plots.plot_psense_quantities`); a PlotCollection."""
        return plot_psense_quantities(self, var_names=var_names, **kwargs)

    def to_dict(self) -> dict:
        """``{"components": [...], "fixed": [...]}``: the SDs (components, then the residual) and
        the fixed effects, each with ``parameter, psense_prior, psense_likelihood, diagnosis``;
        component rows add ``component, flagged, reml_sd, reml_variance, p_near_zero`` and, in
        ``scale`` (``"variance"`` or ``"sd"``), the posterior ``median, lower, upper`` and the
        ``verdict``.

        """
        comps = []
        for c, r in self.verdicts.iterrows():
            comps.append({"parameter": r.parameter, "component": c,
                          "psense_prior": float(r.psense_prior),
                          "psense_likelihood": float(r.psense_likelihood),
                          "diagnosis": r.diagnosis, "flagged": bool(r.flagged),
                          "reml_sd": float(r.reml_sd), "reml_variance": float(r.reml_variance),
                          "p_near_zero": float(r.p_near_zero), "scale": r.scale,
                          "median": float(r["median"]), "lower": float(r.lower),
                          "upper": float(r.upper), "verdict": r.verdict})
        fixed = [{"parameter": lab, "psense_prior": float(r.psense_prior),
                  "psense_likelihood": float(r.psense_likelihood), "diagnosis": r.diagnosis}
                 for lab, r in self.table[self.table.kind == "beta"].iterrows()]
        return {"components": comps, "fixed": fixed, "threshold": self.threshold,
                "likelihood": self.likelihood}

    def __str__(self) -> str:
        t = self.table[["psense_prior", "psense_likelihood", "diagnosis"]]
        what = "variances" if self.scale == "variance" else "SDs"
        title = (f"Power-scaling sensitivity (threshold {self.threshold:g}; {self.likelihood} likelihood; "
                 f"verdicts in {what})")
        lines = [title, t.to_string(float_format=lambda v: f"{v:.3f}"), "", "Verdicts:"]
        lines += [f"  {c}: {v}" for c, v in self.verdicts.verdict.items()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:  # pragma: no cover - notebooks
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"


def sensitivity(result, threshold: float = 0.05, *, likelihood: str = "auto", reml=None, sweep=None,
                alphas=(0.99, 1.01), kernel=None, negligible: float = NEAR_ZERO,
                ci_prob: float = 0.95, scale: str = "variance") -> SensitivityResult:
    """Power-scaling prior and likelihood sensitivity of a NUTS fit, and a verdict per component.

    Parameters
    ----------
    result : PosteriorResult
        From :meth:`VCModel.sample` (needs its ``log_prior`` group).
    threshold : float
        Sensitivity above which a parameter counts as sensitive (0.05, Kallioinen et al.).
    likelihood : {'auto', 'marginal', 'conditional'}
        What is power-scaled as the likelihood (module docstring); ``auto``: the collapsed
        likelihood when the design allows it.
    reml : REMLResult, optional
        The REML fit (computed when not given).
    sweep : SweepResult, optional
        A prior sweep of the same model; its spread enters the verdicts.
    alphas : (float, float)
        Power-scaling factors for the derivative (arviz-stats' default).
    negligible : float
        A component SD below this fraction of the residual SD counts as near zero
        (:data:`NEAR_ZERO`); ``p_near_zero`` is the posterior mass below it.
    ci_prob : float
        Probability of the posterior intervals in the verdicts.
    scale : {'variance', 'sd'}
        Report the verdicts' values in variances (as every summary) or SDs.

    Returns
    -------
    SensitivityResult

    Examples
    --------
    With a prior sweep of the same model, the verdicts also weigh how far the sweep moves each
    component:

    >>> sens = bvc.sensitivity(post, threshold=0.05, reml=reml, sweep=sweep)
    >>> list(sens.verdicts.columns[-3:]), bool(sens.verdicts.sweep_change.notna()["g"])
    (['sweep_change', 'flagged', 'verdict'], True)
    """
    if not 0 < threshold < 1:
        fail(f"threshold must be in (0, 1), got {threshold}")
    tree, used = _tree_for_psense(result, likelihood, kernel)
    table = _psense_table(tree, result.design, threshold, alphas)
    if reml is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundaryFitWarning)  # the verdict says it
            reml = fit_reml(result.design, reml=True, kernel=kernel)
    if not negligible > 0:
        fail(f"negligible must be a positive fraction of the residual SD, got {negligible}")
    scale = validate_choice(scale, "scale", ("variance", "sd"))
    verdicts = _verdicts(result, table, reml, sweep, threshold, validate_ci_prob(ci_prob), negligible,
                         scale=scale)
    return SensitivityResult(table=table, verdicts=verdicts, threshold=threshold, likelihood=used,
                             idata=tree, sweep=sweep, scale=scale)
