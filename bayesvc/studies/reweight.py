"""Prior-sweep grid points from one fit: Pareto-smoothed importance reweighting of the base draws.

A grid point changes one component's SD prior from ``p0`` to ``p1``; its posterior is the base
posterior times ``p1(sd) / p0(sd)``. :func:`reweighted_rows` forms those log ratios for the base
draws, smooths them with PSIS (arviz-stats' ``psislw``, Vehtari et al. 2024) and summarises the
weighted draws; k-hat says whether to trust them: above :data:`KHAT_MAX` the sweep refits the point.

Weighted summaries: mean, median and interval bounds are weighted quantiles of the base draws;
``ess_bulk`` is the base ESS times the PSIS relative efficiency ``1 / (S sum w^2)``; ``r_hat`` is
the base fit's; ``mcse_median`` is left NaN (no weighted estimator in arviz-stats).

>>> w = np.array([0.1, 0.2, 0.3, 0.4]); weighted_quantile(np.array([4.0, 3.0, 2.0, 1.0]), w, 0.5)
2.0
"""

from __future__ import annotations

import time

import numpy as np

from ..estimators.psis import psis_weights  # noqa: F401 - the sweeps' smoothing, re-exported

#: grid points whose Pareto k-hat exceeds this are refit (Vehtari et al.: above 0.7 the importance
#: sampling estimate is unreliable)
KHAT_MAX = 0.7


def weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``x`` under normalised weights ``w`` (inverse of the weighted CDF)."""
    order = np.argsort(x)
    cdf = np.cumsum(w[order])
    return float(x[order][min(np.searchsorted(cdf, q * cdf[-1]), x.size - 1)])


def prior_log_ratio(draws: dict, component: str, base_prior, new_prior) -> np.ndarray:
    """``log p1(sd) - log p0(sd)`` of ``component``'s SD for every base draw (flattened)."""
    sd = draws["sd[" + component + "]"] if component != "Residual" else draws["sigma"]
    return np.asarray(new_prior.logpdf(sd) - base_prior.logpdf(sd), dtype=float)


def reweighted_rows(base_rows: list[dict], draws: dict, weights: np.ndarray, ci_prob: float,
                    modes: dict | None = None) -> list[dict]:
    """The base fit's summary rows recomputed under ``weights`` (module docstring); ``draws``
    maps each row's ``parameter`` label to its flattened base draws; ``modes`` the posterior mode
    of this grid point per label (NaN where absent)."""
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2
    rel_eff = 1.0 / (weights.size * float(np.sum(weights**2)))
    rows = []
    for row in base_rows:
        x = draws[row["parameter"]]
        rows.append({**row, "mean": float(np.sum(weights * x)), "median": weighted_quantile(x, weights, 0.5),
                     "lower": weighted_quantile(x, weights, lo_q), "upper": weighted_quantile(x, weights, hi_q),
                     "mode": (modes or {}).get(row["parameter"], np.nan), "mcse_median": np.nan,
                     "ess_bulk": row["ess_bulk"] * rel_eff})
    return rows


def _reweight_point(base_res: dict, base, ps, component: str, ci_prob: float, modes) -> dict:
    """One grid point from the base fit: summaries under PSIS weights, k-hat and timings."""
    t0 = time.perf_counter()
    draws = base_res["draws"]
    ess = next((r["ess_bulk"] for r in base_res["rows"] if r["parameter"] == f"sd[{component}]"), np.nan)
    r_eff = float(np.clip(ess / draws["sigma"].size, 0.05, 1.0)) if np.isfinite(ess) else 1.0
    w, khat = psis_weights(prior_log_ratio(draws, component, base.sd[component], ps.sd[component]), r_eff)
    khat = khat if np.isfinite(khat) else np.inf  # too few distinct weights to fit a tail: refit
    t1 = time.perf_counter()
    rows = reweighted_rows(base_res["rows"], draws, w, ci_prob, modes(ps) if khat <= KHAT_MAX else None)
    return {"rows": rows, "divergences": base_res["divergences"], "compile_s": 0.0, "sample_s": 0.0,
            "map_s": time.perf_counter() - t1, "total_s": time.perf_counter() - t0,
            "worker": base_res["worker"], "method": "reweighted", "khat": khat}


def reweighted_sweep(base, tasks: list[dict], meta: list[dict], fit_point, run, modes) -> tuple[list[dict], str]:
    """Sweep results for ``tasks`` from one fit at the ``base`` priors: ``fit_point(task)`` fits a
    point (in this process), ``run(tasks)`` fits a list of points on the sweep's executor
    (returning ``(results, label)``) and ``modes(priors)`` gives ``{label: posterior mode}``.
    Points at the base priors are the base fit itself (k-hat 0); points with k-hat above
    :data:`KHAT_MAX` are refit."""
    base_task = {**tasks[0], "priors": base, "build_priors": base, "keep_draws": True}
    base_res = fit_point(base_task)
    results, refit = [], []
    for i, (task, m) in enumerate(zip(tasks, meta)):
        if task["priors"] == base:
            results.append({**base_res, "khat": 0.0})
            continue
        r = _reweight_point(base_res, base, task["priors"], m["component"], task["ci_prob"], modes)
        results.append(r)
        if not r["khat"] <= KHAT_MAX:
            refit.append(i)
    how = "serial"
    if refit:
        fits, how = run([tasks[i] for i in refit])
        for i, r in zip(refit, fits):
            results[i] = {**r, "khat": results[i]["khat"]}
    for r in results:
        r.pop("draws", None)
    return results, how
