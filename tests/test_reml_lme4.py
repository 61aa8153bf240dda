"""REML and ML against lme4 (reference numbers made by tests/data/make_lme4_reference.R)."""

import pytest

import bayesvc as bvc

from conftest import load_factors

CASES = {
    "dyestuff": ("Dyestuff.csv", "Yield ~ 1 + (1|Batch)", ["Batch"]),
    "dyestuff2": ("Dyestuff2.csv", "Yield ~ 1 + (1|Batch)", ["Batch"]),
    "penicillin": ("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", ["plate", "sample"]),
    "pastes": ("Pastes.csv", "strength ~ 1 + (1|batch/cask)", ["batch", "cask"]),
    "sleepstudy_uncorr": ("sleepstudy.csv", "Reaction ~ 1 + Days + (Days||Subject)", ["Subject"]),
    "sleepstudy_corr": ("sleepstudy.csv", "Reaction ~ 1 + Days + (1 + Days|Subject)", ["Subject"]),
}

# lme4 names -> ours
NAME_MAP = {("pastes", "cask:batch"): "batch:cask", ("sleepstudy_uncorr", "Subject.1"): "Days|Subject"}


def lme4_variances(key, ref):
    out = {}
    for e in ref["varcorr"]:
        if e["grp"] == "Residual" or e["var2"] is not None:
            continue
        name = NAME_MAP.get((key, e["grp"]), e["grp"])
        if e["var1"] not in ("(Intercept)",) and "|" not in name:
            name = f"{e['var1']}|{name}"
        out[name] = e["vcov"]
    return out


@pytest.mark.parametrize("method", ["REML", "ML"])
@pytest.mark.parametrize("key", list(CASES))
def test_matches_lme4(key, method, lme4_ref):
    fname, formula, factors = CASES[key]
    ref = lme4_ref[key][method]
    df = load_factors(fname, factors)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.BoundaryFitWarning)
        res = bvc.VCModel.from_formula(formula, data=df).fit_reml(reml=method == "REML")
    assert res.converged
    assert res.llf == pytest.approx(ref["logLik"], abs=1e-4)
    assert res.llf >= ref["logLik"] - 1e-6  # never a worse optimum than lme4
    want = lme4_variances(key, ref)
    assert set(want) == set(res.vcomp.index)
    for name, v in want.items():
        if v < 1e-8:
            assert res.vcomp[name] == pytest.approx(0.0, abs=1e-6 * ref["sigma2"])
        else:
            assert res.vcomp[name] == pytest.approx(v, rel=1e-3)
    assert res.scale == pytest.approx(ref["sigma2"], rel=1e-3)
    fe = {("Intercept" if k == "(Intercept)" else k): v for k, v in ref["fixef"].items()}
    for k, v in fe.items():
        assert res.fe_params[k] == pytest.approx(v, rel=1e-4, abs=1e-6)
    se = {("Intercept" if k == "(Intercept)" else k): v for k, v in ref["fixef_se"].items()}
    for k, v in se.items():
        assert res.bse_fe[k] == pytest.approx(v, rel=2e-3)


def test_correlated_covariance_matches_lme4(lme4_ref):
    ref = lme4_ref["sleepstudy_corr"]["REML"]
    df = load_factors("sleepstudy.csv", ["Subject"])
    res = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df).fit_reml()
    cov = next(e["vcov"] for e in ref["varcorr"] if e["var2"] is not None)
    assert res.cov_re["Subject"].loc["Days", "Intercept"] == pytest.approx(cov, rel=5e-3)


def test_boundary_fit_is_reported_not_crashed(lme4_ref):
    df = load_factors("Dyestuff2.csv", ["Batch"])
    with pytest.warns(bvc.BoundaryFitWarning, match="Batch"):
        res = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=df).fit_reml()
    assert res.boundary == ("Batch",)
    assert res.vcomp["Batch"] == 0.0


def test_conditional_modes_match_lme4(lme4_ref):
    ref = lme4_ref["penicillin"]["REML"]["ranef"]
    df = load_factors("Penicillin.csv", ["plate", "sample"])
    res = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=df).fit_reml()
    for grp in ("plate", "sample"):
        got = res.random_effects[grp]
        for level, v in ref[grp]["values"].items():
            assert got.loc[level, "mode"] == pytest.approx(v, rel=1e-3, abs=1e-5)
            assert got.loc[level, "cond_var"] == pytest.approx(ref[grp]["postVar"][level], rel=2e-3)


@pytest.mark.parametrize("method", ["REML", "ML"])
def test_insteval_matches_lme4(method, lme4_ref):
    """The large crossed set (73,421 obs; 2,972 x 1,128 x 14 levels): a few seconds per fit."""
    ref = lme4_ref["insteval"][method]
    df = load_factors("InstEval.csv", ["s", "d", "dept", "service"])
    res = bvc.VCModel.from_formula("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", data=df).fit_reml(
        reml=method == "REML")
    assert res.llf == pytest.approx(ref["logLik"], abs=1e-4)
    for e in ref["varcorr"]:
        if e["grp"] != "Residual":
            assert res.vcomp[e["grp"]] == pytest.approx(e["vcov"], rel=1e-3)
    assert res.scale == pytest.approx(ref["sigma2"], rel=1e-3)
