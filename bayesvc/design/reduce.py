"""Designs derived from a design: one variance component removed (the null model of a test that
the component is zero), the component's own random-effect columns (the design of the model that
has only that component, on which the exact restricted likelihood ratio test's null distribution
is built), and the same design with a new response (a parametric-bootstrap replicate).

A component can be taken out on its own when it has one covariance parameter: a scalar term such
as ``(1|g)``, or one coefficient of an uncorrelated term (``(x||g)``, statsmodels' ``vc_formula``).
The coefficients of a correlated term share a covariance matrix; setting one variance to zero also
sets covariances to zero, which is not a test of one variance component.

>>> d0 = drop_component(nested_fit.design, "a:b")
>>> [t.name for t in d0.terms], component_z(nested_fit.design, "a:b").shape
(['a'], (96, 24))
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..errors import fail
from .design import Design, RandomTerm


def locate_component(design: Design, name: str) -> tuple[int, int]:
    """``(term index, coefficient index)`` of the component ``name``; a one-line
    :class:`~bayesvc.SpecificationError` for an unknown name or a component of a correlated term.

    >>> locate_component(slopes.design, "x|g")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bayesvc.errors.SpecificationError: component 'x|g' belongs to the correlated term (1 + x | g): ...
    """
    for i, t in enumerate(design.terms):
        if name in t.component_names:
            if t.correlated and t.p > 1:
                coefs = " + ".join("1" if c == "Intercept" else c for c in t.coef_names)
                fail(f"component {name!r} belongs to the correlated term ({coefs} | {t.factor}): its "
                     "variance cannot be set to zero on its own (fit the term uncorrelated, "
                     f"({' + '.join(c for c in t.coef_names if c != 'Intercept')} || {t.factor}), "
                     "to test it)")
            return i, t.component_names.index(name)
    fail(f"unknown component {name!r}; components are {design.component_names}")


def _columns(term: RandomTerm, j: int) -> np.ndarray:
    """Columns of ``term.Z`` that belong to coefficient ``j`` (``Z`` is level-major)."""
    return np.arange(term.n_levels) * term.p + j


def component_z(design: Design, name: str) -> sp.csc_matrix:
    """The random-effect columns of component ``name`` alone (n x levels)."""
    i, j = locate_component(design, name)
    t = design.terms[i]
    return t.Z[:, _columns(t, j)].tocsc()


def drop_component(design: Design, name: str) -> Design:
    """``design`` without the component ``name`` (its term, or its column of an uncorrelated
    term). May leave a design without random effects (a linear model)."""
    i, j = locate_component(design, name)
    if hasattr(design, "drop_coefficient"):  # out of core: cut out of the cross-products
        return design.drop_coefficient(i, j)
    t = design.terms[i]
    terms = list(design.terms)
    if t.p == 1:
        del terms[i]
    else:
        keep = [k for k in range(t.p) if k != j]
        cols = np.sort(np.concatenate([_columns(t, k) for k in keep]))
        terms[i] = RandomTerm(name=t.name, factor=t.factor, coef_names=tuple(t.coef_names[k] for k in keep),
                              component_names=tuple(t.component_names[k] for k in keep), levels=t.levels,
                              Z=t.Z[:, cols].tocsc(), correlated=False)
    return dataclasses.replace(design, terms=tuple(terms), spec=None)


def with_response(design: Design, y) -> Design:
    """The same design with response ``y`` (a bootstrap replicate); the terms are shared."""
    y = np.asarray(y, dtype=float)
    if y.shape != design.y.shape:
        fail(f"y must have shape {design.y.shape}, got {y.shape}")
    return dataclasses.replace(design, y=y)
