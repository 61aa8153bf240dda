"""Prior objects (plain data) and data-scaled defaults. No PyMC import at module level.

Defaults (weakly informative and invariant to the units of y and x, in the spirit of rstanarm's
autoscaling): every component SD and the residual SD get ``HalfNormal(2.5 * sd(y))``; each fixed
effect gets ``Normal(0, 2.5 * rms(y) / rms(x_j))`` where rms is the root mean square of the column
(for the intercept ``2.5 * rms(y)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .checks import fail


@dataclass(frozen=True)
class Prior:
    """Base class: a named family with parameters."""

    def pymc(self, name: str, **kw):  # pragma: no cover - abstract
        raise NotImplementedError

    def logpdf(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def flat(self) -> bool:
        return False

    #: name of the scale-like parameter that prior sweeps vary (None: nothing to vary)
    param_name = None

    @property
    def param_value(self):
        return getattr(self, self.param_name) if self.param_name else None

    def with_param(self, value) -> "Prior":
        from dataclasses import replace

        return replace(self, **{self.param_name: value}) if self.param_name else self

    def rvs(self, size, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def scaled(self, factor: float) -> "Prior":
        """The same family with its scale multiplied by ``factor`` (for prior sweeps)."""
        raise NotImplementedError


@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal prior on an SD: ``sigma`` is the scale of the parent normal."""

    sigma: float = 1.0
    param_name = "sigma"

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return pm.HalfNormal(name, sigma=self.sigma if param is None else param, **kw)

    def logpdf(self, x):
        return stats.halfnorm.logpdf(x, scale=self.sigma)

    def rvs(self, size, rng):
        return np.abs(rng.normal(0, self.sigma, size))

    def scaled(self, factor):
        return HalfNormal(self.sigma * factor)


@dataclass(frozen=True)
class HalfStudentT(Prior):
    nu: float = 3.0
    sigma: float = 1.0
    param_name = "sigma"

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return pm.HalfStudentT(name, nu=self.nu, sigma=self.sigma if param is None else param, **kw)

    def logpdf(self, x):
        return np.log(2) + stats.t.logpdf(x, df=self.nu, scale=self.sigma)

    def rvs(self, size, rng):
        return np.abs(self.sigma * rng.standard_t(self.nu, size))

    def scaled(self, factor):
        return HalfStudentT(self.nu, self.sigma * factor)


@dataclass(frozen=True)
class HalfCauchy(Prior):
    beta: float = 1.0
    param_name = "beta"

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return pm.HalfCauchy(name, beta=self.beta if param is None else param, **kw)

    def logpdf(self, x):
        return stats.halfcauchy.logpdf(x, scale=self.beta)

    def rvs(self, size, rng):
        return np.abs(self.beta * rng.standard_cauchy(size))

    def scaled(self, factor):
        return HalfCauchy(self.beta * factor)


@dataclass(frozen=True)
class Exponential(Prior):
    """Exponential prior on an SD with rate ``lam`` (mean ``1/lam``)."""

    lam: float = 1.0
    param_name = "lam"

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return pm.Exponential(name, lam=self.lam if param is None else param, **kw)

    def logpdf(self, x):
        return stats.expon.logpdf(x, scale=1 / self.lam)

    def rvs(self, size, rng):
        return rng.exponential(1 / self.lam, size)

    def scaled(self, factor):
        return Exponential(self.lam / factor)


@dataclass(frozen=True)
class Flat(Prior):
    """Improper flat prior (on the positive half-line for SDs)."""

    positive: bool = True

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return (pm.HalfFlat if self.positive else pm.Flat)(name, **kw)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 0.0, -np.inf) if self.positive else np.zeros_like(x)

    @property
    def flat(self):
        return True

    def scaled(self, factor):
        return self


@dataclass(frozen=True)
class Normal(Prior):
    """Normal prior for fixed effects."""

    mu: float = 0.0
    sigma: float = 1.0

    def pymc(self, name, param=None, **kw):
        import pymc as pm

        return pm.Normal(name, mu=self.mu, sigma=self.sigma, **kw)

    def logpdf(self, x):
        return stats.norm.logpdf(x, self.mu, self.sigma)

    def scaled(self, factor):
        return Normal(self.mu, self.sigma * factor)


SD_FAMILIES = (HalfNormal, HalfStudentT, HalfCauchy, Exponential, Flat)


@dataclass(frozen=True)
class PriorSet:
    """Resolved priors: one per component SD, the residual SD, and one per fixed effect."""

    sd: dict  # component -> Prior
    residual: Prior
    fixed: dict  # fixed-effect name -> Prior

    def describe(self) -> dict:
        return {"sd": {k: repr(v) for k, v in self.sd.items()}, "Residual": repr(self.residual),
                "fixed": {k: repr(v) for k, v in self.fixed.items()}}


def default_priors(design) -> PriorSet:
    y = design.y
    sy = float(np.std(y)) or 1.0
    ry = float(np.sqrt(np.mean(y**2))) or 1.0
    sd = {c: HalfNormal(2.5 * sy) for c in design.component_names}
    fixed = {}
    for j, name in enumerate(design.fe_names):
        rx = float(np.sqrt(np.mean(design.X[:, j] ** 2))) or 1.0
        fixed[name] = Normal(0.0, 2.5 * ry / rx)
    return PriorSet(sd, HalfNormal(2.5 * sy), fixed)


def resolve_priors(design, priors=None) -> PriorSet:
    """Merge user overrides into the defaults.

    ``priors`` maps a component name, ``"Residual"``, a fixed-effect name, or ``"fixed"`` (all
    fixed effects) to a :class:`Prior`; the string ``"flat"`` means :class:`Flat`.
    """
    base = default_priors(design)
    if priors is None:
        return base
    if isinstance(priors, PriorSet):
        return priors
    if not isinstance(priors, dict):
        fail(f"priors must be a dict of name -> Prior, got {type(priors).__name__}")
    sd, fixed, residual = dict(base.sd), dict(base.fixed), base.residual
    for key, p in priors.items():
        if p == "flat":
            p = Flat(positive=key not in fixed and key != "fixed")
        if not isinstance(p, Prior):
            fail(f"priors[{key!r}] must be a Prior such as bvc.HalfNormal(5), got {p!r}")
        if key == "Residual":
            residual = p
        elif key in sd:
            if not isinstance(p, SD_FAMILIES):
                fail(f"priors[{key!r}]: an SD prior must be HalfNormal, HalfStudentT, HalfCauchy, "
                     f"Exponential or Flat, got {type(p).__name__}")
            sd[key] = p
        elif key == "fixed":
            fixed = {k: (Flat(positive=False) if p.flat else p) for k in fixed}
        elif key in fixed:
            fixed[key] = Flat(positive=False) if p.flat else p
        else:
            fail(f"priors: unknown parameter {key!r}; components are {list(sd)}, fixed effects "
                 f"{list(fixed)}, or 'Residual' / 'fixed'")
    return PriorSet(sd, residual, fixed)
