"""The partial collapse integrates the largest factor out jointly with the small ones (Woodbury):
its log-likelihood against the dense multivariate normal, its exact conditional draws against the
closed-form Gaussian conditional, and the plan it chooses."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import multivariate_normal

import bayesvc as bvc
from bayesvc.estimators.bayes.model import design_data
from bayesvc.estimators.bayes.partial import draw_integrated, partial_loglik
from bayesvc.estimators.plan import MarginalizationPlan, plan_marginalization


@pytest.fixture(scope="module")
def crossed():
    """a: 120 levels (integrated), d: 70 (too many to join: sampled), b: 8 and c: 5 (joined)."""
    rng = np.random.default_rng(11)
    n = 400
    df = pd.DataFrame({"a": rng.integers(0, 120, n), "d": rng.integers(0, 70, n),
                       "b": rng.integers(0, 8, n), "c": rng.integers(0, 5, n), "x": rng.normal(size=n)})
    df["y"] = (1.0 + 0.5 * df.x + rng.normal(size=120)[df.a] + 0.7 * rng.normal(size=70)[df.d]
               + 0.8 * rng.normal(size=8)[df.b] + 0.5 * rng.normal(size=5)[df.c] + rng.normal(size=n))
    for col in "adbc":
        df[col] = df[col].astype(str)
    return bvc.VCModel.from_formula("y ~ 1 + x + (1|a) + (1|d) + (1|b) + (1|c)", data=df)


def _index(design, name):
    return [t.name for t in design.terms].index(name)


def _plan(design):
    return plan_marginalization(design, "partial")


def test_plan_joins_the_small_factors(crossed):
    d = crossed.design
    plan = _plan(d)
    assert plan.integrated_term == _index(d, "a")
    assert plan.joint == tuple(sorted((_index(d, "b"), _index(d, "c"))))
    assert _index(d, "d") not in plan.integrated
    assert "with it the small factors b, c" in plan.reason and plan.fixed


MU0, S0 = np.array([0.8, 0.4]), np.array([2.0, 0.7])  # a Normal fixed-effect prior


@pytest.mark.parametrize("joint, fixed", [(True, True), (True, False), (False, True), (False, False)])
def test_loglik_equals_the_dense_normal(crossed, joint, fixed):
    """log N(y | X beta + Z_d b_d, sigma^2 I + sum_j tau_j^2 Z_j Z_j') at arbitrary parameters, with
    and without the small factors joined (without: they are part of the mean), and with the fixed
    effects integrated over their Normal prior (``+ X diag(s0^2) X'``, mean ``X mu0``) or not."""
    import pytensor.tensor as pt

    d = crossed.design
    plan = _plan(d)
    assert plan.fixed
    plan = MarginalizationPlan("partial", plan.integrated_term, (), "test", plan.joint if joint else (), True)
    rng = np.random.default_rng(3)
    beta, sigma = (MU0 if fixed else np.array([0.3, -0.2])), 0.9
    tau = {"a": 1.3, "d": 0.6, "b": 0.7, "c": 0.45}
    mu = d.X @ beta
    V = sigma**2 * np.eye(d.nobs) + (d.X * S0**2) @ d.X.T * fixed
    for i, t in enumerate(d.terms):
        Z = t.Z.toarray()
        if i in plan.integrated:
            V += tau[t.name] ** 2 * Z @ Z.T
        else:
            mu = mu + Z @ rng.normal(size=t.n_levels)
    data = {k: pt.as_tensor_variable(v) for k, v in design_data(d, plan).items()}
    assert "data_joint_P" in data  # 120 levels, a handful of distinct counts: grouped
    sd_of = {t.component_names[0]: pt.as_tensor_variable(tau[t.name]) for t in d.terms}
    ref = multivariate_normal(mean=mu, cov=V).logpdf(d.y)
    ungrouped = {k: v for k, v in data.items() if k not in ("data_joint_P", "data_joint_a")}
    for dd in (data, ungrouped):
        ll = partial_loglik(d, plan, pt.as_tensor_variable(mu), pt.as_tensor_variable(sigma), sd_of, dd,
                            pt.as_tensor_variable(S0) if fixed else None).eval()
        assert ll == pytest.approx(ref, rel=1e-11, abs=1e-9)


@pytest.mark.parametrize("fixed", [True, False])
def test_conditional_draws_are_the_gaussian_conditional(crossed, fixed):
    """Many draws at one parameter value: their mean and variances equal the dense conditional
    ``b | y ~ N(P^{-1} Z'r / sigma^2, P^{-1})``, ``P = Z'Z / sigma^2 + diag(1/tau^2)``, within
    Monte Carlo error (4 standard errors per level; 4,000 draws); with ``fixed`` the fixed effects
    are drawn too, ``Z`` gaining ``X`` and the prior precision ``1/s0^2`` (mean ``mu0``)."""
    d = crossed.design
    plan = _plan(d)
    nd = 4000
    beta, sigma = np.array([0.8, 0.4]), 0.9
    tau = {"a": 1.3, "d": 0.6, "b": 0.7, "c": 0.45}
    comps = list(d.component_names)
    bd = np.random.default_rng(5).normal(size=d.terms[_index(d, "d")].n_levels)
    post = xr.Dataset({"beta": (("chain", "draw", "fixed"), np.broadcast_to(beta, (1, nd, 2))),
                       "sigma": (("chain", "draw"), np.full((1, nd), sigma)),
                       "sd": (("chain", "draw", "component"),
                              np.broadcast_to([tau[c] for c in comps], (1, nd, len(comps))))},
                      coords={"component": comps})
    if fixed:
        post = post.drop_vars("beta")
    draws = draw_integrated(d, plan, post, {"d": np.broadcast_to(bd, (1, nd, bd.size))},
                            np.random.default_rng(9), (MU0, S0) if fixed else None)
    idx = list(plan.integrated)
    Z = np.hstack([d.terms[i].Z.toarray() for i in idx] + ([d.X] if fixed else []))
    prior = np.concatenate([np.full(d.terms[i].n_levels, tau[d.terms[i].name] ** -2.0) for i in idx]
                           + ([S0**-2.0] if fixed else []))
    r = d.y - d.X @ (MU0 if fixed else beta) - d.terms[_index(d, "d")].Z @ bd
    P = Z.T @ Z / sigma**2 + np.diag(prior)
    cov = np.linalg.inv(P)
    mean = cov @ Z.T @ r / sigma**2 + (np.concatenate([np.zeros(Z.shape[1] - 2), MU0]) if fixed else 0)
    got = np.concatenate([draws[d.terms[i].name][0] for i in idx] + ([draws["beta"][0]] if fixed else []),
                         axis=1)
    se = np.sqrt(np.diag(cov) / nd)
    assert np.all(np.abs(got.mean(0) - mean) < 4 * se)
    # sample variances: relative SE sqrt(2 / nd) ~ 2.2%; 5 SE
    assert np.allclose(got.var(0), np.diag(cov), rtol=5 * np.sqrt(2 / nd))


def test_insteval_like_plan_joins_dept_service():
    """A large crossed design of InstEval's shape: the students are integrated out with the
    28-level factor, the lecturers sampled (centered: many ratings each)."""
    rng = np.random.default_rng(0)
    n = 20000
    df = pd.DataFrame({"s": rng.integers(0, 1500, n), "d": rng.integers(0, 500, n),
                       "ds": rng.integers(0, 28, n)})
    df["y"] = rng.normal(size=n)
    m = bvc.VCModel.from_formula("y ~ 1 + (1|s) + (1|d) + (1|ds)", data=df)
    plan = plan_marginalization(m.design, True, m.kernel)
    assert plan.kind == "partial"
    assert [m.design.terms[i].name for i in plan.integrated] == ["s", "ds"]
    assert [m.design.terms[i].name for i in plan.centered] == ["d"]


def test_posterior_equals_the_full_collapse(crossed):
    """NUTS on the partial collapse (a, b, c and the fixed effects integrated out, d sampled
    centered) and on the full collapse: the same quartiles of every SD, the residual SD and the
    fixed effects, within 4 combined Monte Carlo standard errors (arviz-stats' quantile MCSE)."""
    from arviz_stats import mcse

    kw = dict(draws=1000, tune=1000, chains=2, random_seed=3, progressbar=False)
    full = crossed.sample(**kw)
    part = crossed.sample(marginalize="partial", **kw)
    assert (full.marginalize, part.marginalize) == ("full", "partial")
    assert list(part.posterior["beta"].coords["fixed"].values) == ["Intercept", "x"]
    assert {f"re_{t.name}" for t in crossed.design.terms} <= set(part.posterior.data_vars)
    for var, dim in (("sd", "component"), ("beta", "fixed"), ("sigma", None)):
        for q in (0.25, 0.5, 0.75):
            keys = [None] if dim is None else list(full.posterior[var].coords[dim].values)
            for key in keys:
                a, b = (r.idata["posterior"].to_dataset()[var] for r in (full, part))
                if dim is not None:
                    a, b = a.sel({dim: key}), b.sel({dim: key})
                tol = 4 * np.hypot(mcse(a, method="quantile", prob=q).item(),
                                   mcse(b, method="quantile", prob=q).item())
                assert abs(float(a.quantile(q)) - float(b.quantile(q))) < tol, (var, key, q)
