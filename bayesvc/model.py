"""``VCModel``: the user-facing model, a thin orchestration of the pipeline stages.

spec (:mod:`bayesvc.spec`) -> design (:mod:`bayesvc.design`) -> estimators
(:mod:`bayesvc.reml`, :mod:`bayesvc.pymc_model`, :mod:`bayesvc.sampling`) -> results
(:mod:`bayesvc.results`) -> views (:mod:`bayesvc.summary`). Constructing a model validates the
data and builds the design; fitting computes.
"""

from __future__ import annotations

from functools import cached_property

import pandas as pd

from .design import Design, build_design, design_from_arrays
from .spec import ModelSpec, from_statsmodels, parse_lme4


class VCModel:
    """A linear mixed / variance-component model.

    Three ways to state it:

    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g1": np.repeat(np.arange(10), 20), "g2": np.tile(np.arange(4), 50)})
    >>> df["y"] = rng.normal(size=10)[df.g1] + rng.normal(size=200)
    >>> m1 = bvc.VCModel.from_formula("y ~ 1 + (1|g1/g2)", data=df)          # lme4 style
    >>> m2 = bvc.VCModel.from_formula("y ~ 1", data=df, groups="g1", re_formula="1",
    ...                               vc_formula={"g2": "0 + C(g2)"})         # statsmodels style
    >>> round(m1.fit_reml().llf, 6) == round(m2.fit_reml().llf, 6)
    True

    Parameters
    ----------
    endog, exog, groups, exog_re, exog_vc
        Arrays exactly as statsmodels' ``MixedLM`` takes them; ``exog_vc`` is a
        :class:`~bayesvc.VCSpec` (or statsmodels' own).
    """

    def __init__(self, endog=None, exog=None, groups=None, exog_re=None, exog_vc=None, *,
                 design: Design | None = None):
        if design is None:
            design = design_from_arrays(endog, exog, groups, exog_re, exog_vc)
        self.design = design

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | None = None,
                     re_formula: str | None = None, vc_formula: dict | None = None,
                     missing: str = "error") -> "VCModel":
        """Build from an lme4-style formula, or statsmodels-style with ``groups=``.

        Parameters
        ----------
        formula : str
            ``"y ~ x + (1|g1/g2)"`` (lme4 style) or ``"y ~ x"`` with ``groups``.
        data : DataFrame
        groups, re_formula, vc_formula
            statsmodels' ``MixedLM.from_formula`` arguments, with the same meaning.
        missing : {'error', 'drop'}
            Rows with missing values in used columns raise (default) or are dropped with a warning.
        """
        if groups is not None or vc_formula is not None or re_formula is not None:
            spec = from_statsmodels(formula, groups, re_formula, vc_formula)
        else:
            spec = parse_lme4(formula)
        return cls(design=build_design(spec, data, missing=missing))

    @property
    def spec(self) -> ModelSpec | None:
        return self.design.spec

    @cached_property
    def kernel(self):
        """The collapsed-likelihood kernel (built once, shared by every estimator)."""
        from .likelihood import Kernel

        return Kernel(self.design)

    # ------------------------------------------------------------------ estimators
    def fit_reml(self, reml: bool = True):
        """REML (default) or ML fit; returns :class:`~bayesvc.results.REMLResult`."""
        from .reml import fit_reml

        return fit_reml(self.design, reml=reml, kernel=self.kernel)

    def fit_ml(self):
        """ML fit: ``fit_reml(reml=False)``."""
        return self.fit_reml(reml=False)

    def build_pymc(self, priors=None, marginalize=True):
        """The PyMC model (public, so it can be extended); see :func:`bayesvc.pymc_model.build_pymc`."""
        from .pymc_model import build_pymc

        return build_pymc(self.design, priors, marginalize=marginalize,
                          kernel=self.kernel if self._collapsible(marginalize) else None)

    def _collapsible(self, marginalize) -> bool:
        from .pymc_model import can_collapse

        return marginalize not in (False, "none", "partial") and can_collapse(self.design)

    def fit_map(self, priors=None, integrate_fixed: bool = False):
        """Posterior mode of the marginal posterior with a Laplace covariance
        (:class:`~bayesvc.mode.ModeResult`)."""
        from .mode import fit_map

        return fit_map(self.design, priors, integrate_fixed=integrate_fixed, kernel=self.kernel)

    def sample(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
               sampler: str = "nutpie", marginalize=True, progressbar: bool = True,
               priors=None, random_effects: bool = True, thin_random_effects: int = 1,
               log_likelihood="auto"):
        """NUTS on the collapsed likelihood (default) or the non-centered model.

        ``marginalize``: ``True``/``"auto"`` (cost rule), ``"full"``, ``"partial"`` or ``False``;
        see :func:`bayesvc.pymc_model.build_pymc`.

        Returns a :class:`~bayesvc.posterior.PosteriorResult` whose ``idata`` is an ArviZ DataTree.
        ``sampler`` is ``"nutpie"`` (default), ``"pymc"`` or ``"numpyro"`` (JAX; non-centered only).
        """
        from threadpoolctl import threadpool_limits

        from .sampling import sample

        with threadpool_limits(1):
            return sample(self.design, priors=priors, draws=draws, tune=tune, chains=chains,
                          random_seed=random_seed, sampler=sampler, marginalize=marginalize,
                          progressbar=progressbar, kernel=self.kernel if self._collapsible(marginalize) else None,
                          random_effects=random_effects, thin_random_effects=thin_random_effects,
                          log_likelihood=log_likelihood)

    def compare(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
                progressbar: bool = False, **kwargs):
        """REML, posterior mode and NUTS side by side, fitting what is not given
        (:func:`bayesvc.comparison.compare_model`; pass ``reml=``, ``mode=``, ``posterior=`` to reuse fits)."""
        from .comparison import compare_model

        return compare_model(self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                             progressbar=progressbar, **kwargs)

    def prior_sweep(self, scales=(0.5, 1, 2, 5), **kwargs):
        """Refit across a grid of SD-prior scales (:func:`bayesvc.sweep.prior_sweep`)."""
        from .sweep import prior_sweep

        return prior_sweep(self, scales=scales, **kwargs)

    def __repr__(self) -> str:
        d = self.design
        comps = ", ".join(d.component_names)
        return f"VCModel(nobs={d.nobs}, fixed={list(d.fe_names)}, components=[{comps}])"
