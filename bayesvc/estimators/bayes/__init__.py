"""The Bayesian backend: every PyMC, PyTensor and nutpie import of bayesvc lives here.

:mod:`~.op` the collapsed-likelihood Op (and its Numba registration), :mod:`~.model` the PyMC
model (:func:`build_pymc` -> :class:`BuiltModel`), :mod:`~.sample` NUTS and the DataTree,
:mod:`~.draws` exact random-effect draws and per-draw likelihoods, :mod:`~.cache` the
compiled-model cache. PyMC itself is imported inside the functions that need it, so importing
bayesvc stays fast for REML-only work.
"""

from .cache import clear_cache, compiled_model, sample_cached
from .glmm import build_glmm_pymc, sample_glmm
from .glmm_laplace import sample_glmm_laplace
from .model import BuiltModel, build_pymc, coords_for
from .predictive import sample_prior_predictive
from .residual_by import build_residual_by_pymc, sample_residual_by
from .sample import SAMPLERS, compile_nutpie, run_nuts, sample

__all__ = ["BuiltModel", "build_pymc", "coords_for", "sample", "run_nuts", "compile_nutpie", "SAMPLERS",
           "sample_cached", "compiled_model", "clear_cache", "sample_glmm", "build_glmm_pymc",
           "sample_glmm_laplace",
           "sample_residual_by", "build_residual_by_pymc", "sample_prior_predictive"]
