"""The Laplace log-likelihood of a GLMM with scalar terms, its exact gradient in ``(sd, beta)``, and
importance sampling of the random effects that corrects it (the pieces of the Laplace + importance
sampling NUTS engine, :mod:`bayesvc.estimators.bayes.glmm_laplace`).

Notation as in :mod:`bayesvc.kernel.glmm`: ``b = D u`` with ``D = diag(sd of each column's term)``,
``eta = offset + X beta + Z D u``, ``s`` and ``w`` the GLM score and weight at ``eta``, ``w'`` the
derivative of the weight in ``eta``, ``u*`` the conditional mode and ``H = D Z'WZ D + I``. Then

    l(sd, beta) = log p(y | u*) - |u*|^2 / 2 - log|H| / 2.

Gradient (implicit differentiation at the mode, where ``D Z's = u*``): the first two terms
differentiate as if ``u*`` were fixed (envelope theorem): ``X's`` and ``sum_{j in k} u_j (Z's)_j``.
For ``log|H|``, with ``h_i = [Z D H^-1 D Z']_ii``, ``c = h * w'``, ``v = H^-1 D Z'c``,
``r = c - W Z D v`` and ``B = Z'W Z D``:

    d log|H| / d beta = X'r,
    d log|H| / d sd_k = sum_{j in k} 2 [H^-1 o B]_j. + u_j (Z'r)_j + v_j (Z's)_j,

(``o`` elementwise, ``[.]_j.`` a row sum): the explicit ``D`` terms plus ``sum_i h_i w'_i d eta_i``,
whose ``d u*`` part is ``H du* = dD Z's - D Z'W (X dbeta + Z dD u*)``, contracted by the adjoint
``v``. Hand-written because no library differentiates a Laplace approximation through PIRLS; the
test suite checks it against central differences of :meth:`LaplaceGLMM.deviance`.

Importance sampling: given ``(sd, beta)``, ``M`` draws ``u_m = u* + L^-T t_m`` from a multivariate
Student-t (``nu`` degrees of freedom; ``H = L L'``) give weights
``p(y | u_m) N(u_m; 0, I) / q(u_m)`` whose mean is an unbiased estimate of the exact likelihood
``p(y | sd, beta)``; divided by the Laplace likelihood it is the draw's importance weight, and the
inner weights pick one ``u_m`` (self-normalized importance resampling of ``p(u | y, sd, beta)``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.special import expit, gammaln, logsumexp

from .factor import NotPositiveDefinite
from .glmm import LaplaceGLMM, glm_moments, log_density


def weight_derivative(family: str, n, eta) -> np.ndarray:
    """``d w / d eta`` of the GLM weight (binomial ``n mu (1 - mu) (1 - 2 mu)``, Poisson ``mu``)."""
    if family == "binomial":
        mu = expit(eta)
        return n * mu * (1 - mu) * (1 - 2 * mu)
    return np.exp(eta)


class LaplaceDensity:
    """The Laplace log-likelihood of a GLMM design with scalar terms as a function of the component
    SDs and the fixed effects, with its gradient and the importance-sampling correction. With one
    level per row in every term the Numba kernels of :mod:`bayesvc.kernel.glmm_compiled` compute
    it (``compiled``); otherwise SciPy's sparse matrices do.

    Examples
    --------
    >>> g = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=counts, family="poisson").design
    >>> from bayesvc.kernel.glmm_laplace import LaplaceDensity
    >>> ld = LaplaceDensity(g)
    >>> ll, g_sd, g_beta = ld.value_and_grad(np.array([0.5]), np.array([1.0]))
    >>> bool(np.isclose(ll, -0.5 * ld.lap.deviance([0.5], [1.0])[0])), g_sd.shape, g_beta.shape
    (True, (1,), (1,))
    """

    def __init__(self, design, compiled: bool = True):
        if not all(t.scalar for t in design.terms):
            raise ValueError("the Laplace density needs scalar random-effect terms")
        self.lap = lap = LaplaceGLMM(design)
        # column j of Z belongs to term col_term[j]
        self.col_term = np.concatenate([np.full(t.n_levels, k) for k, t in enumerate(design.terms)])
        self.n_terms = len(design.terms)
        self._u = np.zeros(lap.q)
        self.Zt = lap.Z.T.tocsr()
        self.compiled = compiled and all(t.codes is not None and np.all(t.codes >= 0) for t in design.terms)
        if self.compiled:
            self._setup_compiled(design)

    def _setup_compiled(self, design):
        """The Numba layout (:mod:`.glmm_compiled`): the term with most levels first."""
        terms, lap = design.terms, self.lap
        order = sorted(range(len(terms)), key=lambda k: -terms[k].n_levels)
        starts = np.cumsum([0] + [t.n_levels for t in terms])[:-1]
        new_starts = np.cumsum([0] + [terms[k].n_levels for k in order])[:-1]
        self.order = np.array(order)
        self.q1 = terms[order[0]].n_levels
        cols = np.stack([ns + terms[k].codes for ns, k in zip(new_starts, order)], 1)
        self.cols = np.ascontiguousarray(cols, dtype=np.int64)
        self.zv = np.ascontiguousarray(np.stack([terms[k].zvals[:, 0] for k in order], 1), dtype=float)
        self.col_term_p = np.concatenate([np.full(terms[k].n_levels, i) for i, k in enumerate(order)])
        # u in the original column order is u_perm[self.perm]
        self.perm = np.concatenate([new_starts[order.index(k)] + np.arange(t.n_levels)
                                    for k, t in enumerate(terms)])
        self.code = 0 if lap.family == "binomial" else 1
        self.Xc = np.ascontiguousarray(lap.X, dtype=float)
        self._up = np.zeros(lap.q)

    def _lam(self, sd) -> np.ndarray:
        return np.asarray(sd, dtype=float)[self.col_term]

    def mode(self, sd, beta):
        """``(u*, eta, lower Cholesky factor of H)`` at ``(sd, beta)``; warm-started PIRLS. Raises
        :class:`~bayesvc.kernel.factor.NotPositiveDefinite` where it fails. With ``compiled``, ``u*``
        and the factor are in the compiled layout (columns ``self.perm`` give the original order)."""
        lap = self.lap
        sd, beta = np.asarray(sd, dtype=float), np.asarray(beta, dtype=float)
        if self.compiled:  # u and L in the compiled layout (term with most levels first)
            from .glmm_compiled import pirls

            try:
                u, eta, A, B, Ls, ok = pirls(self.code, lap.y, lap.n, lap.offset + self.Xc @ beta, self.cols,
                                             self.zv, sd[self.order], self._up, self.q1)
            except Exception as err:  # noqa: BLE001 - Numba's LinAlgError: not positive definite
                raise NotPositiveDefinite(str(err)) from err
            if not ok:
                raise NotPositiveDefinite("PIRLS did not reach a finite deviance")
            self._up = u
            q1, ra = self.q1, np.sqrt(A)
            L = np.zeros((lap.q, lap.q))  # H = L L' from the blocks (glmm_compiled)
            L[np.arange(q1), np.arange(q1)] = ra
            L[q1:, :q1] = B.T / ra[None, :]
            L[q1:, q1:] = Ls
            return u, eta, L
        u, ZL, eta = lap.pirls(sd, beta, u0=self._u)
        _, w = glm_moments(lap.family, lap.y, lap.n, eta)
        try:
            L = np.linalg.cholesky((ZL.T @ sp.diags(w) @ ZL).toarray() + np.eye(lap.q))
        except np.linalg.LinAlgError as err:
            raise NotPositiveDefinite(str(err)) from err
        if np.all(np.isfinite(u)):
            self._u = u
        return u, eta, L

    def loglik(self, sd, beta, mode=None) -> float:
        """The Laplace log-likelihood ``-deviance / 2`` (module docstring)."""
        lap = self.lap
        try:
            u, eta, L = mode if mode is not None else self.mode(sd, beta)
        except NotPositiveDefinite:
            return -np.inf
        return float(np.sum(log_density(lap.family, lap.y, lap.n, eta)) - 0.5 * u @ u
                     - np.sum(np.log(np.diag(L))))

    def value_and_grad(self, sd, beta):
        """``(l, dl/dsd, dl/dbeta)`` (module docstring); ``-inf`` and zeros where PIRLS fails."""
        lap = self.lap
        sd, beta = np.asarray(sd, dtype=float), np.asarray(beta, dtype=float)
        fail = -np.inf, np.zeros(self.n_terms), np.zeros(lap.p)
        if not self.compiled:
            return self.value_and_grad_sparse(sd, beta)
        from .glmm_compiled import value_and_grad

        try:
            ll, g_sd, g_beta, u, ok = value_and_grad(self.code, lap.y, lap.n, self.Xc, lap.offset, self.cols,
                                                     self.zv, self.col_term_p, sd[self.order], beta, self._up,
                                                     self.q1)
        except Exception:  # noqa: BLE001 - Numba's LinAlgError: not positive definite
            return fail
        if not (ok and np.isfinite(ll) and np.all(np.isfinite(g_sd)) and np.all(np.isfinite(g_beta))):
            return fail
        self._up = u
        out = np.empty(self.n_terms)
        out[self.order] = g_sd
        return float(ll), out, g_beta

    def value_and_grad_sparse(self, sd, beta):
        """:meth:`value_and_grad` with SciPy's sparse matrices (any scalar terms; the reference
        the compiled kernel is tested against)."""
        lap = self.lap
        sd, beta = np.asarray(sd, dtype=float), np.asarray(beta, dtype=float)
        fail = -np.inf, np.zeros(self.n_terms), np.zeros(lap.p)
        try:
            u, ZL, eta = lap.pirls(sd, beta, u0=self._u)
            _, w = glm_moments(lap.family, lap.y, lap.n, eta)
            c = sla.cho_factor((ZL.T @ sp.diags(w) @ ZL).toarray() + np.eye(lap.q), lower=True,
                               check_finite=False)
        except (NotPositiveDefinite, np.linalg.LinAlgError, ValueError):
            return fail
        ll = self.loglik(sd, beta, (u, eta, np.tril(c[0])))
        s, w = glm_moments(lap.family, lap.y, lap.n, eta)
        wp = weight_derivative(lap.family, lap.n, eta)
        Hinv = sla.cho_solve(c, np.eye(lap.q), check_finite=False)
        h = np.asarray(ZL.multiply(ZL @ Hinv).sum(axis=1)).ravel()  # diag(ZD H^-1 DZ')
        cv = h * wp
        v = sla.cho_solve(c, ZL.T @ cv, check_finite=False)
        r = cv - w * (ZL @ v)
        Zs, Zr = self.Zt @ s, self.Zt @ r
        B = (self.Zt @ sp.diags(w) @ ZL).toarray()                  # Z'W Z D
        per_col = 2 * np.sum(Hinv * B, axis=1) + u * Zr + v * Zs
        k = self.n_terms
        g_sd = np.bincount(self.col_term, weights=u * Zs - 0.5 * per_col, minlength=k)
        g_beta = lap.X.T @ s - 0.5 * (lap.X.T @ r)
        if not np.isfinite(ll):
            return fail
        self._u = u
        return ll, g_sd, g_beta

    def _zdt(self, sd, t):
        """``Z D t`` for a (q, M) matrix ``t``."""
        if self.compiled:
            lz = np.asarray(sd, dtype=float)[self.order][None, :] * self.zv
            return np.einsum("nk,nkm->nm", lz, t[self.cols])
        return self.lap.Z @ (self._lam(sd)[:, None] * t)

    def importance(self, sd, beta, n_proposals: int, rng, nu: float = 5.0):
        """Importance sampling of ``u`` given ``(sd, beta)`` (module docstring): returns
        ``(log weight of the draw: log mean of the inner weights - Laplace log-likelihood,
        one b = D u picked by the inner weights, the inner weights' effective sample size)``."""
        lap = self.lap
        try:
            mode = self.mode(sd, beta)
        except NotPositiveDefinite:
            return -np.inf, np.zeros(lap.q), 0.0
        u0, eta0, L = mode
        ll_lap = self.loglik(sd, beta, mode)
        q, M = lap.q, int(n_proposals)
        z = rng.standard_normal((q, M)) * np.sqrt(nu / rng.chisquare(nu, M))[None, :]
        t = sla.solve_triangular(L, z, lower=True, trans="T", check_finite=False)  # L^-T z: Cov H^-1
        U = u0[:, None] + t
        eta = eta0[:, None] + self._zdt(sd, t)
        ll = np.sum(log_density(lap.family, lap.y[:, None], lap.n[:, None], eta), axis=0)
        log_prior = -0.5 * np.sum(U * U, axis=0) - 0.5 * q * np.log(2 * np.pi)
        logdet = 2 * np.sum(np.log(np.diag(L)))
        log_q = (gammaln((nu + q) / 2) - gammaln(nu / 2) - 0.5 * q * np.log(nu * np.pi) + 0.5 * logdet
                 - 0.5 * (nu + q) * np.log1p(np.sum(z * z, axis=0) / nu))
        lw = ll + log_prior - log_q
        lw = np.where(np.isfinite(lw), lw, -np.inf)
        p = np.exp(lw - logsumexp(lw))
        pick = rng.choice(M, p=p)
        log_w = float(logsumexp(lw) - np.log(M) - ll_lap)
        u = U[:, pick][self.perm] if self.compiled else U[:, pick]  # the original column order
        return log_w, self._lam(sd) * u, float(1.0 / np.sum(p * p))
