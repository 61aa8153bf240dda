"""MixedLM-layout summaries for the posterior mode and for NUTS, and the comparison table.

Computation only; rendering is :class:`bayesvc.summary.Summary`'s job.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .summary import Summary, group_header as _group_header


def _row_label(name, design) -> str:
    if name in design.fe_names:
        return name
    if name == "Residual":
        return "Residual Var"
    return f"{name} Var"


def posterior_summary(result, ci_prob: float = 0.95, ci_kind: str = "eti") -> Summary:
    """NUTS summary in the MixedLM layout.

    Columns Mean, SD, the interval bounds (``ci_kind`` 'eti' or 'hdi' at ``ci_prob``), R-hat,
    ESS bulk, ESS tail and MCSE (of the mean), computed with arviz-stats; rows as in the REML
    table plus the residual variance. The header adds chains x draws, divergences, max R-hat,
    min ESS and the sampler.
    """
    if ci_kind not in ("eti", "hdi"):
        raise ValueError(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
    s = result.param_summary(ci_prob=ci_prob, ci_kind=ci_kind)
    lo, hi = [c for c in s.columns if c.startswith(ci_kind)][:2]
    pct = f"{100 * ci_prob:g}%"
    cols = {"mean": "Mean", "sd": "SD", lo: f"{ci_kind.upper()} {pct} lower",
            hi: f"{ci_kind.upper()} {pct} upper", "r_hat": "R-hat", "ess_bulk": "ESS bulk",
            "ess_tail": "ESS tail", "mcse_mean": "MCSE"}
    params = s[list(cols)].rename(columns=cols)
    params.index = pd.Index([_row_label(i, result.design) for i in s.index], dtype=object)
    d = result.diagnostics()
    header = _group_header(result.design) + [
        ("Method:", "NUTS (" + {"full": "collapsed", "partial": "partly collapsed",
                                "none": "non-centered"}[result.marginalize] + ")"),
        ("Sampler:", result.sampler),
        ("Chains x draws:", f"{result.chains} x {result.draws}"),
        ("Divergences:", int(result.divergences)),
        ("Max R-hat:", f"{d.r_hat.max():.3f}"),
        ("Min ESS (bulk):", f"{d.ess_bulk.min():.0f}"),
        ("Min ESS (tail):", f"{d.ess_tail.min():.0f}"),
    ]
    fmts = {c: "%.3f" for c in params.columns}
    fmts.update({"R-hat": "%.3f", "ESS bulk": "%.0f", "ESS tail": "%.0f", "MCSE": "%.4f"})
    return Summary("Mixed Linear Model Posterior Summary (NUTS)", header, {"params": params},
                   float_formats={"params": fmts})


def mode_summary(result, alpha: float = 0.05) -> Summary:
    """Posterior mode with Laplace intervals (normal on the log-SD scale for variances)."""
    from scipy.stats import norm

    q = -norm.ppf(alpha / 2)
    rows, names = [], []
    for n in result.design.fe_names:
        b, se = result.fe_params[n], result.bse_fe[n]
        rows.append([b, se, b - q * se, b + q * se])
        names.append(n)
    iv = result.vcomp_interval
    for c in result.vcomp.index:
        rows.append([result.vcomp[c], np.nan, iv.loc[c, "lower"], iv.loc[c, "upper"]])
        names.append(f"{c} Var")
    cols = ["Mode", "Std.Err.", "[" + str(alpha / 2), str(1 - alpha / 2) + "]"]
    params = pd.DataFrame(rows, index=pd.Index(names, dtype=object), columns=cols)
    header = _group_header(result.design) + [
        ("Method:", "Posterior mode" + (" (fixed effects integrated)" if result.integrate_fixed else "")),
        ("Scale:", float(result.scale)),
        ("Log-posterior:", float(result.log_density)),
        ("Converged:", "Yes" if result.converged else "No"),
    ]
    return Summary("Mixed Linear Model Posterior Mode", header, {"params": params},
                   float_formats={"params": "%.3f"})
