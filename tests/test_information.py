"""The information matrix of the variance parameters, computed once by the estimator and read by
the views, against a closed form."""

import numpy as np
import pytest

import bayesvc as bvc

from conftest import load_factors


def test_balanced_one_way_matches_closed_form():
    """Balanced one-way (Dyestuff: a = 6 batches of n = 5): at a positive REML estimate the REML
    estimates are the ANOVA ones and the inverse information has the closed form
    Var(s2) = 2 s2^2 / (a (n - 1)), Var(v) = 2 / n^2 [lam^2 / (a - 1) + s2^2 / (a (n - 1))],
    Cov = -2 s2^2 / (n a (n - 1)), lam = s2 + n v (Searle, Casella & McCulloch 1992, sec. 3.7)."""
    df = load_factors("Dyestuff.csv", ["Batch"])
    r = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=df).fit_reml()
    a, n = 6, 5
    v, s2 = r.vcomp["Batch"], r.scale
    lam = s2 + n * v
    want = np.array([[2 / n**2 * (lam**2 / (a - 1) + s2**2 / (a * (n - 1))), -2 * s2**2 / (n * a * (n - 1))],
                     [-2 * s2**2 / (n * a * (n - 1)), 2 * s2**2 / (a * (n - 1))]])
    # the optimizer stops within ~1e-8 of the optimum; the gradient-difference Hessian is good to ~1e-7
    np.testing.assert_allclose(r.cov_vc.to_numpy(), want, rtol=1e-5)
    assert r.vcomp_se["Batch"] == pytest.approx(np.sqrt(want[0, 0]), rel=1e-5)
    assert r.scale_se == pytest.approx(np.sqrt(want[1, 1]), rel=1e-5)


def test_views_read_the_stored_information():
    """Variance shares take their delta-method intervals from the result's cov_vc: changing it
    changes them (no second Hessian anywhere)."""
    from dataclasses import replace

    df = load_factors("Penicillin.csv", ["plate", "sample"])
    r = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=df).fit_reml()
    s = bvc.variance_shares(r)
    wider = bvc.variance_shares(replace(r, cov_vc=4 * r.cov_vc))
    assert np.all((wider.upper - wider.lower) > (s.upper - s.lower))
