"""The collapsed log-likelihood as a PyTensor ``Op``, registered with PyTensor's Numba backend.

One Op call returns the log-likelihood and its three gradients, so that value and gradient share
one factorization (PyTensor's autodiff through a Cholesky is orders of magnitude slower). Under
nutpie's Numba backend the Op is replaced by :func:`bayesvc.kernel.compiled.logp_grad`, called
natively (no object mode, no GIL); elsewhere ``perform`` runs the NumPy kernel.
"""

from __future__ import annotations

import numpy as np

from ...kernel import Kernel, NotPositiveDefinite
from ...kernel.compiled import kernel_arrays, logp_grad

_OP_CLASS = None


def _op_class():
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class CollapsedLoglik(Op):
        """Collapsed log-likelihood and its gradient: inputs ``beta`` (p,), ``sigma`` (),
        ``tau`` (K,); outputs ``loglik`` and the three gradients."""

        def __init__(self, kernel: Kernel):
            self.kernel = kernel
            self.arrays = kernel_arrays(kernel)

        def __eq__(self, other):
            return self is other

        def __hash__(self):
            return id(self)

        def make_node(self, beta, sigma, tau):
            beta = pt.as_tensor_variable(beta, dtype="float64")
            sigma = pt.as_tensor_variable(sigma, dtype="float64")
            tau = pt.as_tensor_variable(tau, dtype="float64")
            return Apply(self, [beta, sigma, tau], [pt.dscalar(), pt.dvector(), pt.dscalar(), pt.dvector()])

        def perform(self, node, inputs, outputs):
            beta, sigma, tau = inputs
            try:
                ll, db, ds, dt = self.kernel.loglik_grad(beta, float(sigma), tau)
            except NotPositiveDefinite:
                ll, db, ds, dt = -np.inf, np.zeros_like(beta), 0.0, np.zeros_like(tau)
            for out, value in zip(outputs, (ll, db, ds, dt)):
                out[0] = np.asarray(value, dtype="float64")

        def pullback(self, inputs, outputs, cotangents):
            g = cotangents[0]
            return [g * outputs[1], g * outputs[2], g * outputs[3]]

    _register_numba(CollapsedLoglik)
    return CollapsedLoglik


def _register_numba(op_class) -> None:
    """Let PyTensor's Numba backend (nutpie's default) call the compiled kernel natively instead of
    running ``perform`` in object mode."""
    try:
        from pytensor.link.numba.dispatch import numba_funcify
        from pytensor.link.numba.dispatch.basic import generate_fallback_impl, numba_njit
    except ImportError:  # pragma: no cover - older PyTensor
        return

    @numba_funcify.register(op_class)
    def _funcify(op, node=None, storage_map=None, **kwargs):
        if op.arrays is None:
            return generate_fallback_impl(op, node, storage_map, **kwargs)
        arrays = op.arrays  # frozen into the compiled function as a constant

        @numba_njit
        def collapsed_loglik(beta, sigma, tau):
            ll, db, ds, dt = logp_grad(beta, sigma.item(), tau, arrays)
            return np.array(ll), db, np.array(ds), dt

        return collapsed_loglik


def collapsed_loglik_op(kernel: Kernel):
    """The Op for ``kernel`` (the Op class is created once per process, on first use)."""
    global _OP_CLASS
    if _OP_CLASS is None:
        _OP_CLASS = _op_class()
    return _OP_CLASS(kernel)
