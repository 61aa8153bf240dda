"""Stage 3, the array layer: the collapsed likelihood of a design as a function of theta.

NumPy, SciPy and Numba only (no pandas, xarray or PyMC): arrays in, arrays out. :class:`Kernel`
holds the structure and factorizes ``A(theta)``; :mod:`~bayesvc.kernel.criteria` derives the
REML/ML criteria and the collapsed log-likelihood with analytic gradients;
:mod:`~bayesvc.kernel.conditional` the random effects' conditional law;
:mod:`~bayesvc.kernel.compiled` the same log-likelihood and draws compiled with Numba.
"""

from .criteria import LOG2PI
from .factor import Factorization, NotPositiveDefinite
from .kernel import Kernel

__all__ = ["Kernel", "Factorization", "NotPositiveDefinite", "LOG2PI"]
