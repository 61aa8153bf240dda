"""Observed information: finite-difference Hessian helpers, and the information matrix of the
REML/ML criterion that REML results store (as lme4 keeps its Hessian in ``optinfo``).

The information of the variance parameters is half the Hessian of the non-profiled criterion
(``-2`` log-likelihood, fixed effects profiled: :func:`bayesvc.kernel.criteria.objective`) in
(component variances, covariances of correlated terms, residual variance).

* Variance-component designs: central differences of its *analytic* gradient. Differencing a
  gradient whose rounding error is ~1e-13 relative gives a Hessian accurate to ~1e-8, where second
  differences of the criterion itself (noise ~5e-11 over a step of 1e-4) leave errors near 1e-3.
* Correlated terms (no analytic gradient): second differences of the criterion with a large
  relative step (:data:`CORRELATED_REL_STEP`) and Richardson extrapolation over steps h and 2h,
  which cancels the O(h^2) truncation error; what remains is O(h^4) plus rounding noise over h^2,
  about 1e-6 relative at that step (the step study in ``tests/test_information.py``).

>>> free, cov = variance_covariance(model.kernel, reml.vcomp.to_numpy(), reml.scale, reml=True)
>>> free.tolist(), cov.shape
([0, 1], (2, 2))
>>> bool(np.allclose(np.sqrt(np.diag(cov)), [reml.vcomp_se["g"], reml.scale_se]))
True
"""

from __future__ import annotations

import numpy as np

from ..design.covariance import covariances, singular_terms, theta_from_vc, vc_parameters
from ..kernel.criteria import objective_theta

#: relative step of the Richardson-extrapolated Hessian for designs with correlated terms (of each
#: variance, and of sqrt(v_i v_j) for a covariance)
CORRELATED_REL_STEP = 5e-3


def hessian(fun=None, x=None, grad=None, rel_step: float = 1e-5, abs_step: float = 1e-8) -> np.ndarray:
    """Symmetric finite-difference Hessian at ``x``.

    With ``grad`` (a function returning the gradient): central differences of the gradient,
    ``2 k`` gradient calls. Otherwise central second differences of ``fun`` with step
    ``max(rel_step |x|, abs_step)`` (pass a larger ``rel_step``, ~1e-4, for function values).
    """
    x = np.asarray(x, dtype=float)
    k = len(x)
    h = np.maximum(rel_step * np.abs(x), abs_step)
    E = np.diag(h)
    H = np.empty((k, k))
    if grad is not None:
        for a in range(k):
            H[a] = (np.asarray(grad(x + E[a])) - np.asarray(grad(x - E[a]))) / (2 * h[a])
        return 0.5 * (H + H.T)
    for a in range(k):
        for b in range(a, k):
            H[a, b] = H[b, a] = (fun(x + E[a] + E[b]) - fun(x + E[a] - E[b]) - fun(x - E[a] + E[b])
                                 + fun(x - E[a] - E[b])) / (4 * h[a] * h[b])
    return H


def safe_inverse(H: np.ndarray) -> np.ndarray:
    """``H^{-1}``, or NaN where ``H`` is singular or not positive definite."""
    try:
        np.linalg.cholesky(H)
        return np.linalg.inv(H)
    except np.linalg.LinAlgError:
        return np.full_like(H, np.nan)


def variance_covariance(kernel, vcomp: np.ndarray, scale: float, reml: bool) -> tuple[np.ndarray, np.ndarray]:
    """Inverse observed information of the REML/ML criterion in (free component variances,
    residual variance).

    Components estimated at zero are held there (they are not free). Returns the indices of the
    free parameters into ``(components..., residual)`` and their covariance; NaN for designs
    without an analytic gradient (correlated terms).
    """
    vcomp = np.asarray(vcomp, dtype=float)
    nc = len(vcomp)
    free = np.append(np.flatnonzero(vcomp > 0), nc)
    if not kernel.scalar:
        return free, np.full((len(free), len(free)), np.nan)

    def grad(x):
        v = np.zeros(nc + 1)
        v[free] = x
        return 0.5 * kernel.objective_grad(v[:-1], v[-1], reml)[1][free]

    x0 = np.append(vcomp, scale)[free]
    return free, safe_inverse(hessian(x=x0, grad=grad))


def hessian_richardson(fun, x, h) -> np.ndarray:
    """Hessian of ``fun`` at ``x`` by central second differences with steps ``h`` and ``2 h`` (one
    per coordinate), combined as ``(4 H(h) - H(2h)) / 3`` (Richardson): truncation error O(h^4)."""
    x = np.asarray(x, dtype=float)
    h = np.asarray(h, dtype=float)
    f0 = fun(x)  # the centre of every diagonal difference

    def second(step):
        E = np.diag(step)
        k = len(x)
        H = np.empty((k, k))
        for a in range(k):
            H[a, a] = (fun(x + 2 * E[a]) - 2 * f0 + fun(x - 2 * E[a])) / (4 * step[a] ** 2)
            for b in range(a + 1, k):
                H[a, b] = H[b, a] = (fun(x + E[a] + E[b]) - fun(x + E[a] - E[b]) - fun(x - E[a] + E[b])
                                     + fun(x - E[a] - E[b])) / (4 * step[a] * step[b])
        return H

    return (4 * second(h) - second(2 * h)) / 3


def parameter_covariance(kernel, theta, scale: float, reml: bool) -> tuple[list[str], np.ndarray]:
    """Inverse observed information of the REML/ML criterion in the free variance parameters
    (:func:`~bayesvc.design.covariance.vc_parameters`: component variances and the covariances of
    correlated terms) and the residual variance (``"Residual"``), at ``theta`` and ``scale``.

    Parameters held where they are: variances estimated at zero, and every parameter of a term
    whose covariance matrix is singular (the criterion is not differentiable there). Returns the
    names of the free parameters and their covariance (NaN where the information is not positive
    definite).
    """
    terms = kernel.terms
    params = vc_parameters(terms)
    mats = covariances(terms, np.asarray(theta, dtype=float), scale)
    values = np.array([mats[k][i, j] for _, k, i, j in params])
    names = [name for name, *_ in params] + ["Residual"]
    if kernel.scalar:
        free, cov = variance_covariance(kernel, values, scale, reml)
        return [names[i] for i in free], cov
    theta = np.asarray(theta, dtype=float)
    held = set(singular_terms(terms, theta))
    free = [a for a, (_, k, _, _) in enumerate(params) if terms[k].name not in held]
    size = np.array([np.sqrt(mats[k][i, i] * mats[k][j, j]) for _, k, i, j in params])[free]
    # a held term keeps its covariance matrix: its theta scales with 1 / sqrt(scale)
    keep = np.concatenate([np.full(t.n_theta, t.name in held) for t in terms])
    nonsingular = values.copy()
    for a, (_, k, i, j) in enumerate(params):
        if terms[k].name in held:
            nonsingular[a] = float(i == j)

    def fun(x):
        v = nonsingular.copy()
        v[free] = x[:-1]
        th = theta_from_vc(terms, v, x[-1])
        if th is not None:
            th[keep] = theta[keep] * np.sqrt(scale / x[-1])
        return objective_theta(kernel, th, x[-1], reml)

    h = CORRELATED_REL_STEP * np.append(size, scale)
    H = 0.5 * hessian_richardson(fun, np.append(values[free], scale), h)
    return [names[a] for a in free] + ["Residual"], safe_inverse(H)
