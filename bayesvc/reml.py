"""REML and ML by optimizing the profiled deviance of :class:`~bayesvc.likelihood.Kernel`.

As lme4's ``mkLmerDevfun -> optimizeLmer``: :func:`make_devfun` returns the deviance as a
function of theta, :func:`optimize_deviance` minimizes it (L-BFGS-B with the kernel's analytic
gradient for variance-component designs, finite differences otherwise) and records how in an
:class:`OptSummary`, and :func:`fit_reml` assembles the :class:`~bayesvc.results.REMLResult`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from .checks import BoundaryFitWarning
from .covariance import covariances, term_lambda, theta_lower_bounds, theta_slices, theta_start
from .design import Design
from .likelihood import Kernel


@dataclass(frozen=True)
class OptSummary:
    """How a REML/ML fit was obtained (cf. MixedModels.jl's ``OptSummary``).

    Attributes
    ----------
    method : {'REML', 'ML'}
    optimizer : str
    gradient : {'analytic', 'finite differences'}
    theta_start, theta_final : tuple of float
        Starting and final theta.
    deviance : float
        Minimized profiled deviance.
    n_evals : int
        Deviance evaluations.
    converged : bool
    message : str
        The optimizer's message.
    boundary : tuple of str
        Components whose variance is exactly zero at the optimum.
    seconds : float

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> opt = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).fit_reml().opt
    >>> opt.method, opt.gradient, opt.converged, opt.boundary
    ('REML', 'analytic', True, ())
    """

    method: str
    optimizer: str
    gradient: str
    theta_start: tuple[float, ...]
    theta_final: tuple[float, ...]
    deviance: float
    n_evals: int
    converged: bool
    message: str
    boundary: tuple[str, ...]
    seconds: float


def make_devfun(design: Design, reml: bool = True, kernel: Kernel | None = None):
    """The profiled deviance as a function of theta (lme4's ``mkLmerDevfun``).

    Parameters
    ----------
    design : Design
    reml : bool, default True
    kernel : Kernel, optional
        Reused if given (also available as the function's ``kernel`` attribute).

    Returns
    -------
    callable
        ``devfun(theta) -> float``.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> devfun = bvc.make_devfun(model.design)
    >>> r = model.fit_reml()
    >>> bool(np.isclose(devfun(r.theta), -2 * r.llf)), bool(devfun([0.5]) > devfun(r.theta))
    (True, True)
    """
    k = kernel or Kernel(design)

    def devfun(theta):
        return k.deviance(theta, reml=reml)

    devfun.kernel = k
    return devfun


def optimize_deviance(kernel: Kernel, reml: bool = True, theta0=None, ftol: float = 1e-12,
                      gtol: float = 1e-8, maxiter: int = 2000) -> OptSummary:
    """Minimize the profiled deviance over theta >= 0 (diagonal elements).

    Parameters
    ----------
    kernel : Kernel
    reml : bool, default True
    theta0 : array_like, optional
        Starting point (default: lme4's, ones on the diagonal).
    ftol, gtol, maxiter
        L-BFGS-B settings.

    Returns
    -------
    OptSummary

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> opt = bvc.optimize_deviance(model.kernel, reml=False, theta0=[0.5])
    >>> opt.method, opt.converged, opt.theta_start
    ('ML', True, (0.5,))
    >>> bool(np.isclose(opt.deviance, -2 * model.fit_ml().llf))
    True
    """
    t0 = time.perf_counter()
    terms = kernel.terms
    theta0 = theta_start(terms) if theta0 is None else np.asarray(theta0, dtype=float)
    lb = theta_lower_bounds(terms)
    bounds = [(None if np.isinf(b) else b, None) for b in lb]
    n_evals = 0

    if kernel.scalar:
        def fun(th):
            nonlocal n_evals
            n_evals += 1
            return kernel.deviance_grad(th, reml)
        res = minimize(fun, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": gtol, "maxiter": maxiter, "maxcor": 20})
        grad_kind = "analytic"
    else:
        def fun(th):
            nonlocal n_evals
            n_evals += 1
            return kernel.deviance(th, reml)
        res = minimize(fun, theta0, method="L-BFGS-B", bounds=bounds,
                       options={"ftol": ftol, "gtol": 1e-7, "maxiter": maxiter, "eps": 1e-7})
        # polish derivative-free (finite differences stall near the optimum)
        res2 = minimize(fun, res.x, method="Nelder-Mead",
                        options={"xatol": 1e-8, "fatol": 1e-10, "maxfev": 1000 + 200 * len(theta0)})
        if res2.fun <= res.fun and np.all(res2.x >= np.where(np.isinf(lb), -np.inf, lb)):
            res.x, res.fun = res2.x, res2.fun
        grad_kind = "finite differences"
    theta = np.asarray(res.x, dtype=float)
    dev = float(res.fun)
    # theta_j = 0 is a stationary point of the deviance (it is even in a scalar theta_j), so a
    # quasi-Newton step can land on the bound and stop there. Probe away from it and restart once.
    for j in np.flatnonzero(lb == 0):
        if theta[j] < 1e-4:
            best = None
            for v in (1e-3, 1e-2, 0.1, 0.3, 1.0):
                trial = theta.copy()
                trial[j] = v
                d = kernel.deviance(trial, reml)
                if d < dev - 1e-10 and (best is None or d < best[0]):
                    best = (d, trial)
            if best is not None:
                res = minimize(fun, best[1], jac=kernel.scalar or None, method="L-BFGS-B", bounds=bounds,
                               options={"ftol": ftol, "gtol": gtol, "maxiter": maxiter, "maxcor": 20})
                if res.fun < dev:
                    theta, dev = np.asarray(res.x, dtype=float), float(res.fun)
    # boundary snapping: a diagonal element that is essentially zero is set to exactly zero
    boundary = []
    diag_mask = lb == 0
    for j in np.flatnonzero(diag_mask):
        if theta[j] < 1e-4:
            trial = theta.copy()
            trial[j] = 0.0
            if _zero_row_ok(terms, trial, j):
                dtrial = kernel.deviance(trial, reml)
                if dtrial <= dev + 1e-9:
                    theta, dev = trial, dtrial
    for t, s in zip(terms, theta_slices(terms)):
        L = term_lambda(t, theta[s])
        for name, d in zip(t.component_names, np.diag(L)):
            if d == 0.0:
                boundary.append(name)
    converged = bool(res.success) or (np.isfinite(dev) and "ABNORMAL" in str(res.message))
    return OptSummary(
        method="REML" if reml else "ML", optimizer="scipy L-BFGS-B", gradient=grad_kind,
        theta_start=tuple(map(float, theta0)), theta_final=tuple(map(float, theta)), deviance=dev,
        n_evals=n_evals, converged=converged, message=str(res.message), boundary=tuple(boundary),
        seconds=time.perf_counter() - t0,
    )


def _zero_row_ok(terms, theta, j) -> bool:
    # zeroing a diagonal element of a correlated factor also zeros its row below the diagonal
    return True


def _variance_se(kernel: Kernel, theta: np.ndarray, scale: float, reml: bool) -> np.ndarray:
    """Delta-method SEs of component variances from the observed information of the
    (non-profiled) REML/ML criterion in (component variances, residual variance).

    Only for variance-component designs away from the boundary; NaN elsewhere.
    """
    nc = kernel.n_comp
    out = np.full(nc + 1, np.nan)
    if not kernel.scalar or np.any(theta <= 0):
        return out
    nu = kernel.n - kernel.p if reml else kernel.n
    from .likelihood import LOG2PI

    def crit(v):
        s2 = v[-1]
        if np.any(v <= 0):
            return np.inf
        th = np.sqrt(v[:-1] / s2)
        f = kernel.factor(th)
        d = f.logdet_A + nu * (LOG2PI + np.log(s2)) + f.pwrss / s2
        return 0.5 * (d + (f.logdet_RX2 if reml else 0.0))

    v0 = np.append(scale * theta**2, scale)
    h = 1e-4 * v0
    k = len(v0)
    E = np.eye(k) * h
    # forward differences: k + k(k+1)/2 factorizations (the criterion is smooth here)
    f0 = crit(v0)
    f1 = np.array([crit(v0 + E[a]) for a in range(k)])
    H = np.empty((k, k))
    for a in range(k):
        for b in range(a, k):
            H[a, b] = H[b, a] = (crit(v0 + E[a] + E[b]) - f1[a] - f1[b] + f0) / (h[a] * h[b])
    try:
        cov = np.linalg.inv(H)
        return np.sqrt(np.where(np.diag(cov) > 0, np.diag(cov), np.nan))
    except np.linalg.LinAlgError:
        return out


def fit_reml(design: Design, reml: bool = True, kernel: Kernel | None = None, theta0=None):
    """Fit by REML (``reml=True``) or ML; returns a :class:`~bayesvc.results.REMLResult`.

    The functional form of :meth:`bayesvc.VCModel.fit_reml`. Warns with
    :class:`~bayesvc.BoundaryFitWarning` when a variance is estimated as zero.

    Parameters
    ----------
    design : Design
    reml : bool, default True
    kernel : Kernel, optional
        The model's kernel (``VCModel.kernel``), to avoid rebuilding it.
    theta0 : array_like, optional
        Starting theta for the optimizer.

    Returns
    -------
    REMLResult

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> r = bvc.fit_reml(model.design)
    >>> r.method, r.converged, r.vcomp.round(2).to_dict()
    ('REML', True, {'g': 2.55})
    >>> round(r.scale, 2)
    0.62
    """
    from threadpoolctl import threadpool_limits

    # small dense factorizations: BLAS threading costs far more than it gains here
    with threadpool_limits(1):
        return _fit_reml(design, reml, kernel, theta0)


def _fit_reml(design, reml, kernel, theta0):
    from .results import REMLResult, RandomEffects

    kernel = kernel or Kernel(design)
    opt = optimize_deviance(kernel, reml=reml, theta0=theta0)
    theta = np.asarray(opt.theta_final)
    f = kernel.factor(theta)
    p = kernel.p
    Mxy = f.Mxy
    XtVX = Mxy[:p, :p]
    beta = np.linalg.solve(XtVX, Mxy[:p, p])
    nu = kernel.n - p if reml else kernel.n
    scale = f.pwrss / nu
    cov_fe = scale * np.linalg.inv(XtVX)
    names = list(design.fe_names)
    terms = design.terms
    covs = covariances(terms, theta, scale)
    vcomp, cov_re = {}, {}
    for t, S in zip(terms, covs):
        for name, v in zip(t.component_names, np.diag(S)):
            vcomp[name] = float(v)
        if t.p > 1:
            labels = [c or t.name for c in t.coef_names]
            cov_re[t.name] = pd.DataFrame(S, index=labels, columns=labels)
    se = _variance_se(kernel, theta, scale, reml)
    modes = kernel.conditional_modes(f, beta)
    ccov = kernel.conditional_covariances(f, scale)
    ranef = RandomEffects.from_arrays(terms, modes, ccov)
    if opt.boundary:
        warnings.warn(
            f"boundary (singular) fit: variance of {', '.join(opt.boundary)} estimated as 0",
            BoundaryFitWarning, stacklevel=3)
    return REMLResult(
        method=opt.method, design=design, fe_params=pd.Series(beta, index=names, name="fe_params"),
        cov_fe=pd.DataFrame(cov_fe, index=names, columns=names),
        vcomp=pd.Series(vcomp, name="vcomp"),
        vcomp_se=pd.Series(se[:-1] if kernel.scalar else np.full(len(vcomp), np.nan), index=list(vcomp)),
        scale=float(scale), scale_se=float(se[-1]), cov_re=cov_re, llf=-0.5 * opt.deviance,
        converged=opt.converged, theta=theta, opt=opt, random_effects=ranef,
    )
