"""Conditional distribution of the random effects given the data and the parameters.

``b | y, beta, sigma, theta ~ N(Lambda u_hat, sigma^2 Lambda A^{-1} Lambda')``: modes, conditional
covariances (REML's ``ranef(condVar=TRUE)``) and exact draws, all from the kernel's blocked factor
of ``A`` through its public solves. Functions of ``(kernel, factorization, ...)``.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..design.covariance import term_lambda

#: above this many first-term columns the correction of a non-scalar first term's conditional
#: covariances (a dense rz x q1 solve) is skipped and only its block-diagonal part is returned
MAX_DENSE_CORRECTION = 20_000


def conditional_modes(kernel, f, beta: np.ndarray) -> list[np.ndarray]:
    """Per term (design order) the conditional modes ``b = Lambda u`` as (levels, p)."""
    w = np.append(-np.asarray(beta, dtype=float), 1.0)
    out = []
    for i, (t, U) in enumerate(zip(kernel.terms, kernel.solve_u(f))):
        u = (U @ w).reshape(t.n_levels, t.p)
        out.append(u @ term_lambda(t, f.theta[kernel.slices[i]]).T)
    return out


def _first_block_inverse(kernel, f) -> np.ndarray:
    """Diagonal blocks of ``A^{-1}`` for the first term: ``D^{-1} + D^{-1} B' S^{-1} B D^{-1}``."""
    t = kernel.terms[kernel.first]
    Ainv11 = f.Dinv.copy()
    if not kernel.rz:
        return Ainv11
    if t.scalar:
        # diag(D^-1 B' S^-1 B D^-1) from the pair products: no q1 x q1 identity needed
        lv = f.lam_rest.diagonal()
        w2 = (f.lam1[0, 0] / f.D[:, 0, 0]) ** 2
        return Ainv11 + (w2 * kernel.pairs.column_quadratic_z(f.Sinv, lv))[:, None, None]
    if t.q > MAX_DENSE_CORRECTION:
        return Ainv11
    # K = Lzz^{-1} B D^{-1}; diagonal blocks of D^{-1} B' S^{-1} B D^{-1} = K_l' K_l
    BDinv = kernel.apply_B(f, kernel.apply_Dinv(f, np.eye(t.q)))
    K = sla.solve_triangular(f.Lzz, BDinv, lower=True, check_finite=False)
    Kl = K.reshape(kernel.rz, t.n_levels, t.p)
    return Ainv11 + np.einsum("rli,rlj->lij", Kl, Kl)


def conditional_covariances(kernel, f, scale: float) -> list[np.ndarray]:
    """Per term the conditional covariance of each level's effects, (levels, p, p)."""
    blocks = [None] * kernel.n_comp
    if kernel.first is not None:
        blocks[kernel.first] = _first_block_inverse(kernel, f)
    for i in kernel.rest:
        t = kernel.terms[i]
        a, b = kernel.rest_offsets[i]
        Si = f.Sinv[a:b, a:b]
        idx = np.arange(t.n_levels)[:, None] * t.p + np.arange(t.p)[None, :]
        blocks[i] = Si[idx[:, :, None], idx[:, None, :]]
    out = []
    for i, t in enumerate(kernel.terms):
        L = term_lambda(t, f.theta[kernel.slices[i]])
        out.append(scale * np.einsum("ij,ljk,mk->lim", L, blocks[i], L))
    return out


def draw_u(kernel, f, z1: np.ndarray | None, zr: np.ndarray) -> list[np.ndarray]:
    """Map standard normals to ``x ~ N(0, A^{-1})`` via ``L' x = z`` (blockwise), per term."""
    xr = sla.solve_triangular(f.Lzz, zr, lower=True, trans="T", check_finite=False) if kernel.rz else zr
    out = [None] * kernel.n_comp
    if kernel.first is not None:
        y = z1 - kernel.solve_L1(f, kernel.apply_Bt(f, xr), trans=False) if kernel.rz else z1
        out[kernel.first] = kernel.solve_L1(f, y, trans=True)
    for i in kernel.rest:
        a, b = kernel.rest_offsets[i]
        out[i] = xr[a:b]
    return out


def draw_effects(kernel, f, beta, sigma: float, z1, zr) -> list[np.ndarray]:
    """One exact draw of every term's random effects ``b = Lambda (u_hat + sigma x)`` given
    ``(beta, sigma, theta)``, from standard normals ``z1`` (first term, q1 x 1) and ``zr``
    (rest, rz x 1); per term an array (levels, p)."""
    modes = conditional_modes(kernel, f, beta)
    xs = draw_u(kernel, f, z1, zr)
    out = []
    for i, t in enumerate(kernel.terms):
        L = term_lambda(t, f.theta[kernel.slices[i]])
        out.append(modes[i] + sigma * xs[i].reshape(t.n_levels, t.p) @ L.T)
    return out
