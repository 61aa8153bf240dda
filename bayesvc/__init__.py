"""bayesvc: Bayesian variance-component and linear mixed models.

Pipeline: spec -> design -> estimators (REML/ML, posterior mode, NUTS) -> results -> views.
"""

from . import datasets as datasets
from .checks import BoundaryFitWarning, RankDeficiencyWarning, SpecificationError
from .comparison import Comparison, compare, compare_model
from .decomposition import icc, ranef, variance_shares
from .design import Design, RandomTerm, build_design, design_from_arrays, sufficient_statistics
from .likelihood import Kernel
from .mode import ModeResult, fit_map
from .model import VCModel
from .posterior import PosteriorResult, SamplingWarning
from .priors import Exponential, Flat, HalfCauchy, HalfNormal, HalfStudentT, Normal, Prior, PriorSet
from .reml import OptSummary, fit_reml, make_devfun, optimize_deviance
from .results import RandomEffects, REMLResult
from .sensitivity import SensitivityResult, sensitivity
from .sweep import SweepResult, prior_sweep
from .spec import ModelSpec, RETerm, VCSpec, from_statsmodels, parse_lme4

__version__ = "0.1.0"

__all__ = [
    "VCModel", "VCSpec", "ModelSpec", "RETerm", "Design", "RandomTerm", "Kernel", "REMLResult",
    "RandomEffects", "OptSummary", "SpecificationError", "BoundaryFitWarning",
    "RankDeficiencyWarning", "parse_lme4", "from_statsmodels", "build_design",
    "design_from_arrays", "sufficient_statistics", "fit_reml", "make_devfun", "optimize_deviance",
    "ModeResult", "fit_map", "PosteriorResult", "SamplingWarning", "Prior", "PriorSet", "HalfNormal",
    "HalfStudentT", "HalfCauchy", "Exponential", "Flat", "Normal", "compare", "compare_model",
    "Comparison", "variance_shares", "icc", "ranef", "sensitivity", "SensitivityResult", "prior_sweep",
    "SweepResult",
]
