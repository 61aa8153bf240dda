"""Plots of variance components, posteriors, sampler diagnostics and variance shares.

matplotlib and arviz-plots are imported inside the functions, so ``import bayesvc`` does not
need them. Functions drawing with matplotlib return the ``Figure``; the diagnostics
(:func:`plot_trace`, :func:`plot_rank`, :func:`plot_energy`) return arviz-plots'
``PlotCollection`` (save with ``pc.savefig(path)``).

Every ``posterior`` argument is a :class:`~bayesvc.PosteriorResult`; REML results are
:class:`~bayesvc.REMLResult` and modes :class:`~bayesvc.ModeResult`. :func:`plot_sweep` and the
power-scaling plots draw the results of :mod:`bayesvc.studies` (read duck-typed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .decomposition import variance_shares

__all__ = ["plot_components", "plot_posteriors", "plot_trace", "plot_rank", "plot_energy", "plot_shares",
           "plot_sweep", "plot_psense", "plot_psense_quantities", "plot_profile"]

DIAGNOSTIC_VARS = ("beta", "sd", "sigma")


def _variance_draws(posterior, residual: bool = True) -> dict[str, np.ndarray]:
    p = posterior.posterior
    out = {c: p["var"].sel(component=c).values.ravel() for c in posterior.design.component_names}
    if residual:
        out["Residual"] = p["scale"].values.ravel()
    return out


def _point(result, name):
    if result is None:
        return np.nan
    return float(result.scale) if name == "Residual" else float(result.vcomp[name])


def plot_components(posterior, reml=None, mode=None, ci_prob: float = 0.95, residual: bool = True,
                    log: bool = False, ax=None):
    """Forest plot of the component variances with REML and posterior-mode markers.

    Each row shows the posterior equal-tailed ``ci_prob`` interval (line) and the inner 50 %
    interval (thick line), the posterior median (dot), the REML estimate (cross) and the posterior
    mode (diamond).

    Parameters
    ----------
    posterior : PosteriorResult
    reml : REMLResult, optional
    mode : ModeResult, optional
    ci_prob : float, default 0.95
    residual : bool, default True
        Include the residual variance.
    log : bool, default False
        Logarithmic x axis; REML or mode estimates at zero are then drawn at half the smallest
        interval bound, the left edge.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    draws = _variance_draws(posterior, residual)
    names = list(draws)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.4, 0.6 * len(names) + 1.4))
    else:
        fig = ax.figure
    a = (1 - ci_prob) / 2
    ys = np.arange(len(names))[::-1]
    for y, n in zip(ys, names):
        x = draws[n]
        lo, q1, med, q3, hi = np.quantile(x, [a, 0.25, 0.5, 0.75, 1 - a])
        first = y == ys[0]
        ax.plot([lo, hi], [y, y], color="C0", lw=1.5,
                label=f"posterior {100 * ci_prob:g}% ETI" if first else None)
        ax.plot([q1, q3], [y, y], color="C0", lw=4, solid_capstyle="butt")
        ax.plot([med], [y], "o", color="C0", ms=6, label="posterior median" if first else None)
    # on a log axis, estimates at (or within 1e-8 of) zero sit at the left edge
    floor = 0.5 * min(np.quantile(x, a) for x in draws.values()) if log else -np.inf
    if reml is not None:
        vals = np.maximum([_point(reml, n) for n in names], floor)
        ax.plot(vals, ys, "x", color="C3", ms=9, mew=2, label=str(getattr(reml, "method", "REML")))
    if mode is not None:
        vals = [_point(mode, n) for n in names]
        vals = np.where(np.array(vals) < 1e-8 * max(vals), floor, np.maximum(vals, floor))
        ax.plot(vals, ys, "D", mfc="none", color="C2", ms=8, mew=1.5, label="posterior mode")
    ax.set_yticks(ys, [f"{n} Var" for n in names])
    ax.set_xlabel("variance")
    if log:
        ax.set_xscale("log")
    else:
        ax.set_xlim(left=0)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    ax.set_title("Variance components")
    fig.tight_layout()
    return fig


def plot_posteriors(posterior, reml=None, mode=None, residual: bool = True, ncols: int = 3):
    """Posterior densities of the component variances with REML (and mode) vertical lines.

    Densities are arviz-stats' boundary-corrected KDEs (a variance is positive); the x axis starts
    at zero and ends at the 99.5 % posterior quantile (or the REML/mode line, if further right).

    Parameters
    ----------
    posterior : PosteriorResult
    reml : REMLResult, optional
        Drawn as a red dashed line.
    mode : ModeResult, optional
        Drawn as a green dotted line.
    residual : bool, default True
    ncols : int, default 3

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from arviz_stats.base import array_stats

    draws = _variance_draws(posterior, residual)
    k = len(draws)
    ncols = min(ncols, k)
    nrows = -(-k // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.8 * nrows), squeeze=False)
    for ax, (n, x) in zip(axes.flat, draws.items()):
        grid, pdf, _ = array_stats.kde(x)
        ax.plot(grid, pdf, color="C0", label="posterior")
        ax.fill_between(grid, pdf, alpha=0.2, color="C0")
        if reml is not None:
            ax.axvline(_point(reml, n), color="C3", ls="--", label=str(getattr(reml, "method", "REML")))
        if mode is not None:
            ax.axvline(_point(mode, n), color="C2", ls=":", label="mode")
        ax.set_title(f"{n} Var")
        ax.set_yticks([])
        right = max([np.quantile(x, 0.995)] + [_point(r, n) for r in (reml, mode) if r is not None])
        ax.set_xlim(0, 1.05 * right)
    for ax in list(axes.flat)[k:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def _dt(posterior):
    return getattr(posterior, "idata", posterior)


def plot_trace(posterior, var_names=DIAGNOSTIC_VARS, **kwargs):
    """Trace plot (arviz-plots ``plot_trace``) of ``var_names``; returns the PlotCollection."""
    from arviz_plots import plot_trace as _plot

    kwargs.setdefault("backend", "matplotlib")
    return _plot(_dt(posterior), var_names=list(var_names), **kwargs)


def plot_rank(posterior, var_names=DIAGNOSTIC_VARS, **kwargs):
    """Rank plot (arviz-plots ``plot_rank``) of ``var_names``; returns the PlotCollection."""
    from arviz_plots import plot_rank as _plot

    kwargs.setdefault("backend", "matplotlib")
    return _plot(_dt(posterior), var_names=list(var_names), **kwargs)


def plot_energy(posterior, **kwargs):
    """Energy plot with BFMI (arviz-plots ``plot_energy``); returns the PlotCollection."""
    from arviz_plots import plot_energy as _plot

    kwargs.setdefault("backend", "matplotlib")
    return _plot(_dt(posterior), **kwargs)


def plot_shares(result, ci_prob: float = 0.95, ax=None):
    """Bar chart of the variance shares, with intervals.

    Parameters
    ----------
    result : REMLResult, ModeResult, PosteriorResult, a DataFrame from
        :func:`~bayesvc.variance_shares`, or a list of these (grouped bars, one
        colour per estimator).
    ci_prob : float, default 0.95
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    items = result if isinstance(result, (list, tuple)) else [result]
    tables = [r if isinstance(r, pd.DataFrame) else variance_shares(r, ci_prob=ci_prob) for r in items]
    names = list(tables[0].component)
    if ax is None:
        fig, ax = plt.subplots(figsize=(1.2 * len(names) * max(1, len(tables) ** 0.5) + 2, 3.8))
    else:
        fig = ax.figure
    width = 0.8 / len(tables)
    x = np.arange(len(names))
    for i, t in enumerate(tables):
        t = t.set_index("component").reindex(names)
        share = t.share.to_numpy(float)
        lo, hi = t.lower.to_numpy(float), t.upper.to_numpy(float)
        err = np.vstack([np.where(np.isnan(lo), 0, share - lo), np.where(np.isnan(hi), 0, hi - share)])
        label = str(t.method.dropna().iloc[0]) if t.method.notna().any() else None
        ax.bar(x + (i - (len(tables) - 1) / 2) * width, share, width, yerr=err, capsize=3,
               color=f"C{i}", alpha=0.8, label=label)
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of total variance")
    ax.set_title("Variance shares" + (f" ({100 * ci_prob:g}% intervals)" if ci_prob else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_sweep(sweep, components=None, ax=None):
    """A prior sweep (:class:`~bayesvc.SweepResult`): each swept component's posterior median and
    interval (and mode) against its prior scale, with the REML estimate (dashed) and the prior's
    own median (dotted) as references, in the sweep's :attr:`~bayesvc.SweepResult.scale`
    (variances or SDs). Returns the matplotlib Figure."""
    s = sweep.swept()
    variance = sweep.scale == "variance"
    what = "variance" if variance else "SD"
    reml = sweep.reml_values
    comps = list(dict.fromkeys(s.component)) if components is None else list(components)
    fig, axes = _panel_row(ax, len(comps), (4.2, 3.4))
    fams = list(dict.fromkeys(s.family))
    for a, comp in zip(axes, comps):
        g = s[s.component == comp]
        for i, fam in enumerate(fams):
            gf = g[g.family == fam].sort_values("prior_scale")
            x = gf.prior_scale.to_numpy() * (1.06 ** (i - (len(fams) - 1) / 2))
            a.errorbar(x, gf["median"], yerr=[gf["median"] - gf.lower, gf.upper - gf["median"]],
                       fmt="o-", capsize=3, label=f"{fam}: median, {sweep.ci_prob:.0%} interval")
            if gf["mode"].notna().any():
                a.plot(x, gf["mode"], "x", color=a.lines[-1].get_color(), label=f"{fam}: mode")
            a.plot(gf.prior_scale, gf.prior_median**2 if variance else gf.prior_median, ":", color="grey",
                   label="prior median" if i == 0 else None)
        if comp in reml.index:
            a.axhline(reml[comp], ls="--", color="k", lw=1, label=f"REML ({reml[comp]:.3g})")
        a.set_ylim(0, 1.1 * float(g.upper.max()))
        a.set_xscale("log")
        a.set_xlabel(f"prior scale of the {comp} SD")
        a.set_ylabel(f"{comp} {what}")
        a.set_title(comp)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def plot_psense(sensitivity, var_names=("sd", "sigma"), **kwargs):
    """Power-scaled posteriors of a :class:`~bayesvc.SensitivityResult` (arviz-plots
    ``plot_psense_dist``): each parameter's posterior with the prior, then the likelihood, raised
    to 0.8 and 1.25. Returns the PlotCollection."""
    from arviz_plots import plot_psense_dist

    kwargs.setdefault("backend", "matplotlib")
    return plot_psense_dist(sensitivity.idata, var_names=list(var_names), **kwargs)


def plot_psense_quantities(sensitivity, var_names=("sd", "sigma"), **kwargs):
    """Posterior mean/sd/quantiles as functions of the power-scaling factor (arviz-plots
    ``plot_psense_quantities``). Returns the PlotCollection."""
    from arviz_plots import plot_psense_quantities as _plot

    kwargs.setdefault("backend", "matplotlib")
    return _plot(sensitivity.idata, var_names=list(var_names), **kwargs)


def _panel_row(axes, n: int, size: tuple[float, float]):
    """``(Figure, axes)``: ``n`` panels in a row of a new figure (each ``size`` inches), or the
    given axes."""
    import matplotlib.pyplot as plt

    if axes is None:
        fig, axes = plt.subplots(1, n, figsize=(size[0] * n, size[1]), squeeze=False)
        return fig, axes[0]
    axes = np.atleast_1d(axes)
    return axes[0].figure, axes


def plot_profile(conf_int, parameters=None, axes=None):
    """Profile-likelihood curves of a :class:`~bayesvc.results.inference.ConfIntResult` (from
    ``REMLResult.conf_int(method="profile")``): per parameter, the signed square root ``zeta`` of
    the criterion's rise against the parameter's value (as lme4's ``xyplot(profile(fit))``), with
    the critical values ``+-z`` (dotted), the interval's ends (dashed) and the estimate. The points
    are those the root-finding evaluated. Returns the matplotlib Figure."""
    from scipy.stats import norm

    if not conf_int.curves:
        raise ValueError("plot_profile needs profile intervals: conf_int(method='profile')")
    names = [p for p in (parameters or conf_int.curves) if p in conf_int.curves]
    fig, axes = _panel_row(axes, len(names), (3.2, 3.2))

    z = float(norm.ppf((1 + conf_int.level) / 2))
    for a, name in zip(axes, names):
        c = conf_int.curves[name].sort_values("value")
        row = conf_int.table.loc[name]
        a.plot(c.value, c.zeta, "o-", ms=3)
        for h in (-z, z):
            a.axhline(h, ls=":", color="grey", lw=1)
        for v in (row.lower, row.upper):
            if np.isfinite(v):
                a.axvline(v, ls="--", color="k", lw=1)
        a.axhline(0, color="grey", lw=0.5)
        label = f"{name} SD" if row.kind == "sd" else ("residual SD" if row.kind == "sigma" else name)
        a.set_xlabel(f"{label} ({row.criterion} profile)" if row.criterion else label)
        a.set_title(name + (" (lower end at 0)" if row.at_zero else ""), fontsize="medium")
    axes[0].set_ylabel(r"$\zeta$")
    fig.tight_layout()
    return fig
