"""One residual SD per level (``residual_by=``) against
``nlme::lme(..., weights = varIdent(form = ~ 1 | grp))`` (tests/data/make_weights_reference.R).

nlme's optimum is reproducible to 4e-12 in logLik and 3e-7 relative in the SDs (its BFGS fit
against an independent maximisation of the dense likelihood, tests/data/README.md); our nested
optimizer stops at gtol 1e-9 on the log ratios: logLik atol 1e-6, SDs rtol 1e-5, fixed effects
rtol 1e-6. nlme's REML log-likelihood has lme4's constants (README), so the two compare directly."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "weights_reference.json").read_text())["lme_varIdent"]
CASES = {
    "orthodont_varident": ("Orthodont.csv", "distance ~ age + (1|Subject)", "Sex", ["Subject", "Sex"]),
    "sim_varident": ("varident_sim.csv", "y ~ x + (1|subject)", "grp", ["subject", "grp"]),
}
_FITS = {}


def fit(key, method):
    if (key, method) not in _FITS:
        name, formula, grp, factors = CASES[key]
        d = pd.read_csv(DATA / name, dtype={f: str for f in factors})
        m = bvc.VCModel.from_formula(formula, d, residual_by=grp)
        _FITS[key, method] = m.fit_reml(reml=method == "REML")
    return _FITS[key, method]


@pytest.mark.parametrize("key", sorted(CASES))
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_residual_by_equals_nlme_varident(key, method):
    ref = REF[key][method]
    r = fit(key, method)
    assert r.llf == pytest.approx(ref["logLik"], abs=1e-6)
    for level, sd in ref["varIdent"]["residual_sd"].items():
        assert r.residual_sd[level] == pytest.approx(sd, rel=1e-5)
    assert np.sqrt(r.vcomp.iloc[0]) == pytest.approx(ref["random_intercept_sd"], rel=1e-5)
    np.testing.assert_allclose(r.fe_params.values, list(ref["fixef"].values()), rtol=1e-6)
    # varIdent matters here: the fit without it is worse by more than optimizer noise
    assert ref["logLik"] - ref["without_varIdent"]["nlme"]["logLik"] > 1


def test_sim_varident_near_truth():
    """Simulated residual SDs 1, 2, 0.5 (225 rows, ~75 per level: SE of an SD ~ SD / sqrt(150))."""
    r = fit("sim_varident", "REML")
    for level, truth in {"g1": 1.0, "g2": 2.0, "g3": 0.5}.items():
        assert abs(r.residual_sd[level] - truth) < 4 * truth / np.sqrt(150)


def test_summary_one_residual_row_per_level():
    r = fit("sim_varident", "REML")
    rows = list(r.summary().tables["params"].index)
    assert [x for x in rows if x.startswith("Residual Var")] == [
        "Residual Var [grp=g1]", "Residual Var [grp=g2]", "Residual Var [grp=g3]"]
    assert set(r.to_dict()["variances"]) == {"subject", "Residual[g1]", "Residual[g2]", "Residual[g3]"}


def test_cli_residual_by(capsys):
    ref = REF["orthodont_varident"]["ML"]
    rc = main(["fit", str(DATA / "Orthodont.csv"), "distance ~ age + (1|Subject)", "--residual-by", "Sex",
               "--method", "ml", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["llf"] == pytest.approx(ref["logLik"], abs=1e-6)


def test_residual_by_bad_input():
    d = pd.DataFrame({"g": np.repeat(np.arange(5), 4), "h": "a", "y": np.arange(20.0) % 7})
    with pytest.raises(bvc.SpecificationError, match="residual_by 'h' has 1 level"):
        bvc.VCModel.from_formula("y ~ 1 + (1|g)", d, residual_by="h")
    with pytest.raises(bvc.SpecificationError, match="unknown column 'hh'"):
        bvc.VCModel.from_formula("y ~ 1 + (1|g)", d, residual_by="hh")


def test_residual_by_mode_not_yet():
    name, formula, grp, factors = CASES["orthodont_varident"]
    d = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    with pytest.raises(NotImplementedError, match="residual_by"):
        bvc.VCModel.from_formula(formula, d, residual_by=grp).fit_map()


def test_residual_by_nuts_agrees_with_reml():
    """Each level's SD gets its own prior; with ~75 observations per level the posterior medians
    lie within two posterior SDs of the REML estimates (prior and REML-vs-posterior differences
    are a fraction of a posterior SD; Monte Carlo error of a median from ~300 effective draws is
    ~0.07 posterior SD)."""
    import warnings

    name, formula, grp, factors = CASES["sim_varident"]
    d = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    m = bvc.VCModel.from_formula(formula, d, residual_by=grp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.SamplingWarning)
        post = m.sample(draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
    sb = post.posterior["sigma_by"]
    assert list(sb["residual_level"].values) == ["g1", "g2", "g3"]
    reml = fit("sim_varident", "REML")
    for level in ("g1", "g2", "g3"):
        x = sb.sel(residual_level=level).values.ravel()
        assert abs(np.median(x) - reml.residual_sd[level]) < 2 * x.std()
    assert post.idata["log_likelihood"]["y"].shape[-1] == m.design.nobs
