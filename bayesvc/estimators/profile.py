"""Profile-likelihood and Wald confidence intervals for a REML/ML fit.

The profile of a parameter is the fit's criterion minimised over all other parameters with that one
held fixed; the interval is where the signed square root of the rise,
``zeta = sign(x - x_hat) sqrt(dev(x) - dev_min)``, lies within ``+-z_{(1+level)/2}``, i.e. where
the rise stays below the chi-square(1) quantile. Endpoints are roots found by ``scipy.optimize.brentq``
(no spline interpolation, unlike lme4's ``confint``).

* Component SDs and the residual SD: the criterion of the fit, REML for REML fits and ML for ML
  fits (:func:`bayesvc.kernel.criteria.objective_grad`, the non-profiled criterion in (component
  variances, residual variance), with its analytic gradient). lme4's ``profile()`` refits a REML
  model by ML and profiles the ML deviance; for ML fits the intervals are lme4's
  ``confint(method = "profile")``.
* Fixed effects: the ML deviance with ``beta_j`` held
  (:func:`bayesvc.kernel.criteria.fixed_effect_deviance`): the restricted likelihood does not depend
  on beta, so REML fits get the ML profile too, labelled ``ML`` in the ``criterion`` column.
* Boundary: when the rise at ``SD = 0`` stays below the critical value, the lower end is exactly 0
  and ``at_zero`` says so (a component the data cannot tell from zero).

Wald intervals are ``estimate +- z SE``: fixed effects from ``cov_fe`` (as lme4's
``confint(method = "Wald")``), SDs by the delta method from the information matrix ``cov_vc``, cut at
zero.

Correlated terms (``(1 + x | g)``): every SD, every correlation (kind ``cor``, named
``"<term>: <coef>,<coef> (corr)"``) and the residual SD are profiled on lme4's SD/correlation
scale, the others re-optimised (:class:`~bayesvc.estimators.profile_sdcor.SdCorProfile`, lme4's
``.sig01, .sig02, .sig03, .sigma``); a correlation interval that reaches -1 or 1 stops there and
its note says so.

>>> ci = conf_int(reml, method="profile", level=0.95)
>>> ci.table[["estimate", "lower", "upper"]].round(3).to_dict("index")["g"]
{'estimate': 1.596, 'lower': 0.99, 'upper': 3.051}
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import brentq, minimize
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from ..errors import BoundaryFitWarning
from ..kernel import Kernel
from ..kernel.criteria import fixed_effect_deviance
from ..results.inference import ConfIntResult
from ..validate import validate_ci_prob, validate_choice
from .profile_sdcor import SdCorProfile, probe_zeros
from .reml import fit_reml, optimize_deviance

#: relative tolerance of the endpoints (brentq's xtol is this times the parameter's scale)
XTOL = 1e-10
#: the inner optimizations stop at this relative change of the criterion
INNER_FTOL = 1e-15


class VarianceProfile:
    """The fit's criterion (``-2`` restricted or full log-likelihood) minimised over all variance
    parameters but one, in units of the fit's residual variance ``ref``: parameter ``i`` is
    component variance ``i`` (``i < K``) or the residual variance (``i = K``).

    >>> vp = VarianceProfile(model.kernel, reml.vcomp.to_numpy(), reml.scale, reml=True)
    >>> bool(np.isclose(vp.dev_min, -2 * reml.llf)), bool(vp.deviance(0, 0.0) > vp.dev_min)
    (True, True)
    """

    def __init__(self, kernel: Kernel, vcomp, scale: float, reml: bool):
        self.kernel, self.reml, self.ref = kernel, reml, float(scale)
        self.x_hat = np.append(np.asarray(vcomp, dtype=float), scale) / self.ref
        self.k = len(self.x_hat)
        self.dev_min = self._objective(self.x_hat)[0]
        self._solutions: dict[int, list] = {i: [] for i in range(self.k)}

    def _objective(self, x):
        f, g = self.kernel.objective_grad(x[:-1] * self.ref, x[-1] * self.ref, self.reml)
        if not np.isfinite(f):
            return 1e300, np.zeros_like(x)
        return f, g * self.ref

    def _start(self, i, xi):
        sols = self._solutions[i]
        if not sols:
            return self.x_hat
        return min(sols, key=lambda s: abs(s[0] - xi))[1]

    def deviance(self, i: int, xi: float) -> float:
        """The profiled criterion with parameter ``i`` held at ``xi`` (in units of ``ref``)."""
        free = [k for k in range(self.k) if k != i]
        if not free:  # nothing else to optimize
            x = np.array([xi])
            return self._objective(x)[0]

        def fun(z):
            f, g = self._objective(np.insert(z, i, xi))
            return f, g[free]

        bounds = [(0.0, None) if k < self.k - 1 else (1e-12, None) for k in free]
        opts = {"ftol": INNER_FTOL, "gtol": 1e-11, "maxiter": 2000, "maxcor": 20}
        res = minimize(fun, self._start(i, xi)[free], jac=True, method="L-BFGS-B", bounds=bounds,
                       options=opts)
        z, f = probe_zeros(fun, np.asarray(res.x, dtype=float), float(res.fun), bounds, opts)
        self._solutions[i].append((xi, np.insert(z, i, xi)))
        return f


class FixedEffectProfile:
    """The ML deviance minimised over theta (and sigma, the other fixed effects) with ``beta_j``
    held (:func:`bayesvc.kernel.criteria.fixed_effect_deviance`), through the REML/ML optimizer."""

    class _Criterion:
        """``fixed_effect_deviance`` at one ``(j, value)``, with the interface
        :func:`~bayesvc.estimators.reml.optimize_deviance` uses of a kernel."""

        def __init__(self, kernel, j, value):
            self.kernel, self.j, self.value = kernel, j, value
            self.terms, self.scalar = kernel.terms, kernel.scalar

        def deviance(self, theta, reml=False):
            return fixed_effect_deviance(self.kernel, theta, self.j, self.value)

        def deviance_grad(self, theta, reml=False):
            return fixed_effect_deviance(self.kernel, theta, self.j, self.value, grad=True)

    def __init__(self, kernel: Kernel, ml_theta):
        self.kernel = kernel
        self.theta_hat = np.asarray(ml_theta, dtype=float)
        self._solutions: dict[int, list] = {}

    def deviance(self, j: int, value: float) -> float:
        sols = self._solutions.setdefault(j, [])
        theta0 = min(sols, key=lambda s: abs(s[0] - value))[1] if sols else self.theta_hat
        opt = optimize_deviance(self._Criterion(self.kernel, j, value), reml=False, theta0=theta0)
        sols.append((value, np.asarray(opt.theta_final)))
        return opt.deviance


def _endpoint(g, est: float, step: float, direction: int, kind: str, scale: float):
    """The root of ``g`` (negative at ``est``) on one side of ``est``: step out (doubling) until
    ``g > 0``, then brentq. ``kind``: ``"sd"`` (may reach 0: then ``(0, True)``), ``"cor"`` (may
    reach -1 or 1: then ``(+-1, True)``), ``"sigma"`` (positive: below ``est - step`` the steps
    halve towards 0) or ``"fixed"`` (unbounded). Returns ``(value, at_bound)``."""
    prev = x = est
    for k in range(60):
        x = est + direction * step * 2.0**k
        if direction < 0 and kind == "sd":
            x = max(x, 0.0)
        elif kind == "cor":
            x = min(max(x, -1.0), 1.0)
        elif direction < 0 and kind == "sigma" and x <= 0:
            x = prev / 2
        if g(x) > 0:
            break
        if (x == 0.0 and kind == "sd") or (abs(x) == 1.0 and kind == "cor"):
            return x, True
        prev = x
    else:
        return direction * np.inf, False
    a, b = sorted((prev, x))
    return brentq(g, a, b, xtol=XTOL * scale, rtol=4 * np.finfo(float).eps, maxiter=200), False


def _profile_rows(kind, name, est, step, scale, dev, dev_min, z2, criterion, curves):
    """One interval row from a deviance function ``dev(value)`` of the parameter."""
    pts = [(est, 0.0)]

    def g(v):
        d = dev(v)
        pts.append((v, float(np.sign(v - est) * np.sqrt(max(d - dev_min, 0.0)))))
        return d - dev_min - z2

    lo, at_lo = _endpoint(g, est, step, -1, kind, scale)
    hi, at_hi = _endpoint(g, est, step, +1, kind, scale)
    curves[name] = pd.DataFrame(sorted(pts), columns=["value", "zeta"]).drop_duplicates("value")
    ends = [b for b, at in ((lo, at_lo), (hi, at_hi)) if at]
    note = ("the profile stays below the critical value down to 0" if kind != "cor" and at_lo else
            ("the profile stays below the critical value out to " + " and ".join(f"{b:g}" for b in ends)
             if ends else ""))
    return {"parameter": name, "kind": kind, "estimate": est, "lower": lo, "upper": hi,
            "criterion": criterion, "at_zero": bool(at_lo and kind != "cor"), "note": note}


def _variance_rows(result, kernel, z2, curves) -> list[dict]:
    reml = result.method == "REML"
    names = list(result.vcomp.index) + ["Residual"]
    if not kernel.scalar:
        return _sdcor_rows(result, kernel, z2, curves)
    vp = VarianceProfile(kernel, result.vcomp.to_numpy(), result.scale, reml)
    sigma = np.sqrt(result.scale)
    se = result.vcomp_se.reindex(result.vcomp.index).to_numpy()
    rows = []
    for i, c in enumerate(names):
        is_res = c == "Residual"
        est = float(np.sqrt(vp.x_hat[i] * vp.ref))
        se_sd = (result.scale_se if is_res else se[i]) / (2 * est) if est > 0 else np.nan
        step = float(se_sd) if np.isfinite(se_sd) and se_sd > 0 else 0.25 * (est if est > 0 else sigma)

        def dev(s, i=i):
            return vp.deviance(i, s * s / vp.ref)

        rows.append(_profile_rows("sigma" if is_res else "sd", c, est, step, sigma, dev, vp.dev_min, z2,
                                  result.method, curves))
    return rows


def _sdcor_rows(result, kernel, z2, curves) -> list[dict]:
    """Designs with correlated terms: every SD, correlation and the residual SD, profiled on lme4's
    SD/correlation scale (:class:`~bayesvc.estimators.profile_sdcor.SdCorProfile`)."""
    sp = SdCorProfile(kernel, result)
    rows = []
    for i, (name, kind) in enumerate(zip(sp.names, sp.kinds)):
        unit = 1.0 if kind == "cor" else sp.ref
        est = float(sp.x_hat[i] * unit)
        if kind == "cor":
            step = 0.25 * max(1.0 - abs(est), 0.05)
        else:
            step = 0.25 * (est if est > 0 else sp.ref)

        def dev(v, i=i, unit=unit):
            return sp.deviance(i, v / unit)

        rows.append(_profile_rows(kind, name, est, step, unit, dev, sp.dev_min, z2, result.method, curves))
    return rows


def _fixed_rows(result, kernel, z2, curves) -> list[dict]:
    if result.method == "ML":
        ml = result
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BoundaryFitWarning)
            ml = fit_reml(result.design, reml=False, kernel=kernel)
    fp = FixedEffectProfile(kernel, ml.theta)
    dev_min = -2 * ml.llf
    rows = []
    for j, name in enumerate(result.fe_params.index):
        est = float(ml.fe_params[name])
        step = float(ml.bse_fe[name])
        row = _profile_rows("fixed", name, est, step, max(abs(est), step), lambda b, j=j: fp.deviance(j, b),
                            dev_min, z2, "ML", curves)
        if result.method == "REML":
            row["estimate"] = float(result.fe_params[name])
            row["note"] = f"ML profile, centred on the ML estimate {est:.6g}"
        rows.append(row)
    return rows


def _finish(rows, level, method, criterion, curves=None) -> ConfIntResult:
    table = pd.DataFrame(rows).set_index("parameter")
    table.index.name = None
    return ConfIntResult(table=table, level=level, method=method, criterion=criterion, curves=curves or {})


def profile_intervals(result, level: float = 0.95, kernel: Kernel | None = None) -> ConfIntResult:
    """Profile-likelihood intervals for every SD, the residual SD and every fixed effect (module
    docstring); :meth:`bayesvc.REMLResult.conf_int` with ``method="profile"``."""
    kernel = kernel or Kernel(result.design)
    z2 = float(norm.ppf((1 + level) / 2)) ** 2
    curves: dict = {}
    with threadpool_limits(1):
        rows = _variance_rows(result, kernel, z2, curves) + _fixed_rows(result, kernel, z2, curves)
    return _finish(rows, level, "profile", result.method, curves)


def wald_intervals(result, level: float = 0.95) -> ConfIntResult:
    """``estimate +- z SE`` (module docstring); :meth:`bayesvc.REMLResult.conf_int` with
    ``method="wald"``."""
    z = float(norm.ppf((1 + level) / 2))
    se_v = result.vcomp_se
    rows = []
    for c, v in result.variances.items():
        is_res = c == "Residual"
        sd = float(np.sqrt(v))
        se = (result.scale_se if is_res else float(se_v[c])) / (2 * sd) if sd > 0 else np.nan
        lo, hi = sd - z * se, sd + z * se
        cut = bool(np.isfinite(lo) and lo < 0)
        note = ("cut at 0" if cut else "") if sd > 0 else "estimate at 0: no Wald interval (use the profile)"
        rows.append({"parameter": c, "kind": "sigma" if is_res else "sd", "estimate": sd,
                     "lower": max(lo, 0.0) if np.isfinite(lo) else (0.0 if sd == 0 else np.nan),
                     "upper": hi, "criterion": "Wald", "at_zero": cut or sd == 0, "note": note})
    for name, b in result.fe_params.items():
        se = float(result.bse_fe[name])
        rows.append({"parameter": name, "kind": "fixed", "estimate": float(b), "lower": b - z * se,
                     "upper": b + z * se, "criterion": "Wald", "at_zero": False, "note": ""})
    return _finish(rows, level, "wald", result.method)


def conf_int(result, method: str = "profile", level: float = 0.95,
             kernel: Kernel | None = None) -> ConfIntResult:
    """Confidence intervals of a :class:`~bayesvc.REMLResult`: ``method="profile"``
    (:func:`profile_intervals`) or ``"wald"`` (:func:`wald_intervals`), at ``level``.

    Examples
    --------
    >>> w = conf_int(reml, method="wald")
    >>> w.method, bool(np.isclose(w.table.loc["Intercept", "upper"] - reml.fe_params["Intercept"],
    ...                             1.959964 * reml.bse_fe["Intercept"]))
    ('wald', True)
    """
    validate_choice(method, "method", ("profile", "wald"))
    level = validate_ci_prob(level, "level")
    if method == "wald":
        return wald_intervals(result, level)
    return profile_intervals(result, level, kernel)
