"""Stage 4: one immutable result type per estimator, and their MixedLM-layout summaries.

Results are records: estimators build them, views read them, and nothing here fits. Each result
renders its own :meth:`summary` through :class:`~bayesvc.results.table.Summary` (text exactly as
statsmodels prints it, HTML, Markdown, LaTeX), so the summary builders live in this layer too.
"""

from .glmm import GLMMResult
from .inference import ComponentTest, ConfIntResult
from .mode import ModeResult
from .posterior import PosteriorResult
from .reml import OptSummary, RandomEffects, REMLResult
from .residual_by import ResidualByResult
from .table import Summary

__all__ = ["GLMMResult", "ResidualByResult", "REMLResult", "RandomEffects", "OptSummary", "ModeResult", "PosteriorResult", "Summary",
           "ComponentTest", "ConfIntResult"]
