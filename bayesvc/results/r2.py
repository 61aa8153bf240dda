"""Nakagawa and Schielzeth's R-squared of a linear mixed model, with Johnson's (2014) extension to
random slopes: the variance explained by the fixed effects (marginal) and by the fixed and random
effects (conditional),

``R2_m = v_f / (v_f + v_r + sigma^2)``, ``R2_c = (v_f + v_r) / (v_f + v_r + sigma^2)``,

with ``v_f = var(X beta)`` as R's ``var`` computes it (``n - 1`` denominator) and ``v_r`` the sum
over terms of the mean of ``diag(Z_t Sigma_t Z_t')`` over the observations (``sigma_t^2`` for an
intercept term). For REML a point value; for the posterior one value per draw, summarised with an
equal-tailed interval. Written here (no maintained Python library computes it for these models).
"""

from __future__ import annotations

import numpy as np

from ..validate import validate_ci_prob


def _term_weights(t) -> np.ndarray:
    """Per observation the term's ``z z'`` (n, p, p), or for a term that is not block diagonal
    (scalar variance components whose rows hit several columns) ``sum_j Z_ij^2`` as (n, 1, 1)."""
    if t.codes is not None:
        return np.einsum("ni,nj->nij", t.zvals, t.zvals)
    return np.asarray(t.Z.multiply(t.Z).sum(axis=1)).reshape(-1, 1, 1)


def random_variance(design, sigmas: list[np.ndarray]) -> np.ndarray:
    """``v_r`` for per-term covariances ``sigmas[t]`` of shape (..., p, p) (leading axes: draws)."""
    total = 0.0
    for t, S in zip(design.terms, sigmas):
        W = _term_weights(t).mean(axis=0)  # mean over observations of z z'
        total = total + np.einsum("...ij,ij->...", S, W)
    return np.asarray(total)


def r2_values(design, beta: np.ndarray, sigmas: list[np.ndarray], scale) -> dict:
    """Marginal and conditional R-squared (arrays over any leading draw axes of ``beta``)."""
    fitted = np.einsum("...k,nk->...n", beta, design.X)
    v_f = fitted.var(axis=-1, ddof=1)
    v_r = random_variance(design, sigmas)
    tot = v_f + v_r + scale
    return {"marginal": v_f / tot, "conditional": (v_f + v_r) / tot}


def reml_r2(result) -> dict:
    """R-squared of a REML/ML fit at its estimates: ``{"marginal": ..., "conditional": ...}``.

    Examples
    --------
    >>> from bayesvc.results.r2 import reml_r2
    >>> r = reml_r2(reml)          # intercept only: nothing explained by fixed effects
    >>> r["marginal"] < 1e-12, bool(np.isclose(r["conditional"], reml.vcomp["g"] / reml.variances.sum()))
    (True, True)
    """
    sigmas = []
    for t in result.design.terms:
        if t.name in result.cov_re:
            sigmas.append(result.cov_re[t.name].to_numpy())
        else:
            sigmas.append(np.diag([result.vcomp[c] for c in t.component_names]))
    out = r2_values(result.design, result.fe_params.to_numpy(), sigmas, result.scale)
    return {k: float(v) for k, v in out.items()}


def posterior_r2(result, ci_prob: float = 0.95) -> dict:
    """R-squared per posterior draw, summarised: ``{"marginal": {"mean", "median", "lower",
    "upper"}, "conditional": {...}}`` (equal-tailed interval at ``ci_prob``).

    Examples
    --------
    >>> from bayesvc.results.r2 import posterior_r2
    >>> r = posterior_r2(post)
    >>> sorted(r["conditional"]), r["marginal"]["mean"] < 1e-12   # intercept only
    (['lower', 'mean', 'median', 'upper'], True)
    """
    from .posterior_predict import term_covariances

    validate_ci_prob(ci_prob)
    p = result.posterior
    sigmas = [term_covariances(result, t) for t in result.design.terms]
    draws = r2_values(result.design, p["beta"].values, sigmas, p["scale"].values)
    a = (1 - ci_prob) / 2
    return {k: {"mean": float(v.mean()), "median": float(np.median(v)),
                "lower": float(np.quantile(v, a)), "upper": float(np.quantile(v, 1 - a))}
            for k, v in draws.items()}
