"""Conditional distribution of the random effects given the data and the parameters.

``b | y, beta, sigma, theta ~ N(Lambda u_hat, sigma^2 Lambda A^{-1} Lambda')``: modes, conditional
covariances (REML's ``ranef(condVar=TRUE)``) and exact draws, all from the kernel's blocked factor
of ``A``. Mixed into :class:`bayesvc.likelihood.Kernel`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.linalg as sla

from .covariance import term_lambda

if TYPE_CHECKING:
    from .likelihood import Factor


class ConditionalMixin:
    """Methods of :class:`~bayesvc.likelihood.Kernel` for the random effects' conditional law."""

    def conditional_modes(self, f: Factor, beta: np.ndarray) -> list[np.ndarray]:
        """Per term (design order) the conditional modes ``b = Lambda u`` as (levels, p)."""
        U = self._U(f)
        w = np.append(-beta, 1.0)
        out = []
        for i, t in enumerate(self.terms):
            u = (U[i] @ w).reshape(t.n_levels, t.p)
            L = term_lambda(t, f.theta[self.slices[i]])
            out.append(u @ L.T)
        return out

    def conditional_covariances(self, f: Factor, scale: float) -> list[np.ndarray]:
        """Per term the conditional covariance of each level's effects, (levels, p, p)."""
        blocks = [None] * self.n_comp
        Sinv = f.Sinv if self.rz else None
        if self.first is not None:
            t = self.terms[self.first]
            p1 = t.p
            Ainv11 = f.Dinv.copy()
            if self.rz and p1 == 1:
                # diag(D^-1 B' S^-1 B D^-1) from the pair products: no q1 x q1 identity needed
                lv = f.Lam_rest.d if self.scalar else f.Lam_rest.diagonal()
                w2 = (f.lam1[0, 0] / f.D[:, 0, 0]) ** 2
                if self.C1_dense is not None:
                    Cz = self.C1_dense[: self.rz]
                    quad = np.sum(((Sinv * np.outer(lv, lv)) @ Cz) * Cz, axis=0)
                else:
                    quad = self.Pz.T @ (self.pz_w * lv[self.pz_i] * lv[self.pz_j] * Sinv[self.pz_i, self.pz_j])
                Ainv11 = Ainv11 + (w2 * quad)[:, None, None]
            elif self.rz:
                # K = Lzz^{-1} B D^{-1}; diagonal blocks of D^{-1} B' S^{-1} B D^{-1} = K_l' K_l
                BDinv = np.zeros((self.rz, t.q))
                eye = np.eye(t.q)
                # B D^{-1} column by column would be q1 solves; form it densely instead
                BDinv = self._B_times(f, self._Dinv_times(f, eye)) if t.q <= 20000 else None
                if BDinv is not None:
                    K = sla.solve_triangular(f.Lzz, BDinv, lower=True, check_finite=False)
                    Kl = K.reshape(self.rz, t.n_levels, p1)
                    Ainv11 = Ainv11 + np.einsum("rli,rlj->lij", Kl, Kl)
            blocks[self.first] = Ainv11
        for i in self.rest:
            t = self.terms[i]
            a, b = self.rest_offsets[i]
            Si = Sinv[a:b, a:b]
            idx = np.arange(t.n_levels)[:, None] * t.p + np.arange(t.p)[None, :]
            blocks[i] = Si[idx[:, :, None], idx[:, None, :]]
        out = []
        for i, t in enumerate(self.terms):
            L = term_lambda(t, f.theta[self.slices[i]])
            out.append(scale * np.einsum("ij,ljk,mk->lim", L, blocks[i], L))
        return out

    def draw_u(self, f: Factor, z1: np.ndarray | None, zr: np.ndarray) -> list[np.ndarray]:
        """Map standard normals to ``x ~ N(0, A^{-1})`` via ``L' x = z`` (blockwise)."""
        xr = sla.solve_triangular(f.Lzz, zr, lower=True, trans="T", check_finite=False) if self.rz else zr
        out = [None] * self.n_comp
        if self.first is not None:
            y = z1 - self._solve_L1(f, self._Bt_times(f, xr), trans=False) if self.rz else z1
            out[self.first] = self._solve_L1(f, y, trans=True)
        for i in self.rest:
            a, b = self.rest_offsets[i]
            out[i] = xr[a:b]
        return out

    def _solve_L1(self, f: Factor, x: np.ndarray, trans: bool) -> np.ndarray:
        p1 = f.Dchol.shape[1]
        k = x.shape[1]
        xb = x.reshape(-1, p1, k)
        if p1 == 1:
            return (xb / f.Dchol).reshape(-1, k)
        Lb = np.transpose(f.Dchol, (0, 2, 1)) if trans else f.Dchol
        return np.linalg.solve(Lb, xb).reshape(-1, k)
