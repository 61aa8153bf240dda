"""The collapsed (random effects integrated out) Gaussian likelihood, in blocks.

Written by hand because no library evaluates it at this cost: with the Gaussian random effects
integrated out, ``y ~ N(X beta, sigma^2 (I + Z Lambda Lambda' Z'))``, and following lme4 and
MixedModels.jl every quantity comes from a Cholesky factor of ``A = Lambda'Z'Z Lambda + I``
augmented with ``[X y]``. The largest term whose ``Z'Z`` is block diagonal stays block diagonal
(``D``, factored level by level); the remaining terms, X and y form one dense Schur complement
``S`` of size ``q_rest + p + 1``. Cost per evaluation is independent of N.

Gradients are analytic for designs whose terms are all scalar variance components (the
variance-component models this library is about):

* ``d log|A| / d log theta_k = 2 (q_k - tr_k A^{-1}) = 2 t_k``, with ``t_k`` computed without
  cancellation,
* the quadratic form follows from the conditional modes (envelope theorem):
  ``d Q / d log theta_k = -2 ||u_k||^2``.

The same :class:`Kernel` serves the profiled REML/ML deviance, the posterior mode and NUTS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .covariance import term_lambda, theta_slices
from .design import Design, sufficient_statistics

LOG2PI = np.log(2 * np.pi)


class NotPositiveDefinite(np.linalg.LinAlgError):
    pass


@dataclass
class Factor:
    """The factorization of ``A(theta)`` augmented with ``[X y]``."""

    theta: np.ndarray
    D: np.ndarray | None  # (L1, p1, p1) blocks of Lambda1'A11 Lambda1 + I
    Dchol: np.ndarray | None  # their lower Cholesky factors
    Dinv: np.ndarray | None
    lam1: np.ndarray | None  # (p1, p1)
    Lam_rest: sp.csr_matrix  # rz x rz
    L: np.ndarray  # lower Cholesky of the augmented Schur complement (m x m)
    logdet_A: float
    rz: int
    p: int

    @property
    def Lzz(self) -> np.ndarray:
        return self.L[: self.rz, : self.rz]

    @property
    def Mxy(self) -> np.ndarray:
        """``[X y]' V*^{-1} [X y]`` with ``V* = I + Z Lambda Lambda' Z'``."""
        Lw = self.L[self.rz :, self.rz :]
        return Lw @ Lw.T

    @property
    def logdet_RX2(self) -> float:
        d = np.diag(self.L)[self.rz : self.rz + self.p]
        return float(2 * np.sum(np.log(d)))

    @property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares at the conditional estimates of beta, u."""
        return float(self.L[-1, -1] ** 2)


class Kernel:
    """Collapsed likelihood of a :class:`~bayesvc.design.Design` as a function of theta.

    Parameters
    ----------
    design : Design

    Notes
    -----
    ``theta`` is always in the design's term order (see :mod:`bayesvc.covariance`); internally
    the largest block-diagonal term is eliminated first.
    """

    def __init__(self, design: Design):
        self.design = design
        self.stats = st = sufficient_statistics(design)
        self.terms = design.terms
        self.slices = theta_slices(design.terms)
        self.n, self.p = design.nobs, design.k_fe
        self.rz = st.q_rest
        self.m = st.Arr.shape[0]
        self.scalar = all(t.p == 1 for t in design.terms)
        self.first = st.first
        self.rest = [i for i in st.order if i != st.first]
        # component index of every rest column (scalar designs), and per-term offsets
        offs, k = {}, 0
        for i in self.rest:
            offs[i] = (k, k + design.terms[i].q)
            k += design.terms[i].q
        self.rest_offsets = offs
        if st.first is not None:
            self.C1z = st.C1[: self.rz].tocsr()
            self.C1 = st.C1
            self.a1 = st.A11
        # Z'[X y] in internal order (q x (p+1))
        self.ZtW_rest = st.Arr[: self.rz, self.rz :]
        self.ZtW_first = st.C1[self.rz :].T.toarray() if st.first is not None else None
        self.n_theta = sum(t.n_theta for t in design.terms)
        self.n_comp = len(design.terms)

    # ------------------------------------------------------------------ factorization
    def _lam_rest(self, theta) -> sp.csr_matrix:
        blocks = []
        for i in self.rest:
            t = self.terms[i]
            L = term_lambda(t, theta[self.slices[i]])
            blocks.append(sp.kron(sp.identity(t.n_levels), sp.csr_matrix(L)))
        if not blocks:
            return sp.csr_matrix((0, 0))
        return sp.block_diag(blocks, format="csr")

    def factor(self, theta) -> Factor:
        theta = np.asarray(theta, dtype=float)
        rz, m = self.rz, self.m
        lam_r = self._lam_rest(theta)
        lam_aug = sp.block_diag([lam_r, sp.identity(m - rz)], format="csr") if rz else sp.identity(m, format="csr")
        Arr = self.stats.Arr
        D = Dchol = Dinv = lam1 = None
        logdet = 0.0
        if self.first is not None:
            t = self.terms[self.first]
            lam1 = term_lambda(t, theta[self.slices[self.first]])
            D = np.einsum("ji,ljk,km->lim", lam1, self.a1, lam1) + np.eye(t.p)
            if t.p == 1:
                Dchol = np.sqrt(D)
                Dinv = 1.0 / D
            else:
                Dchol = np.linalg.cholesky(D)
                Dinv = np.linalg.inv(D)
            logdet += 2.0 * np.sum(np.log(np.einsum("lii->li", Dchol)))
            # W = C1 Lambda1 D^{-1} Lambda1' C1'
            Wd = np.einsum("ij,ljk,mk->lim", lam1, Dinv, lam1)
            if t.p == 1:
                inner = (self.C1.multiply(Wd[:, 0, 0][None, :]) @ self.C1.T).toarray()
            else:
                inner = (self.C1 @ sp.block_diag(list(Wd), format="csr") @ self.C1.T).toarray()
            Arr = Arr - inner
        if self.scalar:
            lv = lam_aug.diagonal()
            S = Arr * np.outer(lv, lv)
        else:
            S = lam_aug.T @ (lam_aug.T @ Arr).T
            S = np.asarray(S)
        S[np.arange(rz), np.arange(rz)] += 1.0
        try:
            L = sla.cholesky(S, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise NotPositiveDefinite(str(err)) from err
        dL = np.diag(L)
        if not np.all(dL[:-1] > 0):
            raise NotPositiveDefinite("augmented system not positive definite")
        logdet += 2.0 * np.sum(np.log(dL[:rz]))
        return Factor(theta, D, Dchol, Dinv, lam1, lam_r, L, float(logdet), rz, self.p)

    # ------------------------------------------------------------------ solves with A
    def _B_times(self, f: Factor, x1: np.ndarray) -> np.ndarray:
        """B x1 with B = Lambda_r' Zr'Z1 Lambda1 (x1 is q1 x k, level-major)."""
        p1 = self.terms[self.first].p
        k = x1.shape[1]
        lx = np.einsum("ij,ljk->lik", f.lam1, x1.reshape(-1, p1, k)).reshape(-1, k)
        return f.Lam_rest.T @ (self.C1z @ lx)

    def _Bt_times(self, f: Factor, xr: np.ndarray) -> np.ndarray:
        p1 = self.terms[self.first].p
        k = xr.shape[1]
        y = self.C1z.T @ (f.Lam_rest @ xr)
        return np.einsum("ji,ljk->lik", f.lam1, y.reshape(-1, p1, k)).reshape(-1, k)

    def _Dinv_times(self, f: Factor, x1: np.ndarray) -> np.ndarray:
        p1 = f.Dinv.shape[1]
        k = x1.shape[1]
        return np.einsum("lij,ljk->lik", f.Dinv, x1.reshape(-1, p1, k)).reshape(-1, k)

    def solve(self, f: Factor, c1: np.ndarray | None, cr: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
        """Solve ``A x = c`` blockwise (c in internal order: first term, then rest)."""
        if self.first is None:
            return None, sla.cho_solve((f.Lzz, True), cr, check_finite=False)
        t1 = self._Dinv_times(f, c1)
        rhs = cr - self._B_times(f, t1) if self.rz else cr
        xr = sla.cho_solve((f.Lzz, True), rhs, check_finite=False) if self.rz else rhs
        x1 = t1 - self._Dinv_times(f, self._Bt_times(f, xr)) if self.rz else t1
        return x1, xr

    def lam_times_ZtW(self, f: Factor):
        """``Lambda' Z'[X y]`` split into the first-term and rest parts."""
        c1 = None
        if self.first is not None:
            p1 = self.terms[self.first].p
            k = self.ZtW_first.shape[1]
            c1 = np.einsum("ji,ljk->lik", f.lam1, self.ZtW_first.reshape(-1, p1, k)).reshape(-1, k)
        cr = f.Lam_rest.T @ self.ZtW_rest
        return c1, cr

    # ------------------------------------------------------------------ deviance
    def deviance(self, theta, reml: bool = True) -> float:
        """Profiled deviance (-2 log-likelihood, REML or ML) at ``theta``, as lme4's devfun."""
        try:
            f = self.factor(theta)
        except NotPositiveDefinite:
            return np.inf
        return self._deviance(f, reml)

    def _deviance(self, f: Factor, reml: bool) -> float:
        nu = self.n - self.p if reml else self.n
        dev = f.logdet_A + nu * (1.0 + LOG2PI + np.log(f.pwrss / nu))
        if reml:
            dev += f.logdet_RX2
        return float(dev)

    def _scalar_traces(self, f: Factor) -> tuple[np.ndarray, np.ndarray | None]:
        """``t_k = tr_k(I - A^{-1})`` per term (scalar designs) and ``S_zz^{-1}``."""
        t = np.zeros(self.n_comp)
        Sinv = None
        if self.rz:
            Sinv = sla.cho_solve((f.Lzz, True), np.eye(self.rz), check_finite=False)
            Szz = f.Lzz @ f.Lzz.T
            Szz[np.diag_indices(self.rz)] -= 1.0
            diag_term = np.einsum("ij,ji->i", Sinv, Szz)
            for i in self.rest:
                a, b = self.rest_offsets[i]
                t[i] = diag_term[a:b].sum()
        if self.first is not None:
            D = f.D[:, 0, 0]
            lam1 = f.lam1[0, 0]
            t1 = np.sum((D - 1.0) / D)
            if self.rz:
                lv = f.Lam_rest.diagonal()
                BD2B = (self.C1z.multiply((lam1 / D) ** 2) @ self.C1z.T).toarray() * np.outer(lv, lv)
                t1 -= np.sum(Sinv * BD2B)
            t[self.first] = t1
        return t, Sinv

    def _U(self, f: Factor) -> list[np.ndarray]:
        """Per term, rows of ``U = A^{-1} Lambda' Z'[X y]`` (q_k x (p+1))."""
        c1, cr = self.lam_times_ZtW(f)
        x1, xr = self.solve(f, c1, cr)
        out = [None] * self.n_comp
        if self.first is not None:
            out[self.first] = x1
        for i in self.rest:
            a, b = self.rest_offsets[i]
            out[i] = xr[a:b]
        return out

    def deviance_grad(self, theta, reml: bool = True) -> tuple[float, np.ndarray]:
        """Profiled deviance and its gradient in theta (scalar designs only)."""
        if not self.scalar:
            raise NotImplementedError("analytic gradient needs scalar variance components")
        theta = np.asarray(theta, dtype=float)
        try:
            f = self.factor(theta)
        except NotPositiveDefinite:
            return np.inf, np.zeros_like(theta)
        dev = self._deviance(f, reml)
        nu = self.n - self.p if reml else self.n
        tk, _ = self._scalar_traces(f)
        U = self._U(f)
        Mxy = f.Mxy
        p = self.p
        beta = np.linalg.solve(Mxy[:p, :p], Mxy[:p, p])
        w = np.append(-beta, 1.0)
        P = np.linalg.inv(Mxy[:p, :p])
        r2 = f.pwrss
        glog = np.zeros(self.n_comp)
        for k in range(self.n_comp):
            Uk = U[k]
            uk = Uk @ w
            glog[k] = 2 * tk[k] - nu * 2 * (uk @ uk) / r2
            if reml:
                UX = Uk[:, :p]
                glog[k] -= 2 * np.sum(P * (UX.T @ UX))
        g = np.where(theta > 0, glog / np.where(theta > 0, theta, 1.0), 0.0)
        return dev, g

    # ------------------------------------------------------------------ NUTS log-density
    def loglik_grad(self, beta, sigma, tau) -> tuple[float, np.ndarray, float, np.ndarray]:
        """Collapsed log-likelihood at (beta, sigma, tau) and its gradient.

        ``tau`` holds the component SDs (scalar designs), ``sigma`` the residual SD.
        Returns ``(loglik, d/dbeta, d/dsigma, d/dtau)``.
        """
        beta = np.asarray(beta, dtype=float)
        tau = np.asarray(tau, dtype=float)
        theta = tau / sigma
        f = self.factor(theta)
        s2 = sigma * sigma
        Mxy = f.Mxy
        w = np.append(-beta, 1.0)
        Q = float(w @ Mxy @ w)
        ll = -0.5 * (self.n * (LOG2PI + np.log(s2)) + f.logdet_A + Q / s2)
        tk, _ = self._scalar_traces(f)
        U = self._U(f)
        dlogtheta = np.empty(self.n_comp)
        for k in range(self.n_comp):
            uk = U[k] @ w
            dlogtheta[k] = -tk[k] + (uk @ uk) / s2
        p = self.p
        dbeta = (Mxy[:p, p] - Mxy[:p, :p] @ beta) / s2
        dsigma = (-self.n + Q / s2 - dlogtheta.sum()) / sigma
        dtau = dlogtheta / tau
        return float(ll), dbeta, float(dsigma), dtau

    def loglik(self, beta, sigma, tau) -> float:
        theta = np.asarray(tau, dtype=float) / sigma
        f = self.factor(theta)
        s2 = sigma * sigma
        w = np.append(-np.asarray(beta, dtype=float), 1.0)
        Q = float(w @ f.Mxy @ w)
        return float(-0.5 * (self.n * (LOG2PI + np.log(s2)) + f.logdet_A + Q / s2))

    # ------------------------------------------------------------------ random effects
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
        Sinv = sla.cho_solve((f.Lzz, True), np.eye(self.rz), check_finite=False) if self.rz else None
        if self.first is not None:
            t = self.terms[self.first]
            p1 = t.p
            Ainv11 = f.Dinv.copy()
            if self.rz:
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
            p1 = self.terms[self.first].p
            k = z1.shape[1]
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
