"""One verdict per component: REML estimate, profile interval, test of zero, posterior and prior
sensitivity joined in one sentence; in the comparison table and its JSON.

Dyestuff (Batch SD well away from zero) is fitted by NUTS twice through the compiled-model cache
(one compilation): with the default prior (supported) and with a half-normal prior of scale 5 on
the Batch SD (about 42 by REML), which the data contradict (prior-driven). The boundary case with a
posterior is Dyestuff2 in test_compare.py."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main
from bayesvc.errors import SpecificationError
from bayesvc.studies import ComponentVerdicts, component_verdicts, sample_cached
from bayesvc.studies import verdict as verdict_mod

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning",
                                        "ignore::bayesvc.BoundaryFitWarning")

DATA = Path(__file__).parent / "data"
KW = {"draws": 300, "tune": 300, "chains": 2, "progressbar": False}


@pytest.fixture(scope="module")
def dye():
    m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=pd.read_csv(DATA / "Dyestuff.csv"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        default = sample_cached(m, random_seed=1, **KW)
        conflict = sample_cached(m, priors={"Batch": bvc.HalfNormal(5)}, random_seed=1, **KW)
    return m, m.fit_reml(), default, conflict


def test_supported_component(dye):
    m, reml, default, _ = dye
    v = component_verdicts(reml, default, seed=3, kernel=m.kernel)
    row = v.table.loc["Batch"]
    assert row.verdict == "supported" and row.label == "supported"
    assert row.p_value < 0.05 and not row.ci_at_zero and row.p_negligible < 0.05
    assert row.diagnosis == "ok"
    ci = reml.conf_int().table.loc["Batch"]
    assert (row.ci_lower, row.ci_upper) == (ci.lower, ci.upper)
    sd = default.posterior["sd"].sel(component="Batch").values.ravel()
    assert row["median"] == pytest.approx(np.median(sd))
    assert row.sentence.startswith("supported: REML SD 42; RLRT p = 0.00")


def test_prior_driven_component(dye):
    m, reml, _, conflict = dye
    v = component_verdicts(reml, conflict, seed=3, kernel=m.kernel)
    row = v.table.loc["Batch"]
    assert row.p_value < 0.05 and row.diagnosis != "ok"
    assert row.verdict == "prior-driven"
    assert "depends on the prior" in row.sentence


def test_negligible_is_user_set(dye):
    m, reml, default, _ = dye
    sd = default.posterior["sd"].sel(component="Batch").values.ravel()
    sigma = default.posterior["sigma"].values.ravel()
    v = component_verdicts(reml, default, seed=3, negligible=0.8, kernel=m.kernel)
    assert v.negligible == 0.8
    assert v.table.loc["Batch", "p_negligible"] == pytest.approx(np.mean(sd < 0.8 * sigma))
    assert "below 0.8 residual SD" in v.table.loc["Batch", "sentence"]


def test_posterior_without_power_scaling(dye, monkeypatch):
    m, reml, default, _ = dye

    def no_prior(*a, **k):
        raise SpecificationError("sensitivity needs the log_prior group")

    monkeypatch.setattr(verdict_mod, "sensitivity", no_prior)
    v = component_verdicts(reml, default, seed=3)
    row = v.table.loc["Batch"]
    assert np.isnan(row.psense_prior) and row.verdict == "supported" and np.isfinite(row["median"])


def test_frequentist_only_at_the_boundary():
    m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=pd.read_csv(DATA / "Dyestuff2.csv"))
    v = component_verdicts(m.fit_reml(), seed=1, test="chibar")
    row = v.table.loc["Batch"]
    assert row.verdict == "at the boundary: the data cannot tell it from zero" and row.label == "boundary"
    assert row.p_value == 1.0 and row.ci_at_zero and np.isnan(row["median"])
    assert v.test == "chibar" and "chibar" in row.test


def test_rules():
    base = {"p_value": 0.01, "ci_lower": 1.0, "ci_at_zero": False, "p_negligible": 0.0,
            "diagnosis": "ok", "sweep_change": np.nan}
    rule = verdict_mod._verdict
    assert rule(base, 0.05) == verdict_mod.SUPPORTED
    assert rule({**base, "p_value": 0.2}, 0.05) == verdict_mod.BOUNDARY
    assert rule({**base, "p_value": 0.2, "diagnosis": "prior-dominated"}, 0.05) == verdict_mod.BOUNDARY
    assert rule({**base, "diagnosis": "prior-data conflict"}, 0.05) == verdict_mod.PRIOR_DRIVEN
    assert rule({**base, "sweep_change": 0.5}, 0.05) == verdict_mod.PRIOR_DRIVEN
    assert rule({**base, "sweep_change": 0.1}, 0.05) == verdict_mod.SUPPORTED
    assert rule({**base, "p_value": 0.01}, 0.005) == verdict_mod.BOUNDARY        # alpha is the user's
    # no test (correlated term): the interval, then the posterior decide
    nan = {**base, "p_value": np.nan}
    assert rule({**nan, "ci_at_zero": True}, 0.05) == verdict_mod.BOUNDARY
    assert rule({**nan, "ci_lower": np.nan, "p_negligible": 0.7}, 0.05) == verdict_mod.BOUNDARY
    assert rule({**nan, "ci_lower": np.nan, "p_negligible": 0.1}, 0.05) == verdict_mod.SUPPORTED


def test_comparison_shows_the_verdicts(dye):
    m, reml, default, _ = dye
    v = component_verdicts(reml, default, seed=3, kernel=m.kernel)
    c = bvc.compare(reml=reml, posterior=default, verdicts=v)
    pd.testing.assert_frame_equal(c.verdicts, v.table)
    text = str(c)
    assert "Verdict" in text and "Batch: supported: REML SD 42" in text.replace("\n", " ")
    assert "| Batch SD |" in c.to_markdown()
    d = c.to_dict()
    assert list(d) == ["rows", "verdicts"] and d["verdicts"] == v.to_dict()
    json.dumps(d)  # JSON-ready: NaN -> None
    assert d["verdicts"][0]["component"] == "Batch" and d["verdicts"][0]["sweep_change"] is None
    assert "verdicts" not in bvc.compare(reml=reml).to_dict()
    with pytest.raises(ValueError, match="verdicts are for components"):
        other = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=bvc.datasets.example_data()).fit_reml()
        bvc.compare(reml=other, verdicts=v)


def test_compare_model_computes_the_verdicts(dye):
    m, reml, default, _ = dye
    c = bvc.compare_model(m, reml=reml, posterior=default, random_seed=3, negligible=0.2)
    assert c.verdicts.loc["Batch", "label"] == "supported"
    assert "negligible: SD below 0.2 residual SD" in c.verdict_note
    assert bvc.compare_model(m, reml=reml, posterior=default, verdicts=False).verdicts is None


def test_bad_arguments(dye):
    m, reml, *_ = dye
    with pytest.raises(SpecificationError, match="negligible"):
        component_verdicts(reml, negligible=0)
    with pytest.raises(SpecificationError, match="alpha"):
        component_verdicts(reml, alpha=2)
    assert isinstance(component_verdicts(reml, seed=1, interval="wald"), ComponentVerdicts)


def test_cli_test_json(capsys):
    rc = main(["test", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)", "--component", "Batch", "--seed",
               "20240701", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert {"component", "statistic", "p_value", "method", "nsim"} <= set(got)
    ref = json.loads((DATA / "rlrsim_reference.json").read_text())["tests"]["dyestuff"]["exactRLRT"]
    assert got["component"] == "Batch" and got["method"] == "exact" and got["nsim"] == 100_000
    assert got["statistic"] == pytest.approx(ref["statistic"], abs=1e-6)
    p = ref["p_value"]
    assert abs(got["p_value"] - p) <= 8 * np.sqrt(p * (1 - p) / 1e5)


@pytest.mark.parametrize("argv,expect", [
    (["--method", "chibar"], "p = 0.005807"),
    (["--method", "exact", "--ml", "--nsim", "1000", "--seed", "1"], "LRT test of 'Batch' = 0 (ML fit)"),
    (["--method", "bootstrap", "--nsim", "20", "--seed", "1", "--executor", "threads", "--workers", "2"],
     "parametric bootstrap: 20 refits"),
])
def test_cli_test_text(capsys, argv, expect):
    rc = main(["test", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)", "--component", "Batch", *argv])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert expect in out


def test_cli_test_errors(capsys):
    rc = main(["test", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)", "--component", "Bat"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == [
        "bayesvc: error: unknown component 'Bat'; components are ['Batch']"]
    rc = main(["test", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)"])
    err = capsys.readouterr().err
    assert rc == 2 and "--component" in err and len(err.strip().splitlines()) == 1
