"""What the joint (non-centered, every random effect sampled) models of GLMMs and of
``residual_by`` share: the linear predictor from the posterior draws, and one NUTS run turned into
a :class:`~bayesvc.results.PosteriorResult` with pointwise log-likelihoods and diagnostics."""

from __future__ import annotations

import time

import numpy as np
import xarray as xr

from ...errors import SamplingWarning, warn
from ...results import PosteriorResult
from ...validate import validate_sampling, validate_seed
from .sample import _quiet, run_nuts


def sampled_predictor(design, ps, eta):
    """Inside a ``pm.Model``: ``eta`` plus every term's non-centered random effects, with the
    ``sd`` and ``var`` deterministics of the components; returns the linear predictor."""
    import pymc as pm
    import pytensor.tensor as pt

    from .model import _sampled_term

    sds = {}
    for t in design.terms:
        contrib, term_sds = _sampled_term(t, ps, centered=False)
        eta = eta + contrib
        sds.update(zip(t.component_names, term_sds))
    sd = pm.Deterministic("sd", pt.stack([sds[c] for c in design.component_names]), dims="component")
    pm.Deterministic("var", sd**2, dims="component")
    return eta


def linear_predictor(design, post) -> np.ndarray:
    """``X beta + sum_t Z_t b_t`` per draw, (chain, draw, obs), from the ``beta`` and ``re_<term>``
    draws (without an offset)."""
    eta = np.einsum("cdp,np->cdn", post["beta"].values, design.X)
    for t in design.terms:
        b = post[f"re_{t.name}"].values
        b = b[..., None] if b.ndim == 3 else b
        eta = eta + np.einsum("cdnp,np->cdn", b[:, :, t.codes, :], t.zvals)
    return eta


def sample_joint(design, build, pointwise, draws, tune, chains, random_seed, sampler,
                 progressbar) -> PosteriorResult:
    """NUTS on ``build()``'s ``(model, priors)``; ``pointwise(design, posterior)`` gives the
    (chain, draw, obs) log-likelihood. Diagnostics are warned about, as for every sampler."""
    draws, tune, chains = validate_sampling(draws, tune, chains)
    seed = validate_seed(random_seed)
    t0 = time.perf_counter()
    model, ps = build()
    ctx = _quiet()
    try:
        dt = run_nuts(model, draws, tune, chains, seed, sampler, progressbar)
    finally:
        ctx.__exit__(None, None, None)
    t_sample = time.perf_counter() - t0
    post = dt["posterior"].to_dataset()
    post = post.drop_vars([v for v in post.data_vars if v.startswith(("sd_", "z_", "chol_"))])
    groups = {"posterior": post, "sample_stats": dt["sample_stats"].to_dataset(),
              "log_likelihood": xr.Dataset({"y": (("chain", "draw", "obs"), pointwise(design, post))},
                                           coords={"chain": post.chain, "draw": post.draw}),
              "observed_data": xr.Dataset({"y": (("obs",), design.y)})}
    tree = xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})
    result = PosteriorResult(design=design, idata=tree, priors=ps, sampler=sampler, marginalize="none",
                             draws=draws, tune=tune, chains=chains, seed=seed,
                             seconds=time.perf_counter() - t0, sampling_seconds=t_sample)
    with np.errstate(invalid="ignore", divide="ignore"):  # binomial: sigma is constant (R-hat 0/0)
        messages = result.diagnostic_messages()
    for message in messages:
        warn(message, SamplingWarning)
    return result
