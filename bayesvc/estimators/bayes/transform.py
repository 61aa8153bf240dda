"""The unconstraining transform of the component SDs: a scaled softplus instead of PyMC's log.

Why (issue 11): under the log transform ``u = log(sd)`` a half-normal prior's log density is
``-exp(2u) / (2 s^2) + u``, whose gradient grows like ``exp(2u)``. NUTS adapts its step size to the
bulk; a trajectory that wanders into the upper tail meets a gradient that doubles every
``0.35`` units of ``u``, the leapfrog overshoots further out, and the energy error explodes (1e3 to
1e23 on Dyestuff, Dyestuff2 and Penicillin with the defaults): divergences the posterior does not
cause. With ``sd = c * softplus(u)`` the upper tail is linear in ``u`` (the half-normal becomes a
Gaussian tail in ``u``, its gradient linear), while near zero ``softplus(u) ~ exp(u)`` keeps the
log transform's behaviour where the funnel-like lower tail needs it. ``c`` (the prior's scale when
the model is built) only sets where the two regimes meet; any ``c > 0`` gives the same posterior.

PyMC has no softplus transform for positive variables, hence this small class on its
:class:`~pymc.logprob.transforms.Transform` interface.
"""

from __future__ import annotations

import numpy as np


def scaled_softplus(scale: float):
    """The transform ``sd = scale * log1p(exp(u))`` (a PyMC ``Transform`` instance)."""
    import pytensor.tensor as pt
    from pymc.logprob.transforms import Transform

    c = float(scale) if np.isfinite(scale) and scale > 0 else 1.0

    class ScaledSoftplus(Transform):
        name = "scaled_softplus"
        ndim_supp = 0

        def forward(self, value, *inputs):
            y = value / c
            return y + pt.log(-pt.expm1(-y))  # softplus^{-1}(y), stable for large y

        def backward(self, value, *inputs):
            return c * pt.softplus(value)

        def log_jac_det(self, value, *inputs):
            return np.log(c) - pt.softplus(-value)  # log(c * sigmoid(u))

    return ScaledSoftplus()
