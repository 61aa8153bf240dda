"""The collapsed (random effects integrated out) Gaussian likelihood, in blocks.

Written by hand because no library evaluates it at this cost: with the Gaussian random effects
integrated out, ``y ~ N(X beta, sigma^2 (I + Z Lambda Lambda' Z'))``, and following lme4 and
MixedModels.jl every quantity comes from a Cholesky factor of ``A = Lambda'Z'Z Lambda + I``
augmented with ``[X y]``. The largest term whose ``Z'Z`` is block diagonal stays block diagonal
(``D``, factored level by level); the remaining terms, X and y form one dense Schur complement
``S`` of size ``m = q_rest + p + 1``. Cost per evaluation is independent of N.

This module holds the structure, the factorization and the blocked solves; the criteria built
on them (profiled deviance, non-profiled REML/ML objective, collapsed log-likelihood, and their
analytic gradients) are in :mod:`bayesvc.kernel.criteria`, the random effects' conditional law in
:mod:`bayesvc.kernel.conditional`, the Numba version in :mod:`bayesvc.kernel.compiled`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from ..design import Design, SufficientStats, sufficient_statistics
from ..design.covariance import term_lambda, theta_slices
from . import criteria
from .factor import DiagonalLambda, Factorization, NotPositiveDefinite, lambda_rest_sparse
from .pairs import PairProducts, pair_products

LOG2PI = criteria.LOG2PI


class Kernel:
    """Collapsed likelihood of a :class:`~bayesvc.design.Design` as a function of theta.

    ``theta`` is always in the design's term order (see :mod:`bayesvc.design.covariance`);
    internally the largest block-diagonal term (``first``) is eliminated first and the others
    (``rest``) form the dense block.

    Attributes
    ----------
    design : Design
    stats : SufficientStats
        The blocked cross-products the kernel works on.
    terms : tuple of RandomTerm
    slices : list of slice
        Each term's entries of theta.
    n, p : int
        Observations and fixed effects.
    rz, m : int
        Columns of the rest random-effect block and of the dense block (``rz + p + 1``).
    n_theta, n_comp : int
        Length of theta; number of terms.
    scalar : bool
        All terms scalar (the designs with an analytic gradient).
    first : int or None
        Index of the block-diagonal term, if any.
    rest : list of int
        The other terms, in the dense block's order.
    rest_offsets : dict
        Term index -> (start, stop) of its columns in the rest block.
    C1, C1z : scipy.sparse.csr_matrix or None
        ``[Z_rest X y]' Z1`` and its rest random-effect rows.
    a1 : ndarray (L1, p1, p1) or None
        Diagonal blocks of ``Z1'Z1``.
    pairs : PairProducts or None
        Precomputed ``C1 diag(w) C1'`` for a scalar first term.
    diag_S : bool
        The rest block's Schur complement is diagonal (nested designs): cheaper factorization.
    ZtW_first, ZtW_rest : ndarray or None
        ``Z1'[X y]`` and ``Z_rest'[X y]``.
    rest_theta_idx : ndarray or None
        Scalar designs: theta index of every rest column.
    log_weight_sum : float
        ``sum(log w_i)`` of the prior weights (0 without weights): the cross-products are those of
        the rows scaled by ``sqrt(w_i)``, and ``log|V| = log|V~| - sum(log w_i)``.

    Examples
    --------
    >>> k = bvc.Kernel(model.design)
    >>> k.n, k.p, k.n_theta, k.scalar, k.first, k.rz, k.m
    (48, 1, 1, True, 0, 0, 2)
    >>> bool(np.isclose(k.deviance(reml.theta), -2 * reml.llf))   # REML deviance at the estimate
    True
    >>> f = k.factorize([1.0])
    >>> f.Mxy.shape, float(k.factorize([0.0]).logdet_A)          # A = I when theta = 0
    ((2, 2), 0.0)
    """

    design: Design
    stats: SufficientStats
    slices: list
    n: int
    p: int
    rz: int
    m: int
    n_theta: int
    n_comp: int
    scalar: bool
    first: int | None
    rest: list
    rest_offsets: dict
    C1: sp.csr_matrix | None
    C1z: sp.csr_matrix | None
    a1: np.ndarray | None
    pairs: PairProducts | None
    diag_S: bool
    ZtW_first: np.ndarray | None
    ZtW_rest: np.ndarray
    rest_theta_idx: np.ndarray | None

    def __init__(self, design: Design):
        self.design = design
        self.stats = st = sufficient_statistics(design)
        self.terms = design.terms
        self.slices = theta_slices(design.terms)
        self.n, self.p = design.nobs, design.k_fe
        w = design.weights
        self.log_weight_sum = 0.0 if w is None else float(np.sum(np.log(w)))
        self.rz, self.m = st.q_rest, st.Arr.shape[0]
        self.n_theta = sum(t.n_theta for t in design.terms)
        self.n_comp = len(design.terms)
        self.scalar = design.scalar
        self.first = st.first
        self.rest = [i for i in st.order if i != st.first]
        self.rest_offsets, k = {}, 0
        for i in self.rest:
            self.rest_offsets[i] = (k, k + design.terms[i].q)
            k += design.terms[i].q
        self.C1 = self.C1z = self.a1 = self.pairs = self.ZtW_first = None
        if st.first is not None:
            self.C1, self.C1z, self.a1 = st.C1, st.C1[: self.rz].tocsr(), st.A11
            self.ZtW_first = st.C1[self.rz :].T.toarray()
            if design.terms[st.first].scalar:
                self.pairs = pair_products(st.C1.tocsc(), self.m, self.rz)
        self.ZtW_rest = st.Arr[: self.rz, self.rz :]
        Azz = st.Arr[: self.rz, : self.rz]
        self.diag_S = bool(self.scalar and self.pairs is not None and not self.pairs.offdiag_z
                           and np.count_nonzero(Azz - np.diag(np.diag(Azz))) == 0)
        self.rest_theta_idx = None
        if self.scalar:
            self.rest_theta_idx = np.concatenate(
                [np.full(design.terms[i].q, self.slices[i].start) for i in self.rest] + [np.zeros(0, int)]
            ).astype(int)

    # ------------------------------------------------------------------ factorization
    def lam_rest(self, theta):
        """``Lambda`` of the rest terms at ``theta`` (diagonal for scalar designs)."""
        if self.scalar:
            return DiagonalLambda(theta[self.rest_theta_idx])
        return lambda_rest_sparse([(self.terms[i].n_levels, term_lambda(self.terms[i], theta[self.slices[i]]))
                                   for i in self.rest])

    def _first_block(self, theta):
        """The first term's blocks ``D = Lambda1'A11 Lambda1 + I`` (factors, inverses) and the
        update ``C1 Lambda1 D^{-1} Lambda1' C1'`` of the dense block."""
        t = self.terms[self.first]
        lam1 = term_lambda(t, theta[self.slices[self.first]])
        if t.scalar:
            D = (lam1[0, 0] ** 2) * self.a1 + 1.0
            Dchol, Dinv = np.sqrt(D), 1.0 / D
            Wd = (lam1[0, 0] ** 2) * Dinv
            inner = self.pairs.inner(Wd[:, 0, 0], self.m)
        else:
            D = np.einsum("ji,ljk,km->lim", lam1, self.a1, lam1) + np.eye(t.p)
            Dchol, Dinv = np.linalg.cholesky(D), np.linalg.inv(D)
            Wd = np.einsum("ij,ljk,mk->lim", lam1, Dinv, lam1)
            inner = self._block_update(Wd)
        return lam1, D, Dchol, Dinv, inner

    #: ``C1`` is kept dense (as ``(m, levels, p1)``) for the block update up to this many entries
    DENSE_C1_MAX = 4_000_000

    def _block_update(self, Wd: np.ndarray) -> np.ndarray:
        """``C1 blockdiag(Wd) C1'`` for a non-scalar first term: one einsum over a dense ``C1``
        when it is small enough, else sparse products with ``blockdiag(Wd)`` built at once (BSR)."""
        nl, p1 = Wd.shape[0], Wd.shape[1]
        if self.m * nl * p1 <= self.DENSE_C1_MAX:
            if getattr(self, "_C1_dense", None) is None:
                self._C1_dense = self.C1.toarray().reshape(self.m, nl, p1)
            C = self._C1_dense
            CW = np.matmul(C.transpose(1, 0, 2), Wd).transpose(1, 0, 2)  # (m, levels, p1)
            return CW.reshape(self.m, -1) @ C.reshape(self.m, -1).T
        W = sp.bsr_matrix((Wd, np.arange(nl), np.arange(nl + 1)), shape=(nl * p1, nl * p1))
        return (self.C1 @ W @ self.C1.T).toarray()

    def _cholesky(self, S: np.ndarray) -> np.ndarray:
        rz = self.rz
        if not (self.diag_S and rz):
            return sla.cholesky(S, lower=True, check_finite=False)
        # nested (tree) designs: the Schur complement of the rest terms is diagonal
        L = np.zeros_like(S)
        dz = np.sqrt(np.diag(S)[:rz])
        L[np.arange(rz), np.arange(rz)] = dz
        Lwz = S[rz:, :rz] / dz[None, :]
        L[rz:, :rz] = Lwz
        L[rz:, rz:] = np.linalg.cholesky(S[rz:, rz:] - Lwz @ Lwz.T)
        return L

    def factorize(self, theta) -> Factorization:
        """Factor ``A(theta)`` augmented with ``[X y]`` (raises ``NotPositiveDefinite`` if it fails).

        Parameters
        ----------
        theta : array_like
            Relative covariance factor parameters, in the design's term order.

        Returns
        -------
        Factorization
        """
        theta = np.asarray(theta, dtype=float)
        rz, m = self.rz, self.m
        lam_r = self.lam_rest(theta)
        Arr = self.stats.Arr
        D = Dchol = Dinv = lam1 = None
        logdet = 0.0
        if self.first is not None:
            lam1, D, Dchol, Dinv, inner = self._first_block(theta)
            logdet += 2.0 * np.sum(np.log(np.einsum("lii->li", Dchol)))
            Arr = Arr - inner
        if self.scalar:
            lv = np.concatenate([lam_r.d, np.ones(m - rz)])
            S = Arr * np.outer(lv, lv)
        elif not rz:
            S = np.array(Arr, dtype=float)
        else:
            lam_aug = sp.block_diag([lam_r, sp.identity(m - rz)], format="csr")
            S = np.asarray(lam_aug.T @ (lam_aug.T @ Arr).T)
        SmI = S[:rz, :rz].copy()
        S[np.arange(rz), np.arange(rz)] += 1.0
        try:
            L = self._cholesky(S)
        except np.linalg.LinAlgError as err:
            raise NotPositiveDefinite(str(err)) from err
        dL = np.diag(L)
        if not np.all(dL[:-1] > 0):
            raise NotPositiveDefinite("augmented system not positive definite")
        logdet += 2.0 * np.sum(np.log(dL[:rz]))
        return Factorization(theta, D, Dchol, Dinv, lam1, lam_r, L, float(logdet), rz, self.p, SmI,
                             self.diag_S)

    # ------------------------------------------------------------------ solves with A
    def apply_B(self, f: Factorization, x1: np.ndarray) -> np.ndarray:
        """``B x1`` with ``B = Lambda_r' Zr'Z1 Lambda1`` (x1 is q1 x k, level-major)."""
        p1 = self.terms[self.first].p
        k = x1.shape[1]
        if p1 == 1:
            lx = f.lam1[0, 0] * x1
        else:
            lx = np.einsum("ij,ljk->lik", f.lam1, x1.reshape(-1, p1, k)).reshape(-1, k)
        return f.lam_rest.T @ (self.C1z @ lx)

    def apply_Bt(self, f: Factorization, xr: np.ndarray) -> np.ndarray:
        """``B' xr`` (xr is rz x k)."""
        p1 = self.terms[self.first].p
        k = xr.shape[1]
        y = self.C1z.T @ (f.lam_rest @ xr)
        if p1 == 1:
            return f.lam1[0, 0] * y
        return np.einsum("ji,ljk->lik", f.lam1, y.reshape(-1, p1, k)).reshape(-1, k)

    def apply_Dinv(self, f: Factorization, x1: np.ndarray) -> np.ndarray:
        """``D^{-1} x1`` blockwise."""
        p1 = f.Dinv.shape[1]
        k = x1.shape[1]
        if p1 == 1:
            return f.Dinv[:, 0, :] * x1
        return np.einsum("lij,ljk->lik", f.Dinv, x1.reshape(-1, p1, k)).reshape(-1, k)

    def solve_L1(self, f: Factorization, x: np.ndarray, trans: bool) -> np.ndarray:
        """Solve with the first term's block Cholesky factors (``trans``: their transposes)."""
        p1 = f.Dchol.shape[1]
        k = x.shape[1]
        xb = x.reshape(-1, p1, k)
        if p1 == 1:
            return (xb / f.Dchol).reshape(-1, k)
        Lb = np.transpose(f.Dchol, (0, 2, 1)) if trans else f.Dchol
        return np.linalg.solve(Lb, xb).reshape(-1, k)

    def solve(self, f: Factorization, c1: np.ndarray | None, cr: np.ndarray):
        """Solve ``A x = c`` blockwise (c in internal order: first term, then rest)."""
        if self.first is None:
            return None, sla.cho_solve((f.Lzz, True), cr, check_finite=False)
        t1 = self.apply_Dinv(f, c1)
        if not self.rz:
            return t1, cr
        xr = sla.cho_solve((f.Lzz, True), cr - self.apply_B(f, t1), check_finite=False)
        return t1 - self.apply_Dinv(f, self.apply_Bt(f, xr)), xr

    def lam_times_ZtW(self, f: Factorization):
        """``Lambda' Z'[X y]`` split into the first-term and rest parts."""
        c1 = None
        if self.first is not None:
            p1 = self.terms[self.first].p
            k = self.ZtW_first.shape[1]
            c1 = (f.lam1[0, 0] * self.ZtW_first if p1 == 1 else
                  np.einsum("ji,ljk->lik", f.lam1, self.ZtW_first.reshape(-1, p1, k)).reshape(-1, k))
        return c1, f.lam_rest.T @ self.ZtW_rest

    def solve_u(self, f: Factorization) -> list[np.ndarray]:
        """Per term (design order), rows of ``U = A^{-1} Lambda' Z'[X y]`` (q_k x (p+1)): the
        conditional modes ``u = U [-beta; 1]`` for any beta."""
        x1, xr = self.solve(f, *self.lam_times_ZtW(f))
        out = [None] * self.n_comp
        if self.first is not None:
            out[self.first] = x1
        for i in self.rest:
            a, b = self.rest_offsets[i]
            out[i] = xr[a:b]
        return out

    # ------------------------------------------------------------------ criteria (criteria.py)
    def deviance(self, theta, reml: bool = True) -> float:
        """Profiled deviance (-2 log-likelihood, REML or ML) at ``theta``, as lme4's devfun;
        ``inf`` where ``A(theta)`` cannot be factored."""
        try:
            f = self.factorize(theta)
        except NotPositiveDefinite:
            return np.inf
        return criteria.profiled_deviance(self, f, reml)

    def deviance_grad(self, theta, reml: bool = True) -> tuple[float, np.ndarray]:
        """Profiled deviance and its analytic gradient in theta (scalar designs only)."""
        return criteria.profiled_deviance_grad(self, theta, reml)

    def objective(self, v, scale, reml: bool = True) -> float:
        """The non-profiled REML/ML criterion (``-2`` log-likelihood, fixed effects profiled) at
        component variances ``v`` and residual variance ``scale`` (scalar designs)."""
        return criteria.objective(self, v, scale, reml)

    def objective_grad(self, v, scale, reml: bool = True) -> tuple[float, np.ndarray]:
        """:meth:`objective` and its analytic gradient in ``(v..., scale)``."""
        return criteria.objective_grad(self, v, scale, reml)

    def loglik(self, beta, sigma, tau) -> float:
        """Collapsed log-likelihood ``log p(y | beta, sigma, tau)`` (random effects integrated out;
        ``tau`` the component SDs in design order, ``sigma`` the residual SD)."""
        return criteria.loglik(self, beta, sigma, tau)

    def loglik_grad(self, beta, sigma, tau):
        """Collapsed log-likelihood and its gradient: ``(loglik, d/dbeta, d/dsigma, d/dtau)``."""
        return criteria.loglik_grad(self, beta, sigma, tau)
