"""Design + priors -> ``pm.Model`` (collapsed or non-centered); the posterior mode.

Collapsed (default): the Gaussian random effects are integrated out analytically; the model's
only free variables are the fixed effects, the component SDs and the residual SD, and the
likelihood is one :class:`CollapsedLoglik` Op that calls the blocked kernel of
:mod:`bayesvc.likelihood` with its analytic gradient (PyTensor's autodiff through Cholesky is
orders of magnitude slower). Non-centered (``marginalize=False``): the textbook
``b = sd * z, z ~ N(0, 1)`` with an explicit Normal likelihood; correlated terms use an LKJ prior.
"""

from __future__ import annotations

import numpy as np

from .checks import fail
from .likelihood import Kernel, NotPositiveDefinite
from .priors import PriorSet, resolve_priors


def _op_class():
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class CollapsedLoglik(Op):
        """Collapsed log-likelihood and its gradient in one call.

        Inputs ``beta`` (p,), ``sigma`` (), ``tau`` (K,); outputs ``loglik`` and the three
        gradients, so that value and gradient share one factorization.
        """

        def __init__(self, kernel: Kernel):
            self.kernel = kernel
            from .kernel_numba import pack

            self.packed = pack(kernel)

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
            outputs[0][0] = np.asarray(ll, dtype="float64")
            outputs[1][0] = np.asarray(db, dtype="float64")
            outputs[2][0] = np.asarray(ds, dtype="float64")
            outputs[3][0] = np.asarray(dt, dtype="float64")

        def pullback(self, inputs, outputs, cotangents):
            g = cotangents[0]
            return [g * outputs[1], g * outputs[2], g * outputs[3]]

    _register_numba(CollapsedLoglik)
    return CollapsedLoglik


def _register_numba(op_class) -> None:
    """Let PyTensor's Numba backend (nutpie's default) call :func:`bayesvc.kernel_numba.logp_grad`
    natively instead of running ``perform`` in object mode."""
    try:
        from pytensor.link.numba.dispatch import numba_funcify
        from pytensor.link.numba.dispatch.basic import generate_fallback_impl, numba_njit
    except ImportError:  # pragma: no cover - older PyTensor
        return

    from .kernel_numba import logp_grad

    @numba_funcify.register(op_class)
    def _funcify(op, node=None, storage_map=None, **kwargs):
        if op.packed is None:
            return generate_fallback_impl(op, node, storage_map, **kwargs)
        (first, rest_comp, a1, dense, C1d, Pd, Pi, Pp, pair_i, pair_j, Pzd, Pzi, Pzp, pz_i, pz_j, pz_w,
         Czd, Czi, Czp, Arr, ZtWf, diag_s, n) = op.packed

        @numba_njit
        def collapsed_loglik(beta, sigma, tau):
            ll, db, ds, dt = logp_grad(beta, sigma.item(), tau, first, rest_comp, a1, dense, C1d, Pd, Pi, Pp,
                                       pair_i, pair_j, Pzd, Pzi, Pzp, pz_i, pz_j, pz_w, Czd, Czi, Czp, Arr,
                                       ZtWf, diag_s, n)
            return np.array(ll), db, np.array(ds), dt

        return collapsed_loglik


_OP = None


def collapsed_loglik_op(kernel: Kernel):
    global _OP
    if _OP is None:
        _OP = _op_class()
    return _OP(kernel)


def can_collapse(design) -> bool:
    """The analytic-gradient kernel needs scalar variance components (no correlated terms)."""
    return all(t.p == 1 for t in design.terms)


#: dense Schur complements up to this size are factorized per gradient (full collapse)
FULL_COLLAPSE_MAX_DENSE = 400


def choose_marginalization(design, marginalize, kernel: Kernel | None = None) -> str:
    """Resolve ``marginalize`` to ``"full"``, ``"partial"`` or ``"none"``.

    Cost rule for ``True``/``"auto"``: integrate every random effect out (``"full"``) when the
    kernel's dense Schur complement (all terms but the largest block-diagonal one) is at most
    ``FULL_COLLAPSE_MAX_DENSE`` columns or diagonal (nested designs); otherwise (large crossed
    designs such as InstEval, where each gradient would factor a dense ~1,000-level block)
    integrate out only the largest factor and sample the others non-centered (``"partial"``,
    Lai, Domke & Sheldon 2024). Correlated terms are always sampled non-centered.
    """
    if marginalize is False or marginalize == "none":
        return "none"
    if marginalize not in (True, "auto", "full", "partial"):
        fail(f"marginalize must be True, False, 'auto', 'full' or 'partial', got {marginalize!r}")
    if marginalize == "partial":
        if _partial_term(design) is None:
            fail("marginalize='partial' needs a scalar random-intercept-like term to integrate out")
        return "partial"
    if not can_collapse(design):
        if marginalize == "full":
            fail("marginalize='full' needs scalar variance components; this model has a correlated "
                 "term such as (1 + x|g): use marginalize=False")
        return "none"
    if marginalize == "full":
        return "full"
    k = kernel or Kernel(design)
    if k.rz <= FULL_COLLAPSE_MAX_DENSE or getattr(k, "diag_S", False):
        return "full"
    return "partial" if _partial_term(design) is not None else "full"


def _partial_term(design) -> int | None:
    """Index of the largest scalar term with one level per observation (integrated out)."""
    cand = [i for i, t in enumerate(design.terms) if t.p == 1 and t.codes is not None]
    return max(cand, key=lambda i: design.terms[i].q) if cand else None


def coords_for(design) -> dict:
    coords = {"fixed": list(design.fe_names), "component": design.component_names,
              "obs": np.arange(design.nobs)}
    for t in design.terms:
        coords[f"{t.name}_level"] = [str(x) for x in t.levels]
        if t.p > 1:
            coords[f"{t.name}_coef"] = [c or t.name for c in t.coef_names]
    return coords


def build_pymc(design, priors=None, marginalize=True, kernel: Kernel | None = None):
    """Compile a design into a PyMC model.

    Parameters
    ----------
    design : Design
    priors : dict or PriorSet, optional
        Overrides of the data-scaled defaults (see :mod:`bayesvc.priors`).
    marginalize : bool or {'auto', 'full', 'partial'}
        ``"full"``: integrate every random effect out (collapsed likelihood through the blocked
        kernel; scalar variance components only). ``"partial"``: integrate out only the largest
        factor, in closed form per level, and sample the other terms non-centered (pure PyTensor:
        runs on every backend, JAX included). ``False``: non-centered. ``True``/``"auto"``: the
        cost rule of :func:`choose_marginalization`.

    Returns
    -------
    pymc.Model
        Free variables ``beta`` (dims ``fixed``), ``sd_<component>``, ``sigma``; deterministics
        ``sd`` and ``var`` (dims ``component``). The non-centered model adds ``z_<term>`` and
        ``re_<term>``.
    """
    import pymc as pm
    import pytensor.tensor as pt

    ps: PriorSet = resolve_priors(design, priors)
    mode = choose_marginalization(design, marginalize, kernel)
    with pm.Model(coords=coords_for(design)) as model:
        beta = _fixed_effects(design, ps)
        sigma = ps.residual.pymc("sigma", param=prior_data("Residual", ps.residual))
        sds: list = []
        if mode == "full":
            for comp in design.component_names:
                sds.append(ps.sd[comp].pymc(f"sd_{comp}", param=prior_data(comp, ps.sd[comp])))
            sd = pm.Deterministic("sd", pt.stack(sds), dims="component")
            op = collapsed_loglik_op(kernel or Kernel(design))
            pm.Potential("loglik", op(beta, sigma, sd)[0])
        else:
            skip = _partial_term(design) if mode == "partial" else None
            mu = pt.dot(pt.as_tensor_variable(design.X), beta)
            sd_of = {}
            for i, t in enumerate(design.terms):
                if i == skip:
                    c0 = t.component_names[0]
                    sd_of[c0] = ps.sd[c0].pymc(f"sd_{c0}", param=prior_data(c0, ps.sd[c0]))
                    continue
                centered = mode == "partial" and t.p == 1 and t.nobs_per_level >= CENTERED_MIN_OBS_PER_LEVEL
                contrib, term_sds = _noncentered_term(t, ps, centered=centered)
                mu = mu + contrib
                sd_of.update(zip(t.component_names, term_sds))
            sd = pm.Deterministic("sd", pt.stack([sd_of[c] for c in design.component_names]), dims="component")
            if skip is None:
                pm.Normal("y", mu=mu, sigma=sigma, observed=design.y, dims="obs")
            else:
                t = design.terms[skip]
                pm.Potential("loglik", _partial_loglik(design, t, mu, sigma, sd_of[t.component_names[0]]))
        pm.Deterministic("var", sd**2, dims="component")
        pm.Deterministic("scale", sigma**2)
    model._bayesvc = {"design": design, "priors": ps, "marginalize": mode}
    return model


def _zvals(t) -> np.ndarray:
    """The z value of each observation for a scalar term with one level per observation."""
    return t.zvals[:, 0]


def _partial_loglik(design, t, mu, sigma, tau):
    """log N(y | mu, sigma^2 I + tau^2 Z_t Z_t') for a term whose levels partition the data:
    per level ``l`` with ``a_l = sum z^2`` and ``s_l = sum z r``,
    ``log|V_l| = n_l log sigma^2 + log(1 + theta^2 a_l)`` and
    ``r'V^{-1}r = (r'r - theta^2 s_l^2 / (1 + theta^2 a_l)) / sigma^2``, ``theta = tau / sigma``.
    Written in PyTensor (segment sums by indexing), so autodiff and every backend apply."""
    import pytensor.tensor as pt

    codes, z = t.codes, _zvals(t)
    a = np.bincount(codes, weights=z * z, minlength=t.n_levels)
    r = pt.as_tensor_variable(design.y) - mu
    s = pt.inc_subtensor(pt.zeros(t.n_levels)[codes], pt.as_tensor_variable(z) * r)
    th2 = (tau / sigma) ** 2
    denom = 1.0 + th2 * a
    n = design.nobs
    quad = (pt.sum(r * r) - th2 * pt.sum(s * s / denom)) / sigma**2
    return -0.5 * (n * np.log(2 * np.pi) + 2 * n * pt.log(sigma) + pt.sum(pt.log(denom)) + quad)


def prior_data_name(name: str) -> str:
    return f"prior_{name}"


def prior_data(name: str, prior):
    """The prior's scale parameter as model data, so a prior sweep changes data, not the graph."""
    import pymc as pm

    if prior.param_name is None:
        return None
    return pm.Data(prior_data_name(name), float(prior.param_value))


def _fixed_effects(design, ps: PriorSet):
    import pymc as pm

    pri = [ps.fixed[n] for n in design.fe_names]
    if all(p.flat for p in pri):
        return pm.Flat("beta", dims="fixed")
    if any(p.flat for p in pri):
        fail("priors: fixed effects must be all flat or all Normal")
    mu = np.array([p.mu for p in pri])
    sd = np.array([p.sigma for p in pri])
    return pm.Normal("beta", mu=mu, sigma=sd, dims="fixed")


#: scalar terms with at least this many observations per level are sampled centered in the
#: partial / non-centered models: with informative data the centered form mixes better
CENTERED_MIN_OBS_PER_LEVEL = 20


def _noncentered_term(t, ps: PriorSet, centered: bool = False):
    import pymc as pm
    import pytensor.sparse as pts
    import pytensor.tensor as pt

    level_dim = f"{t.name}_level"
    codes = t.codes
    if t.p == 1:
        c0 = t.component_names[0]
        sd = ps.sd[c0].pymc(f"sd_{c0}", param=prior_data(c0, ps.sd[c0]))
        if centered:
            b = pm.Normal(f"re_{t.name}", 0.0, sd, dims=level_dim)
        else:
            z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=level_dim)
            b = pm.Deterministic(f"re_{t.name}", sd * z, dims=level_dim)
        if codes is not None:
            return pt.as_tensor_variable(_zvals(t)) * b[codes], [sd]
        return pts.structured_dot(pts.as_sparse_variable(t.Z.tocsr()), b[:, None])[:, 0], [sd]
    coef_dim = f"{t.name}_coef"
    pri = [ps.sd[c] for c in t.component_names]
    scales = np.array([getattr(p, "sigma", 1.0) for p in pri])
    if not t.correlated:
        sds = [p.pymc(f"sd_{c}", param=prior_data(c, p)) for p, c in zip(pri, t.component_names)]
        z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=(level_dim, coef_dim))
        b = pm.Deterministic(f"re_{t.name}", z * pt.stack(sds)[None, :], dims=(level_dim, coef_dim))
    else:
        chol, corr, stds = pm.LKJCholeskyCov(
            f"chol_{t.name}", n=t.p, eta=2.0, sd_dist=pm.HalfNormal.dist(sigma=scales, shape=t.p),
            compute_corr=True)
        z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=(level_dim, coef_dim))
        b = pm.Deterministic(f"re_{t.name}", pt.dot(z, chol.T), dims=(level_dim, coef_dim))
        sds = [stds[j] for j in range(t.p)]
    if codes is None:
        fail(f"term {t.name!r}: non-centered sampling needs one level per observation")
    return pt.sum(pt.as_tensor_variable(t.zvals) * b[codes], axis=1), sds
