"""Prior predictive draws: parameters from the priors and data sets of the model's shape from them,
as an ArviZ DataTree with the standard groups ``prior``, ``prior_predictive`` and ``observed_data``.

PyMC's ``sample_prior_predictive`` on the non-centered model (the one that states ``y`` as an
observed variable), so that every prior the sampler uses (LKJ for correlated terms included) is
the one simulated.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ...errors import fail
from ...validate import validate_seed
from ..plan import plan_marginalization
from .model import build_pymc


def sample_prior_predictive(design, priors=None, draws: int = 500, random_seed=None) -> xr.DataTree:
    """``draws`` prior draws of the parameters and of ``y``: groups ``prior`` (``beta``, ``sd``,
    ``sigma``, ``re_<term>``, ...), ``prior_predictive`` (``y``, dims chain, draw, obs) and
    ``observed_data``.

    Examples
    --------
    >>> from bayesvc.estimators.bayes.predictive import sample_prior_predictive
    >>> dt = sample_prior_predictive(model.design, draws=50, random_seed=1)
    >>> sorted(dt.children), dt["prior_predictive"]["y"].shape
    (['observed_data', 'prior', 'prior_predictive'], (1, 50, 48))
    """
    import pymc as pm

    if not isinstance(draws, (int, np.integer)) or draws < 1:
        fail(f"draws must be a positive integer, got {draws!r}")
    seed = validate_seed(random_seed)
    built = build_pymc(design, priors, marginalize=plan_marginalization(design, False, None))
    flat = [k for k, p in [*built.priors.sd.items(), ("Residual", built.priors.residual),
                           *built.priors.fixed.items()] if p.flat]
    if flat:
        fail(f"priors: a flat prior cannot be simulated (prior predictive), for {flat}; give "
             "proper priors")
    with built.model:
        out = pm.sample_prior_predictive(draws=int(draws), random_seed=seed)
    prior = out["prior"].to_dataset() if hasattr(out["prior"], "to_dataset") else out["prior"]
    prior = prior.drop_vars([v for v in prior.data_vars if v.startswith(("sd_", "z_", "chol_", "prior_"))])
    pp = out["prior_predictive"]
    pp = pp.to_dataset() if hasattr(pp, "to_dataset") else pp
    groups = {"prior": prior, "prior_predictive": pp,
              "observed_data": xr.Dataset({"y": (("obs",), design.y)}, coords={"obs": pp["obs"].values})}
    return xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})
