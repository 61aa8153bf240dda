"""Prior weights (``weights=``) against ``lme4::lmer(..., weights = w)``
(reference numbers made by tests/data/make_weights_reference.R).

Tolerances follow tests/data/README.md: lme4's optimum is reproducible to 1.2e-9 in logLik and
8e-5 relative in theta across optimizers, so logLik atol 1e-6, fixed effects rtol 1e-6, sigma rtol
1e-5, theta rtol 5e-4."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "weights_reference.json").read_text())["lmer_weights"]
FACTORS = {"weights_sleepstudy.csv": ["Subject"], "weights_sim_crossed.csv": ["a", "b"],
           "weights_sim_nested.csv": ["site", "plot"]}


@pytest.fixture
def df():
    rng = np.random.default_rng(0)
    g = np.repeat(np.arange(8), 6)
    return pd.DataFrame({"g": g, "y": rng.normal(size=8)[g] + rng.normal(size=48)})


def _data(name):
    return pd.read_csv(DATA / name, dtype={f: str for f in FACTORS[name]})


@pytest.mark.parametrize("key", sorted(REF))
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_weights_equal_lmer(key, method):
    ref = REF[key][method]
    m = bvc.VCModel.from_formula(ref["formula"], _data(ref["data"]), weights="w")
    r = m.fit_reml(reml=method == "REML")
    assert r.llf == pytest.approx(ref["logLik"], abs=1e-6)
    np.testing.assert_allclose(r.fe_params.values, list(ref["fixef"].values()), rtol=1e-6)
    np.testing.assert_allclose(r.bse_fe.values if hasattr(r, "bse_fe") else
                               np.sqrt(np.diag(r.cov_fe.values)), list(ref["fixef_se"].values()), rtol=1e-5)
    assert np.sqrt(r.scale) == pytest.approx(ref["sigma"], rel=1e-5)
    theta = ref["theta"]
    if key == "sim_nested_w":  # lme4 orders plot:site before site; we keep formula order
        theta = {k: theta[k] for k in ("site.(Intercept)", "plot:site.(Intercept)")}
    np.testing.assert_allclose(r.theta, list(theta.values()), rtol=5e-4, atol=1e-8)
    # the weights matter: without them the fit is a different one
    assert abs(ref["unweighted"]["logLik"] - ref["logLik"]) > 1e-2


def test_unit_weights_change_nothing(df):
    a = bvc.VCModel.from_formula("y ~ 1 + (1|g)", df).fit_reml()
    b = bvc.VCModel.from_formula("y ~ 1 + (1|g)", df.assign(w=1.0), weights="w").fit_reml()
    assert b.llf == pytest.approx(a.llf, abs=1e-10)


def test_weights_scale_invariance(df):
    """Multiplying every weight by c is the same model with sigma^2 multiplied by c: the
    log-likelihood is unchanged (the -sum(log w) constant cancels the change of log sigma^2)."""
    rng = np.random.default_rng(1)
    d = df.assign(w=rng.uniform(0.5, 2, len(df)))
    a = bvc.VCModel.from_formula("y ~ 1 + (1|g)", d, weights="w").fit_ml()
    b = bvc.VCModel.from_formula("y ~ 1 + (1|g)", d.assign(w=4 * d.w), weights="w").fit_ml()
    assert b.scale == pytest.approx(4 * a.scale, rel=1e-6)
    assert b.llf == pytest.approx(a.llf, abs=1e-6)


def test_array_api_weights():
    ref = REF["sleepstudy_int_w"]["REML"]
    d = _data(ref["data"])
    X = np.column_stack([np.ones(len(d)), d.Days])
    r = bvc.VCModel(d.Reaction, X, d.Subject, weights=d.w.to_numpy()).fit_reml()
    assert r.llf == pytest.approx(ref["logLik"], abs=1e-6)


def test_collapsed_loglik_with_weights_matches_dense():
    """The kernel's collapsed log-likelihood equals the dense N(X beta, sigma^2 (Z Z' tau^2/sigma^2
    + W^-1)) density at an arbitrary point."""
    from scipy.stats import multivariate_normal

    ref = REF["sim_crossed_w"]["ML"]
    d = _data(ref["data"])
    m = bvc.VCModel.from_formula(ref["formula"], d, weights="w")
    beta, sigma, tau = np.array([1.5, 0.4]), 0.9, np.array([0.8, 0.5])
    Z = m.design.Z.toarray()
    ta = np.concatenate([np.full(t.q, s) for t, s in zip(m.design.terms, tau)])
    V = (Z * ta**2) @ Z.T + np.diag(sigma**2 / d.w.to_numpy())
    dense = multivariate_normal(m.design.X @ beta, V).logpdf(m.design.y)
    assert m.kernel.loglik(beta, sigma, tau) == pytest.approx(dense, abs=1e-8)
    from bayesvc.kernel.compiled import kernel_arrays, logp_grad
    arrays = kernel_arrays(m.kernel)
    assert logp_grad(beta, sigma, tau, arrays)[0] == pytest.approx(dense, abs=1e-8)


@pytest.mark.parametrize("bad,what", [(0.0, "positive"), (-1.0, "positive"), (np.nan, "missing")])
def test_bad_weights(df, bad, what):
    w = np.ones(len(df))
    w[3] = bad
    with pytest.raises(bvc.SpecificationError, match=what) as e:
        bvc.VCModel.from_formula("y ~ 1 + (1|g)", df.assign(w=w), weights="w")
    assert "\n" not in str(e.value) and "'w'" in str(e.value)


def test_unknown_weights_column(df):
    with pytest.raises(bvc.SpecificationError, match="unknown column 'ww'"):
        bvc.VCModel.from_formula("y ~ 1 + (1|g)", df, weights="ww")


def test_cli_weights(capsys):
    ref = REF["sleepstudy_int_w"]["ML"]
    rc = main(["fit", str(DATA / ref["data"]), ref["formula"], "--weights", "w", "--method", "ml", "--json"])
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rc == 0 and out["llf"] == pytest.approx(ref["logLik"], abs=1e-6)


def test_cli_bad_weights(capsys, tmp_path):
    d = _data("weights_sleepstudy.csv").assign(w=0.0)
    p = tmp_path / "d.csv"
    d.to_csv(p, index=False)
    rc = main(["fit", str(p), "Reaction ~ Days + (1|Subject)", "--weights", "w"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("bayesvc: error:") and "weights" in err[0]


@pytest.mark.slow
def test_nuts_collapsed_vs_noncentered_weights():
    """NUTS on the collapsed likelihood with weights agrees with the non-centered model (short
    runs, 2 chains: the posterior means of the SDs agree within a few Monte Carlo errors)."""
    ref = REF["sleepstudy_int_w"]["REML"]
    m = bvc.VCModel.from_formula(ref["formula"], _data(ref["data"]), weights="w")
    kw = dict(draws=400, tune=400, chains=2, random_seed=3, progressbar=False, log_likelihood=False)
    a = m.sample(marginalize="full", **kw).idata.posterior
    b = m.sample(marginalize=False, **kw).idata.posterior
    for v in ("sigma",):
        xa, xb = a[v].values.ravel(), b[v].values.ravel()
        se = np.sqrt(xa.var() / 200 + xb.var() / 200)  # ESS ~ 200 of 800 draws, conservatively
        assert abs(xa.mean() - xb.mean()) < 4 * se
