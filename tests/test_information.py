"""The information matrix of the variance parameters, computed once by the estimator and read by
the views, against a closed form."""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc

from conftest import dense_information, load_factors, parameter_values


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


# ----------------------------------------------------------------------------- a dense closed form

@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", ["Reaction ~ 1 + Days + (1 + Days|Subject)",
                                     "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)"])
def test_information_matches_dense_closed_form(reml, formula):
    """sleepstudy, correlated (Richardson differences of the criterion) and uncorrelated (differences
    of the analytic gradient): the stored covariance of the variance parameters equals the inverse
    closed-form information. The step study below puts the Richardson error near 1e-7; the
    gradient differences are good to ~1e-8."""
    df = load_factors("sleepstudy.csv", ["Subject"])
    r = bvc.VCModel.from_formula(formula, data=df).fit_reml(reml=reml)
    want = np.linalg.inv(dense_information(r.design, parameter_values(r), r.scale, reml))
    names = list(r.cov_vc.index)
    assert names[-1] == "Residual" and len(names) == len(want)
    np.testing.assert_allclose(r.cov_vc.to_numpy(), want, rtol=1e-5,
                               atol=1e-5 * np.sqrt(np.outer(np.diag(want), np.diag(want))).max())
    if "Days|Subject)" in formula and "(1 + Days" in formula:
        se = r.cov_re_se["Subject"]
        assert se.loc["Days", "Intercept"] == pytest.approx(np.sqrt(want[1, 1]), rel=1e-5)


def test_richardson_step_study_converges():
    """The Richardson-extrapolated Hessian at steps around the one used (CORRELATED_REL_STEP):
    errors against the closed form fall as h^4 from large steps and rise as noise / h^2 at small
    ones; at the chosen step both are far below the 1e-5 of the test above."""
    from bayesvc.estimators import information

    df = load_factors("sleepstudy.csv", ["Subject"])
    m = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df)
    r = m.fit_reml()
    want = np.linalg.inv(dense_information(r.design, parameter_values(r), r.scale, True))
    errors = {}
    for step in (2e-2, information.CORRELATED_REL_STEP):
        old, information.CORRELATED_REL_STEP = information.CORRELATED_REL_STEP, step
        try:
            _, cov = information.parameter_covariance(m.kernel, r.theta, r.scale, True)
        finally:
            information.CORRELATED_REL_STEP = old
        errors[step] = np.max(np.abs(np.sqrt(np.diag(cov) / np.diag(want)) - 1))
    assert errors[information.CORRELATED_REL_STEP] < 1e-6
    assert errors[2e-2] > errors[information.CORRELATED_REL_STEP]  # truncation shrinks with the step


def test_correlated_information_on_a_large_design():
    """A sleepstudy-like design with 2,000 subjects (10 days each, correlated intercept and slope):
    the kernel's block update through a dense C1 (one batched product, what made the information
    ~10 times faster here) equals the sparse product that the kernel used before, the criterion
    to rounding (2,000 blocks summed: 1e-11 relative) and the information to the Richardson
    differences' noise (a few 1e-6 relative at this N, far above the criterion's agreement)."""
    from bayesvc.estimators.information import parameter_covariance
    from bayesvc.kernel import Kernel
    from bayesvc.kernel.criteria import objective_theta

    rng = np.random.default_rng(1)
    ns = 2000
    days = np.tile(np.arange(10.0), ns)
    subj = np.repeat(np.arange(ns), 10)
    y = (250 + 10 * days + rng.normal(0, 25, ns)[subj] + rng.normal(0, 6, ns)[subj] * days
         + rng.normal(0, 25, 10 * ns))
    df = pd.DataFrame({"Reaction": y, "Days": days, "Subject": subj.astype(str)})
    design = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df).design
    dense, sparse = Kernel(design), Kernel(design)
    sparse.DENSE_C1_MAX = 0
    for theta in ([1.0, 0.05, 0.24], [0.5, -0.2, 0.1], [2.0, 0.0, 0.0]):
        a, b = (objective_theta(k, np.array(theta), 625.0, True) for k in (dense, sparse))
        assert a == pytest.approx(b, rel=1e-11)
    theta, scale = np.array([1.0, 0.05, 0.24]), 625.0
    (na, ca), (nb, cb) = (parameter_covariance(k, theta, scale, True) for k in (dense, sparse))
    assert na == nb == ["Subject", "Subject: Intercept,Days", "Days|Subject", "Residual"]
    scale_ij = np.sqrt(np.outer(np.diag(cb), np.diag(cb)))      # entries relative to their SDs
    assert np.max(np.abs(ca - cb) / scale_ij) < 2e-5
