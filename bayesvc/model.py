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

    Three ways to state it: an lme4-style formula, statsmodels-style formulas
    (:meth:`from_formula` either way), or arrays as statsmodels' ``MixedLM`` takes them (the
    constructor). Constructing a model validates the data and builds the
    :class:`~bayesvc.design.Design`; the ``fit_*`` and :meth:`sample` methods compute.

    Parameters
    ----------
    endog, exog, groups, exog_re, exog_vc
        Arrays exactly as statsmodels' ``MixedLM`` takes them; ``exog_vc`` is a
        :class:`~bayesvc.VCSpec` (or statsmodels' own).
    design : Design, optional
        A ready-made design (keyword only); the arrays are then ignored.

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> rng = np.random.default_rng(0)
    >>> df = pd.DataFrame({"g1": np.repeat(np.arange(10), 20), "g2": np.tile(np.arange(4), 50)})
    >>> df["y"] = rng.normal(size=10)[df.g1] + rng.normal(size=200)
    >>> m1 = bvc.VCModel.from_formula("y ~ 1 + (1|g1/g2)", data=df)          # lme4 style
    >>> m2 = bvc.VCModel.from_formula("y ~ 1", data=df, groups="g1", re_formula="1",
    ...                               vc_formula={"g2": "0 + C(g2)"})         # statsmodels style
    >>> round(m1.fit_reml().llf, 6) == round(m2.fit_reml().llf, 6)
    True

    The array interface (a random intercept per ``g1``):

    >>> m3 = bvc.VCModel(df.y, np.ones((200, 1)), df.g1, exog_re=np.ones((200, 1)))
    >>> m3
    VCModel(nobs=200, fixed=['const'], components=[x_re1])
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

        Returns
        -------
        VCModel

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "x": np.tile(np.arange(6.0), 8)})
        >>> df["y"] = 0.5 * df.x + rng.normal(0, 2, 8)[df.g] + rng.normal(size=48)
        >>> bvc.VCModel.from_formula("y ~ x + (1|g)", data=df)
        VCModel(nobs=48, fixed=['Intercept', 'x'], components=[g])
        >>> bvc.VCModel.from_formula("y ~ x", data=df, groups="g")       # statsmodels style
        VCModel(nobs=48, fixed=['Intercept', 'x'], components=[g])
        """
        if groups is not None and not isinstance(groups, str):
            # statsmodels also takes the group labels themselves (the seed's crossed model passes
            # an array of ones); carry them as a column of a copy of the data
            data, groups = _groups_as_column(data, groups)
        if groups is not None or vc_formula is not None or re_formula is not None:
            spec = from_statsmodels(formula, groups, re_formula, vc_formula)
        else:
            spec = parse_lme4(formula)
        return cls(design=build_design(spec, data, missing=missing))

    @property
    def spec(self) -> ModelSpec | None:
        """The :class:`~bayesvc.spec.ModelSpec` the model was built from (``None`` for arrays).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "y": np.arange(48.0) % 7})
        >>> bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df).spec.formula
        'y ~ 1 + (1|g)'
        """
        return self.design.spec

    @cached_property
    def kernel(self):
        """The collapsed-likelihood kernel (built once, shared by every estimator).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(np.arange(8), 6), "y": np.arange(48.0) % 7})
        >>> m = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> m.kernel is m.kernel, m.kernel.n_theta
        (True, 1)
        """
        from .likelihood import Kernel

        return Kernel(self.design)

    # ------------------------------------------------------------------ estimators
    def fit_reml(self, reml: bool = True):
        """REML (default) or ML fit.

        Parameters
        ----------
        reml : bool, default True
            ``False`` maximizes the likelihood (ML) instead of the restricted likelihood.

        Returns
        -------
        REMLResult

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> r = model.fit_reml()
        >>> r.method, r.converged, list(r.vcomp.index)
        ('REML', True, ['g'])
        >>> model.fit_reml(reml=False).method
        'ML'
        """
        from .reml import fit_reml

        return fit_reml(self.design, reml=reml, kernel=self.kernel)

    def fit_ml(self):
        """ML fit: ``fit_reml(reml=False)``.

        Returns
        -------
        REMLResult
            With ``method == "ML"``.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> ml, reml = model.fit_ml(), model.fit_reml()
        >>> ml.method, bool(ml.vcomp["g"] < reml.vcomp["g"])    # ML shrinks variances
        ('ML', True)
        """
        return self.fit_reml(reml=False)

    def build_pymc(self, priors=None, marginalize=True):
        """The PyMC model (public, so it can be extended); see :func:`bayesvc.pymc_model.build_pymc`.

        Parameters
        ----------
        priors : dict or PriorSet, optional
            Overrides of the default priors (see :mod:`bayesvc.priors`).
        marginalize : bool or str, default True
            As in :meth:`sample`.

        Returns
        -------
        pymc.Model

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> pm_model = model.build_pymc()
        >>> [v.name for v in pm_model.free_RVs]
        ['beta', 'sigma', 'sd_g']
        """
        from .pymc_model import build_pymc

        return build_pymc(self.design, priors, marginalize=marginalize,
                          kernel=self.kernel if self._collapsible(marginalize) else None)

    def _collapsible(self, marginalize) -> bool:
        from .pymc_model import can_collapse

        return marginalize not in (False, "none", "partial") and can_collapse(self.design)

    def fit_map(self, priors=None, integrate_fixed: bool = False):
        """Posterior mode of the marginal posterior with a Laplace covariance.

        See :func:`bayesvc.mode.fit_map`.

        Parameters
        ----------
        priors : dict or PriorSet, optional
            Overrides of the default priors (see :mod:`bayesvc.priors`).
        integrate_fixed : bool, default False
            Also integrate the fixed effects out (flat prior); with flat SD priors the mode is
            then the REML estimate.

        Returns
        -------
        ModeResult

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> mode = model.fit_map()
        >>> mode.method, mode.converged, list(mode.sd.index)
        ('MAP', True, ['g'])
        >>> flat = model.fit_map(priors={"g": "flat", "Residual": "flat"}, integrate_fixed=True)
        >>> bool(np.isclose(flat.vcomp["g"], model.fit_reml().vcomp["g"], rtol=1e-3))
        True
        """
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

        Examples
        --------
        Sampling takes seconds to minutes, so these lines are not run as doctests:

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> post = model.sample(draws=500, tune=500, chains=2, random_seed=1,
        ...                     progressbar=False)                  # doctest: +SKIP
        >>> post.method, post.chains                                   # doctest: +SKIP
        ('NUTS', 2)
        >>> list(post.param_summary().index)                           # doctest: +SKIP
        ['Intercept', 'g', 'Residual']
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
        (:func:`bayesvc.comparison.compare_model`; pass ``reml=``, ``mode=``, ``posterior=`` to reuse fits).

        Returns
        -------
        Comparison

        Examples
        --------
        This samples with NUTS, so it is not run as a doctest:

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> c = model.compare(draws=500, tune=500, chains=2, random_seed=1)  # doctest: +SKIP
        >>> c.methods                                                  # doctest: +SKIP
        ('REML', 'MAP', 'NUTS')
        >>> print(c)                                                   # doctest: +SKIP
        """
        from .comparison import compare_model

        return compare_model(self, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                             progressbar=progressbar, **kwargs)

    def prior_sweep(self, scales=(0.5, 1, 2, 5), **kwargs):
        """Refit across a grid of SD-prior scales (:func:`bayesvc.sweep.prior_sweep`).

        Returns
        -------
        SweepResult

        Examples
        --------
        Each grid point samples with NUTS, so this is not run as a doctest:

        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
        >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
        >>> sweep = model.prior_sweep(scales=(0.5, 1, 2), draws=300, tune=300,
        ...                           random_seed=1)                  # doctest: +SKIP
        >>> sorted(sweep.swept().scale.unique())                       # doctest: +SKIP
        [0.5, 1.0, 2.0]
        """
        from .sweep import prior_sweep

        return prior_sweep(self, scales=scales, **kwargs)

    def __repr__(self) -> str:
        d = self.design
        comps = ", ".join(d.component_names)
        return f"VCModel(nobs={d.nobs}, fixed={list(d.fe_names)}, components=[{comps}])"


def _groups_as_column(data, groups) -> tuple[pd.DataFrame, str]:
    import numpy as np

    from .checks import fail

    if not isinstance(data, pd.DataFrame):
        fail(f"data must be a pandas DataFrame, got {type(data).__name__}")
    labels = np.asarray(groups)
    if labels.ndim != 1 or len(labels) != len(data):
        fail(f"groups must name a column of data or hold one label per row ({len(data)}), "
             f"got shape {labels.shape}")
    name = "groups"
    while name in data.columns:
        name = "_" + name
    return data.assign(**{name: labels}), name
