"""NUTS for GLMMs (the non-centered joint model) against Laplace ML and against itself.

With many groups and flat-ish priors the posterior concentrates around the ML estimate: posterior
means of the fixed effects lie within a fraction of a posterior SD of the Laplace ML estimates (the
Laplace error and the prior shift are O(1/n_groups) of an SD); we allow 0.5 posterior SD plus four
Monte Carlo standard errors."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc


def _poisson(n_groups, seed):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(n_groups), 6)
    x = rng.normal(size=g.size)
    y = rng.poisson(np.exp(0.5 + 0.3 * x + 0.4 * rng.normal(size=n_groups)[g]))
    return pd.DataFrame({"y": y, "x": x, "g": g})


def _agree(post, ml, names):
    p = post.posterior
    for n in names:
        d = p["beta"].sel(fixed=n).values.ravel()
        mcse = d.std() / np.sqrt(len(d) / 4)  # ESS >= a quarter of the draws (checked below)
        assert abs(d.mean() - ml.fe_params[n]) < 0.5 * d.std() + 4 * mcse, n


def test_nuts_poisson_agrees_with_laplace_ml():
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", _poisson(60, 1), family="poisson")
    ml = m.fit_ml()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.SamplingWarning)
        post = m.sample(draws=300, tune=300, chains=2, random_seed=2, progressbar=False)
    assert post.marginalize == "none"
    assert set(post.posterior["re_g"].dims) == {"chain", "draw", "g_level"}
    assert float(post.diagnostics().loc["beta[x]", "ess_bulk"]) > 150
    _agree(post, ml, ["Intercept", "x"])
    sd = post.posterior["sd"].sel(component="g").values.ravel()
    assert abs(np.median(sd) - np.sqrt(ml.vcomp["g"])) < 2 * sd.std()
    # latent-scale residual: log(1 + 1/lambda) per draw
    assert float(post.posterior["scale"].mean()) == pytest.approx(ml.scale, rel=0.2)
    assert post.idata["log_likelihood"]["y"].shape[-1] == m.design.nobs


def test_glmm_nuts_refuses_collapse():
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", _poisson(10, 3), family="poisson")
    with pytest.raises(bvc.SpecificationError, match="non-centered"):
        m.sample(draws=10, tune=10, chains=1, marginalize="full")


@pytest.mark.slow
def test_nuts_binomial_long_run_agrees_with_short():
    """A long non-centered run (the reference) and a short one agree within Monte Carlo error."""
    d = pd.read_csv(__import__("pathlib").Path(__file__).parent / "data" / "cbpp.csv",
                    dtype={"herd": str, "period": str})
    m = bvc.VCModel.from_formula("cbind(incidence, size - incidence) ~ period + (1 | herd)", d,
                                 family="binomial")
    kw = dict(chains=2, progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.SamplingWarning)
        long = m.sample(draws=3000, tune=1000, random_seed=1, **kw).posterior
        short = m.sample(draws=500, tune=500, random_seed=2, **kw).posterior
    for v in ("beta", "sd"):
        a, b = long[v].values.reshape(-1, long[v].shape[-1]), short[v].values.reshape(-1, short[v].shape[-1])
        se = np.sqrt(a.var(0) / (len(a) / 4) + b.var(0) / (len(b) / 4))
        assert np.all(np.abs(a.mean(0) - b.mean(0)) < 4 * se)


def test_glmm_posterior_mode_near_laplace_ml():
    """With many groups the prior matters little: the mode (random effects integrated out by
    Laplace) is within a tenth of a standard error of the Laplace ML estimate."""
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", _poisson(60, 1), family="poisson")
    ml, mode = m.fit_ml(), m.fit_map()
    assert mode.converged and mode.method == "MAP"
    for n in ("Intercept", "x"):
        assert abs(mode.fe_params[n] - ml.fe_params[n]) < 0.1 * ml.bse_fe[n]
    assert mode.bse_fe["x"] == pytest.approx(ml.bse_fe["x"], rel=0.05)
    assert abs(mode.sd["g"] - np.sqrt(ml.vcomp["g"])) < 0.1 * np.sqrt(ml.vcomp["g"])
    # latent-scale shares read the mode too
    s = bvc.variance_shares(mode).set_index("component")
    assert s.share.sum() == pytest.approx(1.0)


def test_glmm_flat_priors_mode_equals_ml():
    """With flat priors the posterior mode is the Laplace ML estimate (to optimizer tolerance)."""
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", _poisson(30, 4), family="poisson")
    ml = m.fit_ml()
    flat = m.fit_map(priors={"g": bvc.Flat(positive=True), "Intercept": bvc.Flat(positive=False), "x": bvc.Flat(positive=False)})
    np.testing.assert_allclose(flat.fe_params.values, ml.fe_params.values, rtol=1e-4, atol=1e-6)
    assert flat.sd["g"] ** 2 == pytest.approx(ml.vcomp["g"], rel=1e-3)


def test_glmm_compare_table():
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", _poisson(30, 5), family="poisson")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c = m.compare(draws=100, tune=100, chains=1, random_seed=1)
    assert c.methods == ("ML (Laplace)", "MAP", "NUTS")
    t = c.table.set_index("parameter")
    assert t.loc["Residual", "reml"] == pytest.approx(m.fit_ml().scale)  # latent residual variance
