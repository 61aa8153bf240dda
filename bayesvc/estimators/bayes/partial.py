"""The partial collapse: its log-likelihood (PyTensor) and the exact draws of what it integrates out.

The plan (:class:`~bayesvc.estimators.plan.MarginalizationPlan`) integrates out the largest scalar
factor ``k`` whose levels partition the data and, jointly with it, the small scalar factors ``S``
of ``plan.joint`` (``m`` levels in all). With ``r = y - mu`` (``mu``: fixed effects and the sampled
terms), ``theta_k = tau_k / sigma``, ``Theta = diag(tau_S / sigma)`` per level of ``S``::

    V / sigma^2 = V_k + Z_S Theta^2 Z_S',    V_k = I + theta_k^2 Z_k Z_k'   (block diagonal)

``V_k`` is inverted per level of ``k`` (``a_l = sum z^2``, ``s_l = sum z r``,
``d_l = 1 + theta_k^2 a_l``), and Woodbury's identity moves ``Z_S`` into the ``m x m`` matrix
``M = I + Theta G Theta`` with ``G = Z_S' V_k^{-1} Z_S = G0 - theta_k^2 N' diag(1/d) N``
(``N = Z_k' Z_S``, ``G0 = Z_S' Z_S``: data, not parameters)::

    log|V| = n log sigma^2 + sum log d + log|M|
    r'V^{-1}r = (r'r - theta_k^2 sum s^2/d - w'M^{-1}w) / sigma^2,   w = Theta (Z_S'r - theta_k^2 N'(s/d))

With ``plan.fixed`` and a Normal prior ``beta ~ N(mu0, diag(s0^2))`` the fixed effects join the
small block the same way: ``X`` is appended to ``Z_S``, ``s0 / sigma`` to ``Theta`` and ``X mu0`` is
taken from ``y`` (the fixed effects' posterior SD scales with the SD of a small factor they are
confounded with, such as InstEval's ``service`` within ``dept:service``: sampled, they make a funnel).

One small Cholesky per gradient: no sparse factorization, and PyTensor's autodiff and every backend
(Numba for nutpie, JAX) apply. Written by hand because no library marginalizes a Gaussian over a
block-diagonal factor plus a low-rank part; the identities are the ones lme4's blocked ``L`` uses.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import xarray as xr


def _codes(t) -> np.ndarray:
    return np.maximum(t.codes, 0)  # rows outside every level (z == 0) add nothing anywhere


def _z(design, idx) -> sp.csc_matrix:
    """``[Z_j for j in idx]`` with each term's ``z`` values (n x levels)."""
    n = design.nobs
    blocks = [sp.csc_matrix((design.terms[j].zvals[:, 0], (np.arange(n), _codes(design.terms[j]))),
                            shape=(n, design.terms[j].n_levels)) for j in idx]
    return sp.hstack(blocks, format="csc")


def _block(design, plan) -> sp.csc_matrix | None:
    """The small block ``[Z_S, X]`` (``X`` with ``plan.fixed``), or None."""
    parts = ([_z(design, plan.joint)] if plan.joint else []) + ([sp.csc_matrix(design.X)] if plan.fixed else [])
    return sp.hstack(parts, format="csc") if parts else None


def partial_arrays(design, plan) -> dict:
    """The data the partial log-likelihood reads besides ``y``, ``X`` and the codes: the largest
    term's ``a = sum z^2`` per level and, with a small block ``W = [Z_S, X]``, ``N = Z_k'W`` and
    ``G0 = W'W``."""
    t = design.terms[plan.integrated_term]
    z = t.zvals[:, 0]
    out = {f"data_zz_{t.name}": np.bincount(_codes(t), weights=z * z, minlength=t.n_levels)}
    W = _block(design, plan)
    if W is not None:
        Zk = _z(design, [plan.integrated_term])
        N = np.asarray((Zk.T @ W).todense())
        out["data_joint_N"], out["data_joint_G0"] = N, np.asarray((W.T @ W).todense())
        if grouped_levels(design, plan) is not None:
            # G = G0 - sum_l th2 / (1 + th2 a_l) N_l N_l' depends on a_l only: group equal a_l
            # (rating counts per student), one m x m matrix per group instead of q_k rank-one terms
            au, inv = np.unique(out[f"data_zz_{t.name}"], return_inverse=True)
            P = np.zeros((au.size,) + N.shape[1:] * 2)
            for g in range(au.size):
                Ng = N[inv == g]
                P[g] = Ng.T @ Ng
            out["data_joint_a"], out["data_joint_P"] = au, P
    return out


def grouped_levels(design, plan) -> int | None:
    """How many distinct ``a_l`` the largest integrated term has when grouping by them makes the
    small block's ``G`` cheaper (fewer than half its levels), else None; the graph depends on it."""
    if plan.integrated_term is None or (not plan.joint and not plan.fixed):
        return None
    t = design.terms[plan.integrated_term]
    z = t.zvals[:, 0]
    u = np.unique(np.bincount(_codes(t), weights=z * z, minlength=t.n_levels)).size
    return u if 2 * u < t.n_levels else None


def _segment_sum(pt, n_levels, codes, values):
    return pt.inc_subtensor(pt.zeros(n_levels)[codes], values)


def partial_loglik(design, plan, mu, sigma, sd_of: dict, data: dict, fixed_sd=None):
    """``log N(y | mu, sigma^2 I + sum_j tau_j^2 Z_j Z_j' [+ X diag(s0^2) X'])`` over the integrated
    terms (module docstring); ``sd_of``: SD variable per component name, ``data``: the model data
    (:func:`~bayesvc.estimators.bayes.model.design_data`), ``fixed_sd``: the fixed effects' prior
    SDs ``s0`` when they are integrated out (``mu`` then holds ``X mu0``)."""
    import pytensor.tensor as pt

    t = design.terms[plan.integrated_term]
    r = data["data_y"] - mu
    s = _segment_sum(pt, t.n_levels, data[f"data_codes_{t.name}"], data[f"data_zvals_{t.name}"][:, 0] * r)
    th2 = (sd_of[t.component_names[0]] / sigma) ** 2
    d = 1.0 + th2 * data[f"data_zz_{t.name}"]
    rvr = pt.sum(r * r) - th2 * pt.sum(s * s / d)
    logdet = pt.sum(pt.log(d))
    small = [design.terms[j] for j in plan.joint]
    sums = [_segment_sum(pt, u.n_levels, data[f"data_codes_{u.name}"], data[f"data_zvals_{u.name}"][:, 0] * r)
            for u in small]
    theta = [sd_of[u.component_names[0]] / sigma * pt.ones(u.n_levels) for u in small]
    if fixed_sd is not None:
        sums.append(pt.dot(data["data_X"].T, r))
        theta.append(fixed_sd / sigma)
    if sums:
        m = sum(u.n_levels for u in small) + (design.k_fe if fixed_sd is not None else 0)
        N, G0 = data["data_joint_N"][:, :m], data["data_joint_G0"][:m, :m]  # X unused when sampled
        theta = pt.concatenate(theta)
        if "data_joint_P" in data:
            wa = th2 / (1.0 + th2 * data["data_joint_a"])
            G = G0 - pt.tensordot(wa, data["data_joint_P"][:, :m, :m], axes=1)
        else:
            G = G0 - th2 * pt.dot(N.T / d[None, :], N)
        L = pt.linalg.cholesky(pt.eye(m) + theta[:, None] * G * theta[None, :])
        v = pt.linalg.solve_triangular(L, theta * (pt.concatenate(sums) - th2 * pt.dot(N.T, s / d)), lower=True)
        rvr = rvr - pt.sum(v * v)
        logdet = logdet + 2.0 * pt.sum(pt.log(pt.diag(L)))
    n = design.nobs
    return -0.5 * (n * np.log(2 * np.pi) + 2 * n * pt.log(sigma) + logdet + rvr / sigma**2)


def draw_integrated(design, plan, post: xr.Dataset, re_draws: dict, rng: np.random.Generator,
                    fixed_prior=None) -> dict:
    """Exact conditional draws of the integrated terms given each posterior draw of the rest:
    with ``x`` the small block's coefficients (``b_S``, and ``beta - mu0`` when ``fixed_prior =
    (mu0, s0)`` says the fixed effects were integrated out), ``(b_k, x) | r`` is Gaussian with
    precision ``[[diag(p), N/s2], [N'/s2, diag(prior) + G0/s2]]`` (``p = 1/tau_k^2 + a/s2``);
    ``x`` is drawn from its marginal (Schur complement ``H``), then ``b_k`` per level given ``x``.
    Returns the draws (chain, draw, levels) by term name, and ``"beta"`` (chain, draw, p) when
    the fixed effects were integrated out."""
    k = plan.integrated_term
    t = design.terms[k]
    arr = partial_arrays(design, plan)
    small = [design.terms[j] for j in plan.joint]
    sizes = [u.n_levels for u in small] + ([design.k_fe] if fixed_prior is not None else [])
    m = sum(sizes)
    W = _block(design, plan)
    Wt = W[:, :m].T.tocsr() if m else None
    N = arr["data_joint_N"][:, :m] if m else None
    G0 = arr["data_joint_G0"][:m, :m] if m else None
    a, Zk = arr[f"data_zz_{t.name}"], _z(design, [k]).T.tocsr()
    sigma = post["sigma"].values
    beta = np.broadcast_to(fixed_prior[0], sigma.shape + (design.k_fe,)) if fixed_prior is not None \
        else post["beta"].values
    sd = {c: post["sd"].sel(component=c).values for u in design.terms for c in u.component_names}
    names = [u.name for u in small] + (["beta"] if fixed_prior is not None else [])
    out = {name: np.empty(sigma.shape + (q,)) for name, q in zip([t.name, *names], [t.n_levels, *sizes])}
    others = [(u.codes, u.zvals[:, 0], re_draws[u.name]) for i, u in enumerate(design.terms)
              if i not in plan.integrated]
    for c, j in np.ndindex(sigma.shape):
        r = design.y - design.X @ beta[c, j]
        for cu, zu, b in others:
            r = r - zu * b[c, j][cu]
        s2 = sigma[c, j] ** 2
        p = 1.0 / sd[t.component_names[0]][c, j] ** 2 + a / s2
        sk = Zk @ r / s2
        if m:
            prior = np.concatenate([np.full(u.n_levels, sd[u.component_names[0]][c, j] ** -2.0) for u in small]
                                   + ([np.asarray(fixed_prior[1], dtype=float) ** -2.0] if fixed_prior is not None else []))
            Ns = N / s2
            L = sla.cholesky(np.diag(prior) + G0 / s2 - (Ns.T / p) @ Ns, lower=True)
            x = sla.cho_solve((L, True), Wt @ r / s2 - Ns.T @ (sk / p))
            x = x + sla.solve_triangular(L, rng.standard_normal(m), lower=True, trans="T")
            sk = sk - Ns @ x
            for name, piece in zip(names, np.split(x, np.cumsum(sizes)[:-1])):
                out[name][c, j] = piece
        out[t.name][c, j] = sk / p + rng.standard_normal(t.n_levels) / np.sqrt(p)
    if fixed_prior is not None:
        out["beta"] = out["beta"] + np.asarray(fixed_prior[0], dtype=float)
    return out
