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


import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .covariance import term_lambda, theta_slices
from .conditional import ConditionalMixin
from .design import Design, sufficient_statistics
from .factor import Factor, NotPositiveDefinite, _DiagLam

LOG2PI = np.log(2 * np.pi)


class Kernel(ConditionalMixin):
    """Collapsed likelihood of a :class:`~bayesvc.design.Design` as a function of theta.

    Parameters
    ----------
    design : Design

    Notes
    -----
    ``theta`` is always in the design's term order (see :mod:`bayesvc.covariance`); internally
    the largest block-diagonal term is eliminated first.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> k = bvc.Kernel(model.design)
    >>> k.n, k.p, k.n_theta, k.scalar
    (48, 1, 1, True)

    At the REML estimate of theta the profiled deviance is ``-2 llf``:

    >>> r = model.fit_reml()
    >>> bool(np.isclose(k.deviance(r.theta), -2 * r.llf))
    True
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
            if design.terms[st.first].p == 1:
                self._init_pairs(st.C1.tocsc())
        # Z'[X y] in internal order (q x (p+1))
        self.ZtW_rest = st.Arr[: self.rz, self.rz :]
        self.ZtW_first = st.C1[self.rz :].T.toarray() if st.first is not None else None
        self.n_theta = sum(t.n_theta for t in design.terms)
        self.n_comp = len(design.terms)
        if self.scalar:
            # theta index of every rest column: Lambda_rest is a diagonal scaling
            self.rest_theta_idx = np.concatenate(
                [np.full(design.terms[i].q, self.slices[i].start) for i in self.rest] + [np.zeros(0, int)]
            ).astype(int)

    def _init_pairs(self, C1: sp.csc_matrix) -> None:
        """Precompute ``C1 diag(w) C1'`` as one sparse mat-vec ``P w``.

        Row ``r`` of ``P`` holds, for one position (i, j) of the m x m result (i <= j), the
        products ``C1[i, l] C1[j, l]`` over the first term's levels ``l``. Each evaluation then
        costs one mat-vec instead of a sparse-sparse product.
        """
        m = self.m
        q1 = C1.shape[1]
        # every pair (k, k') of nonzeros k <= k' within one column, without a Python loop
        nnz = C1.nnz
        col_of = np.repeat(np.arange(q1), np.diff(C1.indptr))
        cnt = C1.indptr[col_of + 1] - np.arange(nnz)
        a = np.repeat(np.arange(nnz), cnt)
        b = a + (np.arange(a.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
        ii, jj = C1.indices[a], C1.indices[b]
        vv, ll = C1.data[a] * C1.data[b], col_of[a]
        # dense products win when C1 is small and dense (crossed designs); pairs when sparse (nested)
        self.C1_dense = C1.toarray() if (m * q1 <= 4_000_000 and m * m * q1 <= 30 * len(ii)) else None
        lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
        key = lo.astype(np.int64) * m + hi
        if m * m <= 50_000_000:
            present = np.zeros(m * m, dtype=bool)
            present[key] = True
            uniq = np.flatnonzero(present)
            idx = (np.cumsum(present) - 1)[key]
        else:
            uniq, idx = np.unique(key, return_inverse=True)
        self.pair_i, self.pair_j = uniq // m, uniq % m
        self.P = sp.csr_matrix((vv, (idx, ll)), shape=(len(uniq), q1))
        zz = (self.pair_i < self.rz) & (self.pair_j < self.rz)
        self.Pz = self.P[zz]
        self.pz_i, self.pz_j = self.pair_i[zz], self.pair_j[zz]
        self.pz_w = np.where(self.pz_i == self.pz_j, 1.0, 2.0)
        offdiag_z = np.any(self.pz_i != self.pz_j)
        Azz = self.stats.Arr[: self.rz, : self.rz]
        self.diag_S = self.scalar and not offdiag_z and np.count_nonzero(Azz - np.diag(np.diag(Azz))) == 0

    def _scatter(self, vals, i, j, size) -> np.ndarray:
        out = np.zeros((size, size))
        out[i, j] = vals
        out[j, i] = vals
        return out

    # ------------------------------------------------------------------ factorization
    def _lam_rest(self, theta):
        if self.scalar:
            return _DiagLam(theta[self.rest_theta_idx])
        blocks = []
        for i in self.rest:
            t = self.terms[i]
            L = term_lambda(t, theta[self.slices[i]])
            blocks.append(sp.kron(sp.identity(t.n_levels), sp.csr_matrix(L)))
        if not blocks:
            return sp.csr_matrix((0, 0))
        return sp.block_diag(blocks, format="csr")

    def factor(self, theta) -> Factor:
        """Factor ``A(theta)`` augmented with ``[X y]`` (raises ``NotPositiveDefinite`` if it fails).

        Parameters
        ----------
        theta : array_like
            Relative covariance factor parameters, in the design's term order.

        Returns
        -------
        Factor
            Gives ``logdet_A``, ``Mxy``, ``logdet_RX2`` and ``pwrss``, from which every criterion
            follows.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> k = bvc.Kernel(model.design)
        >>> f = k.factor([1.0])
        >>> f.Mxy.shape                      # [X y]' V*^-1 [X y]
        (2, 2)
        >>> float(k.factor([0.0]).logdet_A)  # A = I when theta = 0
        0.0
        """
        theta = np.asarray(theta, dtype=float)
        rz, m = self.rz, self.m
        lam_r = self._lam_rest(theta)
        Arr = self.stats.Arr
        D = Dchol = Dinv = lam1 = None
        logdet = 0.0
        if self.first is not None:
            t = self.terms[self.first]
            lam1 = term_lambda(t, theta[self.slices[self.first]])
            if t.p == 1:
                D = (lam1[0, 0] ** 2) * self.a1 + 1.0
            else:
                D = np.einsum("ji,ljk,km->lim", lam1, self.a1, lam1) + np.eye(t.p)
            if t.p == 1:
                Dchol = np.sqrt(D)
                Dinv = 1.0 / D
            else:
                Dchol = np.linalg.cholesky(D)
                Dinv = np.linalg.inv(D)
            logdet += 2.0 * np.sum(np.log(np.einsum("lii->li", Dchol)))
            # W = C1 Lambda1 D^{-1} Lambda1' C1'
            Wd = (lam1[0, 0] ** 2) * Dinv if t.p == 1 else np.einsum("ij,ljk,mk->lim", lam1, Dinv, lam1)
            if t.p == 1 and self.C1_dense is not None:
                inner = (self.C1_dense * Wd[:, 0, 0]) @ self.C1_dense.T
            elif t.p == 1:
                inner = self._scatter(self.P @ Wd[:, 0, 0], self.pair_i, self.pair_j, m)
            else:
                inner = (self.C1 @ sp.block_diag(list(Wd), format="csr") @ self.C1.T).toarray()
            Arr = Arr - inner
        if self.scalar:
            lv = np.concatenate([lam_r.d, np.ones(m - rz)])
            S = Arr * np.outer(lv, lv)
        else:
            lam_aug = sp.block_diag([lam_r, sp.identity(m - rz)], format="csr") if rz else sp.identity(m, format="csr")
            S = lam_aug.T @ (lam_aug.T @ Arr).T
            S = np.asarray(S)
        SmI = S[:rz, :rz].copy()
        S[np.arange(rz), np.arange(rz)] += 1.0
        try:
            if getattr(self, "diag_S", False) and rz:
                # nested (tree) designs: the Schur complement of the rest terms is diagonal
                L = np.zeros_like(S)
                dz = np.sqrt(np.diag(S)[:rz])
                L[np.arange(rz), np.arange(rz)] = dz
                Lwz = S[rz:, :rz] / dz[None, :]
                L[rz:, :rz] = Lwz
                L[rz:, rz:] = np.linalg.cholesky(S[rz:, rz:] - Lwz @ Lwz.T)
            else:
                L = sla.cholesky(S, lower=True, check_finite=False)
        except np.linalg.LinAlgError as err:
            raise NotPositiveDefinite(str(err)) from err
        dL = np.diag(L)
        if not np.all(dL[:-1] > 0):
            raise NotPositiveDefinite("augmented system not positive definite")
        logdet += 2.0 * np.sum(np.log(dL[:rz]))
        f = Factor(theta, D, Dchol, Dinv, lam1, lam_r, L, float(logdet), rz, self.p)
        f.SmI = SmI
        f.diag_S = bool(getattr(self, "diag_S", False))
        return f

    # ------------------------------------------------------------------ solves with A
    def _B_times(self, f: Factor, x1: np.ndarray) -> np.ndarray:
        """B x1 with B = Lambda_r' Zr'Z1 Lambda1 (x1 is q1 x k, level-major)."""
        p1 = self.terms[self.first].p
        k = x1.shape[1]
        if p1 == 1:
            lx = f.lam1[0, 0] * x1
        else:
            lx = np.einsum("ij,ljk->lik", f.lam1, x1.reshape(-1, p1, k)).reshape(-1, k)
        return f.Lam_rest.T @ (self.C1z @ lx)

    def _Bt_times(self, f: Factor, xr: np.ndarray) -> np.ndarray:
        p1 = self.terms[self.first].p
        k = xr.shape[1]
        y = self.C1z.T @ (f.Lam_rest @ xr)
        if p1 == 1:
            return f.lam1[0, 0] * y
        return np.einsum("ji,ljk->lik", f.lam1, y.reshape(-1, p1, k)).reshape(-1, k)

    def _Dinv_times(self, f: Factor, x1: np.ndarray) -> np.ndarray:
        p1 = f.Dinv.shape[1]
        k = x1.shape[1]
        if p1 == 1:
            return f.Dinv[:, 0, :] * x1
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
            c1 = f.lam1[0, 0] * self.ZtW_first if p1 == 1 else np.einsum("ji,ljk->lik", f.lam1, self.ZtW_first.reshape(-1, p1, k)).reshape(-1, k)
        cr = f.Lam_rest.T @ self.ZtW_rest
        return c1, cr

    # ------------------------------------------------------------------ deviance
    def deviance(self, theta, reml: bool = True) -> float:
        """Profiled deviance (-2 log-likelihood, REML or ML) at ``theta``, as lme4's devfun.

        ``inf`` where ``A(theta)`` cannot be factored.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> k = bvc.Kernel(model.design)
        >>> ml = model.fit_ml()
        >>> bool(np.isclose(k.deviance(ml.theta, reml=False), -2 * ml.llf))
        True
        """
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
            Sinv = f.Sinv
            diag_term = np.sum(Sinv * f.SmI, axis=1)
            for i in self.rest:
                a, b = self.rest_offsets[i]
                t[i] = diag_term[a:b].sum()
        if self.first is not None:
            D = f.D[:, 0, 0]
            lam1 = f.lam1[0, 0]
            t1 = np.sum((D - 1.0) / D)
            if self.rz:
                lv = f.Lam_rest.d
                w2 = (lam1 / D) ** 2
                if self.C1_dense is not None:
                    Cz = self.C1_dense[: self.rz]
                    BD2B = ((Cz * w2) @ Cz.T) * np.outer(lv, lv)
                    t1 -= np.sum(Sinv * BD2B)
                else:
                    vals = (self.Pz @ w2) * lv[self.pz_i] * lv[self.pz_j]
                    # sum(Sinv * BD2B) over the symmetric scatter of the pair values
                    t1 -= np.sum(self.pz_w * vals * Sinv[self.pz_i, self.pz_j])
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
        """Profiled deviance and its gradient in theta (scalar designs only).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> k = bvc.Kernel(model.design)
        >>> dev, grad = k.deviance_grad([1.0])
        >>> bool(np.isclose(dev, k.deviance([1.0]))), grad.shape
        (True, (1,))
        >>> eps = 1e-6
        >>> fd = (k.deviance([1.0 + eps]) - k.deviance([1.0 - eps])) / (2 * eps)
        >>> bool(np.isclose(grad[0], fd, rtol=1e-5))
        True
        """
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

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> k = bvc.Kernel(model.design)
        >>> ll, dbeta, dsigma, dtau = k.loglik_grad([0.5], 1.0, [1.5])
        >>> bool(np.isclose(ll, k.loglik([0.5], 1.0, [1.5]))), dbeta.shape, dtau.shape
        (True, (1,), (1,))
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
        """Collapsed log-likelihood ``log p(y | beta, sigma, tau)`` (random effects integrated out).

        Parameters
        ----------
        beta : array_like
            Fixed effects.
        sigma : float
            Residual SD.
        tau : array_like
            Component SDs (design order).

        Examples
        --------
        At the ML estimates it equals the maximized log-likelihood:

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> k = bvc.Kernel(model.design)
        >>> ml = model.fit_ml()
        >>> ll = k.loglik(ml.fe_params.to_numpy(), np.sqrt(ml.scale), np.sqrt(ml.vcomp.to_numpy()))
        >>> bool(np.isclose(ll, ml.llf))
        True
        """
        theta = np.asarray(tau, dtype=float) / sigma
        f = self.factor(theta)
        s2 = sigma * sigma
        w = np.append(-np.asarray(beta, dtype=float), 1.0)
        Q = float(w @ f.Mxy @ w)
        return float(-0.5 * (self.n * (LOG2PI + np.log(s2)) + f.logdet_A + Q / s2))
