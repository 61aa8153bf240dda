"""statsmodels' ``fit(free=...)``: which variance parameters are free, read as a model.

statsmodels constrains a fit with a :class:`~statsmodels.regression.mixed_linear_model.MixedLMParams`
mask (``MixedLMParams.from_components(fe_params=np.ones(k_fe), cov_re=np.eye(k_re))``: nonzero
entries free, zeros held at their starting value). Its documented use, independent random
coefficients, is a covariance matrix whose off-diagonal entries are held at 0: the same model as
an uncorrelated term (lme4's ``(x || g)``). :func:`design_with_free` turns that mask into that
design; an all-free mask is the model itself; any other pattern (held fixed effects, held
variances, some covariances held) is refused with the formula that states a constrained model.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..errors import fail
from .design import Design

_HOW = ("state uncorrelated random effects in the formula instead, e.g. 'y ~ x + (1|g) + (0 + x|g)'")


def design_with_free(design: Design, free) -> Design:
    """The design that ``fit(free=free)`` fits (module docstring).

    Examples
    --------
    >>> class Mask:        # what MixedLMParams.from_components(np.ones(2), np.eye(2)) holds
    ...     fe_params, cov_re, vcomp = np.ones(2), np.eye(2), np.zeros(0)
    >>> [t.correlated for t in design_with_free(slopes.design, Mask()).terms]
    [False]
    """
    cov = getattr(free, "cov_re", None)
    if cov is None:
        fail(f"fit(free=...) takes statsmodels' MixedLMParams mask, got {type(free).__name__}: {_HOW}")
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    fe = np.asarray(getattr(free, "fe_params", np.ones(design.k_fe)), dtype=float)
    vc = np.asarray(getattr(free, "vcomp", np.zeros(0)), dtype=float)
    if np.any(fe == 0) or np.any(vc == 0) or np.any(np.diag(cov) == 0):
        fail("fit(free=...) holding fixed effects or variances at their start values is not "
             f"supported: {_HOW}")
    off = cov[~np.eye(len(cov), dtype=bool)]
    if np.all(off != 0):
        return design  # everything free: the model itself
    if np.any(off != 0):
        fail(f"fit(free=...) holding some covariances at 0 but not others is not supported: {_HOW}")
    hits = [k for k, t in enumerate(design.terms) if t.correlated and t.p == len(cov)]
    if len(hits) != 1:
        fail(f"fit(free=...): cov_re is {len(cov)} x {len(cov)}, but the model has "
             f"{len(hits)} correlated terms of that size: {_HOW}")
    terms = list(design.terms)
    terms[hits[0]] = replace(terms[hits[0]], correlated=False)
    return replace(design, terms=tuple(terms))
