"""Prior and posterior predictive groups under ArviZ's standard names, checked against the model's
implied moments (closed form for a random-intercept model)."""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(7)
    d = pd.DataFrame({"g": np.repeat(np.arange(8), 6)})
    d["y"] = rng.normal(size=8)[d.g] + rng.normal(size=48)
    return bvc.VCModel.from_formula("y ~ 1 + (1|g)", d)


def test_prior_predictive_moments(small):
    pri = {"g": bvc.HalfNormal(1.0), "Residual": bvc.HalfNormal(1.0), "Intercept": bvc.Normal(0, 1)}
    dt = small.sample_prior_predictive(draws=4000, random_seed=3, priors=pri)
    assert {"prior", "prior_predictive", "observed_data"} <= set(dt.children)
    y = dt["prior_predictive"]["y"].values.reshape(-1, 48)
    np.testing.assert_array_equal(dt["observed_data"]["y"].values, small.design.y)
    # Var(y_i) = Var(beta) + E[tau^2] + E[sigma^2] = 1 + 1 + 1 (half-normal(1): E[s^2] = 1)
    # 4000 draws x 48 correlated values: the variance estimate is within about 5% (SE ~ 2.5%)
    assert abs(y.var() / 3.0 - 1) < 0.08
    # same group: Cov(y_i, y_j) = Var(beta) + E[tau^2] = 2
    assert abs(np.cov(y[:, 0], y[:, 1])[0, 1] / 2.0 - 1) < 0.12
    with pytest.raises(bvc.SpecificationError, match="flat prior cannot be simulated"):
        small.sample_prior_predictive(draws=5, priors={"Intercept": "flat"})


def test_posterior_predictive_group(small):
    with pytest.warns(bvc.SamplingWarning):  # 600 draws: fewer than 400 effective for some
        post = small.sample(draws=300, tune=300, chains=2, random_seed=2, progressbar=False)
    dt = post.posterior_predictive(seed=4)
    yrep = dt["posterior_predictive"]["y"]
    assert yrep.dims == ("chain", "draw", "obs") and yrep.shape == (2, 300, 48)
    assert {"posterior", "observed_data", "log_likelihood"} <= set(dt.children)
    assert "posterior_predictive" not in post.idata.children  # the result is not changed
    # replicated data are centred on the fitted means: mean over draws ~ posterior mean of mu
    mu = post.predict().mean(("chain", "draw")).values
    sd = float(np.sqrt(post.posterior["scale"].mean()))
    assert np.all(np.abs(yrep.mean(("chain", "draw")).values - mu) < 5 * sd / np.sqrt(600))
