"""Grouped posterior predictive checks on simulated data: a well-specified model gives moderate
p-values; a model that cannot reproduce a feature (group means held together by a very tight prior
on their SD; a heavy-tailed outlier) gets an extreme one."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    d = pd.DataFrame({"g": np.repeat(np.arange(12), 8)})
    d["y"] = rng.normal(0, 2.0, 12)[d.g] + rng.normal(0, 1.0, 96)
    return d


def _fit(d, priors=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bvc.VCModel.from_formula("y ~ 1 + (1|g)", d).sample(
            draws=300, tune=300, chains=2, random_seed=4, progressbar=False, priors=priors)


@pytest.fixture(scope="module")
def good(data):
    return _fit(data)


def test_well_specified_model_has_moderate_p_values(data, good):
    t = bvc.grouped_ppc(good, seed=1)
    assert list(t.index) == ["sd_means[g]", "sd_within[g]", "min", "max"]
    assert t["p_value"].between(0.02, 0.98).all(), t
    # the observed statistics are the data's own
    means = data.groupby("g").y.mean()
    assert np.isclose(t.loc["sd_means[g]", "observed"], means.std(ddof=1))
    assert np.isclose(t.loc["max", "observed"], data.y.max())


def test_misspecified_models_get_extreme_p_values(data):
    tight = _fit(data, {"g": bvc.HalfNormal(0.05)})  # no room for the group spread
    assert bvc.grouped_ppc(tight, seed=1).loc["sd_means[g]", "p_value"] < 0.01
    out = data.copy()
    out.loc[5, "y"] += 40.0  # one gross outlier: a normal model does not make such a maximum
    assert bvc.grouped_ppc(_fit(out), seed=1).loc["max", "p_value"] < 0.01


def test_plot(good):
    import matplotlib

    matplotlib.use("Agg")
    pc = bvc.plot_grouped_ppc(good, seed=2)
    assert pc is not None
