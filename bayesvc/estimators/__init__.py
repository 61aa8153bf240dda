"""Stage 4: design (+ priors) -> result. REML/ML (:mod:`~.reml`), the posterior mode
(:mod:`~.mode`), the marginalization rule (:mod:`~.plan`), the information matrix
(:mod:`~.information`) and the Bayesian backend (:mod:`~.bayes`)."""

from . import bayes
from .laplace import fit_laplace
from .laplace_mode import fit_map_glmm
from .mode import fit_map
from .residual_by import fit_residual_by
from .plan import MarginalizationPlan, plan_marginalization
from .reml import fit_reml, make_devfun, optimize_deviance, reml_result

__all__ = ["fit_laplace", "fit_map_glmm", "fit_residual_by", "fit_reml", "make_devfun", "optimize_deviance", "reml_result", "fit_map",
           "MarginalizationPlan", "plan_marginalization", "bayes"]
