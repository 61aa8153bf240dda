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


def partial_arrays(design, plan) -> dict:
    """The data the partial log-likelihood reads besides ``y``, ``X`` and the codes: the largest
    term's ``a = sum z^2`` per level and, with small terms, ``N = Z_k'Z_S`` and ``G0 = Z_S'Z_S``."""
    t = design.terms[plan.integrated_term]
    z = t.zvals[:, 0]
    out = {f"data_zz_{t.name}": np.bincount(_codes(t), weights=z * z, minlength=t.n_levels)}
    if plan.joint:
        Zk, Zs = _z(design, [plan.integrated_term]), _z(design, plan.joint)
        out["data_joint_N"] = np.asarray((Zk.T @ Zs).todense())
        out["data_joint_G0"] = np.asarray((Zs.T @ Zs).todense())
    return out


def _segment_sum(pt, n_levels, codes, values):
    return pt.inc_subtensor(pt.zeros(n_levels)[codes], values)


def partial_loglik(design, plan, mu, sigma, sd_of: dict, data: dict):
    """``log N(y | mu, sigma^2 I + sum_j tau_j^2 Z_j Z_j')`` over the integrated terms (module
    docstring); ``sd_of``: SD variable per component name, ``data``: the model data
    (:func:`~bayesvc.estimators.bayes.model.design_data`)."""
    import pytensor.tensor as pt

    t = design.terms[plan.integrated_term]
    r = data["data_y"] - mu
    s = _segment_sum(pt, t.n_levels, data[f"data_codes_{t.name}"], data[f"data_zvals_{t.name}"][:, 0] * r)
    th2 = (sd_of[t.component_names[0]] / sigma) ** 2
    d = 1.0 + th2 * data[f"data_zz_{t.name}"]
    rvr = pt.sum(r * r) - th2 * pt.sum(s * s / d)
    logdet = pt.sum(pt.log(d))
    if plan.joint:
        small = [design.terms[j] for j in plan.joint]
        s_small = pt.concatenate([_segment_sum(pt, u.n_levels, data[f"data_codes_{u.name}"],
                                               data[f"data_zvals_{u.name}"][:, 0] * r) for u in small])
        theta = pt.concatenate([sd_of[u.component_names[0]] / sigma * pt.ones(u.n_levels) for u in small])
        N, G0 = data["data_joint_N"], data["data_joint_G0"]
        G = G0 - th2 * pt.dot(N.T / d[None, :], N)
        M = pt.eye(theta.shape[0]) + theta[:, None] * G * theta[None, :]
        L = pt.linalg.cholesky(M)
        v = pt.linalg.solve_triangular(L, theta * (s_small - th2 * pt.dot(N.T, s / d)), lower=True)
        rvr = rvr - pt.sum(v * v)
        logdet = logdet + 2.0 * pt.sum(pt.log(pt.diag(L)))
    n = design.nobs
    return -0.5 * (n * np.log(2 * np.pi) + 2 * n * pt.log(sigma) + logdet + rvr / sigma**2)


def draw_integrated(design, plan, post: xr.Dataset, re_draws: dict, rng: np.random.Generator) -> dict:
    """Exact conditional draws of the integrated terms given each posterior draw of the rest:
    ``(b_k, b_S) | r`` is Gaussian with precision ``[[diag(p), N/s2], [N'/s2, diag(1/tau_S^2) + G0/s2]]``
    (``p = 1/tau_k^2 + a/s2``); ``b_S`` is drawn from its marginal (Schur complement ``H``), then
    ``b_k`` per level given ``b_S``. Returns the draws (chain, draw, levels) by term name."""
    k, joint = plan.integrated_term, plan.joint
    t = design.terms[k]
    arr = partial_arrays(design, plan)
    a = arr[f"data_zz_{t.name}"]
    Zk, Zs = _z(design, [k]).T.tocsr(), (_z(design, joint).T.tocsr() if joint else None)
    beta, sigma = post["beta"].values, post["sigma"].values
    sd = {c: post["sd"].sel(component=c).values for u in design.terms for c in u.component_names}
    nc, nd = sigma.shape
    small = [design.terms[j] for j in joint]
    sizes = [u.n_levels for u in small]
    out = {u.name: np.empty((nc, nd, u.n_levels)) for u in [t, *small]}
    others = [(u.codes, u.zvals[:, 0], re_draws[u.name]) for i, u in enumerate(design.terms)
              if i not in plan.integrated]
    for c in range(nc):
        for j in range(nd):
            r = design.y - design.X @ beta[c, j]
            for cu, zu, b in others:
                r = r - zu * b[c, j][cu]
            s2 = sigma[c, j] ** 2
            p = 1.0 / sd[t.component_names[0]][c, j] ** 2 + a / s2
            sk = Zk @ r / s2
            if joint:
                N = arr["data_joint_N"] / s2
                prior = np.concatenate([np.full(q, sd[u.component_names[0]][c, j] ** -2.0)
                                        for u, q in zip(small, sizes)])
                H = np.diag(prior) + arr["data_joint_G0"] / s2 - (N.T / p) @ N
                L = sla.cholesky(H, lower=True)
                mean = sla.cho_solve((L, True), Zs @ r / s2 - N.T @ (sk / p))
                bs = mean + sla.solve_triangular(L, rng.standard_normal(len(mean)), lower=True, trans="T")
                sk = sk - N @ bs
                for u, piece in zip(small, np.split(bs, np.cumsum(sizes)[:-1])):
                    out[u.name][c, j] = piece
            out[t.name][c, j] = sk / p + rng.standard_normal(t.n_levels) / np.sqrt(p)
    return out
