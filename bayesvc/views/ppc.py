"""Grouped posterior predictive checks: test statistics a variance-component model can get wrong,
computed on the observed data and on every replicated data set, with posterior predictive
p-values ``P(T(y_rep) >= T(y))`` (Gelman et al., BDA3 ch. 6).

Statistics: per term with one level per row, the SD of the level means (``sd_means[<term>]``, the
spread a component has to explain) and the pooled within-level SD (``sd_within[<term>]``); overall
``min`` and ``max``. A p-value near 0 or 1 flags a feature the model does not reproduce.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..results.posterior_predict import posterior_predict


def _stats(design, y: np.ndarray) -> dict:
    """Test statistics of data sets ``y`` (..., n): a dict of arrays (...)."""
    out = {}
    for t in design.terms:
        if t.codes is None:
            continue
        onehot = np.zeros((design.nobs, t.n_levels))
        onehot[np.arange(design.nobs), t.codes] = 1.0
        counts = onehot.sum(0)
        means = (y @ onehot) / counts
        out[f"sd_means[{t.name}]"] = means.std(axis=-1, ddof=1)
        ss = (y**2) @ onehot - counts * means**2
        dof = max(design.nobs - t.n_levels, 1)
        out[f"sd_within[{t.name}]"] = np.sqrt(np.maximum(ss.sum(-1), 0) / dof)
    out["min"] = y.min(-1)
    out["max"] = y.max(-1)
    return out


def ppc_statistics(result, seed=None, replicates: xr.DataArray | None = None) -> xr.DataTree:
    """The test statistics as a DataTree: ``posterior_predictive`` (one value per draw) and
    ``observed_data`` (the observed value), one variable per statistic."""
    yrep = replicates if replicates is not None else posterior_predict(result, kind="observation", seed=seed)
    rep = _stats(result.design, yrep.values)
    obs = _stats(result.design, result.design.y)
    dims = ("chain", "draw")
    pp = xr.Dataset({k: (dims, v) for k, v in rep.items()},
                    coords={"chain": yrep["chain"].values, "draw": yrep["draw"].values})
    od = xr.Dataset({k: ((), float(v)) for k, v in obs.items()})
    return xr.DataTree.from_dict({"posterior_predictive": xr.DataTree(pp), "observed_data": xr.DataTree(od)})


def grouped_ppc(result, seed=None) -> pd.DataFrame:
    """Table of grouped posterior predictive checks of a :class:`~bayesvc.PosteriorResult`: one
    row per statistic with ``observed``, the replicated ``mean``, ``lower``/``upper`` (95%
    equal-tailed) and ``p_value`` = P(T(y_rep) >= T(y)).

    Examples
    --------
    >>> t = bvc.grouped_ppc(post, seed=1)
    >>> list(t.index), list(t.columns)
    (['sd_means[g]', 'sd_within[g]', 'min', 'max'], ['observed', 'mean', 'lower', 'upper', 'p_value'])
    >>> bool(0.01 < t.loc["sd_means[g]", "p_value"] < 0.99)
    True
    """
    dt = ppc_statistics(result, seed=seed)
    pp, od = dt["posterior_predictive"].to_dataset(), dt["observed_data"].to_dataset()
    rows = {}
    for k in pp.data_vars:
        v, o = pp[k].values.ravel(), float(od[k])
        rows[k] = {"observed": o, "mean": float(v.mean()), "lower": float(np.quantile(v, 0.025)),
                   "upper": float(np.quantile(v, 0.975)), "p_value": float((v >= o).mean())}
    return pd.DataFrame(rows).T


def plot_grouped_ppc(result, seed=None):
    """The distribution of each statistic over the replicated data (arviz-plots ``plot_dist``)
    with the observed value as a vertical line; returns the PlotCollection."""
    import arviz_plots as ap

    dt = ppc_statistics(result, seed=seed)
    pc = ap.plot_dist(dt, group="posterior_predictive", backend="matplotlib")
    od = dt["observed_data"].to_dataset()
    ap.add_lines(pc, {k: float(od[k]) for k in od.data_vars})
    return pc
