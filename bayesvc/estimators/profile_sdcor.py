"""The REML/ML criterion on lme4's SD/correlation scale, profiled one parameter at a time: what
:mod:`bayesvc.estimators.profile` profiles for designs with correlated terms (``(1 + x | g)``).

The parameters are, per term, the SD of each coefficient and (correlated terms) the correlation
of each pair, then the residual SD ``sigma`` -- lme4's ``.sig01, .sig02, ..., .sigma`` of
``profile()``, in :func:`~bayesvc.design.covariance.vc_parameters` order. A term's relative
covariance factor is ``Lambda_t = diag(SD / sigma) chol(R)`` with ``R`` its correlation matrix, so an
SD of 0 (a zero row) and a correlation of +-1 (a singular ``R`` of a 2 x 2 term) are inside the
parameter space, as the profile's boundaries need. The criterion is the non-profiled ``-2``
(restricted) log-likelihood :func:`bayesvc.kernel.criteria.objective_theta` (fixed effects at their
GLS estimate), REML for REML fits and ML for ML fits.

The inner minimisations (all parameters but the held one) use L-BFGS-B on forward differences:
at a minimum the criterion's error is second order in the error of the minimiser, so
differences with ~1e-5 relative error in the gradient leave ~1e-10 in the profiled criterion.
No analytic gradient in these parameters exists in the kernel (it has one for scalar designs only).

>>> import warnings
>>> with warnings.catch_warnings():    # this fit is singular (a correlation at the bound)
...     warnings.simplefilter("ignore")
...     fit = slopes.fit_reml()
>>> sp = SdCorProfile(slopes.kernel, fit)
>>> sp.names, sp.kinds, bool(np.isclose(sp.dev_min, -2 * fit.llf))
(['g', 'g: Intercept,x (corr)', 'x|g', 'Residual'], ['sd', 'cor', 'sd', 'sigma'], True)
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ..design.covariance import covariance_name, covariances, term_lambda_inverse, vc_parameters
from ..kernel.criteria import objective_theta
from .reml import BOUNDARY_PROBES

#: the inner optimizations stop at this relative change of the criterion
INNER_FTOL = 1e-13
#: forward-difference step, relative to ``max(1, |x|)`` (x in units of the fit's sigma)
FD_STEP = 1e-7


def probe_zeros(fun, x, f, bounds, opts):
    """Restart an inner L-BFGS-B minimisation of ``fun`` (value and gradient) away from a variance
    or SD stuck at a lower bound of 0 (the criterion is even in an SD, so its gradient there is 0)
    when a value of :data:`~bayesvc.estimators.reml.BOUNDARY_PROBES` lowers the criterion."""
    for k, (lo, _) in enumerate(bounds):
        if lo != 0.0 or x[k] > 1e-8:
            continue
        for v in BOUNDARY_PROBES:
            trial = x.copy()
            trial[k] = v
            if fun(trial)[0] < f - 1e-10:
                res = minimize(fun, trial, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
                if res.fun < f:
                    x, f = np.asarray(res.x, dtype=float), float(res.fun)
                break
    return x, f


def _corr_cholesky(R: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of a correlation matrix; explicit for 2 x 2 (valid at +-1 too)."""
    if R.shape[0] == 2:
        r = R[1, 0]
        return np.array([[1.0, 0.0], [r, np.sqrt(max(1.0 - r * r, 0.0))]])
    try:
        return np.linalg.cholesky(R)
    except np.linalg.LinAlgError:
        return None


class SdCorProfile:
    """The fit's criterion in (SDs, correlations, sigma), profiled (module docstring).

    ``x`` holds SDs and sigma in units of the fit's sigma (``ref``) and correlations as they are;
    :attr:`kinds` is ``"sd"``, ``"cor"`` or ``"sigma"`` per parameter.
    """

    def __init__(self, kernel, result):
        self.kernel, self.reml = kernel, result.method == "REML"
        self.terms = kernel.terms
        self.params = vc_parameters(self.terms)
        self.ref = float(np.sqrt(result.scale))
        mats = covariances(self.terms, np.asarray(result.theta, dtype=float), result.scale)
        x, kinds, names = [], [], []
        for name, k, i, j in self.params:
            S = mats[k]
            if i == j:
                x.append(np.sqrt(S[i, i]) / self.ref)
                kinds.append("sd")
                names.append(name)
            else:
                d = np.sqrt(S[i, i] * S[j, j])
                x.append(S[i, j] / d if d > 0 else 0.0)
                kinds.append("cor")
                names.append(f"{covariance_name(self.terms[k], i, j)} (corr)")
        self.x_hat = np.array(x + [1.0])
        self.kinds = kinds + ["sigma"]
        self.names = names + ["Residual"]
        self.k = len(self.x_hat)
        self.bounds = [(0.0, None) if kd == "sd" else (-1.0, 1.0) if kd == "cor" else (1e-8, None)
                       for kd in self.kinds]
        self.dev_min = self.criterion(self.x_hat)
        self._solutions: dict[int, list] = {i: [] for i in range(self.k)}

    def theta(self, x) -> np.ndarray | None:
        """theta at parameters ``x`` (``None`` where a correlation matrix is not positive
        semi-definite)."""
        sigma = x[-1]
        sds = [np.zeros(t.p) for t in self.terms]
        cors = [np.eye(t.p) for t in self.terms]
        for a, (_, k, i, j) in enumerate(self.params):
            if i == j:
                sds[k][i] = x[a]
            else:
                cors[k][i, j] = cors[k][j, i] = x[a]
        parts = []
        for t, sd, R in zip(self.terms, sds, cors):
            if t.correlated and t.p > 1:
                C = _corr_cholesky(R)
                if C is None:
                    return None
                L = (sd / sigma)[:, None] * C
            else:
                L = np.diag(sd / sigma)
            parts.append(term_lambda_inverse(t, L))
        return np.concatenate(parts)

    def criterion(self, x) -> float:
        """``-2`` (restricted) log-likelihood at ``x``; 1e300 outside the parameter space."""
        x = np.asarray(x, dtype=float)
        if x[-1] <= 0 or any(v < 0 for v, kd in zip(x, self.kinds) if kd == "sd") or \
                any(abs(v) > 1 for v, kd in zip(x, self.kinds) if kd == "cor"):
            return 1e300
        f = objective_theta(self.kernel, self.theta(x), (x[-1] * self.ref) ** 2, self.reml)
        return float(f) if np.isfinite(f) else 1e300

    def _fun(self, i, xi, bounds):
        """The criterion with parameter ``i`` held at ``xi`` and its forward-difference gradient in
        the free parameters (backward at an upper bound)."""
        def fun(z):
            x = np.insert(z, i, xi)
            f = self.criterion(x)
            g = np.zeros(len(z))
            for a in range(len(z)):
                h = FD_STEP * max(1.0, abs(z[a]))
                hi = bounds[a][1]
                if hi is not None and z[a] + h > hi:
                    h = -h
                zz = z.copy()
                zz[a] += h
                g[a] = (self.criterion(np.insert(zz, i, xi)) - f) / h
            return f, g
        return fun

    def deviance(self, i: int, xi: float) -> float:
        """The profiled criterion with parameter ``i`` held at ``xi``."""
        free = [a for a in range(self.k) if a != i]
        bounds = [self.bounds[a] for a in free]
        fun = self._fun(i, xi, bounds)
        sols = self._solutions[i]
        start = min(sols, key=lambda s: abs(s[0] - xi))[1] if sols else self.x_hat
        opts = {"ftol": INNER_FTOL, "gtol": 1e-6, "maxiter": 1000, "maxcor": 20}
        res = minimize(fun, start[free], jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
        z, f = probe_zeros(fun, np.asarray(res.x, dtype=float), float(res.fun), bounds, opts)
        sols.append((xi, np.insert(z, i, xi)))
        return f
