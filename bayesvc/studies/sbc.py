"""Simulation-based calibration (Talts et al. 2018): draw parameters from the prior, simulate a data
set of the model's shape from them, refit it with NUTS, and record the rank of each true value
among the (thinned) posterior draws. Calibrated inference gives uniform ranks; a chi-square test
on binned ranks (scipy) says whether they are, and :meth:`SBCResult.plot` shows the rank histograms.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import fail
from ..estimators import bayes
from ..kernel import Kernel
from ..priors import resolve_priors
from ..validate import validate_seed


@dataclass(frozen=True)
class SBCResult:
    """Ranks of the true parameters among their posterior draws, one row per simulation.

    Attributes
    ----------
    ranks : DataFrame
        One column per parameter (fixed effects, ``sd[<component>]``, ``sigma``), values in
        ``0 .. n_draws``.
    n_draws : int
        Posterior draws each rank is taken among (after thinning).
    truth : DataFrame
        The simulated parameter values.

    Examples
    --------
    >>> ranks = pd.DataFrame({"sigma": np.arange(100) % 41})        # uniform on 0 .. 40
    >>> r = bvc.SBCResult(ranks, 40, ranks * 0.0)
    >>> u = r.uniformity(); bool(u.loc["sigma", "p_value"] > 0.5), int(u.loc["sigma", "bins"])
    (True, 20)
    """

    ranks: pd.DataFrame
    n_draws: int
    truth: pd.DataFrame

    def uniformity(self, bins: int | None = None) -> pd.DataFrame:
        """Chi-square test of uniform ranks per parameter (``bins`` equal-width bins over
        ``0 .. n_draws``; default about ``n / 5``, at most 20, so that each expects >= 5):
        columns ``statistic``, ``p_value``, ``bins``."""
        n = len(self.ranks)
        bins = bins or int(np.clip(n // 5, 2, 20))
        edges = np.linspace(0, self.n_draws + 1, bins + 1)
        rows = {}
        for col in self.ranks:
            counts, _ = np.histogram(self.ranks[col], bins=edges)
            res = stats.chisquare(counts)
            rows[col] = {"statistic": float(res.statistic), "p_value": float(res.pvalue), "bins": bins}
        return pd.DataFrame(rows).T

    def plot(self, bins: int | None = None):
        """Rank histograms, one panel per parameter, with the uniform expectation and its 99%
        band (binomial); returns the matplotlib figure."""
        import matplotlib.pyplot as plt

        n, cols = len(self.ranks), list(self.ranks)
        bins = bins or int(np.clip(n // 5, 2, 20))
        fig, axes = plt.subplots(1, len(cols), figsize=(3 * len(cols), 2.6), squeeze=False)
        lo, hi = stats.binom.ppf([0.005, 0.995], n, 1 / bins)
        for ax, col in zip(axes[0], cols):
            ax.axhspan(lo, hi, color="0.85")
            ax.hist(self.ranks[col], bins=np.linspace(0, self.n_draws + 1, bins + 1), color="C0")
            ax.axhline(n / bins, color="k", lw=1)
            ax.set_title(col)
            ax.set_xlabel("rank")
        fig.tight_layout()
        return fig


def _simulate(design, ps, rng) -> tuple[np.ndarray, dict]:
    beta = np.array([float(ps.fixed[n].rvs(1, rng)[0]) for n in design.fe_names])
    sd = {c: float(ps.sd[c].rvs(1, rng)[0]) for c in design.component_names}
    sigma = float(ps.residual.rvs(1, rng)[0])
    y = design.X @ beta + sigma * rng.standard_normal(design.nobs)
    for t in design.terms:
        b = rng.standard_normal((t.n_levels, t.p)) * np.array([sd[c] for c in t.component_names])
        y = y + t.Z @ b.ravel()
    truth = {**dict(zip(design.fe_names, beta)), **{f"sd[{c}]": v for c, v in sd.items()}, "sigma": sigma}
    return y, truth


def _ranks(post, design, truth: dict, thin: int) -> dict:
    p = post.posterior.isel(draw=slice(None, None, thin))
    draws = {n: p["beta"].sel(fixed=n).values.ravel() for n in design.fe_names}
    draws.update({f"sd[{c}]": p["sd"].sel(component=c).values.ravel() for c in design.component_names})
    draws["sigma"] = p["sigma"].values.ravel()
    return {k: int((v < truth[k]).sum()) for k, v in draws.items()}


def sbc(model, priors=None, n: int = 100, draws: int = 200, tune: int = 300, chains: int = 2,
        thin: int = 4, seed=None, **sample_kwargs) -> SBCResult:
    """Simulation-based calibration of NUTS on ``model``'s design (a :class:`~bayesvc.VCModel` or a
    Design) under ``priors`` (proper priors, fixed before simulating: the data-scaled defaults are
    taken from the model's own response). ``n`` simulations, each refitted with ``draws`` x
    ``chains`` draws, kept every ``thin``-th; uncorrelated terms only.

    Each refit compiles its model anew (the collapsed likelihood holds the data), about 10-40 s
    per simulation on a shared machine: ``n=100`` is a job of tens of minutes.
    """
    design = getattr(model, "design", model)
    if any(t.correlated for t in design.terms):
        fail("sbc: correlated random-effect terms are not supported (their LKJ prior is not "
             "simulated here); state the terms uncorrelated, e.g. (1|g) + (0 + x|g)")
    if not isinstance(n, (int, np.integer)) or n < 1:
        fail(f"n must be a positive integer, got {n!r}")
    ps = resolve_priors(design, priors)
    flat = [k for k, p in [*ps.sd.items(), ("Residual", ps.residual), *ps.fixed.items()] if p.flat]
    if flat:
        fail(f"priors: sbc simulates from the priors, so they must be proper; flat for {flat}")
    rng = np.random.default_rng(validate_seed(seed))
    ranks, truths = [], []
    for _ in range(n):
        y, truth = _simulate(design, ps, rng)
        d = replace(design, y=y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # diagnostics of each refit are not the question
            post = bayes.sample(d, priors=ps, draws=draws, tune=tune, chains=chains,
                                random_seed=int(rng.integers(2**31)), progressbar=False,
                                kernel=Kernel(d) if d.scalar else None, random_effects=False,
                                log_likelihood=False, warn_diagnostics=False, **sample_kwargs)
        ranks.append(_ranks(post, design, truth, thin))
        truths.append(truth)
    n_draws = chains * len(range(0, draws, thin))
    return SBCResult(pd.DataFrame(ranks), n_draws, pd.DataFrame(truths))
