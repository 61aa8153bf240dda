"""NUTS for binomial and Poisson GLMMs: the joint model with non-centered random effects, the exact
reference (no approximation: every random effect is sampled, ``b = sd * z, z ~ N(0, 1)``).

The likelihood is PyMC's ``Binomial(n, logit_p = eta)`` or ``Poisson(exp(eta))`` with
``eta = offset + X beta + Z b``. Default priors are on the latent (link) scale:
``Normal(0, 2.5 / rms(x_j))`` for each fixed effect (2.5 for the intercept) and ``HalfNormal(2.5)``
for each component SD, as weakly informative defaults for logit and log links (Gelman et al. 2008's
scale). There is no residual: the posterior's ``scale`` is the Nakagawa-Schielzeth latent
residual variance per draw (``pi^2 / 3``; Poisson ``log(1 + 1/lambda)``) and ``sigma`` its square
root, so that variance shares read the draws as for a linear mixed model.
"""

from __future__ import annotations


import numpy as np

from ...errors import fail
from ...kernel.glmm import log_density
from ...priors import glmm_priors
from ...results import PosteriorResult
from .model import _fixed_effects, coords_for
from .joint import linear_predictor, sample_joint, sampled_predictor


def build_glmm_pymc(design, priors=None):
    """The non-centered joint PyMC model of a GLMM design; returns ``(model, PriorSet)``."""
    import pymc as pm
    import pytensor.tensor as pt

    ps = glmm_priors(design, priors)
    with pm.Model(coords=coords_for(design)) as model:
        beta = _fixed_effects(design, ps)
        eta = pt.dot(pt.as_tensor_variable(design.X), beta)
        if design.offset is not None:
            eta = eta + design.offset
        eta = sampled_predictor(design, ps, eta)
        if design.family == "binomial":
            k = np.round(design.y * design.weights).astype(int)
            pm.Binomial("y", n=design.weights.astype(int), logit_p=eta, observed=k, dims="obs")
            scale = pt.as_tensor_variable(np.pi**2 / 3)
        else:
            pm.Poisson("y", mu=pt.exp(eta), observed=design.y.astype(int), dims="obs")
            off = 0.0 if design.offset is None else float(np.mean(design.offset))
            xb = pt.mean(pt.dot(pt.as_tensor_variable(design.X), beta))
            lam = pt.exp(off + xb + 0.5 * pt.sum(model["sd"] ** 2))
            scale = pt.log1p(1.0 / lam)
        pm.Deterministic("scale", scale)
        pm.Deterministic("sigma", pt.sqrt(scale))
    return model, ps


def _pointwise(design, post) -> np.ndarray:
    eta = linear_predictor(design, post)
    if design.offset is not None:
        eta = eta + design.offset
    n = np.ones_like(design.y) if design.weights is None else design.weights
    return log_density(design.family, design.y, n, eta)


def sample_glmm(design, priors=None, draws=1000, tune=1000, chains=4, random_seed=None,
                sampler="nutpie", progressbar=True) -> PosteriorResult:
    """NUTS on the non-centered joint model of a GLMM (module docstring)."""
    if any(t.codes is None for t in design.terms):
        fail("NUTS for GLMMs needs one level per observation in every term")
    return sample_joint(design, lambda: build_glmm_pymc(design, priors), _pointwise, draws, tune, chains,
                        random_seed, sampler, progressbar)
