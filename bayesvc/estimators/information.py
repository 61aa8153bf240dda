"""Observed information: one finite-difference Hessian helper, and the information matrix of the
REML/ML criterion that REML results store (as lme4 keeps its Hessian in ``optinfo``).

The information of the variance parameters is the Hessian of the non-profiled criterion
(:func:`bayesvc.kernel.criteria.objective`, fixed effects profiled) in (component variances,
residual variance), taken by central differences of its *analytic* gradient: differencing a
gradient whose rounding error is ~1e-13 relative gives a Hessian accurate to ~1e-8, where second
differences of the criterion itself (noise ~5e-11 over a step of 1e-4) leave errors near 1e-3.

>>> free, cov = variance_covariance(model.kernel, reml.vcomp.to_numpy(), reml.scale, reml=True)
>>> free.tolist(), cov.shape
([0, 1], (2, 2))
>>> bool(np.allclose(np.sqrt(np.diag(cov)), [reml.vcomp_se["g"], reml.scale_se]))
True
"""

from __future__ import annotations

import numpy as np


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
