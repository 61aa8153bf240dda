"""NUTS for binomial and Poisson GLMMs on the Laplace-integrated likelihood, corrected by importance
sampling: ``sample(marginalize="laplace")``. Approximate, then corrected; exact only in the limit
of many draws (through the importance weights).

1. NUTS (nutpie, :func:`nutpie.compiled_pyfunc.from_pyfunc`) samples the fixed effects and the
   component SDs (the joint model's scaled-softplus transform, :mod:`.transform`, and priors,
   :func:`bayesvc.priors.glmm_priors`) from ``p(beta) p(sd) L_Laplace(sd, beta)``, with the exact
   gradient of the Laplace log-likelihood (:mod:`bayesvc.kernel.glmm_laplace`; PIRLS modes and
   implicit differentiation, in Numba).
2. For every draw, ``n_proposals`` Student-t(5) proposals of the random effects around their
   conditional mode (Laplace covariance) estimate the exact likelihood without bias; its ratio to
   the Laplace likelihood is the draw's importance weight. The log weights are Pareto-smoothed
   (PSIS, arviz-stats' ``psislw``; k-hat above 0.7 is warned about) and each chain is resampled by
   systematic resampling, keeping the draws' order; each kept draw carries one random-effect vector
   picked among its proposals by the inner weights, a draw of ``p(b | y, sd, beta)`` in the limit.

The result is a :class:`~bayesvc.PosteriorResult` named as the joint model's (``beta``, ``sd``,
``var``, ``re_<term>``, ``scale``, ``sigma``) with ``method = "NUTS (Laplace + IS)"``,
``marginalize = "laplace"`` and an ``importance`` group: the raw and smoothed log weights per draw,
the inner effective sample sizes, the resampling indices and, in its attributes, ``khat``, the
importance efficiency (Kish ESS / draws), the minimum bulk ESS of the NUTS draws and that times
the efficiency (``min_ess_reweighted``). ``sample_stats`` are NUTS's own (not resampled).
"""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from ...errors import SamplingWarning, fail, warn
from ...kernel.glmm_laplace import LaplaceDensity
from ...priors import glmm_priors
from ...results import PosteriorResult
from ...validate import validate_count, validate_sampling, validate_seed
from ..psis import psis_weights
from .model import coords_for

METHOD = "NUTS (Laplace + IS)"
KHAT_MAX = 0.7


def _prior_grad(prior):
    """``x -> (log density up to a constant, its derivative)`` of a scalar prior; closed forms for
    bayesvc's priors (the SciPy frozen ``logpdf`` costs more than the whole Laplace gradient)."""
    name, v = getattr(prior, "pm_name", ""), getattr(prior, "params", {})
    if prior.flat:
        return lambda x: (0.0, 0.0)
    if name == "HalfNormal" or name == "Normal":
        mu, s2 = float(v.get("mu", 0.0)), float(v["sigma"]) ** 2
        return lambda x: (-0.5 * (x - mu) ** 2 / s2, -(x - mu) / s2)
    if name in ("HalfStudentT", "HalfCauchy"):
        nu, s = (float(v["nu"]), float(v["sigma"])) if name == "HalfStudentT" else (1.0, float(v["beta"]))
        return lambda x: (-0.5 * (nu + 1) * np.log1p(x * x / (nu * s * s)),
                          -(nu + 1) * x / (nu * s * s + x * x))
    if name == "Exponential":
        lam = float(v["lam"])
        return lambda x: (-lam * x, -lam)

    def numeric(x, h=1e-6):  # any other prior: central differences of its logpdf
        return float(prior.logpdf(x)), float((prior.logpdf(x + h) - prior.logpdf(x - h)) / (2 * h))
    return numeric


class LogPosterior:
    """``x = (beta, u)`` with ``sd = c * softplus(u)`` -> ``(log posterior, gradient)``."""

    def __init__(self, design, ps):
        self.ld = LaplaceDensity(design)
        self.p = design.k_fe
        self.c = np.array([ps.sd[c].scale if np.isfinite(ps.sd[c].scale) and ps.sd[c].scale > 0 else 1.0
                           for c in design.component_names])
        self.pri_sd = [_prior_grad(ps.sd[c]) for c in design.component_names]
        self.pri_beta = [_prior_grad(ps.fixed[n]) for n in design.fe_names]

    def sd(self, u):
        return self.c * np.logaddexp(0.0, u)

    def __call__(self, x):
        p = self.p
        beta, u = x[:p], x[p:]
        sd = self.sd(u)
        ll, g_sd, g_beta = self.ld.value_and_grad(sd, beta)
        if not np.isfinite(ll):
            return -np.inf, np.zeros_like(x)
        lp, grad = ll, np.empty_like(x)
        for j, f in enumerate(self.pri_beta):
            a, b = f(beta[j])
            lp, grad[j] = lp + a, g_beta[j] + b
        sig = 1.0 / (1.0 + np.exp(-u))  # d softplus / du
        for k, f in enumerate(self.pri_sd):
            a, b = f(sd[k])
            lp += a + np.log(self.c[k] * sig[k])  # log |d sd / du|
            grad[p + k] = (g_sd[k] + b) * self.c[k] * sig[k] + (1.0 - sig[k])
        return float(lp), grad


def _scales(design) -> np.ndarray:
    """Per-coordinate scale of ``(beta, u)``: ``1 / rms(x_j)`` for the fixed effects (a unit step
    in ``beta_j`` moves the linear predictor by ``rms(x_j)``), 1 for the SD coordinates."""
    rms = np.sqrt(np.mean(design.X**2, axis=0))
    return np.concatenate([1.0 / np.where(rms > 0, rms, 1.0), np.ones(len(design.component_names))])


def _start(lp: LogPosterior, design):
    """The posterior mode of ``(beta, u)`` (L-BFGS-B with the exact gradient, in coordinates scaled
    by :func:`_scales`) from the GLM fit."""
    from scipy.optimize import minimize

    from ..laplace import glm_start

    sc = _scales(design)
    x0 = np.concatenate([glm_start(lp.ld.lap), np.full(len(design.component_names), -0.5)])

    def neg(z):
        v, g = lp(z * sc)
        return (1e300, np.zeros_like(z)) if not np.isfinite(v) else (-v, -g * sc)

    res = minimize(neg, x0 / sc, jac=True, method="L-BFGS-B")
    x = res.x * sc
    return x if np.all(np.isfinite(x)) and np.isfinite(lp(x)[0]) else x0


def _compiled(design, ps):
    from nutpie.compiled_pyfunc import from_pyfunc

    p, k = design.k_fe, len(design.component_names)
    lp0 = LogPosterior(design, ps)
    centre = _start(lp0, design)

    def make_logp():
        return LogPosterior(design, ps)  # one per chain: each keeps its own PIRLS warm start

    def make_expand(seed1, seed2, chain):
        def expand(x, **_):
            return {"beta": np.array(x[:p], dtype=float), "sd": lp0.sd(x[p:])}
        return expand

    width = 0.2 * _scales(design)

    def initial_point(seed=None):  # the mode, jittered by a fifth of a unit of each coordinate's scale
        rng = np.random.default_rng(seed)
        return np.ascontiguousarray(centre + rng.uniform(-1.0, 1.0, centre.size) * width)

    f64 = np.dtype("float64")
    coords = {"fixed": list(design.fe_names), "component": list(design.component_names)}
    return from_pyfunc(p + k, make_logp, make_expand, [f64, f64], [(p,), (k,)], ["beta", "sd"],
                       coords=coords, dims={"beta": ("fixed",), "sd": ("component",)},
                       make_initial_point_fn=initial_point)


def systematic_resample(weights, rng) -> np.ndarray:
    """Indices by systematic resampling (non-decreasing: the draws keep their order)."""
    n = weights.size
    cdf = np.cumsum(weights / weights.sum())
    return np.minimum(np.searchsorted(cdf, (rng.uniform() + np.arange(n)) / n), n - 1)


def _importance(design, post, n_proposals, rng):
    """Per draw: raw log weight, one random-effect vector, inner ESS (module docstring, step 2)."""
    ld = LaplaceDensity(design)
    beta, sd = post["beta"].values, post["sd"].values
    C, D = beta.shape[:2]
    lw, inner = np.empty((C, D)), np.empty((C, D))
    b = np.empty((C, D, ld.lap.q))
    for c in range(C):
        for d in range(D):
            lw[c, d], b[c, d], inner[c, d] = ld.importance(sd[c, d], beta[c, d], n_proposals, rng)
    return lw, b, inner


def _smooth(lw, post):
    """``(smoothed normalized weights (chain, draw), khat, r_eff)``."""
    from arviz_stats.base import array_stats

    finite = np.where(np.isfinite(lw), lw, np.min(lw[np.isfinite(lw)]) - 50.0)
    if np.ptp(finite) == 0:
        return np.full(lw.shape, 1.0 / lw.size), 0.0, 1.0
    r_eff = float(np.clip(array_stats.ess(finite, method="bulk") / lw.size, 0.01, 1.0))
    w, khat = psis_weights(finite, r_eff=r_eff)
    return w.reshape(lw.shape), khat, r_eff


def _posterior(design, post, b, idx):
    """The resampled posterior: ``beta``, ``sd``, ``var``, ``scale``, ``sigma``, ``re_<term>``."""
    take = lambda a: np.stack([a[c, idx[c]] for c in range(a.shape[0])])  # noqa: E731
    beta, sd, b = take(post["beta"].values), take(post["sd"].values), take(b)
    coords = coords_for(design)
    out = xr.Dataset({"beta": (("chain", "draw", "fixed"), beta), "sd": (("chain", "draw", "component"), sd),
                      "var": (("chain", "draw", "component"), sd**2)},
                     coords={"chain": post.chain, "draw": post.draw, "fixed": coords["fixed"],
                             "component": coords["component"]})
    if design.family == "binomial":
        scale = np.full(beta.shape[:2], np.pi**2 / 3)
    else:  # the joint model's Nakagawa-Schielzeth latent residual variance per draw
        off = 0.0 if design.offset is None else float(np.mean(design.offset))
        lam = np.exp(off + beta @ design.X.mean(axis=0) + 0.5 * np.sum(sd**2, axis=-1))
        scale = np.log1p(1.0 / lam)
    out["scale"] = (("chain", "draw"), scale)
    out["sigma"] = (("chain", "draw"), np.sqrt(scale))
    k = 0
    for t in design.terms:
        level = f"{t.name}_level"
        out[f"re_{t.name}"] = xr.DataArray(b[..., k:k + t.n_levels], dims=("chain", "draw", level),
                                           coords={level: coords[level]})
        k += t.n_levels
    return out


def _check(design, sampler):
    if sampler != "nutpie":
        fail(f"marginalize='laplace' runs on nutpie only; got sampler={sampler!r}")
    if not design.scalar or any(t.codes is None for t in design.terms):
        fail("marginalize='laplace' needs scalar random-effect terms such as (1|g) with one level per "
             "row; use the joint model (marginalize=False)")


def sample_glmm_laplace(design, priors=None, draws=1000, tune=1000, chains=4, random_seed=None,
                        sampler="nutpie", progressbar=True, n_proposals: int = 64) -> PosteriorResult:
    """NUTS on the Laplace-integrated likelihood of a GLMM, corrected by importance sampling
    (module docstring); ``n_proposals`` random-effect proposals per draw."""
    import nutpie

    from .glmm import _pointwise
    from .sample import _quiet

    _check(design, sampler)
    draws, tune, chains = validate_sampling(draws, tune, chains)
    n_proposals = validate_count(n_proposals, "n_proposals")
    seed = validate_seed(random_seed)
    t0 = time.perf_counter()
    ps = glmm_priors(design, priors)
    ctx = _quiet()
    try:
        dt = nutpie.sample(_compiled(design, ps), draws=draws, tune=tune, chains=chains, seed=seed,
                           progress_bar=progressbar, cores=1)
    finally:
        ctx.__exit__(None, None, None)
    t_sample = time.perf_counter() - t0
    raw = dt["posterior"].to_dataset()
    rng = np.random.default_rng(seed)
    lw, b, inner = _importance(design, raw, n_proposals, rng)
    w, khat, r_eff = _smooth(lw, raw)
    idx = np.stack([systematic_resample(w[c], rng) for c in range(w.shape[0])])
    post = _posterior(design, raw, b, idx)
    groups = {"posterior": post, "sample_stats": dt["sample_stats"].to_dataset(),
              "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), _pointwise(design, post))},
                                           coords={"chain": post.chain, "draw": post.draw}),
              "observed_data": xr.Dataset({"y": (("obs",), design.y)}),
              "importance": _importance_group(raw, lw, w, inner, idx, khat, r_eff, n_proposals)}
    tree = xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})
    result = PosteriorResult(design=design, idata=tree, priors=ps, sampler=sampler, marginalize="laplace",
                             draws=draws, tune=tune, chains=chains, seed=seed,
                             seconds=time.perf_counter() - t0, sampling_seconds=t_sample, method=METHOD)
    if khat > KHAT_MAX:
        warn(f"importance weights of the Laplace engine have Pareto k-hat {khat:.2f} > {KHAT_MAX}: the "
             "correction is unreliable; use the joint model (marginalize=False)", SamplingWarning)
    with np.errstate(invalid="ignore", divide="ignore"):  # binomial: sigma is constant (R-hat 0/0)
        messages = result.diagnostic_messages()
    for message in messages:
        warn(message, SamplingWarning)
    return result


def _importance_group(raw, lw, w, inner, idx, khat, r_eff, n_proposals) -> xr.Dataset:
    from arviz_stats import ess

    e = ess(raw[["beta", "sd"]], method="bulk")
    min_ess = float(min(float(e["beta"].min()), float(e["sd"].min())))
    efficiency = float(1.0 / np.sum(w**2) / w.size)
    dims = ("chain", "draw")
    return xr.Dataset({"log_weight": (dims, lw), "smoothed_weight": (dims, w), "inner_ess": (dims, inner),
                       "resample_index": (dims, idx)},
                      coords={"chain": raw.chain, "draw": raw.draw},
                      attrs={"khat": khat, "r_eff": r_eff, "efficiency": efficiency, "min_ess_nuts": min_ess,
                             "min_ess_reweighted": min_ess * efficiency, "n_proposals": int(n_proposals),
                             "method": METHOD})
