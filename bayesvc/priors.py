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
    """Base class: a named family with parameters.

    Priors are immutable plain data. They are passed to the estimators as a dict mapping a
    component name, ``"Residual"``, a fixed-effect name or ``"fixed"`` (every fixed effect) to a
    prior; anything not named keeps its data-scaled default (module docstring).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> isinstance(bvc.HalfNormal(2.0), bvc.Prior)
    True
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> priors = {"g": bvc.HalfStudentT(3, 2.0), "Residual": bvc.Exponential(1.0),
    ...           "fixed": bvc.Normal(0, 10)}
    >>> model.fit_map(priors=priors).priors.sd["g"]
    HalfStudentT(nu=3, sigma=2.0)
    """

    def pymc(self, name: str, **kw):  # pragma: no cover - abstract
        """The PyMC random variable ``name`` with this prior (inside a ``pymc.Model`` context).

        ``param=`` (SD priors) replaces the swept parameter, e.g. by a ``pm.Data`` variable.

        Examples
        --------
        >>> import pymc as pm
        >>> from bayesvc import HalfNormal
        >>> with pm.Model() as m:
        ...     sd = HalfNormal(2.0).pymc("sd")
        >>> [v.name for v in m.free_RVs]
        ['sd']
        """
        raise NotImplementedError

    def logpdf(self, x):  # pragma: no cover - abstract
        """Log density at ``x`` (NumPy; array-valued for array ``x``).

        Examples
        --------
        >>> import numpy as np
        >>> from bayesvc import HalfNormal
        >>> bool(np.isclose(HalfNormal(1.0).logpdf(0.0), np.log(2 / np.sqrt(2 * np.pi))))
        True
        """
        raise NotImplementedError

    @property
    def flat(self) -> bool:
        """Whether the prior is (improper) flat.

        Examples
        --------
        >>> from bayesvc import Flat, HalfNormal
        >>> Flat().flat, HalfNormal().flat
        (True, False)
        """
        return False

    #: name of the scale-like parameter that prior sweeps vary (None: nothing to vary)
    param_name = None

    @property
    def param_value(self):
        """Value of the parameter named by ``param_name`` (``None`` when there is none).

        Examples
        --------
        >>> from bayesvc import Exponential, HalfCauchy
        >>> HalfCauchy(2.0).param_value, Exponential(0.5).param_value
        (2.0, 0.5)
        """
        return getattr(self, self.param_name) if self.param_name else None

    def with_param(self, value) -> "Prior":
        """A copy with the ``param_name`` parameter set to ``value`` (the prior itself when none).

        Examples
        --------
        >>> from bayesvc import HalfStudentT
        >>> HalfStudentT(3, 1.0).with_param(5.0)
        HalfStudentT(nu=3, sigma=5.0)
        """
        from dataclasses import replace

        return replace(self, **{self.param_name: value}) if self.param_name else self

    def rvs(self, size, rng):  # pragma: no cover - abstract
        """``size`` random draws using the NumPy Generator ``rng``.

        Examples
        --------
        >>> import numpy as np
        >>> from bayesvc import HalfNormal
        >>> x = HalfNormal(2.0).rvs(1000, np.random.default_rng(0))
        >>> x.shape, bool((x >= 0).all())
        ((1000,), True)
        """
        raise NotImplementedError

    def scaled(self, factor: float) -> "Prior":
        """The same family with its scale multiplied by ``factor`` (for prior sweeps).

        Examples
        --------
        >>> from bayesvc import Exponential, HalfNormal
        >>> HalfNormal(2.0).scaled(3)
        HalfNormal(sigma=6.0)
        >>> Exponential(2.0).scaled(2)        # the mean 1/lam doubles
        Exponential(lam=1.0)
        """
        raise NotImplementedError


@dataclass(frozen=True)
class HalfNormal(Prior):
    """Half-normal prior on an SD: ``sigma`` is the scale of the parent normal.

    The default for every component SD and the residual SD, with ``sigma = 2.5 * sd(y)``.

    Parameters
    ----------
    sigma : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvc import HalfNormal
    >>> p = HalfNormal(2.0)
    >>> p, p.scaled(0.5)
    (HalfNormal(sigma=2.0), HalfNormal(sigma=1.0))
    >>> bool(np.isclose(p.logpdf(0.0), np.log(2 / (2.0 * np.sqrt(2 * np.pi)))))
    True
    """

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
    """Half Student-t prior on an SD: ``nu`` degrees of freedom, scale ``sigma``.

    Heavier-tailed than :class:`HalfNormal`; prior sweeps vary ``sigma`` and keep ``nu``.

    Parameters
    ----------
    nu : float, default 3.0
    sigma : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvc import HalfNormal, HalfStudentT
    >>> p = HalfStudentT(3, 2.0)
    >>> p.scaled(2)
    HalfStudentT(nu=3, sigma=4.0)
    >>> bool(p.logpdf(50.0) > HalfNormal(2.0).logpdf(50.0))     # heavier tail
    True
    """

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
    """Half-Cauchy prior on an SD with scale ``beta`` (a half Student-t with one degree of freedom).

    Parameters
    ----------
    beta : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvc import HalfCauchy, HalfStudentT
    >>> bool(np.isclose(HalfCauchy(2.0).logpdf(1.5), HalfStudentT(1, 2.0).logpdf(1.5)))
    True
    >>> HalfCauchy(2.0).param_name
    'beta'
    """

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
    """Exponential prior on an SD with rate ``lam`` (mean ``1/lam``).

    Parameters
    ----------
    lam : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvc import Exponential
    >>> p = Exponential(0.5)
    >>> float(p.logpdf(0.0)) == float(np.log(0.5))
    True
    >>> p.scaled(2)                      # scaling the SD halves the rate
    Exponential(lam=0.25)
    """

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
    """Improper flat prior (on the positive half-line for SDs).

    The string ``"flat"`` in a priors dict stands for it. With flat priors the posterior mode is
    the ML (or, with ``integrate_fixed=True``, the REML) estimate.

    Parameters
    ----------
    positive : bool, default True
        Restrict to the positive half-line (SDs); ``False`` for fixed effects.

    Examples
    --------
    >>> from bayesvc import Flat
    >>> Flat().logpdf([-1.0, 2.0]).tolist(), Flat(positive=False).logpdf([-1.0, 2.0]).tolist()
    ([-inf, 0.0], [0.0, 0.0])
    >>> Flat().scaled(10)
    Flat(positive=True)
    """

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
    """Normal prior for fixed effects.

    The default for a fixed effect ``x_j`` is ``Normal(0, 2.5 * rms(y) / rms(x_j))``.

    Parameters
    ----------
    mu : float, default 0.0
    sigma : float, default 1.0

    Examples
    --------
    >>> import numpy as np
    >>> from bayesvc import Normal
    >>> p = Normal(0.0, 10.0)
    >>> bool(np.isclose(p.logpdf(0.0), -np.log(10.0 * np.sqrt(2 * np.pi))))
    True
    >>> p.scaled(0.1)
    Normal(mu=0.0, sigma=1.0)
    """

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
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> ps = model.fit_map(priors={"g": bvc.HalfCauchy(1.0)}).priors
    >>> ps.sd["g"], type(ps.residual).__name__, list(ps.fixed)
    (HalfCauchy(beta=1.0), 'HalfNormal', ['Intercept'])
    >>> custom = bvc.PriorSet({"g": bvc.HalfNormal(1.0)}, bvc.HalfNormal(2.0),
    ...                       {"Intercept": bvc.Normal(0, 5)})
    >>> model.fit_map(priors=custom).priors is custom
    True
    """

    sd: dict  # component -> Prior
    residual: Prior
    fixed: dict  # fixed-effect name -> Prior

    def describe(self) -> dict:
        """The priors as plain strings (the CLI's JSON output).

        Examples
        --------
        >>> from bayesvc import HalfNormal, Normal, PriorSet
        >>> ps = PriorSet({"g": HalfNormal(1.0)}, HalfNormal(2.0), {"Intercept": Normal(0, 5)})
        >>> ps.describe()  # doctest: +NORMALIZE_WHITESPACE
        {'sd': {'g': 'HalfNormal(sigma=1.0)'}, 'Residual': 'HalfNormal(sigma=2.0)',
         'fixed': {'Intercept': 'Normal(mu=0, sigma=5)'}}
        """
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
