"""Tests that a variance component is zero: exact (R)LRT against RLRsim (reference numbers made by
tests/data/make_rlrsim_reference.R) and against the closed form of balanced one-way ANOVA, the
parametric bootstrap against the exact null, chi-bar-squared, and bad input."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import bayesvc as bvc
from bayesvc.design.reduce import drop_component
from bayesvc.estimators import lrt, rlrt
from bayesvc.estimators.parallel import executor_pool

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "rlrsim_reference.json").read_text())["tests"]
NSIM = 100_000

# key -> (csv, formula, tested component); models with mA/m0 are fitted as mA
CASES = {
    "dyestuff": ("Dyestuff.csv", "Yield ~ 1 + (1|Batch)", "Batch"),
    "dyestuff2": ("Dyestuff2.csv", "Yield ~ 1 + (1|Batch)", "Batch"),
    "sim_weak": ("rlrsim_sim_weak.csv", "y ~ 1 + (1|g)", "g"),
    "sim_absent": ("rlrsim_sim_absent.csv", "y ~ 1 + (1|g)", "g"),
    "pastes_sample": ("Pastes.csv", "strength ~ 1 + (1|batch) + (1|sample)", "sample"),
    "pastes_batch": ("Pastes.csv", "strength ~ 1 + (1|batch) + (1|sample)", "batch"),
    "sim_crossed_b": ("rlrsim_sim_crossed.csv", "y ~ 1 + (1|a) + (1|b)", "b"),
}
FACTORS = ["Batch", "g", "batch", "sample", "a", "b"]


def _model(key):
    csv, formula, _ = CASES[key]
    df = pd.read_csv(DATA / csv, dtype={f: str for f in FACTORS})
    return bvc.VCModel.from_formula(formula, data=df)


def _fit(key, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.BoundaryFitWarning)
        return _model(key).fit_reml(reml=reml)


def mc_tol(p_ref, n_ref, n_ours):
    """4 Monte Carlo SEs of each p-value (README of tests/data); 1e-9 when p is 0."""
    p = max(p_ref, 1.0 / n_ours)
    return 4 * np.sqrt(p * (1 - p) / n_ref) + 4 * np.sqrt(p * (1 - p) / n_ours)


TESTS = [(k, kind) for k in CASES for kind in ("exactRLRT", "exactLRT") if kind in REF[k]]


@pytest.fixture(scope="module", params=TESTS, ids=[f"{k}-{t}" for k, t in TESTS])
def case(request):
    key, kind = request.param
    fit = _fit(key, reml=kind == "exactRLRT")
    res = fit.test_component(CASES[key][2], method="exact", nsim=NSIM, seed=20240701)
    return key, kind, fit, res, REF[key][kind]


def test_statistic_equals_rlrsim(case):
    key, kind, fit, res, ref = case
    assert res.statistic_name == ref["statistic_name"]
    if ref["statistic_is_numerical_zero"]:
        assert res.statistic == 0.0 and res.p_value == 1.0   # P(T >= 0)
    else:
        assert res.statistic == pytest.approx(ref["statistic"], abs=1e-6)


def test_p_value_agrees_with_rlrsim_within_mc_error(case):
    key, kind, fit, res, ref = case
    assert res.nsim == NSIM and res.seed == 20240701
    if ref["statistic_is_numerical_zero"]:
        # RLRsim's p there is P(T > 0) = 1 - P(T = 0): compare the mass at zero instead
        p_pos = 1 - res.null_summary["prob_zero"]
        assert abs(p_pos - ref["p_value"]) <= mc_tol(ref["p_value"], ref["nsim"], NSIM)
        return
    assert abs(res.p_value - ref["p_value"]) <= mc_tol(ref["p_value"], ref["nsim"], NSIM)
    assert res.mc_se == pytest.approx(np.sqrt(res.p_value * (1 - res.p_value) / NSIM))
    assert res.approximate == ("tested_component" in ref)


def test_null_distribution_agrees_with_rlrsim(case):
    key, kind, fit, res, ref = case
    mine, theirs = res.null_summary, ref["null_distribution"]
    assert abs(mine["prob_zero"] - theirs["prob_zero"]) <= mc_tol(theirs["prob_zero"], theirs["n"], NSIM)
    # the mean of a variable with variance ~1: 4 SEs of two samples of 1e5
    assert abs(mine["mean"] - theirs["mean"]) <= 4 * np.sqrt(2 * theirs["var"] / NSIM)
    # the 0.95 quantile moves by about +-0.03 at 1e5 draws (README)
    assert mine["quantiles"]["0.95"] == pytest.approx(theirs["quantiles"]["0.95"], abs=0.08)


@pytest.mark.parametrize("key", ["dyestuff", "sim_weak", "sim_absent", "pastes_batch", "sim_crossed_b"])
def test_chibar_equals_rlrsims_formula(key):
    ref = REF[key]["exactRLRT"]
    res = _fit(key).test_component(CASES[key][2], method="chibar")
    assert res.approximate and res.nsim == 0 and res.mc_se == 0
    assert res.p_value == pytest.approx(ref["p_value_chibar_50_50"], rel=1e-6)
    assert res.to_dict()["method"] == "chibar"


def _balanced_anova_p(design, stat_reml):
    """Exact p of the RLRT in balanced one-way ANOVA without simulation: the RLRT is an
    increasing function of F = MSB / MSW above F = 1, and F ~ F(K - 1, n - K) under H0."""
    g = design.terms[0].codes
    y = design.y
    K, n = g.max() + 1, len(y)
    means = np.bincount(g, y) / np.bincount(g)
    msb = np.sum(np.bincount(g) * (means - y.mean()) ** 2) / (K - 1)
    msw = np.sum((y - means[g]) ** 2) / (n - K)
    return float(stats.f.sf(msb / msw, K - 1, n - K)), float(stats.f.cdf(1.0, K - 1, n - K))


@pytest.mark.parametrize("key", ["dyestuff", "sim_weak", "sim_absent"])
def test_exact_null_matches_the_closed_form_of_balanced_anova(key):
    fit = _fit(key)
    res = fit.test_component(CASES[key][2], nsim=NSIM, seed=7)
    p, p_zero = _balanced_anova_p(fit.design, res.statistic)
    assert abs(res.p_value - p) <= 4 * np.sqrt(p * (1 - p) / NSIM)
    # P(lambda_hat = 0) = P(F <= 1); RLRsim's grid search counts lambda_hat in (0, ~1e-5) as 0 too
    assert abs(res.null_summary["prob_zero"] - p_zero) <= 4 * np.sqrt(p_zero * (1 - p_zero) / NSIM)


def test_tied_eigenvalues_pool_into_one_chi_square():
    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(40), rng.normal(size=40)])
    Z = np.kron(np.eye(8), np.ones((5, 1)))
    w = rlrt.spectral_weights(X, Z)
    # Z'(I - P_X)Z has rank K - 1 = 7 here (a covariate breaks the balance of all but one value)
    assert w.mult.sum() == 7 and w.df_rest == 40 - 2 - 7
    mu_direct = np.linalg.svd((np.eye(40) - X @ np.linalg.pinv(X)) @ Z, compute_uv=False) ** 2
    mu_direct = mu_direct[mu_direct > 1e-9 * mu_direct.max()] / mu_direct.max()
    assert np.allclose(np.repeat(w.mu, w.mult), np.sort(mu_direct))


# ----------------------------------------------------------------------------- bootstrap

BOOT = 300


@pytest.mark.parametrize("key,reml", [("sim_weak", True), ("sim_absent", False)])
def test_bootstrap_agrees_with_the_exact_test(key, reml):
    fit = _fit(key, reml=reml)
    boot = fit.test_component(CASES[key][2], method="bootstrap", nsim=BOOT, seed=11)
    exact = fit.test_component(CASES[key][2], method="exact", nsim=NSIM, seed=11)
    assert boot.statistic == exact.statistic
    assert boot.nsim == BOOT and boot.executor == "serial" and not boot.approximate
    p = exact.p_value
    assert abs(boot.p_value - p) <= 4 * np.sqrt(p * (1 - p) / BOOT) + 1 / BOOT


def test_bootstrap_is_the_same_on_any_executor():
    fit = _fit("sim_absent")
    a = fit.test_component("g", method="bootstrap", nsim=120, seed=5)
    b = fit.test_component("g", method="bootstrap", nsim=120, seed=5, executor="threads", workers=2)
    assert b.executor == "threads(2)"
    np.testing.assert_array_equal(a.null_sample, b.null_sample)
    assert a.p_value == b.p_value


@pytest.mark.slow
def test_bootstrap_of_a_component_among_others_on_processes():
    """1,000 refits of both Pastes models in worker processes against Greven et al.'s
    approximation (which RLRsim's simulations support for nested designs)."""
    fit = _fit("pastes_batch")
    boot = fit.test_component("batch", method="bootstrap", nsim=1000, seed=3, executor="processes", workers=2)
    exact = fit.test_component("batch", nsim=NSIM, seed=3)
    assert boot.executor == "processes(2)"
    p = exact.p_value
    assert abs(boot.p_value - p) <= 4 * np.sqrt(p * (1 - p) / 1000) + 1e-3


def test_null_fit_simulates_from_the_model_without_the_component():
    fit = _fit("pastes_batch")
    null = lrt.NullFit(drop_component(fit.design, "batch"), None, True)
    assert [t.name for t in null.design.terms] == ["sample"]
    ref = REF["pastes_batch"]["exactRLRT"]["m0"]
    assert -0.5 * null.deviance == pytest.approx(ref["logLik"], abs=1e-6)
    assert null.scale == pytest.approx(ref["sigma"] ** 2, rel=1e-5)
    ys = np.array([null.simulate(np.random.default_rng(s)) for s in range(400)])
    # var(y_i) = sample variance + residual variance under the null fit
    want = ref["varcorr"][0]["vcov"] + ref["sigma"] ** 2
    assert ys.var(axis=0).mean() == pytest.approx(want, rel=4 * np.sqrt(2 / 400))


def test_a_column_of_an_uncorrelated_term_is_tested_alone():
    """One coefficient of an uncorrelated p = 2 term equals the same component as its own term."""
    import dataclasses

    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    split = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (Days||Subject)", data=df)
    joint = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df).design
    design = dataclasses.replace(joint, terms=(dataclasses.replace(joint.terms[0], correlated=False),))
    d0 = drop_component(design, "Days|Subject")
    assert d0.terms[0].coef_names == ("Intercept",) and d0.terms[0].Z.shape == (180, 18)
    a = bvc.fit_reml(design).test_component("Days|Subject", nsim=1000, seed=1)
    b = split.fit_reml().test_component("Days|Subject", nsim=1000, seed=1)
    assert a.statistic == pytest.approx(b.statistic, abs=1e-5) and a.approximate and b.approximate
    np.testing.assert_allclose(a.null_sample, b.null_sample, atol=1e-10)


# ----------------------------------------------------------------------------- input

def test_bad_input_is_one_line():
    fit = _fit("pastes_batch")
    with pytest.raises(bvc.SpecificationError, match="unknown component 'nope'"):
        fit.test_component("nope")
    with pytest.raises(bvc.SpecificationError, match="method must be one of"):
        fit.test_component("batch", method="score")
    with pytest.raises(bvc.SpecificationError, match="nsim must be a positive integer"):
        fit.test_component("batch", nsim=0)
    with pytest.raises(bvc.SpecificationError, match="no ML version"):
        _fit("pastes_batch", reml=False).test_component("batch")
    with pytest.raises(bvc.SpecificationError, match="executor must be"):
        fit.test_component("batch", method="bootstrap", nsim=10, executor="gpu")
    slopes = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corr = bvc.VCModel.from_formula("Reaction ~ Days + (Days|Subject)", data=slopes).fit_reml()
    with pytest.raises(bvc.SpecificationError, match=r"correlated term \(1 \+ Days \| Subject\)"):
        corr.test_component("Days|Subject")


def test_executor_rule_is_shared_with_the_sweeps():
    pool, owned, label = executor_pool(None, None, 4, "x")
    assert (owned, label) == (True, "threads(1)")
    pool.shutdown()
    with pytest.raises(bvc.SpecificationError, match="x: executor=0 threads"):
        executor_pool(0, None, 1, "x")
