"""Pareto-smoothed importance weights (PSIS; Vehtari et al. 2024): the one home of the smoothing
that prior sweeps (:mod:`bayesvc.studies.reweight`) and the GLMM Laplace + IS engine
(:mod:`bayesvc.estimators.bayes.glmm_laplace`) share, through arviz-stats' ``psislw``.

>>> x = np.random.default_rng(0).normal(size=4000)  # draws of N(0, 1), reweighted to N(0.3, 1)
>>> w, khat = psis_weights(0.3 * x - 0.045)
>>> round(float(np.sum(w * x)), 1), bool(khat < 0.7)
(0.3, True)
"""

from __future__ import annotations

import numpy as np


def psis_weights(log_ratio: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, float]:
    """``(normalised weights, Pareto k-hat)`` of the log importance ratios (flattened input);
    equal weights and k-hat 0 when every ratio is equal, k-hat ``inf`` when the tail cannot be
    fitted."""
    from arviz_stats.base import array_stats

    log_ratio = np.asarray(log_ratio, dtype=float).ravel()
    if np.ptp(log_ratio) == 0.0:  # the same ratio at every draw: equal weights, nothing to smooth
        return np.full(log_ratio.size, 1.0 / log_ratio.size), 0.0
    try:
        # psislw smooths exp(-ary) (it takes log-likelihoods, as in LOO): pass the negated ratio
        lw, khat = array_stats.psislw(-log_ratio, r_eff=r_eff)
    except ValueError:  # arviz-stats cannot fit the tail (e.g. a tail of equal values)
        return np.full(log_ratio.size, 1.0 / log_ratio.size), np.inf
    w = np.exp(lw - np.max(lw))
    return w / w.sum(), float(khat)
