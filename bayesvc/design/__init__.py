"""Stage 2: specification + data -> :class:`Design` (data checks, the statsmodels array interface,
the cross-products the kernel works on, and the theta <-> Lambda maps)."""

from .arrays import design_from_arrays
from .build import build_design
from .crossprod import SufficientStats, sufficient_statistics
from .design import Design, RandomTerm

__all__ = ["Design", "RandomTerm", "build_design", "design_from_arrays", "SufficientStats",
           "sufficient_statistics"]
