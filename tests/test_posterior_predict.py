"""Posterior predictions against the REML predictions on a larger simulated data set (their
difference must be Monte Carlo error plus the small gap between a posterior mean and a plug-in
estimate), new levels drawn from the population, and new observations."""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc


@pytest.fixture(scope="module")
def fits():
    rng = np.random.default_rng(20261202)
    G, n = 40, 15
    d = pd.DataFrame({"g": np.repeat(np.arange(G), n), "x": rng.normal(size=G * n)})
    d["y"] = 1.0 + 0.5 * d.x + rng.normal(0, 1.0, G)[d.g] + rng.normal(0, 1.0, G * n)
    m = bvc.VCModel.from_formula("y ~ x + (1|g)", d)
    post = m.sample(draws=500, tune=500, chains=2, random_seed=3, progressbar=False)
    return m.fit_reml(), post


NEW = pd.DataFrame({"g": [0, 1, 39, 999], "x": [0.0, 1.5, -2.0, 0.7]})


def _check_close(da, target):
    from arviz_stats import mcse

    mean = da.mean(("chain", "draw")).values
    err = mcse(da.to_dataset(name="m"), method="mean")["m"].values
    sd = da.std(("chain", "draw")).values
    # Monte Carlo error (4 MCSE), plus the gap between the posterior mean and the REML plug-in:
    # second order in the variance uncertainty, well under a tenth of a posterior SD here
    # (40 groups of 15)
    assert np.all(np.abs(mean - target) <= 4 * err + 0.1 * sd), (mean - target, err, sd)


def test_posterior_mean_predictions_agree_with_reml(fits):
    reml, post = fits
    _check_close(post.predict(), reml.predict().to_numpy())
    _check_close(post.predict(NEW), reml.predict(NEW).to_numpy())
    _check_close(post.predict(NEW, random_effects=False), reml.predict(NEW, random_effects=False).to_numpy())


def test_new_levels_sampled_from_the_population(fits):
    reml, post = fits
    pop = post.predict(NEW, random_effects=False)
    smp = post.predict(NEW, new_levels="sample", seed=5)
    same = post.predict(NEW)
    np.testing.assert_array_equal(smp.values[..., :3], same.values[..., :3])  # seen levels unchanged
    # a new group's mean: X beta + b, b ~ N(0, tau^2): variance E[tau^2] + Var(X beta)
    want = float(post.posterior["var"].sel(component="g").mean()) + float(pop.sel(obs=3).var())
    got = float(smp.sel(obs=3).var())
    assert abs(got / want - 1) < 0.15  # 1000 draws: the SE of a variance ratio is about 0.045
    with pytest.raises(bvc.SpecificationError, match="levels not seen in fitting: \\['999'\\]"):
        post.predict(NEW, new_levels="error")


def test_observation_draws_add_residual_noise(fits):
    reml, post = fits
    mean = post.predict(NEW)
    obs = post.predict(NEW, kind="observation", seed=2)
    want = mean.var(("chain", "draw")).values + float(post.posterior["scale"].mean())
    got = obs.var(("chain", "draw")).values
    assert np.all(np.abs(got / want - 1) < 0.15)
    s = bvc.predictive_summary(obs, ci_prob=0.9)
    assert list(s.index) == [0, 1, 2, 3]
    q = obs.quantile([0.05, 0.95], dim=("chain", "draw")).values
    np.testing.assert_allclose(s[["lower", "upper"]].to_numpy().T, q)
    with pytest.raises(bvc.SpecificationError, match="kind must be one of"):
        post.predict(kind="median")


def test_posterior_r2_brackets_the_reml_value(fits):
    reml, post = fits
    point, r = reml.r2(), post.r2(ci_prob=0.95)
    for k in ("marginal", "conditional"):
        assert r[k]["lower"] < point[k] < r[k]["upper"]
        # 40 groups: the posterior median is within a quarter of the interval of the REML value
        assert abs(r[k]["median"] - point[k]) < 0.25 * (r[k]["upper"] - r[k]["lower"])
    # truth: var(0.5 x) ~ 0.25, tau^2 = sigma^2 = 1 -> R2m ~ 0.1, R2c ~ 0.55
    assert 0.03 < point["marginal"] < 0.2 and 0.35 < point["conditional"] < 0.75
