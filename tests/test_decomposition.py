"""Variance shares, intraclass correlations and tidy random effects."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.estimators.information import variance_covariance
from bayesvc.views.decomposition import icc, ranef, variance_shares
from conftest import dense_information, parameter_values

DATA = Path(__file__).parent / "data"
NUTS = dict(draws=300, tune=300, chains=2, progressbar=False)


def _model(name, formula, factors, **kw):
    df = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    return bvc.VCModel.from_formula(formula, data=df, **kw)


@pytest.fixture(scope="module")
def pen():
    m = _model("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", ["plate", "sample"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m, m.fit_reml(), m.fit_map(), m.sample(random_seed=21, **NUTS)


@pytest.fixture(scope="module")
def pastes():
    m = _model("Pastes.csv", "strength ~ 1 + (1|batch/cask)", ["batch", "cask", "sample"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return m, m.fit_reml()


def test_reml_shares_sum_to_one(pen, pastes):
    for r in (pen[1], pastes[1]):
        s = variance_shares(r)
        assert list(s.columns) == ["component", "share", "lower", "upper", "method"]
        assert list(s.component) == [*r.vcomp.index, "Residual"]
        assert s.share.sum() == pytest.approx(1.0, abs=1e-12)
        assert (s.method == "REML").all()
        assert ((s.lower > 0) & (s.lower < s.share) & (s.share < s.upper) & (s.upper < 1)).all()
        expect = np.append(r.vcomp.to_numpy(), r.scale) / (r.vcomp.sum() + r.scale)
        np.testing.assert_allclose(s.share, expect, rtol=1e-12)


def test_reml_delta_covariance_matches_reported_ses(pen, pastes):
    """The information the views read (``cov_vc``, from differences of the analytic gradient) against
    the dense closed form: gradient differences are accurate to ~1e-8, the optimum to ~1e-8."""
    for m, r in ((pen[0], pen[1]), pastes):
        free, cov = variance_covariance(m.kernel, r.vcomp.to_numpy(), r.scale, r.method == "REML")
        want = np.linalg.inv(dense_information(r.design, parameter_values(r), r.scale, True))
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), np.sqrt(np.diag(want)), rtol=1e-5)
        np.testing.assert_allclose([*r.vcomp_se, r.scale_se], np.sqrt(np.diag(want)), rtol=1e-5)


def test_nuts_shares(pen):
    m, r, mo, p = pen
    s = variance_shares(p)
    assert (s.method == "NUTS").all()
    assert s.share.sum() == pytest.approx(1.0, abs=1e-12)
    post = p.posterior
    v = post["var"].sel(component="plate").values
    share = v / (post["var"].sum("component").values + post["scale"].values)
    assert s.share[0] == pytest.approx(share.mean(), rel=1e-12)
    assert s.lower[0] == pytest.approx(np.quantile(share, 0.025), rel=1e-12)
    # the posterior intervals contain the REML shares
    reml = variance_shares(r)
    assert ((s.lower < reml.share) & (reml.share < s.upper)).all()
    narrow = variance_shares(p, ci_prob=0.5)
    assert ((narrow.lower > s.lower) & (narrow.upper < s.upper)).all()


def test_map_shares(pen):
    m, r, mo, p = pen
    s = variance_shares(mo)
    assert (s.method == "MAP").all()
    assert s.share.sum() == pytest.approx(1.0, abs=1e-12)
    assert ((s.lower < s.share) & (s.share < s.upper)).all()


def test_boundary_share_has_no_interval():
    m = _model("Dyestuff2.csv", "Yield ~ 1 + (1|Batch)", ["Batch"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit_reml()
    s = variance_shares(r).set_index("component")
    assert s.share["Batch"] == 0.0 and s.share["Residual"] == 1.0
    assert s[["lower", "upper"]].isna().all().all()


def test_icc_nested_and_crossed(pen, pastes):
    m, r = pastes
    s = variance_shares(r).set_index("component").share
    i = icc(r).set_index("group")
    assert i.icc["batch"] == pytest.approx(s["batch"], rel=1e-12)
    assert i.icc["batch:cask"] == pytest.approx(s["batch"] + s["batch:cask"], rel=1e-12)
    assert i.components["batch:cask"] == "batch + batch:cask"
    assert (i.lower < i.icc).all() and (i.icc < i.upper).all()
    # crossed: each factor's ICC is its share
    pi = icc(pen[1]).set_index("group")
    ps = variance_shares(pen[1]).set_index("component")
    np.testing.assert_allclose(pi.icc, ps.share[pi.index], rtol=1e-12)
    np.testing.assert_allclose(pi.lower, ps.lower[pi.index], rtol=1e-12)


def test_icc_statsmodels_style_matches_lme4_style(pastes):
    m2 = _model("Pastes.csv", "strength ~ 1", ["batch", "cask"], groups="batch", re_formula="1",
                vc_formula={"cask": "0 + C(cask)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        i2 = icc(m2.fit_reml())
    i1 = icc(pastes[1])
    np.testing.assert_allclose(i2.icc, i1.icc, rtol=1e-5)
    assert list(i2.components) == ["batch", "batch + cask"]


def test_icc_nuts(pen):
    i = icc(pen[3])
    assert (i.method == "NUTS").all() and (i.lower < i.icc).all() and (i.icc < i.upper).all()


def test_icc_skips_random_slopes():
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    m = bvc.VCModel.from_formula("Reaction ~ Days + (1|Subject) + (0 + Days|Subject)", data=df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = m.fit_reml()
    assert len(r.vcomp) == 2
    i = icc(r)
    assert len(i) == 1
    s = variance_shares(r)
    assert s.share.sum() == pytest.approx(1.0)


def test_ranef_reml_equals_random_effects(pen):
    r = pen[1]
    t = ranef(r)
    ref = r.random_effects.table
    assert list(t.columns) == ["component", "term", "level", "coef", "mode", "cond_var", "cond_sd"]
    assert np.array_equal(t["mode"].to_numpy(), ref["mode"].to_numpy())
    assert np.array_equal(t["cond_var"].to_numpy(), ref["cond_var"].to_numpy())
    np.testing.assert_allclose(t.cond_sd ** 2, t.cond_var)
    assert list(t.level) == list(ref.level) and list(t.component) == list(ref.component)


def test_ranef_nuts(pen):
    m, r, mo, p = pen
    t = ranef(p, ci_prob=0.9)
    assert list(t.columns) == ["component", "term", "level", "coef", "mean", "sd", "median", "lower",
                               "upper"]
    ref = r.random_effects.table
    assert list(zip(t.component, t.level)) == list(zip(ref.component, ref.level))
    plate = t[t.component == "plate"]
    draws = p.posterior["re_plate"]
    np.testing.assert_allclose(plate["mean"], draws.mean(("chain", "draw")).values, rtol=1e-12)
    np.testing.assert_allclose(plate["lower"], draws.quantile(0.05, ("chain", "draw")).values, rtol=1e-12)
    assert ((t.lower < t["mean"]) & (t["mean"] < t.upper)).all()
    # posterior means agree with the conditional modes to within the posterior SD
    assert (np.abs(t["mean"].to_numpy() - ref["mode"].to_numpy()) < t["sd"].to_numpy()).all()


def test_ranef_rejects_mode(pen):
    with pytest.raises(TypeError, match="integrates"):
        ranef(pen[2])
    with pytest.raises(TypeError):
        variance_shares(object())
