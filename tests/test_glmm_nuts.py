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
