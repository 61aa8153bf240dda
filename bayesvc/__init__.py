"""bayesvc: Bayesian variance-component and linear mixed models.

The package is a pipeline whose imports all point down (checked by import-linter in the tests):
``spec`` -> ``design`` -> ``kernel`` -> ``results`` / ``estimators`` -> ``views`` -> ``studies`` ->
``model`` (the :class:`VCModel` facade) -> ``cli`` / ``demo``. See the architecture page of the docs.
"""

from . import datasets as datasets
from .design import Design, RandomTerm, build_design, design_from_arrays, sufficient_statistics
from .errors import BoundaryFitWarning, RankDeficiencyWarning, SamplingWarning, SpecificationError
from .errors import SweepError
from .estimators import fit_laplace, fit_map, fit_map_glmm, fit_residual_by, fit_reml, make_devfun, optimize_deviance
from .estimators.loo import compare_loo, loo
from .kernel import Kernel
from .model import MixedLM, VCModel, compare_model, mixedlm
from .priors import Exponential, Flat, HalfCauchy, HalfNormal, HalfStudentT, Normal, Prior, PriorSet
from .results import GLMMResult, ModeResult, ResidualByResult, OptSummary, PosteriorResult, RandomEffects, REMLResult
from .results import ComponentTest, ConfIntResult
from .results.posterior_predict import predictive_summary
from .spec import ModelSpec, RETerm, VCSpec, from_statsmodels, parse_lme4
from .studies import SensitivityResult, SweepResult, prior_sweep, sensitivity
from .studies import ComponentVerdicts, component_verdicts
from .studies.sbc import SBCResult, sbc
from .views import Comparison, compare, icc, ranef, variance_shares
from .views.ppc import grouped_ppc, plot_grouped_ppc
from .design.summary import SummaryDesign, summary_design

__version__ = "0.1.0"

__all__ = [
    "VCModel", "VCSpec", "ModelSpec", "RETerm", "Design", "RandomTerm", "Kernel", "REMLResult",
    "RandomEffects", "OptSummary", "SpecificationError", "BoundaryFitWarning",
    "RankDeficiencyWarning", "parse_lme4", "from_statsmodels", "build_design",
    "design_from_arrays", "sufficient_statistics", "fit_reml", "make_devfun", "optimize_deviance",
    "ModeResult", "fit_map", "PosteriorResult", "SamplingWarning", "Prior", "PriorSet", "HalfNormal",
    "HalfStudentT", "HalfCauchy", "Exponential", "Flat", "Normal", "compare", "compare_model",
    "Comparison", "variance_shares", "icc", "ranef", "sensitivity", "SensitivityResult", "prior_sweep",
    "SweepResult", "ComponentTest", "ConfIntResult", "component_verdicts", "ComponentVerdicts",
    "MixedLM", "mixedlm",
    "predictive_summary", "loo", "compare_loo", "sbc", "SBCResult",
    "grouped_ppc", "plot_grouped_ppc",
    "fit_laplace", "GLMMResult", "fit_residual_by", "ResidualByResult", "fit_map_glmm",
    "SummaryDesign", "summary_design",
]
__all__ += ["SweepError"]
