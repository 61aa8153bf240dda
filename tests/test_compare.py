"""Comparison mode: REML / posterior mode / NUTS side by side, boundary flag, CLI JSON."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main
from bayesvc import compare_model
from bayesvc.views.comparison import COLUMNS, Comparison, compare, posterior_at_zero

DATA = Path(__file__).parent / "data"
PEN_FORMULA = "diameter ~ 1 + (1|plate) + (1|sample)"
DYE_FORMULA = "Yield ~ 1 + (1|Batch)"
NUTS = dict(draws=300, tune=300, chains=2, progressbar=False)


def _model(name, formula, factors):
    df = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    return bvc.VCModel.from_formula(formula, data=df)


@pytest.fixture(scope="module")
def pen():
    m = _model("Penicillin.csv", PEN_FORMULA, ["plate", "sample"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r, mo = m.fit_reml(), m.fit_map()
        p = m.sample(random_seed=11, **NUTS)
    return m, r, mo, p


@pytest.fixture(scope="module")
def dye2():
    """Dyestuff2 through compare_model (fits REML and the mode itself; NUTS given).

    compare_model's own NUTS call is exercised by the CLI test.
    """
    m = _model("Dyestuff2.csv", DYE_FORMULA, ["Batch"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = m.sample(random_seed=5, **NUTS)
        c = compare_model(m, posterior=p)
        r = m.fit_reml()
    return m, r, c, p


def test_columns_and_rows(pen):
    m, r, mo, p = pen
    t = compare(r, mo, p).table
    assert list(t.columns) == COLUMNS
    assert list(t.parameter) == ["Intercept", "plate", "sample", "Residual"]
    assert list(t.kind) == ["fixed", "variance", "variance", "variance"]


def test_reml_column_equals_reml_exactly(pen):
    m, r, mo, p = pen
    t = compare(r, mo, p).table
    expect = np.concatenate([r.fe_params.to_numpy(), r.vcomp.to_numpy(), [r.scale]])
    assert np.array_equal(t.reml.to_numpy(), expect)
    expect_se = np.concatenate([r.bse_fe.to_numpy(), r.vcomp_se.to_numpy(), [r.scale_se]])
    np.testing.assert_array_equal(t.reml_se.to_numpy(), expect_se)


def test_mode_and_posterior_columns(pen):
    m, r, mo, p = pen
    t = compare(r, mo, p, ci_prob=0.9).table.set_index("parameter")
    expect = np.concatenate([mo.fe_params.to_numpy(), mo.vcomp.to_numpy(), [mo.scale]])
    assert np.array_equal(t["mode"].to_numpy(), expect)
    s = p.param_summary(ci_prob=0.9)
    assert np.array_equal(t["mean"].to_numpy(), s.loc[t.index, "mean"].to_numpy())
    assert np.array_equal(t["median"].to_numpy(), s.loc[t.index, "median"].to_numpy())
    assert np.array_equal(t["lower"].to_numpy(), s.loc[t.index, "eti90_lb"].to_numpy())
    assert np.array_equal(t["upper"].to_numpy(), s.loc[t.index, "eti90_ub"].to_numpy())
    # the posterior means are the PosteriorResult's own
    assert t.loc["plate", "mean"] == pytest.approx(p.vcomp["plate"], rel=1e-12)
    assert t.loc["Residual", "mean"] == pytest.approx(p.scale, rel=1e-12)


def test_hdi_interval(pen):
    m, r, mo, p = pen
    t = compare(posterior=p, ci_kind="hdi").table.set_index("parameter")
    s = p.param_summary(ci_kind="hdi")
    assert np.array_equal(t["lower"].to_numpy(), s.loc[t.index, "hdi95_lb"].to_numpy())
    with pytest.raises(ValueError, match="ci_kind"):
        compare(posterior=p, ci_kind="box")


def test_boundary_false_for_penicillin(pen):
    m, r, mo, p = pen
    c = compare(r, mo, p)
    assert not c.table.boundary.any()
    assert c.boundary == []


def test_boundary_true_on_zero_variance_data(dye2):
    m, r, c, p = dye2
    assert r.vcomp["Batch"] == 0.0
    t = c.table.set_index("parameter")
    assert t.loc["Batch", "boundary"] and not t.loc["Residual", "boundary"]
    assert not t.loc["Intercept", "boundary"]
    assert c.boundary == ["Batch"]
    # the REML column of compare_model is the REML fit, exactly
    assert np.array_equal(t.reml.to_numpy(), [*r.fe_params, *r.vcomp, r.scale])


def test_boundary_from_each_source(dye2, pen):
    m, r, c, p = dye2
    # REML alone flags it (variance exactly zero)
    assert compare(reml=r).boundary == ["Batch"]
    # the posterior alone flags it too: its draws pile up at zero
    assert posterior_at_zero(p.posterior["var"].sel(component="Batch").values)
    assert compare(posterior=p).boundary == ["Batch"]
    assert compare(posterior=pen[3]).boundary == []


def test_posterior_at_zero_rule():
    rng = np.random.default_rng(0)
    half_normal_var = rng.normal(size=20000) ** 2  # 2.5% quantile / median ~ 0.002
    assert posterior_at_zero(half_normal_var)
    assert not posterior_at_zero(rng.gamma(5.0, size=20000))  # ~ 0.2
    # the threshold: 2.5% quantile below 2% of the median
    x = np.concatenate([np.full(30, 0.015), np.ones(970)])
    assert posterior_at_zero(x)
    x = np.concatenate([np.full(30, 0.025), np.ones(970)])
    assert not posterior_at_zero(x)
    assert posterior_at_zero(np.zeros(10))
    assert not posterior_at_zero([])


def test_renderings(pen):
    m, r, mo, p = pen
    c = compare(r, mo, p)
    text = str(c)
    for s in ("Estimator Comparison", "Intercept", "plate Var", "sample Var", "Residual Var",
              "REML SE", "Mode", "Median", "ETI 95% lower", "Chains x draws:"):
        assert s in text, s
    assert "<table" in c._repr_html_() and "plate Var" in c._repr_html_()
    assert "| plate Var |" in c.to_markdown()
    assert "\\begin{tabular}" in c.to_latex()
    assert "NUTS" in repr(c)


def test_partial_comparison_hides_missing_columns(pen):
    m, r, mo, p = pen
    c = compare(reml=r)
    assert c.methods == ("REML",)
    assert np.isnan(c.table["mean"]).all() and np.isnan(c.table["mode"]).all()
    head = [line for line in str(c).splitlines() if "REML SE" in line]
    assert len(head) == 1 and "Median" not in head[0] and "Mode" not in head[0]


def test_immutable(pen):
    m, r, mo, p = pen
    c = compare(r, mo, p)
    t = c.table
    t.loc[0, "reml"] = -1.0
    assert c.table.loc[0, "reml"] == r.fe_params.iloc[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.ci_prob = 0.5
    assert isinstance(c, Comparison)


def test_to_dict_contract(dye2):
    m, r, c, p = dye2
    d = c.to_dict()
    assert list(d) == ["rows", "verdicts"]   # compare_model adds the verdicts; bvc.compare: rows only
    assert list(compare(r, posterior=p).to_dict()) == ["rows"]
    assert [row["parameter"] for row in d["rows"]] == ["Intercept", "Batch", "Residual"]
    for row in d["rows"]:
        assert list(row) == COLUMNS
        assert row["kind"] in ("fixed", "variance")
        assert isinstance(row["boundary"], bool)
    batch = d["rows"][1]
    assert batch["reml"] == 0.0 and batch["reml_se"] is None  # NaN -> null
    json.dumps(d, allow_nan=False)


def test_bad_arguments(pen, dye2):
    with pytest.raises(ValueError, match="at least one"):
        compare()
    with pytest.raises(ValueError, match="different parameters"):
        compare(reml=pen[1], mode=dye2[1])
    with pytest.raises(ValueError, match="ci_prob"):
        compare(reml=pen[1], ci_prob=1.5)


def test_compare_model_reuses_given_results(pen):
    m, r, mo, p = pen
    c = compare_model(m, reml=r, mode=mo, posterior=p)
    pd.testing.assert_frame_equal(c.table, compare(r, mo, p).table)


def test_cli_compare_json(capsys):
    argv = ["compare", str(DATA / "Dyestuff2.csv"), DYE_FORMULA, "--json", "--draws", "200",
            "--tune", "200", "--chains", "2", "--seed", "3"]
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert list(got) == ["rows", "verdicts"]
    assert [v["component"] for v in got["verdicts"]] == ["Batch"]
    assert got["verdicts"][0]["label"] == "boundary" and got["verdicts"][0]["p_value"] == 1.0
    assert [r["parameter"] for r in got["rows"]] == ["Intercept", "Batch", "Residual"]
    for row in got["rows"]:
        assert set(row) == {"parameter", "kind", "reml", "reml_se", "mode", "mean", "median",
                            "lower", "upper", "boundary"}
    assert got["rows"][1]["boundary"] is True and got["rows"][1]["kind"] == "variance"
    assert got["rows"][0]["kind"] == "fixed"
    api = bvc.VCModel.from_formula(DYE_FORMULA, data=pd.read_csv(DATA / "Dyestuff2.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert got["rows"][2]["reml"] == api.fit_reml().scale


def test_compare_model_verdict_at_the_boundary(dye2):
    """Dyestuff2: REML puts the Batch SD at 0, so the exact RLRT has statistic 0 (p = 1), the REML
    profile interval reaches 0, and part of the posterior lies below 0.1 residual SD."""
    m, r, c, p = dye2
    row = c.verdicts.loc["Batch"]
    assert row.verdict == "at the boundary: the data cannot tell it from zero"
    assert row.statistic == 0 and row.p_value == 1.0 and row.ci_lower == 0 and row.ci_at_zero
    sd = p.posterior["sd"].sel(component="Batch").values.ravel()
    sigma = p.posterior["sigma"].values.ravel()
    assert row.p_negligible == pytest.approx(np.mean(sd < 0.1 * sigma)) and row.p_negligible > 0.05
    assert "the upper end of its posterior depends on the prior" in row.sentence
    assert "boundary" in str(c)


def test_cli_compare_without_verdicts(capsys):
    argv = ["compare", str(DATA / "Dyestuff2.csv"), DYE_FORMULA, "--json", "--draws", "100", "--tune", "100",
            "--chains", "1", "--seed", "3", "--no-verdicts"]
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert list(json.loads(out.strip().splitlines()[-1])) == ["rows"]
    rc = main(["compare", str(DATA / "Dyestuff.csv"), DYE_FORMULA, "--negligible", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and "--negligible" in err


def test_cli_compare_bad_ci_prob(capsys):
    rc = main(["compare", str(DATA / "Dyestuff.csv"), DYE_FORMULA, "--ci-prob", "1.5"])
    out, err = capsys.readouterr()
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayesvc: error: ") and "--ci-prob" in lines[0]


def _cbpp():
    d = pd.read_csv(DATA / "cbpp.csv", dtype={"herd": str, "period": str})
    return bvc.VCModel.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)", d,
                                    family="binomial")


@pytest.mark.parametrize("nagq, label", [(1, "ML (Laplace)"), (5, "ML (AGQ, 5 nodes)")])
def test_glmm_column_label(nagq, label):
    """A GLMM's frequentist column is its Laplace / quadrature ML fit, not "REML"."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = _cbpp().fit_ml(nagq=nagq)
    c = compare(reml=r)
    assert c.methods == (label,)
    params = c.summary().tables["params"]
    assert list(params.columns)[:2] == [label, f"{label} SE"]
    assert params.loc["herd Var", label] == pytest.approx(r.vcomp["herd"])
    text = str(c)
    assert f"{label} SE" in text and "REML" not in text


@pytest.mark.parametrize("reml, label", [(True, "REML"), (False, "ML")])
def test_gaussian_column_label(pen, reml, label):
    m = pen[0]
    r = m.fit_reml(reml=reml)
    params = compare(reml=r).summary().tables["params"]
    assert list(params.columns)[:2] == [label, f"{label} SE"]
    assert params.loc["plate Var", label] == pytest.approx(r.vcomp["plate"])
