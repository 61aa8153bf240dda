"""Defects found while layering the package, each fixed and pinned here."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import bayesvc as bvc

from conftest import load_factors


@pytest.fixture(scope="module")
def pen():
    df = load_factors("Penicillin.csv", ["plate", "sample"])
    return bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=df)


def test_mode_summary_intervals_follow_alpha(pen):
    """ModeResult.summary(alpha=0.1) gives 90% intervals for fixed effects *and* variances."""
    mode = pen.fit_map()
    tab = mode.summary(alpha=0.1).tables["params"]
    se = np.sqrt(mode.cov.loc["log_sd[plate]", "log_sd[plate]"])
    q = norm.ppf(0.95)
    v = mode.vcomp["plate"]
    assert tab.loc["plate Var", "[0.05"] == pytest.approx(v * np.exp(-2 * q * se), rel=1e-12)
    assert tab.loc["plate Var", "0.95]"] == pytest.approx(v * np.exp(2 * q * se), rel=1e-12)
    b, bse = mode.fe_params["Intercept"], mode.bse_fe["Intercept"]
    assert tab.loc["Intercept", "0.95]"] == pytest.approx(b + q * bse, rel=1e-12)


def test_correlated_term_keeps_the_users_sd_prior():
    df = load_factors("sleepstudy.csv", ["Subject"])
    m = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df)
    model = m.build_pymc(priors={"Subject": bvc.HalfStudentT(3, 30.0), "Days|Subject": bvc.HalfStudentT(3, 8.0)},
                         marginalize=False)
    chol = model["chol_Subject"]
    sd_dist = chol.owner.inputs[-1]  # LKJCholeskyCov(n, eta, sd_dist)
    assert type(sd_dist.owner.op).__name__ == "HalfStudentTRV"
    np.testing.assert_allclose(sd_dist.owner.inputs[-1].eval(), [30.0, 8.0])  # the user's scales (model data)
    with pytest.raises(bvc.SpecificationError, match="share one proper family"):
        m.build_pymc(priors={"Subject": bvc.HalfNormal(30.0), "Days|Subject": bvc.HalfCauchy(8.0)},
                     marginalize=False)


def test_boundary_names_the_component_that_is_zero():
    """(0 + f | g): a zero diagonal element of Lambda with a nonzero row is a singular covariance,
    not a zero variance; the warning must not name a component whose variance is positive."""
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(12), 9)
    f = np.tile(np.repeat(["a", "b", "c"], 3), 12)
    u = rng.normal(size=12)
    eff = {"a": 1.0 * u, "b": 0.8 * u, "c": -0.6 * u}  # perfectly correlated: a rank-1 covariance
    y = np.array([eff[fi][gi] for fi, gi in zip(f, g)]) + 0.3 * rng.normal(size=g.size)
    m = bvc.VCModel.from_formula("y ~ 1 + (0 + f|g)", data=pd.DataFrame({"y": y, "f": f, "g": g}))
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = m.fit_reml()
    msgs = [str(w.message) for w in rec if issubclass(w.category, bvc.BoundaryFitWarning)]
    for comp in r.vcomp.index:
        if r.vcomp[comp] > 1e-6:
            assert not any(f"variance of {comp}" in s for s in msgs), (comp, msgs)
    assert set(r.boundary) == {c for c, v in r.vcomp.items() if v == 0}
    if r.opt.singular:
        assert any("singular" in s for s in msgs)


def test_conditional_covariances_size_guard(monkeypatch):
    """Above the size guard a non-scalar first term gets its block-diagonal part only, without
    building a q x q identity."""
    import bayesvc.kernel.conditional as cond

    df = load_factors("sleepstudy.csv", ["Subject"])
    d = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject) + (1|Days)", data=df).design
    k = bvc.Kernel(d)
    f = k.factorize(np.array([0.9, 0.1, 0.2, 0.5]))
    full = cond.conditional_covariances(k, f, 1.0)[k.first]
    monkeypatch.setattr(cond, "MAX_DENSE_CORRECTION", 0)
    monkeypatch.setattr(cond.np, "eye", lambda *a, **kw: pytest.fail("q x q identity built"))
    part = cond.conditional_covariances(k, f, 1.0)[k.first]
    assert np.all(np.diagonal(part, axis1=1, axis2=2) <= np.diagonal(full, axis1=1, axis2=2) + 1e-12)
    assert not np.allclose(part, full)
