"""The criteria built on the kernel's factorization, with analytic gradients.

One home for each: the profiled REML/ML deviance (lme4's devfun, what REML optimizes), the
non-profiled REML/ML objective in (component variances, residual variance) (whose Hessian is the
information matrix the estimators store), and the collapsed log-likelihood in (beta, sigma, SDs)
(what NUTS and the posterior mode use).

Gradients are analytic for designs whose terms are all scalar variance components. With
``theta_k = SD_k / sigma``, per term ``k``:

* ``d log|A| / d log theta_k = 2 (q_k - tr_k A^{-1}) = 2 t_k``, ``t_k`` computed without cancellation;
* ``d pwrss / d log theta_k = -2 ||u_k||^2`` (envelope theorem: ``pwrss`` is minimal in beta, u);
* ``d log|R_X|^2 / d log theta_k = -2 tr(P U_Xk' U_Xk)`` with ``P = (X'V*^{-1}X)^{-1}``.

Every function takes the :class:`~bayesvc.kernel.Kernel` as its first argument. With prior weights
the kernel's cross-products are those of the rows scaled by ``sqrt(w_i)``; each criterion adds the
weights' constant ``-sum(log w_i)`` to ``-2`` log-likelihood (``log|V| = log|V~| - sum log w_i``).
"""

from __future__ import annotations

import numpy as np

from .factor import NotPositiveDefinite

LOG2PI = float(np.log(2 * np.pi))


def _dof(kernel, reml: bool) -> int:
    return kernel.n - kernel.p if reml else kernel.n


def profiled_deviance(kernel, f, reml: bool) -> float:
    """``-2`` (restricted) log-likelihood profiled over beta and sigma, from a factorization."""
    nu = _dof(kernel, reml)
    dev = f.logdet_A + nu * (1.0 + LOG2PI + np.log(f.pwrss / nu))
    if reml:
        dev += f.logdet_RX2
    return float(dev - kernel.log_weight_sum)


def scalar_traces(kernel, f) -> np.ndarray:
    """``t_k = tr_k(I - A^{-1})`` per term (scalar designs)."""
    t = np.zeros(kernel.n_comp)
    if kernel.rz:
        diag_term = np.sum(f.Sinv * f.SmI, axis=1)
        for i in kernel.rest:
            a, b = kernel.rest_offsets[i]
            t[i] = diag_term[a:b].sum()
    if kernel.first is not None:
        D = f.D[:, 0, 0]
        t1 = np.sum((D - 1.0) / D)
        if kernel.rz:
            w2 = (f.lam1[0, 0] / D) ** 2
            t1 -= kernel.pairs.weighted_trace_z(w2, f.Sinv, f.lam_rest.d)
        t[kernel.first] = t1
    return t


def log_theta_derivatives(kernel, f, beta) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per term, the derivatives in ``log theta_k`` of ``log|A|``, of the penalized residual sum of
    squares at ``beta`` (minimal in u), and of ``log|R_X|^2`` (module docstring)."""
    if not kernel.scalar:
        raise NotImplementedError("analytic gradients need scalar variance components")
    p = kernel.p
    w = np.append(-np.asarray(beta, dtype=float), 1.0)
    P = np.linalg.inv(f.Mxy[:p, :p])
    dlogdet = 2.0 * scalar_traces(kernel, f)
    dpwrss, drx = np.zeros(kernel.n_comp), np.zeros(kernel.n_comp)
    for k, Uk in enumerate(kernel.solve_u(f)):
        uk = Uk @ w
        dpwrss[k] = -2.0 * (uk @ uk)
        UX = Uk[:, :p]
        drx[k] = -2.0 * np.sum(P * (UX.T @ UX))
    return dlogdet, dpwrss, drx


def _theta_grad(theta, glog):
    return np.where(theta > 0, glog / np.where(theta > 0, theta, 1.0), 0.0)


def profiled_deviance_grad(kernel, theta, reml: bool) -> tuple[float, np.ndarray]:
    """Profiled deviance and its gradient in theta (``inf`` and zeros where it cannot be factored)."""
    theta = np.asarray(theta, dtype=float)
    try:
        f = kernel.factorize(theta)
    except NotPositiveDefinite:
        return np.inf, np.zeros_like(theta)
    dlogdet, dpwrss, drx = log_theta_derivatives(kernel, f, f.beta)
    glog = dlogdet + _dof(kernel, reml) * dpwrss / f.pwrss + (drx if reml else 0.0)
    return profiled_deviance(kernel, f, reml), _theta_grad(theta, glog)


def _objective_at(kernel, f, scale, reml):
    nu = _dof(kernel, reml)
    d = f.logdet_A + nu * (LOG2PI + np.log(scale)) + f.pwrss / scale
    return float(d + (f.logdet_RX2 if reml else 0.0) - kernel.log_weight_sum)


def _theta_of(v, scale):
    v = np.asarray(v, dtype=float)
    if scale <= 0 or np.any(v < 0):
        return None
    return np.sqrt(v / scale)


def objective(kernel, v, scale, reml: bool) -> float:
    """``-2`` (restricted) log-likelihood at component variances ``v`` and residual variance
    ``scale``, beta profiled (its GLS estimate); ``inf`` outside the parameter space."""
    theta = _theta_of(v, scale)
    if theta is None:
        return np.inf
    try:
        return _objective_at(kernel, kernel.factorize(theta), scale, reml)
    except NotPositiveDefinite:
        return np.inf


def objective_theta(kernel, theta, scale, reml: bool) -> float:
    """:func:`objective` at relative covariance factor ``theta`` (any design: correlated terms
    too) and residual variance ``scale``; ``inf`` where ``A(theta)`` cannot be factored."""
    if theta is None or not scale > 0:
        return np.inf
    try:
        return _objective_at(kernel, kernel.factorize(np.asarray(theta, dtype=float)), scale, reml)
    except NotPositiveDefinite:
        return np.inf


def objective_grad(kernel, v, scale, reml: bool) -> tuple[float, np.ndarray]:
    """:func:`objective` and its gradient in ``(v_1, ..., v_K, scale)`` (scalar designs; entries of
    components at ``v_k = 0`` are 0)."""
    v = np.asarray(v, dtype=float)
    theta = _theta_of(v, scale)
    if theta is None:
        return np.inf, np.zeros(len(v) + 1)
    try:
        f = kernel.factorize(theta)
    except NotPositiveDefinite:
        return np.inf, np.zeros(len(v) + 1)
    dlogdet, dpwrss, drx = log_theta_derivatives(kernel, f, f.beta)
    G = dlogdet + dpwrss / scale + (drx if reml else 0.0)  # d objective / d log theta_k
    gv = np.where(v > 0, G / (2 * np.where(v > 0, v, 1.0)), 0.0)
    gs = _dof(kernel, reml) / scale - f.pwrss / scale**2 - G.sum() / (2 * scale)
    return _objective_at(kernel, f, scale, reml), np.append(gv, gs)


def _beta_with_fixed(Mxy: np.ndarray, p: int, j: int, value: float) -> np.ndarray:
    """The GLS fixed effects with ``beta_j = value`` held: the others minimise the penalized
    residual sum of squares ``[-beta; 1]' Mxy [-beta; 1]``."""
    beta = np.zeros(p)
    beta[j] = value
    rest = [k for k in range(p) if k != j]
    if rest:
        M = Mxy[np.ix_(rest, rest)]
        beta[rest] = np.linalg.solve(M, Mxy[rest, p] - Mxy[rest, j] * value)
    return beta


def fixed_effect_deviance(kernel, theta, j: int, value: float, grad: bool = False):
    """``-2`` ML log-likelihood profiled over sigma and every fixed effect but ``beta_j``, which is
    held at ``value`` (the criterion whose minimum over theta profiles ``beta_j``, as lme4's
    ``profile()`` does by refitting with ``y - value x_j``). With ``grad``: ``(deviance, gradient in
    theta)`` (scalar designs; ``inf`` and zeros where ``A(theta)`` cannot be factored)."""
    theta = np.asarray(theta, dtype=float)
    try:
        f = kernel.factorize(theta)
    except NotPositiveDefinite:
        return (np.inf, np.zeros_like(theta)) if grad else np.inf
    beta = _beta_with_fixed(f.Mxy, kernel.p, j, value)
    w = np.append(-beta, 1.0)
    pwrss = float(w @ f.Mxy @ w)
    n = kernel.n
    dev = float(f.logdet_A + n * (1.0 + LOG2PI + np.log(pwrss / n)) - kernel.log_weight_sum)
    if not grad:
        return dev
    dlogdet, dpwrss, _ = log_theta_derivatives(kernel, f, beta)  # envelope theorem: beta_-j, u optimal
    return dev, _theta_grad(theta, dlogdet + n * dpwrss / pwrss)


def loglik(kernel, beta, sigma, tau) -> float:
    """Collapsed log-likelihood ``log p(y | beta, sigma, tau)``."""
    f = kernel.factorize(np.asarray(tau, dtype=float) / sigma)
    s2 = sigma * sigma
    w = np.append(-np.asarray(beta, dtype=float), 1.0)
    Q = float(w @ f.Mxy @ w)
    return float(-0.5 * (kernel.n * (LOG2PI + np.log(s2)) + f.logdet_A + Q / s2 - kernel.log_weight_sum))


def loglik_grad(kernel, beta, sigma, tau) -> tuple[float, np.ndarray, float, np.ndarray]:
    """Collapsed log-likelihood and its gradient ``(loglik, d/dbeta, d/dsigma, d/dtau)``."""
    if not kernel.scalar:
        raise NotImplementedError("analytic gradients need scalar variance components")
    beta = np.asarray(beta, dtype=float)
    tau = np.asarray(tau, dtype=float)
    f = kernel.factorize(tau / sigma)
    s2 = sigma * sigma
    Mxy = f.Mxy
    w = np.append(-beta, 1.0)
    Q = float(w @ Mxy @ w)
    ll = -0.5 * (kernel.n * (LOG2PI + np.log(s2)) + f.logdet_A + Q / s2 - kernel.log_weight_sum)
    tk = scalar_traces(kernel, f)
    dlogtheta = np.array([-tk[k] + (uk @ w) @ (uk @ w) / s2 for k, uk in enumerate(kernel.solve_u(f))])
    p = kernel.p
    dbeta = (Mxy[:p, p] - Mxy[:p, :p] @ beta) / s2
    dsigma = (-kernel.n + Q / s2 - dlogtheta.sum()) / sigma
    return float(ll), dbeta, float(dsigma), dlogtheta / tau
