"""Posterior predictions of a NUTS fit: for every posterior draw, the mean ``X beta + Z b`` at new
(or the fitting) data, or a new observation from it, as a labelled ``(chain, draw, obs)``
DataArray; :func:`predictive_summary` is its tidy table.

Random effects are the posterior draws ``re_<term>`` of each level; a level not seen in fitting
gets the population value (zero from that term, ``new_levels="population"``), a fresh effect from
the term's population distribution ``N(0, Sigma_t)`` in every draw (``"sample"``), or an error.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import xarray as xr

from ..design.newdata import new_rows, random_part
from ..errors import fail
from ..validate import validate_choice, validate_ci_prob

KINDS = ("mean", "observation")


def term_covariances(result, t) -> np.ndarray:
    """Per draw the covariance ``Sigma_t`` of one term's coefficients, (chain, draw, p, p)."""
    post = result.posterior
    sd = np.stack([post["sd"].sel(component=c).values for c in t.component_names], axis=-1)
    S = np.einsum("...i,ij->...ij", sd**2, np.eye(t.p))
    if t.correlated and t.p > 1 and f"cov_{t.name}" in post:
        cov = post[f"cov_{t.name}"].values
        for k, (i, j) in enumerate(zip(*np.tril_indices(t.p, -1))):
            S[..., i, j] = S[..., j, i] = cov[..., k]
    return S


def _effects(result, rows, new_levels: str, rng) -> tuple[list, object]:
    post, design = result.posterior, result.design
    effects = []
    for k, t in enumerate(design.terms):
        name = f"re_{t.name}"
        if name not in post:
            fail(f"the posterior holds no draws of {name!r} (sampled with random_effects=False or "
                 "thin_random_effects > 1): predict with random_effects=False or sample again")
        b = post[name].values
        b = b[..., None] if b.ndim == 3 else b
        new = rows.new_levels.get(t.name)
        if new_levels == "sample" and new:
            L = np.linalg.cholesky(term_covariances(result, t))
            z = rng.standard_normal(b.shape[:2] + (len(new), t.p))
            b = np.concatenate([b, np.einsum("cdij,cdlj->cdli", L, z)], axis=2)
            codes = list(rows.codes)
            codes[k] = np.where(rows.codes[k] >= 0, rows.codes[k], t.n_levels + rows.new_index[k])
            rows = replace(rows, codes=codes)
        effects.append(b)
    return effects, rows


def posterior_predict(result, newdata: pd.DataFrame | None = None, kind: str = "mean",
                      random_effects: bool = True, new_levels: str = "population",
                      seed=None) -> xr.DataArray:
    """Draws of the mean (``kind="mean"``) or of new observations (``"observation"``) at
    ``newdata`` (``None``: the fitting data); see :meth:`bayesvc.PosteriorResult.predict`.

    Examples
    --------
    >>> from bayesvc.results.posterior_predict import posterior_predict
    >>> da = posterior_predict(post, pd.DataFrame({"g": [0, 99]}), new_levels="sample", seed=1)
    >>> da.dims, da.shape
    (('chain', 'draw', 'obs'), (2, 200, 2))
    """
    validate_choice(kind, "kind", KINDS)
    if not isinstance(random_effects, (bool, np.bool_)):
        fail(f"random_effects must be True or False, got {random_effects!r}")
    rng = np.random.default_rng(result.seed if seed is None else seed)
    rows = new_rows(result.design, newdata, new_levels)
    post = result.posterior
    mu = np.einsum("cdk,mk->cdm", post["beta"].values, rows.X)
    if random_effects:
        effects, rows = _effects(result, rows, new_levels, rng)
        mu = mu + random_part(rows, effects)
    if kind == "observation":
        mu = mu + post["sigma"].values[..., None] * rng.standard_normal(mu.shape)
    obs = np.asarray(newdata.index) if newdata is not None else np.arange(result.design.nobs)
    return xr.DataArray(mu, dims=("chain", "draw", "obs"),
                        coords={"chain": post.chain, "draw": post.draw, "obs": obs},
                        name=result.design.response_name if kind == "observation" else "mu")


def predictive_summary(draws: xr.DataArray, ci_prob: float = 0.95) -> pd.DataFrame:
    """Tidy table of prediction draws: one row per ``obs``, columns ``mean, sd, lower, upper``
    (equal-tailed interval at ``ci_prob``).

    Examples
    --------
    >>> from bayesvc.results.posterior_predict import posterior_predict, predictive_summary
    >>> s = predictive_summary(posterior_predict(post))
    >>> list(s.columns), len(s), bool((s["lower"] < s["mean"]).all())
    (['mean', 'sd', 'lower', 'upper'], 48, True)
    """
    validate_ci_prob(ci_prob)
    flat = draws.stack(sample=("chain", "draw")).transpose("obs", "sample").values
    a = (1 - ci_prob) / 2
    lo, hi = np.quantile(flat, [a, 1 - a], axis=1)
    out = pd.DataFrame({"mean": flat.mean(1), "sd": flat.std(1, ddof=1), "lower": lo, "upper": hi},
                       index=pd.Index(draws["obs"].values, name="obs"))
    return out


def with_posterior_predictive(result, seed=None) -> "xr.DataTree":
    """The result's DataTree plus a ``posterior_predictive`` group (``y``: one replicated data set
    per draw, dims chain, draw, obs), beside ``observed_data``; see
    :meth:`bayesvc.PosteriorResult.posterior_predictive`."""
    y = posterior_predict(result, kind="observation", seed=seed).rename("y")
    tree = result.idata.copy()
    tree["posterior_predictive"] = xr.DataTree(xr.Dataset({"y": y}))
    return tree
