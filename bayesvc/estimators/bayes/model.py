"""Design + priors + marginalization plan -> ``pm.Model``, returned as a :class:`BuiltModel`.

Every PyMC and PyTensor import of bayesvc lives in this subpackage. Priors are plain data
(:mod:`bayesvc.priors`); :func:`pm_variable` translates one into a PyMC random variable, with its
swept parameter as model data (``prior_<name>``) so that prior sweeps change data, not the graph.

* ``"full"``: the model's only free variables are the fixed effects, the component SDs and the
  residual SD; the likelihood is one :class:`~bayesvc.estimators.bayes.op` Op calling the blocked
  kernel with its analytic gradient.
* ``"partial"``: the largest factor (with the small ones) is integrated out in closed form, in
  PyTensor (:mod:`~bayesvc.estimators.bayes.partial`); the other terms are sampled.
* ``"none"``: the textbook ``b = sd * z, z ~ N(0, 1)`` with an explicit Normal likelihood;
  correlated terms use an LKJ prior whose SD distribution is the user's SD prior family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import fail
from ...kernel import Kernel
from ...priors import Prior, PriorSet, prior_data_name, resolve_priors
from ..plan import MarginalizationPlan, plan_marginalization
from .op import collapsed_loglik_op
from .partial import grouped_levels, partial_arrays, partial_loglik
from .transform import scaled_softplus


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A PyMC model as :func:`build_pymc` made it.

    Attributes
    ----------
    model : pymc.Model
        Free variables ``beta`` (dims ``fixed``), ``sd_<component>``, ``sigma``; deterministics
        ``sd`` and ``var`` (dims ``component``) and ``scale``. Without the full collapse it adds
        ``z_<term>`` / ``re_<term>``, and for correlated terms ``corr_<term>`` and ``cov_<term>``
        (dims ``<term>_pair``).
    priors : PriorSet
        The resolved priors.
    plan : MarginalizationPlan
    kernel : Kernel or None
        The kernel the collapsed likelihood evaluates (full collapse only).
    """

    model: object
    priors: PriorSet
    plan: MarginalizationPlan
    kernel: Kernel | None


def coords_for(design) -> dict:
    """The model's named dimensions: ``fixed``, ``component``, ``obs``, ``<term>_level`` and, for
    terms with several coefficients, ``<term>_coef`` and (correlated terms) ``<term>_pair``, the
    pairs ``"<coef j>,<coef i>"`` of the lower triangle by rows."""
    coords = {"fixed": list(design.fe_names), "component": design.component_names,
              **({"obs": np.arange(design.nobs)} if getattr(design, "has_rows", True) else {})}
    for t in design.terms:
        coords[f"{t.name}_level"] = [str(x) for x in t.levels]
        if t.p > 1:
            coords[f"{t.name}_coef"] = [c or t.name for c in t.coef_names]
        if t.correlated and t.p > 1:
            r, c = np.tril_indices(t.p, -1)  # lower triangle by rows, statsmodels' order
            coords[f"{t.name}_pair"] = [f"{coords[f'{t.name}_coef'][j]},{coords[f'{t.name}_coef'][i]}"
                                        for i, j in zip(r, c)]
    return coords


def prior_data(name: str, prior: Prior):
    """The prior's swept parameter as model data (``None`` when it has none)."""
    import pymc as pm

    if prior.param_name is None:
        return None
    return pm.Data(prior_data_name(name), float(prior.param_value))


def pm_variable(prior: Prior, name: str, data_name: str | None = None, **kw):
    """The PyMC random variable ``name`` with ``prior`` (inside a model context); the swept
    parameter is model data named after ``data_name`` when given."""
    import pymc as pm

    params = dict(prior.params)
    if data_name is not None and prior.param_name is not None:
        params[prior.param_name] = prior_data(data_name, prior)
    return getattr(pm, prior.pm_name)(name, **params, **kw)


def _sd_variable(ps: PriorSet, component: str):
    prior = ps.sd[component]
    return pm_variable(prior, f"sd_{component}", data_name=component,
                       transform=scaled_softplus(prior.scale), default_transform=None)


def design_data(design, plan: MarginalizationPlan) -> dict | None:
    """The arrays a sampled (partial or non-centered) model reads as model data, by name: the
    response, the fixed-effect matrix, the weights, per term its level codes and ``Z`` values, and
    what the partial collapse reads (:func:`~bayesvc.estimators.bayes.partial.partial_arrays`).
    Two designs of one :func:`shape_key` differ only in these, so a compiled model is reused with
    ``compiled.with_data(**design_data(...))``. None for the full collapse (its Op holds the
    kernel) and for terms without one level per row."""
    return _arrays(design, plan) if _reads_data(design, plan) else None


def _arrays(design, plan: MarginalizationPlan) -> dict:
    out = {"data_y": design.y, "data_X": design.X}
    if design.weights is not None:
        out["data_weights"] = design.weights
    for t in design.terms:
        if t.codes is not None:
            out[f"data_codes_{t.name}"] = t.codes
            out[f"data_zvals_{t.name}"] = t.zvals
    if plan.integrated_term is not None:
        out.update(partial_arrays(design, plan))
    return out


def _reads_data(design, plan: MarginalizationPlan) -> bool:
    """Whether the model of ``plan`` reads the design as model data (:func:`design_data`)."""
    return plan.kind != "full" and all(t.codes is not None for t in design.terms)


def shape_key(design, plan: MarginalizationPlan) -> tuple | None:
    """What the graph of a sampled model depends on besides :func:`design_data` (None where
    :func:`design_data` is): rows, fixed-effect names, each term's name, levels, coefficients and
    correlation, whether there are weights, the partial collapse's grouping (the cache adds the
    plan)."""
    if not _reads_data(design, plan):
        return None
    terms = tuple((t.name, t.n_levels, tuple(t.coef_names), t.correlated) for t in design.terms)
    return (design.nobs, tuple(design.fe_names), terms, design.weights is None, tuple(design.component_names),
            grouped_levels(design, plan))


def build_pymc(design, priors=None, marginalize=True, kernel: Kernel | None = None) -> BuiltModel:
    """Compile a design into a PyMC model.

    ``marginalize`` is a :class:`~bayesvc.estimators.plan.MarginalizationPlan` or what
    :func:`~bayesvc.estimators.plan.plan_marginalization` takes (True/'auto', 'full', 'partial',
    False). ``kernel`` is the model's (built when the full collapse needs one).

    Examples
    --------
    >>> built = bvc.estimators.bayes.build_pymc(model.design, kernel=model.kernel)
    >>> built.plan.kind, [v.name for v in built.model.free_RVs]
    ('full', ['beta', 'sigma', 'sd_g'])
    """
    import pymc as pm
    import pytensor.tensor as pt

    ps = resolve_priors(design, priors)
    plan = plan_marginalization(design, marginalize, kernel)
    if plan.needs_kernel:
        kernel = kernel or Kernel(design)
    with pm.Model(coords=coords_for(design)) as model:
        fixed = _fixed_prior(design, ps)
        integrate_fixed = plan.fixed and fixed is not None
        beta = None if integrate_fixed else _fixed_effects(design, ps, fixed)
        sigma = pm_variable(ps.residual, "sigma", data_name="Residual")
        if plan.kind == "full":
            sd = pm.Deterministic("sd", pt.stack([_sd_variable(ps, c) for c in design.component_names]),
                                  dims="component")
            pm.Potential("loglik", collapsed_loglik_op(kernel)(beta, sigma, sd)[0])
        else:
            _sampled_terms(design, ps, plan, beta, sigma, fixed if integrate_fixed else None)
            sd = model["sd"]
        pm.Deterministic("var", sd**2, dims="component")
        pm.Deterministic("scale", sigma**2)
    return BuiltModel(model, ps, plan, kernel if plan.needs_kernel else None)


def _sampled_terms(design, ps: PriorSet, plan: MarginalizationPlan, beta, sigma, fixed=None) -> None:
    """The partial and non-centered models: sampled terms, and the likelihood. ``fixed``: the
    Normal prior's ``(means, SDs)`` when the fixed effects are integrated out (``beta`` None)."""
    import pymc as pm
    import pytensor.tensor as pt

    arrays = design_data(design, plan)
    if arrays is not None:
        data = {k: pm.Data(k, v) for k, v in arrays.items()}
    else:  # a term without one level per row: the design as constants
        data = {k: pt.as_tensor_variable(v) for k, v in _arrays(design, plan).items()}
    mu = pt.dot(data["data_X"], beta if fixed is None else fixed[0])
    sd_of = {}
    for i, t in enumerate(design.terms):
        if i in plan.integrated:
            sd_of[t.component_names[0]] = _sd_variable(ps, t.component_names[0])
            continue
        contrib, term_sds = _sampled_term(t, ps, centered=i in plan.centered, data=data)
        mu = mu + contrib
        sd_of.update(zip(t.component_names, term_sds))
    pm.Deterministic("sd", pt.stack([sd_of[c] for c in design.component_names]), dims="component")
    if not plan.integrated:
        w = data.get("data_weights")
        s = sigma if w is None else sigma / pt.sqrt(w)  # Var = sigma^2 / w
        pm.Normal("y", mu=mu, sigma=s, observed=design.y if arrays is None else data["data_y"],
                  dims="obs")
    else:
        pm.Potential("loglik", partial_loglik(design, plan, mu, sigma, sd_of, data,
                                              None if fixed is None else fixed[1]))


def _fixed_prior(design, ps: PriorSet):
    """The Normal fixed-effect prior's means and SDs as model data, or None for flat priors."""
    import pymc as pm

    pri = [ps.fixed[n] for n in design.fe_names]
    if all(p.flat for p in pri):
        return None
    if any(p.flat for p in pri):
        fail("priors: fixed effects must be all flat or all Normal")
    data = ps.data()  # means and SDs as model data: data-scaled defaults do not change the graph
    mu = pm.Data(prior_data_name("fixed_mu"), data[prior_data_name("fixed_mu")], dims="fixed")
    sd = pm.Data(prior_data_name("fixed_sigma"), data[prior_data_name("fixed_sigma")], dims="fixed")
    return mu, sd


def _fixed_effects(design, ps: PriorSet, prior=None):
    import pymc as pm

    prior = prior or _fixed_prior(design, ps)
    if prior is None:
        return pm.Flat("beta", dims="fixed")
    return pm.Normal("beta", mu=prior[0], sigma=prior[1], dims="fixed")


def _lkj_sd_dist(t, ps: PriorSet):
    """The SD distribution of a correlated term's LKJ prior: the user's SD prior family, with one
    scale per coefficient (the families must agree; flat priors cannot be used here)."""
    import pymc as pm

    pri = [ps.sd[c] for c in t.component_names]
    fams = {type(p) for p in pri}
    if len(fams) > 1 or any(p.flat for p in pri):
        fail(f"priors for the SDs of the correlated term {t.name!r} ({', '.join(t.component_names)}) "
             f"must share one proper family (its LKJ prior takes one SD distribution); got "
             f"{', '.join(repr(p) for p in pri)}")
    params = {k: np.array([p.params[k] for p in pri], dtype=float) for k in pri[0].params}
    name = pri[0].param_name
    if name is not None:  # the swept scales as model data, as for every other SD prior
        import pytensor.tensor as pt

        params[name] = pt.stack([prior_data(c, p) for c, p in zip(t.component_names, pri)])
    return getattr(pm, pri[0].pm_name).dist(**params, shape=t.p)


def _sampled_term(t, ps: PriorSet, centered: bool = False, data=None):
    """``(contribution to the linear predictor, [SD variables])`` of a sampled term; its codes and
    ``Z`` values from ``data`` (:func:`design_data`'s model data) when given."""
    import pymc as pm
    import pytensor.sparse as pts
    import pytensor.tensor as pt

    level_dim = f"{t.name}_level"
    data = data or {}
    codes = data.get(f"data_codes_{t.name}", t.codes)
    zvals = data.get(f"data_zvals_{t.name}")
    zvals = pt.as_tensor_variable(t.zvals) if zvals is None else zvals
    if t.scalar:
        sd = _sd_variable(ps, t.component_names[0])
        if centered:
            b = pm.Normal(f"re_{t.name}", 0.0, sd, dims=level_dim)
        else:
            z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=level_dim)
            b = pm.Deterministic(f"re_{t.name}", sd * z, dims=level_dim)
        if codes is not None:
            return zvals[:, 0] * b[codes], [sd]
        return pts.structured_dot(pts.as_sparse_variable(t.Z.tocsr()), b[:, None])[:, 0], [sd]
    if codes is None:
        fail(f"term {t.name!r}: non-centered sampling needs one level per observation")
    dims = (level_dim, f"{t.name}_coef")
    z = pm.Normal(f"z_{t.name}", 0.0, 1.0, dims=dims)
    if not t.correlated:
        sds = [_sd_variable(ps, c) for c in t.component_names]
        b = pm.Deterministic(f"re_{t.name}", z * pt.stack(sds)[None, :], dims=dims)
    else:
        chol, corr, stds = pm.LKJCholeskyCov(f"chol_{t.name}", n=t.p, eta=2.0, sd_dist=_lkj_sd_dist(t, ps),
                                             compute_corr=True)
        b = pm.Deterministic(f"re_{t.name}", pt.dot(z, chol.T), dims=dims)
        sds = [stds[j] for j in range(t.p)]
        r, c = np.tril_indices(t.p, -1)
        pm.Deterministic(f"corr_{t.name}", corr[r, c], dims=f"{t.name}_pair")
        pm.Deterministic(f"cov_{t.name}", corr[r, c] * stds[r] * stds[c], dims=f"{t.name}_pair")
    return pt.sum(zvals * b[codes], axis=1), sds
