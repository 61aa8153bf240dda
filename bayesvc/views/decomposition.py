"""Variance decomposition (shares of total variance, intraclass correlations) and tidy random effects.

Definitions
-----------
With component variances ``v_1, ..., v_K`` and residual variance ``s2``, the total variance is
``T = v_1 + ... + v_K + s2`` (the variance of one observation in a random-intercept model).

* **Share** of a component: ``v_k / T``; the residual's share is ``s2 / T``; the shares sum to 1.
  For random slopes ``v_k`` is on the covariate's scale, so their share is only nominal.
* **ICC** of a grouping factor ``g``: the correlation of two observations that share their level of
  ``g`` and of every factor ``g`` is nested in, but no other level:
  ``sum(v_j for j nested-above-or-equal g) / T``. Nesting is read from the data (``g`` is nested
  in ``h`` when every level of ``g`` lies within one level of ``h``). In the nested design
  ``(1|batch/cask)``, ``icc(batch) = v_batch / T`` and
  ``icc(batch:cask) = (v_batch + v_batch:cask) / T``; in crossed designs each factor's ICC is its
  share. Only random-intercept (0/1 indicator) terms get an ICC.

Intervals
---------
* REML/ML: delta method on the logit scale, from the observed information of the non-profiled
  REML/ML criterion in (component variances, residual variance) that the estimator stored
  (``REMLResult.cov_vc``); components at zero are held at zero (their share is 0 with no
  interval); correlated terms get no interval.
* Posterior mode: delta method on the logit scale from the Laplace covariance (log-SD scale).
* NUTS: computed draw by draw from the ``var`` and ``scale`` draws; the estimate is the posterior
  mean (so the shares still sum to 1), the interval the equal-tailed ``ci_prob`` interval.

>>> s = bvc.variance_shares(nested_fit)          # y ~ 1 + (1|a/b)
>>> list(s.component), float(round(s.share.sum(), 12))
(['a', 'a:b', 'Residual'], 1.0)
>>> bool((s.lower < s.share).all() and (s.share < s.upper).all())
True
>>> i = bvc.icc(nested_fit).set_index("group")
>>> bool(np.isclose(i.icc["a:b"], s.share[:2].sum()))
True
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import expit, logit
from scipy.stats import norm

__all__ = ["variance_shares", "icc", "ranef"]


# ----------------------------------------------------------------------------- estimator dispatch

def _kind(result) -> str:
    if hasattr(result, "idata"):
        return "nuts"
    if hasattr(result, "log_density") and hasattr(result, "cov"):
        return "map"
    if hasattr(result, "theta") and hasattr(result, "vcomp_se"):
        return "reml"
    raise TypeError(f"expected a REMLResult, ModeResult or PosteriorResult, got {type(result).__name__}")


def _ratios(result, A: np.ndarray, ci_prob: float):
    """Estimates and intervals of ``A @ v / T`` for v = (component variances..., residual)."""
    kind = _kind(result)
    q = norm.ppf(0.5 + ci_prob / 2)
    if kind == "nuts":
        p = result.posterior
        comps = result.design.component_names
        v = np.column_stack([p["var"].sel(component=c).values.ravel() for c in comps]
                            + [p["scale"].values.ravel()])
        r = (v @ A.T) / v.sum(1, keepdims=True)
        a = (1 - ci_prob) / 2
        return r.mean(0), np.quantile(r, a, axis=0), np.quantile(r, 1 - a, axis=0), "NUTS"
    v = np.append(result.vcomp.to_numpy(dtype=float), float(result.scale))
    T = v.sum()
    est = A @ v / T
    dv = (A - est[:, None]) / T  # d est / d v
    if kind == "map":
        names = [f"log_sd[{c}]" for c in result.vcomp.index] + ["log_sigma"]
        cov = result.cov.loc[names, names].to_numpy()
        G = dv * (2 * v)[None, :]  # v = exp(2 x)
        method = "MAP"
    else:
        # the estimator's information matrix (components at zero are held there: not free)
        names = list(result.vcomp.index) + ["Residual"]
        kept = [n for n in result.cov_vc.index if n in names]  # covariances do not enter a share
        free = [names.index(n) for n in kept]
        cov = result.cov_vc.loc[kept, kept].to_numpy()
        G = dv[:, free]
        method = str(result.method)
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", G, cov, G), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        se_l = se / (est * (1 - est))
        lo, hi = expit(logit(est) - q * se_l), expit(logit(est) + q * se_l)
    bad = (est <= 0) | (est >= 1) | ~np.isfinite(se_l)
    lo[bad], hi[bad] = np.nan, np.nan
    return est, lo, hi, method


# ----------------------------------------------------------------------------- public

def variance_shares(result, ci_prob: float = 0.95) -> pd.DataFrame:
    """Share of the total variance per component and for the residual.

    Parameters
    ----------
    result : REMLResult, ModeResult or PosteriorResult
    ci_prob : float, default 0.95

    Returns
    -------
    DataFrame
        Columns ``component, share, lower, upper, method``; one row per component, then
        ``"Residual"``. See the module docstring for definitions and intervals.

    Examples
    --------
    >>> bvc.variance_shares(reml).round(2)
      component  share  lower  upper method
    0         g    0.8   0.56   0.93   REML
    1  Residual    0.2   0.07   0.44   REML
    >>> bvc.variance_shares(mode, ci_prob=0.9).method.tolist(), bvc.variance_shares(post).method.tolist()
    (['MAP', 'MAP'], ['NUTS', 'NUTS'])
    """
    _kind(result)
    comps = list(result.design.component_names) + ["Residual"]
    est, lo, hi, method = _ratios(result, np.eye(len(comps)), ci_prob)
    return pd.DataFrame({"component": comps, "share": est, "lower": lo, "upper": hi, "method": method})


def _indicator(t) -> bool:
    return t.p == 1 and t.codes is not None and np.all(t.Z.data == 1.0)


def _nested_in(inner, outer) -> bool:
    """Whether every level of ``inner`` lies within one level of ``outer`` (both indicator terms)."""
    ci, co = inner.codes, outer.codes
    ok = (ci >= 0) & (co >= 0)
    pairs = pd.DataFrame({"i": ci[ok], "o": co[ok]}).drop_duplicates()
    return bool(pairs["i"].is_unique)


def icc(result, ci_prob: float = 0.95) -> pd.DataFrame:
    """Intraclass correlation per grouping factor (random-intercept terms only) of a REML, mode
    or NUTS result, with ``ci_prob`` intervals: a DataFrame with columns ``group, icc, lower,
    upper, method, components`` (``components``: the components summed in the numerator,
    ``" + "``-joined). See the module docstring.

    Examples
    --------
    >>> i = bvc.icc(nested_fit)
    >>> list(i.group), list(i.components)       # b is nested in a
    (['a', 'a:b'], ['a', 'a + a:b'])
    >>> bool((i.icc.diff().iloc[1:] > 0).all())   # nested ICCs increase
    True
    """
    _kind(result)
    d = result.design
    comps = list(d.component_names)
    terms = [t for t in d.terms if _indicator(t)]
    rows, A = [], []
    for t in terms:
        inside = [u.component_names[0] for u in terms if u is t or _nested_in(t, u)]
        a = np.zeros(len(comps) + 1)
        a[[comps.index(c) for c in inside]] = 1.0
        rows.append((t.name, " + ".join(c for c in comps if c in inside)))
        A.append(a)
    if not rows:
        return pd.DataFrame(columns=["group", "icc", "lower", "upper", "method", "components"])
    est, lo, hi, method = _ratios(result, np.array(A), ci_prob)
    return pd.DataFrame({"group": [r[0] for r in rows], "icc": est, "lower": lo, "upper": hi,
                         "method": method, "components": [r[1] for r in rows]})


def ranef(result, ci_prob: float = 0.95) -> pd.DataFrame:
    """Tidy random effects, one row per (component, level).

    Parameters
    ----------
    result : REMLResult or PosteriorResult
    ci_prob : float, default 0.95
        Equal-tailed interval for NUTS.

    Returns
    -------
    DataFrame
        REML/ML: ``component, term, level, coef, mode, cond_var, cond_sd`` (conditional modes and
        conditional variances, as ``result.random_effects.table``).
        NUTS: ``component, term, level, coef, mean, sd, median, lower, upper`` from the
        ``re_<term>`` draws.

    Examples
    --------
    >>> list(bvc.ranef(reml).columns)
    ['component', 'term', 'level', 'coef', 'mode', 'cond_var', 'cond_sd']
    """
    kind = _kind(result)
    if kind == "reml":
        out = result.random_effects.table.copy()
        out["cond_sd"] = np.sqrt(out["cond_var"])
        return out.reset_index(drop=True)
    if kind != "nuts":
        raise TypeError("ranef needs a REMLResult or a PosteriorResult (the posterior mode integrates "
                        "the random effects out)")
    post, a = result.posterior, (1 - ci_prob) / 2
    frames = []
    for t in result.design.terms:
        name = f"re_{t.name}"
        if name not in post:
            raise ValueError(f"the posterior has no draws of {name}: sample with random_effects=True")
        arr = post[name].values
        flat = arr.reshape((-1,) + arr.shape[2:])
        if flat.ndim == 2:
            flat = flat[..., None]
        for j, comp in enumerate(t.component_names):
            x = flat[..., j]
            frames.append(pd.DataFrame({
                "component": comp, "term": t.name, "level": t.levels, "coef": t.coef_names[j] or t.name,
                "mean": x.mean(0), "sd": x.std(0, ddof=1), "median": np.median(x, 0),
                "lower": np.quantile(x, a, axis=0), "upper": np.quantile(x, 1 - a, axis=0)}))
    return pd.concat(frames, ignore_index=True)
