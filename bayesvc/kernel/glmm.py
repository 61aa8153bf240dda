"""The Laplace-approximated likelihood of a generalized linear mixed model (binomial logit, Poisson
log), as lme4's ``glmer(nAGQ = 1)`` defines it.

With ``b = Lambda u``, ``u ~ N(0, I)`` and ``eta = offset + X beta + Z Lambda u``, penalized
iteratively reweighted least squares (PIRLS; Newton's method, which for canonical links is Fisher
scoring) finds the conditional mode ``u*`` of ``log p(y | u) - |u|^2 / 2`` and the Laplace deviance
is

    -2 log L(theta, beta) = -2 log p(y | u*) + |u*|^2 + log|Lambda'Z'W Z Lambda + I|,

``W`` the GLM weights at ``u*``: lme4's ``drsum + ussq + ldL2`` plus twice the saturated
log-likelihood, so the value is the full log-likelihood that ``logLik(glmer fit)`` prints.

Hand-written because no Python library computes glmer's Laplace deviance (statsmodels'
``BinomialBayesMixedGLM`` is a variational approximation). The Newton system is
``q x q`` with ``q`` the random-effect columns, factored densely: the blocked sparse elimination
of :class:`~bayesvc.kernel.Kernel` is not yet used here (a GLMM with tens of thousands of levels
would need it).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
from scipy.special import expit, gammaln, xlogy

from ..design.covariance import term_lambda, theta_slices
from .factor import NotPositiveDefinite, lambda_rest_sparse

FAMILIES = {"binomial": "logit", "poisson": "log"}


def log_density(family: str, y, n, eta) -> np.ndarray:
    """``log p(y_i | eta_i)`` per observation: binomial with ``n_i`` trials and proportion
    ``y_i`` (logit link), or Poisson counts ``y_i`` (log link; ``n`` ignored)."""
    if family == "binomial":
        k = n * y
        # log expit(eta) and log(1 - expit(eta)) without overflow
        log_mu, log_1mu = -np.logaddexp(0.0, -eta), -np.logaddexp(0.0, eta)
        comb = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
        return comb + k * log_mu + (n - k) * log_1mu
    mu = np.exp(eta)
    return xlogy(y, mu) - mu - gammaln(y + 1)


def glm_moments(family: str, y, n, eta) -> tuple[np.ndarray, np.ndarray]:
    """The score ``d log p / d eta`` and the GLM weight ``-d^2 log p / d eta^2`` per observation
    (canonical links: ``n (y - mu)``, ``n mu (1 - mu)``; ``y - mu``, ``mu``)."""
    if family == "binomial":
        mu = expit(eta)
        return n * (y - mu), n * mu * (1 - mu)
    mu = np.exp(eta)
    return y - mu, mu


class LaplaceGLMM:
    """The Laplace deviance of a GLMM design as a function of ``(theta, beta)``.

    Parameters
    ----------
    design : Design
        With ``family`` ``"binomial"`` (``y`` proportions, ``weights`` trials) or ``"poisson"``,
        and an optional ``offset``.

    Examples
    --------
    >>> g = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=counts, family="poisson").design
    >>> from bayesvc.kernel.glmm import LaplaceGLMM
    >>> lap = LaplaceGLMM(g)
    >>> dev, u = lap.deviance([0.5], [1.0])
    >>> bool(np.isfinite(dev)), u.shape
    (True, (8,))
    """

    def __init__(self, design):
        self.design = design
        self.family = design.family
        self.y = design.y
        self.n = np.ones_like(design.y) if design.weights is None else design.weights
        self.X = design.X
        self.Z = design.Z.tocsc()
        self.offset = np.zeros_like(design.y) if design.offset is None else design.offset
        self.terms = design.terms
        self.slices = theta_slices(design.terms)
        self.q = self.Z.shape[1]
        self.p = self.X.shape[1]
        self.n_theta = self.slices[-1].stop if self.slices else 0
        self._u = np.zeros(self.q)

    def lam(self, theta) -> sp.csr_matrix:
        """``Lambda(theta)``, block diagonal in design term order."""
        theta = np.asarray(theta, dtype=float)
        return lambda_rest_sparse([(t.n_levels, term_lambda(t, theta[s]))
                                   for t, s in zip(self.terms, self.slices)])

    def _pdev(self, ZL, eta0, u):
        eta = eta0 + ZL @ u
        return float(-2 * np.sum(log_density(self.family, self.y, self.n, eta)) + u @ u), eta

    def pirls(self, theta, beta, u0=None, tol: float = 1e-12, maxiter: int = 100):
        """Conditional modes ``u*`` at ``(theta, beta)`` by Newton steps with step halving; returns
        ``(u*, ZLambda, eta, Cholesky factor of Lambda'Z'WZ Lambda + I)``."""
        ZL = (self.Z @ self.lam(theta)).tocsc()
        eta0 = self.offset + self.X @ np.asarray(beta, dtype=float)
        u = np.array(self._u if u0 is None else u0, dtype=float)
        pdev, eta = self._pdev(ZL, eta0, u)
        for _ in range(maxiter):
            score, w = glm_moments(self.family, self.y, self.n, eta)
            H = (ZL.T @ sp.diags(w) @ ZL).toarray() + np.eye(self.q)
            g = ZL.T @ score - u
            try:
                c = sla.cho_factor(H, lower=True, check_finite=False)
            except np.linalg.LinAlgError as err:
                raise NotPositiveDefinite(str(err)) from err
            step = sla.cho_solve(c, g, check_finite=False)
            decrement = float(g @ step)
            t = 1.0
            for _ in range(30):
                new, eta_new = self._pdev(ZL, eta0, u + t * step)
                if new <= pdev + 1e-12 * abs(pdev):
                    break
                t /= 2
            u, pdev, eta = u + t * step, new, eta_new
            if decrement < tol * (1 + abs(pdev)):
                break
        return u, ZL, eta

    def deviance(self, theta, beta, u0=None) -> tuple[float, np.ndarray]:
        """The Laplace deviance ``-2 log L(theta, beta)`` (module docstring) and ``u*``."""
        try:
            u, ZL, eta = self.pirls(theta, beta, u0)
        except NotPositiveDefinite:
            return np.inf, self._u
        _, w = glm_moments(self.family, self.y, self.n, eta)
        H = (ZL.T @ sp.diags(w) @ ZL).toarray() + np.eye(self.q)
        logdet = 2 * np.sum(np.log(np.diag(np.linalg.cholesky(H))))
        dev = -2 * np.sum(log_density(self.family, self.y, self.n, eta)) + u @ u + logdet
        if np.isfinite(dev):
            self._u = u  # warm start for the next evaluation
        return float(dev), u

    def agq_deviance(self, theta, beta, nagq: int) -> tuple[float, np.ndarray]:
        """``-2 log L`` by adaptive Gauss-Hermite quadrature with ``nagq`` nodes (lme4's
        ``nAGQ > 1``), for a design with a single scalar term: the integral factorizes over the
        levels; level ``l`` is integrated around its conditional mode ``u_l`` with scale
        ``s_l = (1 + theta^2 sum w z^2)^(-1/2)``, ``L_l = s_l / sqrt(pi) sum_k w_k exp(t_k^2 +
        h_l(u_l + sqrt(2) s_l t_k))``, ``h_l`` the level's log-likelihood minus ``u^2 / 2``. With one
        node this is the Laplace deviance."""
        t = self.terms[0]
        if len(self.terms) != 1 or not t.scalar or t.codes is None or np.any(t.codes < 0):
            raise ValueError("adaptive quadrature needs a single scalar random-effect term")
        try:
            u, ZL, eta = self.pirls(theta, beta)
        except NotPositiveDefinite:
            return np.inf, self._u
        self._u = u
        th = float(np.asarray(theta)[0])
        codes, z = t.codes, t.zvals[:, 0]
        _, w = glm_moments(self.family, self.y, self.n, eta)
        s = 1.0 / np.sqrt(1.0 + th**2 * np.bincount(codes, weights=w * z * z, minlength=t.n_levels))
        nodes, weights = np.polynomial.hermite.hermgauss(nagq)
        ul = u[:, None] + np.sqrt(2.0) * s[:, None] * nodes[None, :]          # (L, K)
        eta0 = eta - th * z * u[codes]                                        # without the term
        etak = eta0[:, None] + th * z[:, None] * ul[codes]                    # (n, K)
        ll = log_density(self.family, self.y[:, None], self.n[:, None], etak)
        h = np.zeros((t.n_levels, nagq))
        np.add.at(h, codes, ll)
        h -= 0.5 * ul**2
        a = h + nodes[None, :] ** 2 + np.log(weights)[None, :]
        amax = a.max(axis=1, keepdims=True)
        logL = np.log(s) - 0.5 * np.log(np.pi) + amax[:, 0] + np.log(np.exp(a - amax).sum(axis=1))
        return float(-2 * logL.sum()), u

    def conditional(self, theta, beta) -> tuple[np.ndarray, np.ndarray]:
        """Conditional modes of ``b = Lambda u`` and the diagonal of their conditional covariance
        ``Lambda H^{-1} Lambda'`` (lme4's ``ranef(condVar = TRUE)``), in Z's column order."""
        u, ZL, eta = self.pirls(theta, beta)
        _, w = glm_moments(self.family, self.y, self.n, eta)
        H = (ZL.T @ sp.diags(w) @ ZL).toarray() + np.eye(self.q)
        L = self.lam(theta).toarray()
        C = L @ np.linalg.solve(H, L.T)
        return L @ u, C
