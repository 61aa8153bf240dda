"""Stage 6: views that read results and never fit: the REML / posterior-mode / NUTS comparison
(:mod:`~.comparison`), variance shares, ICCs and tidy random effects (:mod:`~.decomposition`),
and plots (:mod:`~.plots`)."""

from . import plots
from .comparison import Comparison, compare, posterior_at_zero
from .decomposition import icc, ranef, variance_shares

__all__ = ["Comparison", "compare", "posterior_at_zero", "variance_shares", "icc", "ranef", "plots"]
