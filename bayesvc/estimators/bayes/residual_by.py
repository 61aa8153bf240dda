"""NUTS with one residual SD per level of ``residual_by`` (nlme's ``varIdent``): the non-centered
model (every random effect sampled) with ``y_i ~ N(mu_i, sigma_{g(i)}^2 / w_i)``, each level's SD
with its own prior (the residual prior of :mod:`bayesvc.priors`, one copy per level).

The posterior holds ``sigma_by`` (dims ``residual_level``) and, for the summaries that read one
residual, ``sigma`` and ``scale`` of the reference (first) level. The collapsed engines are not used
here: given the SDs the likelihood is still Gaussian, but its cross-products would have to be
recombined per level at every evaluation, which the compiled kernel does not do yet.
"""

from __future__ import annotations


import numpy as np

from ...priors import resolve_priors
from ...results import PosteriorResult
from .model import _fixed_effects, coords_for, pm_variable
from .joint import linear_predictor, sample_joint, sampled_predictor


def build_residual_by_pymc(design, priors=None):
    """The non-centered PyMC model with one residual SD per level; returns ``(model, PriorSet)``."""
    import pymc as pm
    import pytensor.tensor as pt

    ps = resolve_priors(design, priors)
    coords = {**coords_for(design), "residual_level": list(design.residual_levels)}
    with pm.Model(coords=coords) as model:
        beta = _fixed_effects(design, ps)
        mu = pt.dot(pt.as_tensor_variable(design.X), beta)
        mu = sampled_predictor(design, ps, mu)
        sigma_by = pm_variable(ps.residual, "sigma_by", dims="residual_level")
        s = sigma_by[design.residual_codes]
        if design.weights is not None:
            s = s / np.sqrt(design.weights)
        pm.Normal("y", mu=mu, sigma=s, observed=design.y, dims="obs")
        pm.Deterministic("sigma", sigma_by[0])
        pm.Deterministic("scale", sigma_by[0] ** 2)
    return model, ps


def _pointwise(design, post) -> np.ndarray:
    mu = linear_predictor(design, post)
    s = post["sigma_by"].values[..., design.residual_codes]
    if design.weights is not None:
        s = s / np.sqrt(design.weights)
    return -0.5 * (np.log(2 * np.pi) + 2 * np.log(s) + ((design.y - mu) / s) ** 2)


def sample_residual_by(design, priors=None, draws=1000, tune=1000, chains=4, random_seed=None,
                       sampler="nutpie", progressbar=True) -> PosteriorResult:
    """NUTS with one residual SD per level (module docstring)."""
    return sample_joint(design, lambda: build_residual_by_pymc(design, priors), _pointwise, draws, tune,
                        chains, random_seed, sampler, progressbar)
