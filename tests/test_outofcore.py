"""Data beyond memory: designs computed by dask from a dask DataFrame or Parquet files
(bayesvc/design/outofcore.py, bayesvc/design/summary.py).

References: lme4 (tests/data/lme4_reference.json) for Parquet files of lme4's data sets, and the
in-memory path (itself checked against lme4 in test_reml_lme4.py) on simulated nested, crossed
and partially crossed designs with a covariate and a factor. The dask path sums the same
cross-products in another order, so the REML criterion agrees to rounding (~1e-13 relative) and
the log-likelihood at the optimum to 1e-8 relative; the estimates agree to the optimizer's
tolerance (the optimum is flat: lme4 itself varies at 1e-7 relative, tests/data/README.md).
"""

import os
import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.errors import SpecificationError

from conftest import load_factors
from test_reml_lme4 import lme4_variances

EST_RTOL = 1e-5  # optimizer tolerance on variances and fixed effects (see module docstring)


def simulated(kind: str, n: int = 480, seed: int = 0) -> pd.DataFrame:
    """Known-truth data: ``a`` (12 levels) with ``b`` nested in it, crossed with it, or partly
    crossed (each ``a`` meets 3 of 9 ``b`` levels); covariate ``x``, factor ``f``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 12, n)
    if kind == "nested":
        b = a * 4 + rng.integers(0, 4, n)
    elif kind == "crossed":
        b = rng.integers(0, 9, n)
    else:
        b = (a + 3 * rng.integers(0, 3, n)) % 9
    d = pd.DataFrame({"a": a, "b": b, "x": rng.normal(size=n), "f": rng.choice(["p", "q", "r"], n)})
    d["y"] = (1 + rng.normal(size=12)[a] + 0.7 * rng.normal(size=b.max() + 1)[b] + 0.5 * d.x
              + (d.f == "q") + rng.normal(size=n))
    return d


FORMULAS = {
    "nested": "y ~ x + f + (1|a) + (1|b)",
    "crossed": "y ~ x + f + (1|a) + (1|b)",
    "partial": "y ~ x + f + (1|a) + (1|b)",
}


def assert_same_fit(mem, ooc):
    r0, r1 = mem.fit_reml(), ooc.fit_reml()
    assert ooc.design.fe_names == mem.design.fe_names
    assert ooc.design.nobs == mem.design.nobs
    assert r1.llf == pytest.approx(r0.llf, rel=1e-8)
    np.testing.assert_allclose(r1.fe_params, r0.fe_params, rtol=EST_RTOL, atol=1e-8)
    np.testing.assert_allclose(r1.vcomp, r0.vcomp, rtol=EST_RTOL, atol=1e-8)
    assert r1.scale == pytest.approx(r0.scale, rel=EST_RTOL)
    np.testing.assert_allclose(r1.bse_fe, r0.bse_fe, rtol=1e-4)
    t0, t1 = r0.random_effects.table, r1.random_effects.table
    assert list(t1.level) == list(t0.level) and list(t1.component) == list(t0.component)
    np.testing.assert_allclose(t1[["mode", "cond_var"]], t0[["mode", "cond_var"]], rtol=1e-4, atol=1e-6)
    return r0, r1


@pytest.mark.parametrize("kind", list(FORMULAS))
def test_dask_frame_matches_in_memory(kind):
    d = simulated(kind)
    with dask.config.set(scheduler="threads"):
        ooc = bvc.VCModel.from_formula(FORMULAS[kind], data=dd.from_pandas(d, npartitions=5))
    assert_same_fit(bvc.VCModel.from_formula(FORMULAS[kind], data=d), ooc)


def test_slopes_and_interactions_match_in_memory():
    d = simulated("partial")
    for f in ["y ~ x + (1 + x|a) + (1|b)", "y ~ 0 + f + x + (1|a/b)", "y ~ C(b) + (1|a)"]:
        ooc = bvc.VCModel.from_formula(f, data=dd.from_pandas(d, npartitions=4))
        assert_same_fit(bvc.VCModel.from_formula(f, data=d), ooc)


LME4 = {
    "penicillin": ("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", ["plate", "sample"]),
    "pastes": ("Pastes.csv", "strength ~ 1 + (1|batch/cask)", ["batch", "cask"]),
    "sleepstudy_corr": ("sleepstudy.csv", "Reaction ~ 1 + Days + (1 + Days|Subject)", ["Subject"]),
}


@pytest.mark.parametrize("key", list(LME4))
def test_parquet_glob_matches_lme4(key, lme4_ref, tmp_path):
    fname, formula, factors = LME4[key]
    df = load_factors(fname, factors)
    dd.from_pandas(df, npartitions=3).to_parquet(tmp_path / "pq", write_index=False)
    ref = lme4_ref[key]["REML"]
    res = bvc.VCModel.from_formula(formula, data=str(tmp_path / "pq" / "*.parquet")).fit_reml()
    assert res.llf == pytest.approx(ref["logLik"], abs=1e-4)  # as test_reml_lme4
    for name, v in lme4_variances(key, ref).items():
        assert res.vcomp[name] == pytest.approx(v, rel=1e-3)
    assert res.scale == pytest.approx(ref["sigma2"], rel=1e-3)


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    c = distributed.Client(cluster, set_as_default=False)
    yield c
    c.close()
    cluster.close()


@pytest.mark.parametrize("kind", ["crossed", "partial"])
def test_local_cluster_matches_in_memory(kind, client, tmp_path):
    d = simulated(kind, seed=3)
    d.to_parquet(tmp_path / "one.parquet")
    dd.from_pandas(d.iloc[:200], npartitions=2).to_parquet(tmp_path / "two")
    with dask.config.set(scheduler=client):
        ooc = bvc.VCModel.from_formula(FORMULAS[kind], data=dd.from_pandas(d, npartitions=6))
        both = bvc.VCModel.from_formula(FORMULAS[kind], data=[str(tmp_path / "one.parquet")])
    assert_same_fit(bvc.VCModel.from_formula(FORMULAS[kind], data=d), ooc)
    assert both.fit_reml().llf == pytest.approx(ooc.fit_reml().llf, rel=1e-10)


# ---------------------------------------------------------------------- bad input, one line


def _message(fn) -> str:
    with pytest.raises(SpecificationError) as err:
        fn()
    msg = str(err.value)
    assert "\n" not in msg
    return msg


def test_missing_values_as_in_memory():
    d = simulated("crossed")
    d.loc[[3, 50, 51], "x"] = np.nan
    d.loc[[7], "a"] = np.nan
    ddf = dd.from_pandas(d, npartitions=4)
    f = FORMULAS["crossed"]
    want = _message(lambda: bvc.VCModel.from_formula(f, data=d))
    assert _message(lambda: bvc.VCModel.from_formula(f, data=ddf)) == want
    with pytest.warns(UserWarning, match="dropped 4 rows"):
        ooc = bvc.VCModel.from_formula(f, data=ddf, missing="drop")
    with pytest.warns(UserWarning, match="dropped 4 rows"):
        mem = bvc.VCModel.from_formula(f, data=d, missing="drop")
    assert ooc.design.n_dropped_missing == 4 and ooc.design.nobs == len(d) - 4
    assert_same_fit(mem, ooc)


def test_bad_input_detected_in_the_pass():
    d = simulated("crossed")
    ddf = dd.from_pandas(d, npartitions=3)
    assert "unknown column 'z'" in _message(lambda: bvc.VCModel.from_formula("y ~ z + (1|a)", data=ddf))
    one = dd.from_pandas(d.assign(g=1), npartitions=3)
    assert _message(lambda: bvc.VCModel.from_formula("y ~ x + (1|g)", data=one)) == _message(
        lambda: bvc.VCModel.from_formula("y ~ x + (1|g)", data=d.assign(g=1)))
    flat = dd.from_pandas(d.assign(y=2.0), npartitions=3)
    assert "is constant" in _message(lambda: bvc.VCModel.from_formula("y ~ 1 + (1|a)", data=flat))
    assert "must be numeric" in _message(lambda: bvc.VCModel.from_formula("f ~ 1 + (1|a)", data=ddf))
    assert "not expressions" in _message(lambda: bvc.VCModel.from_formula("y ~ x:f + (1|a)", data=ddf))
    inf = dd.from_pandas(d.assign(y=d.y.where(d.index != 5, np.inf)), npartitions=3)
    assert "missing values (NaN or infinite) in column 'y' (1)" in _message(lambda: bvc.VCModel.from_formula("y ~ 1 + (1|a)", data=inf))
    assert "no Parquet files" in _message(lambda: bvc.VCModel.from_formula("y ~ 1 + (1|a)",
                                                                             data="/nonexistent/*.parquet"))


def test_rank_deficient_fixed_part_dropped_as_in_memory():
    d = simulated("crossed").assign(x2=lambda t: 2 * t.x)
    f = "y ~ x + x2 + (1|a) + (1|b)"
    with pytest.warns(bvc.RankDeficiencyWarning, match="x2"):
        ooc = bvc.VCModel.from_formula(f, data=dd.from_pandas(d, npartitions=3))
    with pytest.warns(bvc.RankDeficiencyWarning):
        mem = bvc.VCModel.from_formula(f, data=d)
    assert ooc.design.dropped_fe == ("x2",)
    assert_same_fit(mem, ooc)


# ---------------------------------------------------------------------- what needs the rows


def test_rows_are_refused_in_one_line():
    ooc = bvc.VCModel.from_formula("y ~ x + (1|a)", data=dd.from_pandas(simulated("crossed"), npartitions=2))
    for get in (lambda: ooc.design.y, lambda: ooc.design.X, lambda: ooc.design.terms[0].Z):
        assert "needs the rows" in _message(get)
    assert ooc.marginalization().kind == "full"


def test_nuts_on_the_statistics():
    d = simulated("crossed", seed=5)
    ooc = bvc.VCModel.from_formula("y ~ x + (1|a) + (1|b)", data=dd.from_pandas(d, npartitions=3))
    kw = dict(draws=100, tune=100, chains=2, random_seed=11, progressbar=False)
    with pytest.raises(SpecificationError, match="pointwise log-likelihood needs the rows"):
        ooc.sample(**kw, log_likelihood=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.SamplingWarning)
        post = ooc.sample(**kw).idata["posterior"]
    assert post["re_a"].shape == (2, 100, 12) and post["re_b"].shape == (2, 100, 9)
    # 480 rows, weakly informative priors: the posterior of beta and sigma is close to normal around
    # the REML estimates (Bernstein-von Mises); 1.5 posterior SDs covers that gap plus the Monte
    # Carlo error of a mean of 200 draws (ESS >= 30: 0.2 SD)
    r = ooc.fit_reml()
    beta = post["beta"].values.reshape(200, -1)
    assert np.all(np.abs(beta.mean(0) - r.fe_params.to_numpy()) < 1.5 * beta.std(0))
    sig = post["sigma"].values.ravel()
    assert abs(sig.mean() - np.sqrt(r.scale)) < 1.5 * sig.std()


def test_chibar_test_from_the_statistics_as_in_memory():
    d = simulated("crossed")
    f = "y ~ x + (1 + x||a) + (1|b)"
    ooc = bvc.VCModel.from_formula(f, data=dd.from_pandas(d, npartitions=3)).fit_reml()
    mem = bvc.VCModel.from_formula(f, data=d).fit_reml()
    for comp in ("b", "x|a"):
        t1, t0 = ooc.test_component(comp, method="chibar"), mem.test_component(comp, method="chibar")
        assert t1.statistic == pytest.approx(t0.statistic, rel=1e-6, abs=1e-8)
    assert "needs the rows" in _message(lambda: ooc.test_component("b", method="exact"))
