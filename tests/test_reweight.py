"""Prior sweeps by Pareto-smoothed importance reweighting of one fit (bayesvc.studies.reweight):
reweighted summaries against refits at the same grid points (within Monte Carlo error), k-hat per
point, and a drastic prior change refit."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.studies.reweight import KHAT_MAX, psis_weights, weighted_quantile

from conftest import load_factors

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning")

KW = {"draws": 1000, "tune": 500, "chains": 2, "random_seed": 4, "mode": False, "components": ["plate"]}
SCALES = (0.003, 0.5, 1.0, 2.0)


@pytest.fixture(scope="module")
def sweeps():
    model = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)",
                                     load_factors("Penicillin.csv", ["plate", "sample"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rw = bvc.prior_sweep(model, scales=SCALES, **KW)
        refit = bvc.prior_sweep(model, scales=SCALES, reweight=False, **KW)
    return rw, refit


def test_weighted_quantile_and_psis_on_known_weights():
    x = np.arange(10.0)
    assert weighted_quantile(x, np.full(10, 0.1), 0.5) == 4.0
    w, khat = psis_weights(np.zeros(4000))  # equal weights: exact
    np.testing.assert_allclose(w, 1 / 4000)
    assert khat == 0.0
    # log-normal weights with sd 0.3: light tails (k-hat well below 0.7), sd 3: heavy (above)
    rng = np.random.default_rng(0)
    assert psis_weights(0.3 * rng.normal(size=4000))[1] < KHAT_MAX
    assert psis_weights(3.0 * rng.normal(size=4000))[1] > KHAT_MAX
    # the direction: draws of N(0, 1) reweighted to N(0.3, 1) have mean 0.3 (a weight sign error
    # gives -0.3); the Monte Carlo SE of the weighted mean is ~1/sqrt(4000 * 0.9) = 0.017
    x = rng.normal(size=4000)
    w, khat = psis_weights(0.3 * x - 0.045)
    assert khat < KHAT_MAX
    assert abs(np.sum(w * x) - 0.3) < 4 * 0.017


def test_method_and_khat_per_point(sweeps):
    rw, refit = sweeps
    sd = rw.table[rw.table.parameter == "sd[plate]"].set_index("scale")
    assert {"method", "khat"} <= set(rw.table.columns)
    assert sd.loc[1.0, "method"] == "refit" and sd.loc[1.0, "khat"] == 0.0  # the base fit itself
    # plate's SD (24 plates) is data-dominated: halving or doubling its prior scale reweights well
    assert (sd.loc[[0.5, 2.0], "method"] == "reweighted").all()
    assert (sd.loc[[0.5, 2.0], "khat"] <= KHAT_MAX).all()
    # a prior scale 0.003 x the default puts the SD ~100x below its posterior: k-hat > 0.7, refit
    assert sd.loc[0.003, "method"] == "refit" and not sd.loc[0.003, "khat"] <= KHAT_MAX
    assert set(refit.table.method) == {"refit"}
    assert (rw.timings.method == "reweighted").sum() == 2


def test_reweighted_summaries_agree_with_refits(sweeps):
    rw, refit = sweeps
    key = ["scale", "parameter"]
    a = rw.table[rw.table.method == "reweighted"].set_index(key)
    b = refit.table.set_index(key).loc[a.index]
    for col in ("median", "mean"):
        # independent Monte Carlo estimates: the refit's MCSE, and the base draws' inflated by the
        # weights (ESS ratio); 4 combined standard errors. The median's MCSE bounds the mean's only
        # for near-symmetric posteriors (for a normal one it is 1.25x the mean's): the means of the
        # right-skewed variances (a 6-level factor's) are compared through their SDs instead
        rows = a.index if col == "median" else [i for i in a.index if not i[1].startswith("var[")]
        aa, bb = a.loc[rows], b.loc[rows]
        tol = 4 * bb.mcse_median.to_numpy() * np.sqrt(1 + bb.ess_bulk.to_numpy() / aa.ess_bulk.to_numpy())
        assert np.all(np.abs(aa[col].to_numpy() - bb[col].to_numpy()) < tol), (col, aa[col], bb[col], tol)
    # interval bounds: quantile MC error is larger in the tails; within 15% of the refit's width.
    # A variance's quantiles are its SD's squared (the same draws), so the SD rows carry the test
    sd_rows = [i for i in a.index if not i[1].startswith("var[")]
    a, b = a.loc[sd_rows], b.loc[sd_rows]
    width = (b.upper - b.lower).to_numpy()
    assert np.all(np.abs(a.lower.to_numpy() - b.lower.to_numpy()) < 0.15 * width)
    assert np.all(np.abs(a.upper.to_numpy() - b.upper.to_numpy()) < 0.15 * width)
