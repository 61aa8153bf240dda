"""``VCModel``: the user-facing model, a thin facade over the pipeline stages.

spec (:mod:`bayesvc.spec`) -> design (:mod:`bayesvc.design`) -> kernel (:mod:`bayesvc.kernel`)
-> estimators (:mod:`bayesvc.estimators`) -> results (:mod:`bayesvc.results`) -> views
(:mod:`bayesvc.views`) and studies (:mod:`bayesvc.studies`). Constructing a model validates the data
and builds the design; fitting computes.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from .design import Design, build_design, design_from_arrays
from .design.outofcore import is_out_of_core
from .design.summary import summary_design
from .errors import SpecificationError, fail
from .estimators import bayes, fit_laplace, fit_map_glmm, fit_residual_by, fit_map, fit_reml, plan_marginalization
from .kernel import Kernel
from .spec import ModelSpec, from_statsmodels, parse_lme4
from .studies import component_verdicts, prior_sweep
from .studies.sensitivity import NEAR_ZERO
from .views import Comparison, compare


class VCModel:
    """A linear mixed / variance-component model.

    Three ways to state it: an lme4-style formula, statsmodels-style formulas
    (:meth:`from_formula` either way), or arrays as statsmodels' ``MixedLM`` takes them (the
    constructor, with ``exog_vc`` a :class:`~bayesvc.VCSpec` or statsmodels' own; or a ready
    ``design=``). Constructing a model validates the data and builds the
    :class:`~bayesvc.design.Design`; the ``fit_*`` and :meth:`sample` methods compute.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> two = pd.DataFrame({"g1": np.repeat(np.arange(10), 20), "g2": np.tile(np.arange(4), 50)})
    >>> two["y"] = rng.normal(size=10)[two.g1] + rng.normal(size=200)
    >>> m1 = bvc.VCModel.from_formula("y ~ 1 + (1|g1/g2)", data=two)          # lme4 style
    >>> m2 = bvc.VCModel.from_formula("y ~ 1", data=two, groups="g1", re_formula="1",
    ...                               vc_formula={"g2": "0 + C(g2)"})         # statsmodels style
    >>> round(m1.fit_reml().llf, 6) == round(m2.fit_reml().llf, 6)
    True
    >>> bvc.VCModel(two.y, np.ones((200, 1)), two.g1, exog_re=np.ones((200, 1)))   # arrays
    VCModel(nobs=200, fixed=['const'], components=[x_re1])
    """

    def __init__(self, endog=None, exog=None, groups=None, exog_re=None, exog_vc=None, *,
                 design: Design | None = None, weights=None):
        if design is None:
            design = design_from_arrays(endog, exog, groups, exog_re, exog_vc, weights=weights)
        self.design = design

    @classmethod
    def from_formula(cls, formula: str, data: pd.DataFrame, groups: str | None = None,
                     re_formula: str | None = None, vc_formula: dict | None = None,
                     missing: str = "error", weights: str | None = None, family: str = "gaussian",
                     offset: str | None = None, residual_by: str | None = None) -> "VCModel":
        """Build from an lme4-style formula (``"y ~ x + (1|g1/g2)"``), or statsmodels-style
        (``"y ~ x"`` with ``groups``, ``re_formula``, ``vc_formula``, as ``MixedLM.from_formula``).

        ``missing``: rows with missing values in used columns raise (``"error"``, default) or are
        dropped with a warning (``"drop"``). ``weights``: a column of prior weights (residual
        variance ``sigma^2 / w_i``, lme4's ``weights=``; the trials of a binomial proportion).
        ``family``: ``"binomial"`` (logit) or ``"poisson"`` (log) for a GLMM fitted by Laplace ML
        (:func:`bayesvc.fit_laplace`), with an optional ``offset`` column; see the GLMM docs page.
        ``residual_by``: a factor with one residual SD per level (nlme's ``varIdent``).

        Examples
        --------
        >>> bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        VCModel(nobs=48, fixed=['Intercept'], components=[g])
        >>> bvc.VCModel.from_formula("y ~ 1", data=df, groups="g").spec.style   # statsmodels style
        'statsmodels'
        """
        if groups is not None and not isinstance(groups, str):
            # statsmodels also takes the group labels themselves (the seed's crossed model passes
            # an array of ones); carry them as a column of a copy of the data
            data, groups = _groups_as_column(data, groups)
        if groups is not None or vc_formula is not None or re_formula is not None:
            spec = from_statsmodels(formula, groups, re_formula, vc_formula)
        else:
            spec = parse_lme4(formula)
        if is_out_of_core(data):  # a dask DataFrame or Parquet path/glob: one dask pass
            wider = {"weights": weights, "offset": offset, "residual_by": residual_by}
            given = [k for k, v in wider.items() if v is not None] + (["family"] if family != "gaussian" else [])
            if given:
                fail(f"{given[0]}: not supported for dask or Parquet data yet (the out-of-core pass builds "
                     "Gaussian designs with unit weights); load the data with pandas")
            return cls(design=summary_design(spec, data, missing=missing))
        return cls(design=build_design(spec, data, missing=missing, weights=weights, family=family,
                                       offset=offset, residual_by=residual_by))

    @property
    def spec(self) -> ModelSpec | None:
        """The :class:`~bayesvc.ModelSpec` the model was built from (``None`` for arrays)."""
        return self.design.spec

    @cached_property
    def kernel(self) -> Kernel:
        """The collapsed-likelihood kernel (built once, shared by every estimator)."""
        _bayes_supported(self.design, "the collapsed Gaussian kernel")
        return Kernel(self.design)

    def _kernel_if_needed(self, marginalize) -> Kernel | None:
        """The kernel, unless ``marginalize`` rules it out (building it costs time on big designs)."""
        return self.kernel if marginalize not in (False, "none", "partial") and self.design.scalar else None

    # ------------------------------------------------------------------ estimators
    def fit_reml(self, reml: bool = True):
        """REML (default) or, with ``reml=False``, ML: a :class:`~bayesvc.REMLResult`.

        Examples
        --------
        >>> r = model.fit_reml()
        >>> r.method, r.converged, list(r.vcomp.index), model.fit_reml(reml=False).method
        ('REML', True, ['g'], 'ML')
        """
        if self.design.family != "gaussian":
            if reml:
                fail(f"REML is defined for Gaussian responses only; fit the {self.design.family} GLMM "
                     "by Laplace ML: fit_ml() or fit_reml(reml=False)")
            return fit_laplace(self.design)
        if self.design.residual_codes is not None:
            return fit_residual_by(self.design, reml=reml)
        return fit_reml(self.design, reml=reml, kernel=self.kernel)

    def fit(self, reml: bool = True, method=None, **kwargs):
        """statsmodels' spelling, ``MixedLM.fit()``: :meth:`fit_reml` (REML, or ML with
        ``reml=False``), so that pasted statsmodels code runs.

        ``method`` names statsmodels' optimizer (``"lbfgs"``, ``["lbfgs"]``, ...); it is accepted
        and not used, because bayesvc's optimizer (lme4's profiled deviance) reaches the same
        optimum. ``free=`` (statsmodels' ``MixedLMParams`` mask) with the off-diagonal of
        ``cov_re`` held at 0 fits independent random coefficients, as ``(x || g)``
        (:mod:`bayesvc.design.free`); other constraints are refused with the formula that states
        the constrained model.

        Examples
        --------
        >>> md = bvc.mixedlm("y ~ 1", df, groups=df["g"])        # statsmodels' smf.mixedlm
        >>> bool(np.isclose(md.fit(method=["lbfgs"]).llf, reml.llf))
        True
        """
        free = kwargs.pop("free", None)
        if kwargs:
            fail(f"fit() takes statsmodels' reml=, method= and free= only; got {', '.join(sorted(kwargs))}")
        if free is not None:  # statsmodels' independent random coefficients (bayesvc.design.free)
            from .design.free import design_with_free

            design = design_with_free(self.design, free)
            if design is not self.design:
                return VCModel(design=design).fit_reml(reml=reml)
        return self.fit_reml(reml=reml)

    def fit_ml(self, nagq: int = 1):
        """ML fit: ``fit_reml(reml=False)``. For a GLMM, ``nagq > 1`` integrates a single scalar
        term by adaptive Gauss-Hermite quadrature with that many nodes (glmer's ``nAGQ``).

        Examples
        --------
        >>> ml = model.fit_ml()
        >>> ml.method, bool(ml.vcomp["g"] < reml.vcomp["g"])    # ML shrinks variances
        ('ML', True)
        """
        if nagq != 1:
            if self.design.family == "gaussian":
                fail("nagq applies to GLMMs (family='binomial' or 'poisson') only")
            return fit_laplace(self.design, nagq=nagq)
        return self.fit_reml(reml=False)

    def build_pymc(self, priors=None, marginalize=True):
        """The PyMC model (public, so it can be extended); see
        :func:`bayesvc.estimators.bayes.build_pymc`.

        Examples
        --------
        >>> [v.name for v in model.build_pymc().free_RVs]
        ['beta', 'sigma', 'sd_g']
        """
        _bayes_supported(self.design, "build_pymc()")
        return bayes.build_pymc(self.design, priors, marginalize=marginalize,
                                kernel=self._kernel_if_needed(marginalize)).model

    def fit_map(self, priors=None, integrate_fixed: bool = False):
        """Posterior mode of the marginal posterior with a Laplace covariance (:func:`bayesvc.fit_map`);
        ``integrate_fixed=True`` also integrates the fixed effects out (flat prior).

        Examples
        --------
        >>> m = model.fit_map()
        >>> m.method, m.converged, list(m.sd.index)
        ('MAP', True, ['g'])
        """
        if self.design.family != "gaussian":
            if integrate_fixed:
                fail("fit_map(integrate_fixed=True) is not available for GLMMs")
            return fit_map_glmm(self.design, priors)
        _bayes_supported(self.design, "the posterior mode (fit_map())")
        return fit_map(self.design, priors, integrate_fixed=integrate_fixed, kernel=self.kernel)

    def marginalization(self, marginalize=True):
        """How :meth:`sample` would treat the random effects: a
        :class:`~bayesvc.estimators.plan.MarginalizationPlan` (kind and reason).

        Examples
        --------
        >>> model.marginalization().kind
        'full'
        """
        return plan_marginalization(self.design, marginalize, self._kernel_if_needed(marginalize))

    def sample(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
               sampler: str = "nutpie", marginalize=True, progressbar: bool = True,
               priors=None, random_effects: bool = True, thin_random_effects: int = 1,
               log_likelihood="auto", on_interrupt: str = "raise"):
        """NUTS on the collapsed likelihood (default) or the non-centered model; a
        :class:`~bayesvc.PosteriorResult` whose ``idata`` is an ArviZ DataTree.

        ``marginalize``: ``True``/``"auto"`` (the cost rule of :mod:`bayesvc.estimators.plan`),
        ``"full"``, ``"partial"`` or ``False``; for a GLMM ``"laplace"`` runs NUTS on the Laplace
        likelihood corrected by importance sampling (:mod:`bayesvc.estimators.bayes.glmm_laplace`).
        ``sampler``: ``"nutpie"`` (default), ``"pymc"`` or ``"numpyro"`` (JAX; partial collapse or
        non-centered only). Diagnostics that need attention are issued as
        :class:`~bayesvc.SamplingWarning`. ``on_interrupt``: Ctrl-C while nutpie samples raises
        ``KeyboardInterrupt`` (``"raise"``, default) or returns the draws every chain completed,
        with a warning and ``draws`` set to their number (``"keep"``).

        Examples
        --------
        >>> p = model.sample(draws=100, tune=100, chains=1, random_seed=1, progressbar=False,
        ...                  log_likelihood=False)
        >>> p.method, p.chains, p.draws, list(p.param_summary().index)
        ('NUTS', 1, 100, ['Intercept', 'g', 'Residual'])
        """
        if marginalize == "laplace" and self.design.family == "gaussian":
            fail("marginalize='laplace' applies to GLMMs (family='binomial' or 'poisson') only; a Gaussian "
                 "model integrates its random effects exactly: marginalize=True")
        if self.design.family != "gaussian":
            if marginalize == "laplace":  # Laplace + importance sampling (bayes.glmm_laplace)
                with threadpool_limits(1):
                    return bayes.sample_glmm_laplace(self.design, priors=priors, draws=draws, tune=tune,
                                                     chains=chains, random_seed=random_seed, sampler=sampler,
                                                     progressbar=progressbar)
            if marginalize not in (True, "auto", False, "none"):
                fail("a GLMM is sampled non-centered (every random effect sampled): pass marginalize=False, "
                     "or marginalize='laplace' (Laplace + importance sampling)")
            with threadpool_limits(1):
                return bayes.sample_glmm(self.design, priors=priors, draws=draws, tune=tune, chains=chains,
                                         random_seed=random_seed, sampler=sampler, progressbar=progressbar)
        if self.design.residual_codes is not None:
            if marginalize not in (True, "auto", False, "none"):
                fail("residual_by= is sampled non-centered (every random effect sampled): pass marginalize=False")
            with threadpool_limits(1):
                return bayes.sample_residual_by(self.design, priors=priors, draws=draws, tune=tune,
                                                chains=chains, random_seed=random_seed, sampler=sampler,
                                                progressbar=progressbar)
        _bayes_supported(self.design, "NUTS (sample())")
        with threadpool_limits(1):
            return bayes.sample(self.design, priors=priors, draws=draws, tune=tune, chains=chains,
                                random_seed=random_seed, sampler=sampler, marginalize=marginalize,
                                progressbar=progressbar, kernel=self._kernel_if_needed(marginalize),
                                random_effects=random_effects, thin_random_effects=thin_random_effects,
                                log_likelihood=log_likelihood, on_interrupt=on_interrupt)

    def sample_prior_predictive(self, draws: int = 500, random_seed=None, priors=None):
        """Prior predictive draws as an ArviZ DataTree: groups ``prior``, ``prior_predictive``
        (``y``) and ``observed_data`` (:func:`bayesvc.estimators.bayes.sample_prior_predictive`).

        Examples
        --------
        >>> dt = model.sample_prior_predictive(draws=20, random_seed=1)
        >>> dt["prior_predictive"]["y"].dims
        ('chain', 'draw', 'obs')
        """
        return bayes.sample_prior_predictive(self.design, priors=priors, draws=draws, random_seed=random_seed)

    def compare(self, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
                progressbar: bool = False, **kwargs) -> Comparison:
        """REML, posterior mode and NUTS side by side, fitting what is not given
        (:func:`compare_model`; pass ``reml=``, ``mode=``, ``posterior=`` to reuse fits).

        Examples
        --------
        >>> model.compare(reml=reml, posterior=post).methods
        ('REML', 'MAP', 'NUTS')
        """
        return compare_model(self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                             progressbar=progressbar, **kwargs)

    def prior_sweep(self, scales=(0.5, 1, 2, 5), **kwargs):
        """Refit across a grid of SD-prior scales (:func:`bayesvc.prior_sweep`)."""
        return prior_sweep(self, scales=scales, **kwargs)

    def __repr__(self) -> str:
        d = self.design
        comps = ", ".join(d.component_names)
        return f"VCModel(nobs={d.nobs}, fixed={list(d.fe_names)}, components=[{comps}])"


#: statsmodels' names, so that statsmodels code runs with ``import bayesvc as sm`` (``sm.MixedLM``)
#: and ``import bayesvc as smf`` (``smf.mixedlm``).
MixedLM = VCModel
mixedlm = VCModel.from_formula


def compare_model(model: VCModel, draws: int = 1000, tune: int = 1000, chains: int = 4, random_seed=None,
                  progressbar: bool = False, reml=None, mode=None, posterior=None, ci_prob: float = 0.95,
                  ci_kind: str = "eti", priors=None, *, verdicts: bool = True, negligible: float = NEAR_ZERO,
                  test: str = "exact", alpha: float = 0.05, sweep=None, **sample_kwargs) -> Comparison:
    """Fit what is missing (REML, posterior mode, NUTS) on ``model`` and :func:`bayesvc.compare`.

    ``draws, tune, chains, random_seed, progressbar`` and ``**sample_kwargs`` go to
    :meth:`VCModel.sample`; ``priors`` to both the posterior mode and NUTS. The posterior mode
    needs scalar variance components; for correlated terms the ``mode`` column is left empty.
    With ``verdicts`` (default) the comparison also holds one verdict per component
    (:func:`bayesvc.studies.component_verdicts`: the ``test`` of each component at ``alpha``, seeded
    with ``random_seed``; profile intervals; the posterior mass below ``negligible`` residual SDs;
    prior sensitivity, and ``sweep`` if given).

    Examples
    --------
    >>> c = bvc.compare_model(model, reml=reml, posterior=post)
    >>> c.methods, list(c.table.columns)[:4]
    (('REML', 'MAP', 'NUTS'), ['parameter', 'kind', 'reml', 'reml_se'])
    """
    glmm = model.design.family != "gaussian"
    if reml is None:
        reml = model.fit_ml() if glmm else model.fit_reml()  # a GLMM: Laplace ML
    verdicts = verdicts and not glmm  # the component tests and profiles are Gaussian-only
    if mode is None and model.design.scalar:
        try:
            mode = model.fit_map(priors=priors)
        except SpecificationError:
            mode = None
    if posterior is None:
        posterior = model.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                 progressbar=progressbar, priors=priors, **sample_kwargs)
    v = None
    if verdicts:
        v = component_verdicts(reml, posterior, sweep=sweep, test=test, seed=random_seed, ci_prob=ci_prob,
                               negligible=negligible, alpha=alpha,
                               kernel=model.kernel if model.design.scalar else None)
    return compare(reml=reml, mode=mode, posterior=posterior, ci_prob=ci_prob, ci_kind=ci_kind, verdicts=v)


def _bayes_supported(design, what: str) -> None:
    """GLMMs and ``residual_by=`` have REML/ML (Laplace ML) only so far."""
    if design.family != "gaussian":
        raise NotImplementedError(f"{what} is not available for family={design.family!r} yet: fit "
                                  "the GLMM by Laplace ML (fit_ml())")
    if design.residual_codes is not None:
        raise NotImplementedError(f"{what} is not available with residual_by= yet: fit by REML or ML "
                                  "(fit_reml())")


def _groups_as_column(data, groups) -> tuple[pd.DataFrame, str]:
    if not isinstance(data, pd.DataFrame):
        fail(f"data must be a pandas DataFrame, got {type(data).__name__}")
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != len(data):
        fail(f"groups must name a column of data or hold one label per row ({len(data)}), "
             f"got shape {labels.shape}")
    name = "Group"  # statsmodels names groups that are not a column so
    while name in data.columns:
        name = "_" + name
    return data.assign(**{name: labels}), name
