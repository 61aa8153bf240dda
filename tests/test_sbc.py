"""Simulation-based calibration: a smoke test with tiny n, and (slow) the calibration of NUTS on a
small nested design, where uniform ranks are the theory (Talts et al. 2018)."""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc

PRIORS = {"Intercept": bvc.Normal(0, 2), "a": bvc.HalfNormal(1.0), "a:b": bvc.HalfNormal(1.0),
          "Residual": bvc.HalfNormal(1.0)}


def _nested():
    d = pd.DataFrame({"a": np.repeat(np.arange(6), 6), "b": np.tile(np.repeat(np.arange(3), 2), 6)})
    d["y"] = np.random.default_rng(0).normal(size=36)
    return bvc.VCModel.from_formula("y ~ 1 + (1|a/b)", d)


def test_sbc_smoke():
    r = bvc.sbc(_nested(), PRIORS, n=1, draws=20, tune=60, thin=2, seed=3)  # one refit: ~1 min
    assert list(r.ranks.columns) == ["Intercept", "sd[a]", "sd[a:b]", "sigma"]
    assert r.n_draws == 20 and len(r.ranks) == 1
    assert ((r.ranks >= 0) & (r.ranks <= 20)).all().all()
    assert (r.truth["sigma"] > 0).all()
    fig = r.plot()
    assert len(fig.axes) == 4
    with pytest.raises(bvc.SpecificationError, match="must be proper"):
        bvc.sbc(_nested(), {"Intercept": "flat"}, n=1)


def test_uniformity_rejects_biased_ranks():
    ranks = pd.DataFrame({"x": np.minimum(np.arange(100) % 41, 10)})  # piled at low ranks
    assert bvc.SBCResult(ranks, 40, ranks).uniformity().loc["x", "p_value"] < 1e-6


@pytest.mark.slow
def test_sbc_nested_design_is_calibrated():
    r = bvc.sbc(_nested(), PRIORS, n=100, draws=200, tune=300, thin=4, seed=20261202)
    u = r.uniformity()
    # each p-value is uniform under calibration; 4 parameters at 0.01 each
    assert (u["p_value"] > 0.01).all(), u
