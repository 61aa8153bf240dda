"""REML predictions against lme4's predict() (tests/data/lme4_predict.json, made by
make_predict_reference.R): fitting data and new data, with and without random effects, new levels,
random slopes. Tolerance 1e-6 relative: the reference's optimizer sensitivity is 6e-7 relative for
predictions with random effects and 1e-12 for X beta (tests/data/README.md)."""

import json

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from conftest import DATA, load

REF = json.loads((DATA / "lme4_predict.json").read_text())["models"]
RTOL = 1e-6


def _newdata(name):
    nd = pd.read_csv(DATA / name, dtype=str)
    for c in nd.columns:
        try:
            nd[c] = pd.to_numeric(nd[c])
        except ValueError:
            pass
    return nd


@pytest.fixture(scope="module", params=sorted(REF))
def case(request):
    m = REF[request.param]
    fit = bvc.VCModel.from_formula(m["formula"], load(m["data"])).fit_reml()
    return m, fit, _newdata(m["newdata_file"])


def test_fitting_data_equals_lme4(case):
    m, fit, _ = case
    fd = m["predict"]["fitting_data"]
    np.testing.assert_allclose(fit.predict(), fd["re_form_NULL"], rtol=RTOL)
    np.testing.assert_allclose(fit.predict(random_effects=False), fd["re_form_NA"], rtol=RTOL)


def test_newdata_with_new_levels_equals_lme4(case):
    m, fit, nd = case
    ref = m["predict"]["newdata"]
    got = fit.predict(nd)
    assert list(got.index) == list(nd.index)
    np.testing.assert_allclose(got, ref["re_form_NULL_allow_new_levels"], rtol=RTOL)
    np.testing.assert_allclose(fit.predict(nd, random_effects=False), ref["re_form_NA"], rtol=RTOL)


def test_all_new_rows_are_the_population_prediction(case):
    _m, fit, nd = case
    status = nd["status"].str.count("existing")
    new = status == 0
    assert new.any()
    np.testing.assert_allclose(fit.predict(nd)[new], fit.predict(nd, random_effects=False)[new], rtol=1e-12)


def test_new_levels_error_names_column_and_levels(case):
    _m, fit, nd = case
    with pytest.raises(bvc.SpecificationError, match=r"newdata column '.*' has levels not seen in fitting: \["):
        fit.predict(nd, new_levels="error")
    seen = nd[nd["status"].str.count("new") == 0]
    np.testing.assert_allclose(fit.predict(seen, new_levels="error"), fit.predict(seen))


def test_bad_newdata_is_one_line():
    m = REF["sleepstudy_corr"]
    fit = bvc.VCModel.from_formula(m["formula"], load(m["data"])).fit_reml()
    with pytest.raises(bvc.SpecificationError, match="unknown column 'Days' in newdata") as e:
        fit.predict(pd.DataFrame({"Subject": ["308"]}))
    assert "\n" not in str(e.value)
    with pytest.raises(bvc.SpecificationError, match="new_levels must be one of"):
        fit.predict(new_levels="nope")
    with pytest.raises(bvc.SpecificationError, match="needs posterior draws"):
        fit.predict(new_levels="sample")
    with pytest.raises(bvc.SpecificationError, match="missing values"):
        fit.predict(pd.DataFrame({"Subject": ["308"], "Days": [np.nan]}))


def test_categorical_fixed_effect_keeps_the_fit_encoding():
    rng = np.random.default_rng(4)
    d = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "f": np.tile(["lo", "mid", "hi"], 20)})
    d["y"] = rng.normal(size=10)[d.g] + d.f.map({"lo": 0.0, "mid": 1.0, "hi": 3.0}) + rng.normal(size=60)
    fit = bvc.VCModel.from_formula("y ~ f + (1|g)", d).fit_reml()
    nd = d.iloc[[5, 0, 13]].reset_index(drop=True)
    np.testing.assert_allclose(fit.predict(nd), fit.predict().iloc[[5, 0, 13]], rtol=1e-12)
    with pytest.raises(bvc.SpecificationError, match="newdata: The levels"):
        fit.predict(pd.DataFrame({"g": [0], "f": ["other"]}))


# ----------------------------------------------------------------------------- R-squared

def _closed_form_r2(m):
    """Nakagawa-Schielzeth from lme4's own estimates (fixef, VarCorr, sigma) and the data."""
    d = load(m["data"])
    fe = m["fixef"]
    xb = fe["(Intercept)"] + (fe["Days"] * d["Days"] if "Days" in fe else np.zeros(len(d)))
    v_f = np.var(xb, ddof=1)
    v_r = 0.0
    for row in m["varcorr"]:
        if row["grp"] == "Residual":
            continue
        if row["var2"] is None:
            z = 1.0 if row["var1"] == "(Intercept)" else d[row["var1"]]
            v_r += row["vcov"] * np.mean(z * z)
        else:  # covariance of intercept and slope: 2 cov mean(z1 z2)
            z1 = 1.0 if row["var1"] == "(Intercept)" else d[row["var1"]]
            z2 = 1.0 if row["var2"] == "(Intercept)" else d[row["var2"]]
            v_r += 2 * row["vcov"] * np.mean(z1 * z2)
    tot = v_f + v_r + m["sigma"] ** 2
    return v_f / tot, (v_f + v_r) / tot


def test_r2_equals_the_reference(case):
    m, fit, _ = case
    got = fit.r2()
    ref = m["r2_nakagawa"]
    marg, cond = _closed_form_r2(m)
    # README: R-squared agrees across lme4's optimizers to 1e-6 absolute
    assert abs(got["marginal"] - ref["R2_marginal"]) < 1e-5
    assert abs(got["conditional"] - ref["R2_conditional"]) < 1e-5
    assert abs(marg - ref["R2_marginal"]) < 1e-9 and abs(cond - ref["R2_conditional"]) < 1e-9


def test_pickled_fit_keeps_numbers_and_says_why_newdata_fails(case):
    """A design travels to worker processes by pickle without formulae's encodings (they hold
    modules): its fitted-data predictions are unchanged; new data gets a one-line reason."""
    import pickle

    m, fit, nd = case
    back = pickle.loads(pickle.dumps(fit))
    np.testing.assert_array_equal(back.predict(), fit.predict())
    with pytest.raises(bvc.SpecificationError, match="unpickled"):
        back.predict(nd)
