"""MixedLM-layout summaries of each result: REML/ML, posterior mode, NUTS.

Builders compute a :class:`~bayesvc.results.table.Summary` (header pairs and numeric tables);
rendering is the Summary's job. They read results duck-typed (no result class is imported), so
the result modules can call them from their ``summary()`` methods.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..design.covariance import coef_labels, covariance_name
from ..validate import validate_alpha, validate_ci_kind, validate_ci_prob
from .table import Summary


def group_header(design) -> list[tuple[str, object]]:
    """The header pairs every MixedLM-layout summary starts with (model, sizes, response)."""
    gs = np.asarray(design.group_sizes())
    return [
        ("Model:", "MixedLM"),
        ("No. Observations:", int(design.nobs)),
        ("No. Groups:", len(gs)),
        ("Min. group size:", f"{gs.min():.0f}"),
        ("Max. group size:", f"{gs.max():.0f}"),
        ("Mean group size:", f"{gs.mean():.1f}"),
        ("Dependent Variable:", str(design.response_name)),
    ]


def variance_dict(vcomp: pd.Series, scale: float) -> dict[str, float]:
    """Component variances plus ``"Residual"`` as plain floats (the JSON ``variances`` entry)."""
    return {**{k: float(v) for k, v in vcomp.items()}, "Residual": float(scale)}


def _interval_columns(alpha: float) -> list[str]:
    return ["[" + str(alpha / 2), str(1 - alpha / 2) + "]"]


def reml_summary(result, alpha: float = 0.05, title: str | None = None) -> Summary:
    """statsmodels' ``MixedLMResults.summary()`` for a REML/ML fit.

    ``tables["params"]`` has columns ``Coef., Std.Err., z, P>|z|, [alpha/2, 1-alpha/2]``: one row
    per fixed effect, then per random-effect term a row per variance and, for correlated terms,
    per covariance and per correlation (labels and order: :func:`random_effect_labels`), with
    standard errors from the information matrix (``cov_vc``; delta method for correlations).
    These rows leave z, p and interval blank.
    """
    alpha = validate_alpha(alpha)
    fe = result.fe_params
    coef, bse = fe.to_numpy(dtype=float), result.bse_fe.reindex(fe.index).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = coef / bse
    qm = -norm.ppf(alpha / 2)
    cols = ["Coef.", "Std.Err.", "z", "P>|z|", *_interval_columns(alpha)]
    fe_rows = np.column_stack([coef, bse, z, 2 * norm.cdf(-np.abs(z)), coef - qm * bse, coef + qm * bse])
    names, rows = list(fe.index), [list(r) for r in fe_rows]
    for label, value, std in _random_effect_rows(result):
        names.append(label)
        rows.append([value, std, np.nan, np.nan, np.nan, np.nan])
    params = pd.DataFrame(rows, index=pd.Index(names, dtype=object), columns=cols, dtype=float)
    header = group_header(result.design) + [
        ("Method:", str(result.method)),
        ("Scale:", float(result.scale)),
        ("Log-Likelihood:", float(result.llf)),
        ("Converged:", "Yes" if result.converged else "No"),
    ]
    return Summary(title or "Mixed Linear Model Regression Results", header, {"params": params},
                   float_formats={"params": "%.3f"})


def random_effect_labels(design) -> dict[str, str]:
    """Row label of every variance parameter, in table order (per term: variances, then for a
    correlated term its covariances and correlations), keyed by the name the results use (component
    names, covariance names ``"<term>: <coef j>,<coef i>"`` and those plus ``" (corr)"``).

    Variance components keep statsmodels' ``"<component> Var"``. A correlated term is read as
    lme4 prints it, group then coefficient (``(Intercept)`` for the intercept), with statsmodels'
    ``Var`` / ``x ... Cov`` suffixes and ``Corr`` for the correlation: ``Subject (Intercept) Var``,
    ``Subject Days Var``, ``Subject (Intercept) x Days Cov``, ``Subject (Intercept) x Days Corr``.

    Examples
    --------
    >>> list(random_effect_labels(slopes.design).values())
    ['g (Intercept) Var', 'g x Var', 'g (Intercept) x x Cov', 'g (Intercept) x x Corr']
    >>> random_effect_labels(nested_fit.design)
    {'a': 'a Var', 'a:b': 'a:b Var'}
    """
    out = {}
    for t in design.terms:
        if not (t.correlated and t.p > 1):
            out.update({c: f"{c} Var" for c in t.component_names})
            continue
        coef = ["(Intercept)" if c == "Intercept" else c for c in coef_labels(t)]
        out.update({c: f"{t.name} {coef[i]} Var" for i, c in enumerate(t.component_names)})
        pairs = [(i, j) for i in range(t.p) for j in range(i)]
        out.update({covariance_name(t, i, j): f"{t.name} {coef[j]} x {coef[i]} Cov" for i, j in pairs})
        out.update({f"{covariance_name(t, i, j)} (corr)": f"{t.name} {coef[j]} x {coef[i]} Corr"
                    for i, j in pairs})
    return out


def _random_effect_rows(result) -> list[tuple[str, float, float]]:
    """``(label, value, std. err.)`` per variance, covariance and correlation, in
    :func:`random_effect_labels` order."""
    values = {**result.vcomp.to_dict()}
    ses = {**result.vcomp_se.to_dict()}
    for t in result.design.terms:
        if t.name not in result.cov_re:
            continue
        C, S = result.cov_re[t.name].to_numpy(), result.cov_re_se[t.name].to_numpy()
        for i in range(t.p):
            for j in range(i):
                key = covariance_name(t, i, j)
                values[key], ses[key] = float(C[i, j]), float(S[i, j])
                values[f"{key} (corr)"], ses[f"{key} (corr)"] = _correlation(result, t, i, j)
    return [(label, values[k], ses.get(k, np.nan))
            for k, label in random_effect_labels(result.design).items()]


def _correlation(result, t, i: int, j: int) -> tuple[float, float]:
    """Correlation of coefficients ``i, j`` of term ``t`` and its delta-method standard error
    from ``cov_vc`` (NaN when the term is held on the boundary)."""
    C = result.cov_re[t.name].to_numpy()
    denom = np.sqrt(C[i, i] * C[j, j])
    r = C[i, j] / denom if denom > 0 else np.nan
    names = [t.component_names[i], covariance_name(t, i, j), t.component_names[j]]
    if not denom > 0 or not all(n in result.cov_vc.index for n in names):
        return float(r), np.nan
    g = np.array([-r / (2 * C[i, i]), 1 / denom, -r / (2 * C[j, j])])
    V = result.cov_vc.loc[names, names].to_numpy()
    return float(r), float(np.sqrt(max(g @ V @ g, 0.0)))


def _row_label(name, design) -> str:
    if name in design.fe_names:
        return name
    return "Residual Var" if name == "Residual" else random_effect_labels(design)[name]


def posterior_summary(result, ci_prob: float = 0.95, ci_kind: str = "eti") -> Summary:
    """NUTS summary in the MixedLM layout.

    Columns Mean, SD, the interval bounds (``ci_kind`` 'eti' or 'hdi' at ``ci_prob``), R-hat,
    ESS bulk, ESS tail and MCSE (of the mean), computed with arviz-stats; rows as in the REML
    table (covariances and correlations of correlated terms included) plus the residual variance.
    The header adds ``Scale:`` (the posterior mean of the residual variance), the sampler, chains
    x draws, divergences, max R-hat and min ESS.
    """
    validate_ci_kind(ci_kind)
    validate_ci_prob(ci_prob)
    s = result.param_summary(ci_prob=ci_prob, ci_kind=ci_kind)
    lo, hi = [c for c in s.columns if c.startswith(ci_kind)][:2]
    pct = f"{100 * ci_prob:g}%"
    cols = {"mean": "Mean", "sd": "SD", lo: f"{ci_kind.upper()} {pct} lower",
            hi: f"{ci_kind.upper()} {pct} upper", "r_hat": "R-hat", "ess_bulk": "ESS bulk",
            "ess_tail": "ESS tail", "mcse_mean": "MCSE"}
    order = [*result.design.fe_names, *random_effect_labels(result.design), "Residual"]
    params = s.loc[order, list(cols)].rename(columns=cols)
    params.index = pd.Index([_row_label(i, result.design) for i in order], dtype=object)
    d = result.diagnostics()
    header = group_header(result.design) + [
        ("Method:", "NUTS (" + {"full": "collapsed", "partial": "partly collapsed", "none": "non-centered",
                                "laplace": "Laplace + importance sampling"}[result.marginalize] + ")"),
        ("Scale:", float(result.scale)),
        ("Sampler:", result.sampler),
        ("Chains x draws:", f"{result.chains} x {result.draws}"),
        ("Divergences:", int(result.divergences)),
        ("Max R-hat:", f"{d.r_hat.max():.3f}"),
        ("Min ESS (bulk):", f"{d.ess_bulk.min():.0f}"),
        ("Min ESS (tail):", f"{d.ess_tail.min():.0f}"),
    ]
    if "importance" in result.idata.children:  # the Laplace engine's correction (approximate-then-corrected)
        a = result.idata["importance"].attrs
        header += [("IS Pareto k-hat:", f"{a['khat']:.2f}"), ("IS efficiency:", f"{a['efficiency']:.2f}")]
    fmts = {c: "%.3f" for c in params.columns}
    fmts.update({"R-hat": "%.3f", "ESS bulk": "%.0f", "ESS tail": "%.0f", "MCSE": "%.4f"})
    return Summary("Mixed Linear Model Posterior Summary (NUTS)", header, {"params": params},
                   float_formats={"params": fmts})


def mode_summary(result, alpha: float = 0.05) -> Summary:
    """Posterior mode with Laplace intervals at level ``1 - alpha`` (normal on the log-SD scale
    for variances)."""
    q = -norm.ppf(validate_alpha(alpha) / 2)
    rows, names = [], []
    for n in result.design.fe_names:
        b, se = result.fe_params[n], result.bse_fe[n]
        rows.append([b, se, b - q * se, b + q * se])
        names.append(n)
    iv = result.vcomp_ci(alpha)
    for c in result.vcomp.index:
        rows.append([result.vcomp[c], np.nan, iv.loc[c, "lower"], iv.loc[c, "upper"]])
        names.append(random_effect_labels(result.design)[c])
    cols = ["Mode", "Std.Err.", *_interval_columns(alpha)]
    params = pd.DataFrame(rows, index=pd.Index(names, dtype=object), columns=cols)
    header = group_header(result.design) + [
        ("Method:", "Posterior mode" + (" (fixed effects integrated)" if result.integrate_fixed else "")),
        ("Scale:", float(result.scale)),
        ("Log-posterior:", float(result.log_density)),
        ("Converged:", "Yes" if result.converged else "No"),
    ]
    return Summary("Mixed Linear Model Posterior Mode", header, {"params": params},
                   float_formats={"params": "%.3f"})
