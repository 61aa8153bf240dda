"""The Bayesian engine: collapsed NUTS, exact random-effect draws, posterior mode, ArviZ output.

Sampling tests use fixed seeds and small draws; tolerances are multiples of the Monte Carlo
standard error (MCSE) reported by arviz-stats, so they fail only when the samplers disagree.
"""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc

from conftest import load_factors

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning")


@pytest.fixture(scope="module")
def small_nested():
    rng = np.random.default_rng(7)
    g1 = np.repeat(np.arange(15), 12)
    g2 = np.tile(np.repeat(np.arange(4), 3), 15)
    y = 10 + 1.5 * rng.normal(size=15)[g1] + 1.0 * rng.normal(size=(15, 4))[g1, g2] + rng.normal(size=g1.size)
    return pd.DataFrame({"y": y, "g1": g1, "g2": g2})


@pytest.fixture(scope="module")
def penicillin():
    return load_factors("Penicillin.csv", ["plate", "sample"])


def _quantiles(res, q=(0.25, 0.5, 0.75)):
    v = res.posterior["sd"].stack(s=("chain", "draw")).values
    return np.quantile(v, q, axis=-1)


def _mcse_quantile(res, q):
    from arviz_stats import mcse

    return np.array([mcse(res.idata["posterior"].to_dataset()["sd"].sel(component=c), method="quantile", prob=q).item()
                     for c in res.design.component_names])


@pytest.mark.parametrize("which", ["nested", "crossed"])
def test_collapsed_equals_noncentered(which, small_nested, penicillin):
    if which == "nested":
        m = bvc.VCModel.from_formula("y ~ 1 + (1|g1/g2)", data=small_nested)
    else:
        m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=11, progressbar=False)
    col = m.sample(**kw)
    nc = m.sample(marginalize=False, log_likelihood=False, **kw)
    for q in (0.25, 0.5, 0.75):
        a, b = _quantiles(col, [q])[0], _quantiles(nc, [q])[0]
        tol = 4 * np.sqrt(_mcse_quantile(col, q) ** 2 + _mcse_quantile(nc, q) ** 2)
        assert np.all(np.abs(a - b) < tol), (q, a, b, tol)


def test_reproducible_with_seed(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    a = m.sample(draws=100, tune=100, chains=1, random_seed=5, progressbar=False)
    b = m.sample(draws=100, tune=100, chains=1, random_seed=5, progressbar=False)
    np.testing.assert_array_equal(a.posterior["sd"].values, b.posterior["sd"].values)
    np.testing.assert_array_equal(a.posterior["re_plate"].values, b.posterior["re_plate"].values)


def test_datatree_groups_and_dims(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    r = m.sample(draws=200, tune=200, chains=2, random_seed=1, progressbar=False)
    dt = r.idata
    for g in ("posterior", "sample_stats", "log_likelihood", "log_prior", "observed_data"):
        assert g in dt.children, g
    post = r.posterior
    assert list(post["sd"].component.values) == ["plate", "sample"]
    assert list(post["beta"].fixed.values) == ["Intercept"]
    assert post["re_plate"].dims == ("chain", "draw", "plate_level")
    assert list(post["re_sample"].sample_level.values) == list("ABCDEF")
    np.testing.assert_allclose(post["var"].values, post["sd"].values ** 2)
    assert dt["log_likelihood"]["y"].shape == (2, 200, len(penicillin))
    # log_prior holds the half-normal default evaluated at the draws
    sd_y = np.std(penicillin.diameter)
    from scipy.stats import halfnorm

    np.testing.assert_allclose(dt["log_prior"]["sigma"].values,
                               halfnorm.logpdf(post["sigma"].values, scale=2.5 * sd_y))


def test_exact_random_effect_draws_match_conditional_modes(penicillin):
    """Posterior means of the drawn effects track REML's conditional modes (same model, many groups)."""
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    r = m.sample(draws=500, tune=500, chains=2, random_seed=3, progressbar=False)
    reml = m.fit_reml()
    got = r.posterior["re_plate"].mean(("chain", "draw")).values
    want = reml.random_effects["plate"]["mode"].to_numpy()
    assert np.corrcoef(got, want)[0, 1] > 0.99
    assert np.max(np.abs(got - want)) < 0.15


def test_seed_designs_posterior_near_reml(seed_nested, seed_crossed):
    fits = [
        (seed_nested, "y ~ 1 + (1|group1/group2)"),
        (seed_crossed, "y ~ 1 + (1|group1) + (1|group2)"),
    ]
    for df, f in fits:
        m = bvc.VCModel.from_formula(f, data=df)
        r = m.sample(draws=300, tune=300, chains=2, random_seed=2, progressbar=False, thin_random_effects=10)
        reml = m.fit_reml()
        s = r.param_summary()
        for c in reml.vcomp.index:
            assert abs(s.loc[c, "median"] - reml.vcomp[c]) < 2 * s.loc[c, "sd"], c
        assert abs(s.loc["Residual", "median"] - reml.scale) < 2 * s.loc["Residual", "sd"]
        assert r.divergences == 0


def test_posterior_mode_equals_reml_and_ml(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    flat = {"plate": bvc.Flat(), "sample": bvc.Flat(), "Residual": bvc.Flat(), "fixed": "flat"}
    reml, ml = m.fit_reml(), m.fit_reml(reml=False)
    a = m.fit_map(priors=flat, integrate_fixed=True)
    np.testing.assert_allclose(a.vcomp.values, reml.vcomp.values, rtol=1e-5)
    assert a.scale == pytest.approx(reml.scale, rel=1e-5)
    b = m.fit_map(priors=flat)
    np.testing.assert_allclose(b.vcomp.values, ml.vcomp.values, rtol=1e-5)
    assert b.fe_params["Intercept"] == pytest.approx(ml.fe_params["Intercept"], rel=1e-6)
    # the default half-normal priors pull the mode below ML, never above it for these SDs
    c = m.fit_map()
    assert np.all(c.vcomp.values < ml.vcomp.values)
    assert np.all(c.vcomp_interval["lower"] < c.vcomp) and np.all(c.vcomp < c.vcomp_interval["upper"])


def test_priors_override_and_validation(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    model = m.build_pymc(priors={"plate": bvc.HalfStudentT(3, 2.0), "Residual": bvc.Exponential(1.0)})
    assert {"beta", "sigma", "sd_plate", "sd_sample"} <= {v.name for v in model.free_RVs}
    with pytest.raises(bvc.SpecificationError, match="unknown parameter 'plates'"):
        m.build_pymc(priors={"plates": bvc.HalfNormal(1)})
    with pytest.raises(bvc.SpecificationError, match="priors\\['plate'\\]"):
        m.build_pymc(priors={"plate": 3.0})


def test_correlated_terms_sample_noncentered():
    df = load_factors("sleepstudy.csv", ["Subject"])
    m = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df)
    with pytest.warns(UserWarning, match="non-centered"):
        r = m.sample(draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
    assert r.marginalize == "none"
    assert r.posterior["re_Subject"].dims == ("chain", "draw", "Subject_level", "Subject_coef")
    reml = m.fit_reml()
    med = r.posterior["var"].median(("chain", "draw")).to_series()
    assert med["Days|Subject"] == pytest.approx(reml.vcomp["Days|Subject"], rel=0.5)


def test_diagnostics_warn_on_short_chains(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        r = m.sample(draws=50, tune=50, chains=2, random_seed=1, progressbar=False)
    assert any(issubclass(w.category, bvc.SamplingWarning) and "increase draws" in str(w.message) for w in rec)
    d = r.diagnostics()
    assert {"r_hat", "ess_bulk", "ess_tail", "ok"} <= set(d.columns)
    assert not d.ok.all()


def test_bad_sampler_arguments(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    with pytest.raises(bvc.SpecificationError, match="sampler"):
        m.sample(sampler="gibbs")
    with pytest.raises(bvc.SpecificationError, match="draws"):
        m.sample(draws=0)


def test_partial_collapse_matches_full(small_nested):
    """Integrating out the largest factor (here with the small one) gives the same posterior as the full collapse."""
    m = bvc.VCModel.from_formula("y ~ 1 + (1|g1/g2)", data=small_nested)
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=4, progressbar=False)
    full = m.sample(**kw)
    part = m.sample(marginalize="partial", **kw)
    assert (full.marginalize, part.marginalize) == ("full", "partial")
    assert part.posterior["re_g1:g2"].shape == (2, 1000, 60)
    for q in (0.25, 0.5, 0.75):
        a, b = _quantiles(full, [q])[0], _quantiles(part, [q])[0]
        tol = 4 * np.sqrt(_mcse_quantile(full, q) ** 2 + _mcse_quantile(part, q) ** 2)
        assert np.all(np.abs(a - b) < tol), (q, a, b, tol)
    # the exact conditional draws of the integrated term agree in distribution too
    fa = full.posterior["re_g1:g2"].mean(("chain", "draw")).values
    pa = part.posterior["re_g1:g2"].mean(("chain", "draw")).values
    assert np.max(np.abs(fa - pa)) < 0.15


def test_cost_rule_picks_partial_for_large_crossed():
    from bayesvc.estimators.plan import plan_marginalization

    rng = np.random.default_rng(0)
    n = 6000
    df = pd.DataFrame({"a": rng.integers(0, 900, n), "b": rng.integers(0, 600, n)})
    df["y"] = rng.normal(size=900)[df.a] + rng.normal(size=600)[df.b] + rng.normal(size=n)
    m = bvc.VCModel.from_formula("y ~ 1 + (1|a) + (1|b)", data=df)
    assert plan_marginalization(m.design, True, m.kernel).kind == "partial"
    small = bvc.VCModel.from_formula("y ~ 1 + (1|a) + (1|b)", data=df.assign(b=df.b % 50))
    assert plan_marginalization(small.design, True, small.kernel).kind == "full"
    with pytest.raises(bvc.SpecificationError, match="marginalize"):
        plan_marginalization(m.design, "sometimes")


def test_pymc_sampler_runs_the_collapsed_op(penicillin):
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    r = m.sample(draws=100, tune=100, chains=1, random_seed=1, progressbar=False, sampler="pymc")
    assert r.sampler == "pymc" and r.marginalize == "full"
    assert r.posterior["sd"].shape == (1, 100, 2)


def test_numpyro_runs_pytensor_only_forms(penicillin):
    """JAX samplers (for GPUs) need a PyTensor-only model: partial collapse or non-centered."""
    pytest.importorskip("numpyro")
    m = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", data=penicillin)
    with pytest.raises(bvc.SpecificationError, match="partial"):
        m.sample(sampler="numpyro", marginalize="full")
    r = m.sample(draws=200, tune=200, chains=1, random_seed=1, progressbar=False, sampler="numpyro",
                 marginalize="partial")
    assert r.marginalize == "partial" and r.posterior["re_plate"].shape == (1, 200, 24)
    reml = m.fit_reml()
    med = r.posterior["var"].median(("chain", "draw")).to_series()
    assert med["plate"] == pytest.approx(reml.vcomp["plate"], rel=0.5)
