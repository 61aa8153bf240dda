"""Priors as plain data, their data-scaled defaults, and the scale algebra prior sweeps use.

No PyMC here: a prior is a family name (``pm_name``, the PyMC distribution that
:mod:`bayesvc.estimators.bayes.model` builds from it) plus its parameters, and knows its SciPy
density. Defaults (weakly informative and invariant to the units of y and x, in the spirit of
rstanarm's autoscaling): every component SD and the residual SD get ``HalfNormal(2.5 * sd(y))``;
each fixed effect gets ``Normal(0, 2.5 * rms(y) / rms(x_j))`` where rms is the root mean square of
the column (for the intercept ``2.5 * rms(y)``).

The *scale* of an SD prior is in the SD's own units: ``sigma`` (half-normal, half-t), ``beta``
(half-Cauchy), the mean ``1 / lam`` (exponential). Prior sweeps vary it; the *swept parameter*
(``param_name``) enters the PyMC model as data, so a sweep changes data, not the compiled graph.

>>> p = bvc.HalfNormal(2.0)
>>> p.scale, p.with_scale(5.0), p.scaled(0.5), bvc.Exponential(0.5).scale
(2.0, HalfNormal(sigma=5.0), HalfNormal(sigma=1.0), 2.0)
>>> bool(np.isclose(p.logpdf(0.0), np.log(2 / (2.0 * np.sqrt(2 * np.pi)))))
True
>>> [round(float(x), 3) for x in (p.ppf(0.5), bvc.HalfStudentT(3, 2.0).ppf(0.5))]
[1.349, 1.53]
>>> bvc.HalfNormal(-1)
Traceback (most recent call last):
...
bayesvc.errors.SpecificationError: HalfNormal(sigma=-1): sigma must be a positive finite number
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import ClassVar

import numpy as np
from scipy import stats

from .errors import fail


@dataclass(frozen=True)
class Prior:
    """Base class: a named family with parameters (immutable plain data).

    Priors are passed to the estimators as a dict mapping a component name, ``"Residual"``, a
    fixed-effect name or ``"fixed"`` (every fixed effect) to a prior; anything not named keeps its
    data-scaled default (module docstring). Subclasses only declare their parameters and
    :meth:`dist`; everything else is defined here once.

    Examples
    --------
    >>> priors = {"g": bvc.HalfStudentT(3, 2.0), "Residual": bvc.Exponential(1.0),
    ...           "fixed": bvc.Normal(0, 10)}
    >>> model.fit_map(priors=priors).priors.sd["g"]
    HalfStudentT(nu=3, sigma=2.0)
    """

    #: name of the PyMC distribution (``pymc.<pm_name>``)
    pm_name: ClassVar[str] = ""
    #: the parameter prior sweeps vary (None: nothing to vary)
    param_name: ClassVar[str | None] = None
    #: whether ``param_name`` is a rate (the scale is its inverse)
    scale_is_rate: ClassVar[bool] = False
    #: parameters that must be positive
    positive_params: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, pm_name: str = "", param: str | None = None, rate: bool = False,
                          positive: tuple[str, ...] | None = None, **kw):
        """Subclasses declare their PyMC name, swept parameter and positive parameters in the class
        statement (``class HalfNormal(Prior, pm_name="HalfNormal", param="sigma")``)."""
        super().__init_subclass__(**kw)
        cls.pm_name, cls.param_name, cls.scale_is_rate = pm_name or cls.pm_name, param, rate
        cls.positive_params = positive if positive is not None else ((param,) if param else ())

    def __post_init__(self):
        for name in self.positive_params:
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            if not ok or not np.isfinite(v) or v <= 0:
                fail(f"{self!r}: {name} must be a positive finite number")

    def dist(self):
        """The frozen SciPy distribution (``None`` for improper priors)."""
        raise NotImplementedError

    @property
    def params(self) -> dict:
        """The parameters by name, as PyMC takes them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def _frozen(self):
        """:meth:`dist`, made once per instance: freezing a SciPy distribution costs ~1 ms (its
        docstring is rebuilt), which dominated posterior-mode fits that call :meth:`logpdf`
        thousands of times."""
        d = self.__dict__.get("_dist")
        if d is None:
            d = self.__dict__["_dist"] = self.dist()
        return d

    def logpdf(self, x):
        """Log density at ``x`` (NumPy; array-valued for array ``x``)."""
        return self._frozen().logpdf(x)

    def ppf(self, q):
        """Quantiles (inverse CDF)."""
        return self._frozen().ppf(q)

    def rvs(self, size, rng):
        """``size`` random draws using the NumPy Generator ``rng``."""
        return self._frozen().rvs(size=size, random_state=rng)

    @property
    def flat(self) -> bool:
        """Whether the prior is (improper) flat."""
        return False

    @property
    def param_value(self):
        """Value of the parameter named by ``param_name`` (``None`` when there is none)."""
        return getattr(self, self.param_name) if self.param_name else None

    def with_param(self, value) -> "Prior":
        """A copy with the ``param_name`` parameter set to ``value`` (the prior itself when none)."""
        return replace(self, **{self.param_name: value}) if self.param_name else self

    @property
    def scale(self) -> float:
        """The scale in the SD's own units (``nan`` when the prior has none)."""
        if self.param_name is None:
            return float("nan")
        v = float(self.param_value)
        return 1.0 / v if self.scale_is_rate else v

    def with_scale(self, scale: float) -> "Prior":
        """A copy with :attr:`scale` set to ``scale``."""
        if self.param_name is None:
            return self
        return self.with_param(1.0 / float(scale) if self.scale_is_rate else float(scale))

    def scaled(self, factor: float) -> "Prior":
        """The same family with its scale multiplied by ``factor``."""
        return self if self.param_name is None else self.with_scale(self.scale * factor)


class _HalfT:
    """The half Student-t (SciPy has none): the t folded at zero."""

    def __init__(self, nu, sigma):
        self.t = stats.t(df=nu, scale=sigma)

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, np.log(2) + self.t.logpdf(x), -np.inf)

    def ppf(self, q):
        return self.t.ppf((1 + np.asarray(q, dtype=float)) / 2)

    def rvs(self, size, random_state):
        return np.abs(self.t.rvs(size=size, random_state=random_state))


@dataclass(frozen=True)
class HalfNormal(Prior, pm_name="HalfNormal", param="sigma"):
    """Half-normal prior on an SD: ``sigma`` is the scale of the parent normal (the default).

    >>> bvc.HalfNormal(2.0), round(float(bvc.HalfNormal(2.0).ppf(0.5)), 3)
    (HalfNormal(sigma=2.0), 1.349)
    """

    sigma: float = 1.0

    def dist(self):
        return stats.halfnorm(scale=self.sigma)


@dataclass(frozen=True)
class HalfStudentT(Prior, pm_name="HalfStudentT", param="sigma", positive=("nu", "sigma")):
    """Half Student-t prior on an SD: ``nu`` degrees of freedom, scale ``sigma``; heavier-tailed
    than :class:`HalfNormal` (sweeps vary ``sigma`` and keep ``nu``).

    >>> p = bvc.HalfStudentT(3, 2.0)
    >>> p.scaled(2), bool(p.logpdf(50.0) > bvc.HalfNormal(2.0).logpdf(50.0))   # heavier tail
    (HalfStudentT(nu=3, sigma=4.0), True)
    """

    nu: float = 3.0
    sigma: float = 1.0

    def dist(self):
        return _HalfT(self.nu, self.sigma)


@dataclass(frozen=True)
class HalfCauchy(Prior, pm_name="HalfCauchy", param="beta"):
    """Half-Cauchy prior on an SD with scale ``beta`` (a half Student-t with one degree of freedom).

    >>> bool(np.isclose(bvc.HalfCauchy(2.0).logpdf(1.5), bvc.HalfStudentT(1, 2.0).logpdf(1.5)))
    True
    """

    beta: float = 1.0

    def dist(self):
        return stats.halfcauchy(scale=self.beta)


@dataclass(frozen=True)
class Exponential(Prior, pm_name="Exponential", param="lam", rate=True):
    """Exponential prior on an SD with rate ``lam`` (its scale is the mean ``1 / lam``).

    >>> bvc.Exponential(0.5).scale, bvc.Exponential(0.5).scaled(2)   # scaling the SD halves the rate
    (2.0, Exponential(lam=0.25))
    """

    lam: float = 1.0

    def dist(self):
        return stats.expon(scale=1 / self.lam)


@dataclass(frozen=True)
class Flat(Prior):
    """Improper flat prior (on the positive half-line for SDs; ``positive=False`` for fixed effects).

    The string ``"flat"`` in a priors dict stands for it. With flat priors the posterior mode is
    the ML (or, with ``integrate_fixed=True``, the REML) estimate.

    >>> bvc.Flat().logpdf([-1.0, 2.0]).tolist(), bvc.Flat(positive=False).logpdf([-1.0, 2.0]).tolist()
    ([-inf, 0.0], [0.0, 0.0])
    """

    positive: bool = True

    def dist(self):
        return None

    @property
    def pm_name(self) -> str:  # type: ignore[override]
        return "HalfFlat" if self.positive else "Flat"

    @property
    def params(self) -> dict:
        return {}

    def logpdf(self, x):
        x = np.asarray(x, dtype=float)
        return np.where(x >= 0, 0.0, -np.inf) if self.positive else np.zeros_like(x)

    def ppf(self, q):
        return np.full(np.shape(q), np.nan)

    @property
    def flat(self) -> bool:
        return True


@dataclass(frozen=True)
class Normal(Prior, pm_name="Normal", positive=("sigma",)):
    """Normal prior for fixed effects (default ``Normal(0, 2.5 * rms(y) / rms(x_j))``).

    >>> bool(np.isclose(bvc.Normal(0.0, 10.0).logpdf(0.0), -np.log(10.0 * np.sqrt(2 * np.pi))))
    True
    """

    mu: float = 0.0
    sigma: float = 1.0

    def dist(self):
        return stats.norm(self.mu, self.sigma)

    def scaled(self, factor: float) -> "Normal":
        return Normal(self.mu, self.sigma * factor)


SD_FAMILIES = (HalfNormal, HalfStudentT, HalfCauchy, Exponential, Flat)

#: families a sweep can be asked for by name, as functions of the scale
FAMILIES = {
    "halfnormal": lambda s: HalfNormal(s),
    "halfstudentt": lambda s: HalfStudentT(3.0, s),
    "halfcauchy": lambda s: HalfCauchy(s),
    "exponential": lambda s: Exponential(1.0 / s),
}
_ALIASES = {"half_normal": "halfnormal", "hn": "halfnormal", "halft": "halfstudentt",
            "half_student_t": "halfstudentt", "studentt": "halfstudentt", "student_t": "halfstudentt",
            "half_cauchy": "halfcauchy", "cauchy": "halfcauchy", "exp": "exponential"}


def sd_family(f, what: str = "prior_sweep") -> tuple[str, Prior, bool]:
    """``(label, template, explicit)`` for an SD-prior family given as a name (template at scale
    1) or as a :class:`Prior` instance (``explicit``: its own scale is the one to multiply)."""
    if isinstance(f, Prior):
        if f.param_name is None:
            fail(f"{what}: {f!r} has no scale to vary")
        return type(f).__name__.lower(), f, True
    if not isinstance(f, str):
        fail(f"{what}: a family is a name {sorted(FAMILIES)} or a Prior instance, got {f!r}")
    key = f.lower().replace("-", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        fail(f"{what}: unknown family {f!r}; use one of {sorted(FAMILIES)} or a Prior instance")
    return key, FAMILIES[key](1.0), False


def prior_data_name(name: str) -> str:
    """Name of the model-data variable holding the swept parameter of ``name``'s prior."""
    return f"prior_{name}"


@dataclass(frozen=True)
class PriorSet:
    """Resolved priors: one per component SD, the residual SD, and one per fixed effect.

    Estimators resolve the user's dict against the defaults into a ``PriorSet`` (kept as the
    ``priors`` attribute of their results); a ``PriorSet`` can also be passed as ``priors``.

    Attributes
    ----------
    sd : dict
        Component name -> prior of its SD.
    residual : Prior
        Prior of the residual SD.
    fixed : dict
        Fixed-effect name -> prior.

    Examples
    --------
    >>> ps = model.fit_map(priors={"g": bvc.HalfCauchy(1.0)}).priors
    >>> ps.sd["g"], type(ps.residual).__name__, list(ps.fixed)
    (HalfCauchy(beta=1.0), 'HalfNormal', ['Intercept'])
    >>> custom = bvc.PriorSet({"g": bvc.HalfNormal(1.0)}, bvc.HalfNormal(2.0),
    ...                       {"Intercept": bvc.Normal(0, 5)})
    >>> model.fit_map(priors=custom).priors is custom
    True
    >>> custom.describe()["sd"], custom.data()
    ({'g': 'HalfNormal(sigma=1.0)'}, {'prior_g': 1.0, 'prior_Residual': 2.0, 'prior_fixed_mu': array([0.]), 'prior_fixed_sigma': array([5.])})
    """

    sd: dict  # component -> Prior
    residual: Prior
    fixed: dict  # fixed-effect name -> Prior

    def describe(self) -> dict:
        """The priors as plain strings (the CLI's JSON output)."""
        return {"sd": {k: repr(v) for k, v in self.sd.items()}, "Residual": repr(self.residual),
                "fixed": {k: repr(v) for k, v in self.fixed.items()}}

    def structure(self) -> tuple:
        """What a compiled model depends on: every prior with its swept parameter neutralised
        (two sets with equal structure differ only in data)."""
        def norm(p):
            return repr(p.with_param(1.0)) if p.param_name else repr(p)

        # Normal fixed-effect priors hold their means and SDs as model data (:meth:`data`)
        return (tuple((c, norm(p)) for c, p in self.sd.items()), norm(self.residual),
                tuple((n, "Flat" if p.flat else type(p).__name__) for n, p in self.fixed.items()))

    def data(self, names=None) -> dict:
        """``prior_<name>`` -> the swept parameter's value, and ``prior_fixed_mu`` /
        ``prior_fixed_sigma`` -> the Normal fixed-effect priors' means and SDs (only the ``names``
        given, if any)."""
        out = {prior_data_name(c): float(p.param_value) for c, p in self.sd.items() if p.param_name}
        if self.residual.param_name:
            out[prior_data_name("Residual")] = float(self.residual.param_value)
        fixed = list(self.fixed.values())
        if fixed and not any(p.flat for p in fixed):
            out[prior_data_name("fixed_mu")] = np.array([p.mu for p in fixed], dtype=float)
            out[prior_data_name("fixed_sigma")] = np.array([p.sigma for p in fixed], dtype=float)
        if names is not None:
            out = {k: v for k, v in out.items() if k in names}
        return out

    def replace_sd(self, component: str, prior: Prior) -> "PriorSet":
        """A copy with ``component``'s SD prior replaced."""
        return PriorSet({**self.sd, component: prior}, self.residual, self.fixed)


def default_priors(design) -> PriorSet:
    """The data-scaled defaults of the module docstring."""
    if getattr(design, "has_rows", True):
        y = design.y
        sy, ry = float(np.std(y)), float(np.sqrt(np.mean(y**2)))
        x_rms = np.sqrt(np.mean(design.X**2, axis=0))
    else:  # out of core: the same moments from the cross-products
        sy, ry, x_rms = design.y_sd, design.y_moments[1], design.x_rms
    sy, ry = sy or 1.0, ry or 1.0
    sd = {c: HalfNormal(2.5 * sy) for c in design.component_names}
    fixed = {}
    for j, name in enumerate(design.fe_names):
        rx = float(x_rms[j]) or 1.0
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
        if isinstance(p, str) and p == "flat":
            p = Flat(positive=key not in fixed and key != "fixed")
        if not isinstance(p, Prior):
            fail(f"priors[{key!r}] must be a Prior such as bvc.HalfNormal(5), got {p!r}")
        if key == "Residual" or key in sd:
            if not isinstance(p, SD_FAMILIES):
                fail(f"priors[{key!r}]: an SD prior must be HalfNormal, HalfStudentT, HalfCauchy, "
                     f"Exponential or Flat, got {type(p).__name__}")
            if key == "Residual":
                residual = p
            else:
                sd[key] = p
        elif key == "fixed":
            fixed = {k: (Flat(positive=False) if p.flat else p) for k in fixed}
        elif key in fixed:
            fixed[key] = Flat(positive=False) if p.flat else p
        else:
            fail(f"priors: unknown parameter {key!r}; components are {list(sd)}, fixed effects "
                 f"{list(fixed)}, or 'Residual' / 'fixed'")
    return PriorSet(sd, residual, fixed)


def glmm_priors(design, priors=None) -> PriorSet:
    """Default priors of a binomial or Poisson GLMM, on the latent (link) scale:
    ``Normal(0, 2.5 / rms(x_j))`` per fixed effect and ``HalfNormal(2.5)`` per component SD (the
    residual entry is unused); ``priors`` (name -> Prior) overrides.

    >>> glmm_priors(model.design).sd["g"]
    HalfNormal(sigma=2.5)
    """
    sd = {c: HalfNormal(2.5) for c in design.component_names}
    fixed = {}
    for j, name in enumerate(design.fe_names):
        rx = float(np.sqrt(np.mean(design.X[:, j] ** 2))) or 1.0
        fixed[name] = Normal(0.0, 2.5 / rx)
    for key, p in (priors or {}).items():
        if not isinstance(p, Prior):
            fail(f"priors[{key!r}] must be a Prior such as bvc.HalfNormal(1), got {p!r}")
        if key in sd:
            sd[key] = p
        elif key in fixed:
            fixed[key] = p
        else:
            fail(f"priors: unknown parameter {key!r}; components are {list(sd)}, fixed effects {list(fixed)}")
    return PriorSet(sd, HalfNormal(1.0), fixed)
