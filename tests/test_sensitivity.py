"""Prior sensitivity: power-scaling verdicts, prior-scale sweeps, the Dask path and the CLI.

One simulated Dyestuff2-like data set (6 batches x 5 observations, no batch effect). Every test
shares one nutpie compilation through the sweep's compiled-model cache (keyed by the design's
content), so the module compiles once; fixed seeds, draws <= 300, two chains.
"""

import json
import warnings

import matplotlib
import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
import bayesvc.estimators.bayes.cache as bayes_cache
from bayesvc.cli import main
from bayesvc.estimators.bayes import clear_cache
from bayesvc.kernel import native
from bayesvc.studies import SweepResult, prior_sweep, sample_cached
from bayesvc.studies.sensitivity import DIAGNOSES, SensitivityResult, sensitivity

matplotlib.use("Agg")

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning",
                                        "ignore::bayesvc.BoundaryFitWarning")

FORMULA = "Yield ~ 1 + (1|Batch)"
KW = {"draws": 300, "tune": 300, "chains": 2}
SCALES = (0.05, 0.2, 1.0, 5.0)


@pytest.fixture(scope="module")
def dyestuff2_csv(tmp_path_factory):
    """Dyestuff2-like: 6 batches x 5 observations, no batch effect (REML puts the Batch SD at 0)."""
    rng = np.random.default_rng(20240607)
    batch = np.repeat([f"B{i}" for i in range(6)], 5)
    df = pd.DataFrame({"Batch": batch, "Yield": 5.0 + 3.5 * rng.normal(size=30)})
    path = tmp_path_factory.mktemp("sens") / "dyestuff2_sim.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model(dyestuff2_csv):
    return bvc.VCModel.from_formula(FORMULA, data=pd.read_csv(dyestuff2_csv))


@pytest.fixture
def compile_counter(monkeypatch):
    calls = []
    real = bayes_cache.compile_nutpie

    def counting(m):
        calls.append(m)
        return real(m)

    monkeypatch.setattr(bayes_cache, "compile_nutpie", counting)
    return calls


@pytest.fixture(scope="module")
def sweep(model):
    clear_cache()
    calls = []
    real = bayes_cache.compile_nutpie
    bayes_cache.compile_nutpie = lambda m: calls.append(m) or real(m)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before = native.COMPILATIONS["callbacks"]
            sw = prior_sweep(model, scales=SCALES, random_seed=5, reweight=False, **KW)
    finally:
        bayes_cache.compile_nutpie = real
    # PyTensor graphs compiled, plus the native callbacks (once per process, if not loaded yet)
    return sw, len(calls) + native.COMPILATIONS["callbacks"] - before


def test_data_set_is_at_the_boundary(model):
    with pytest.warns(bvc.BoundaryFitWarning):
        reml = model.fit_reml()
    assert reml.boundary == ("Batch",)


# ----------------------------------------------------------------------------- sweep

def test_sweep_compiles_once_and_reuses_the_compiled_model(sweep):
    sw, compilations = sweep
    assert isinstance(sw, SweepResult)
    assert compilations <= 1  # the full collapse: only the native callbacks, at most once per process
    t = sw.timings
    assert len(t) == len(SCALES)
    # only the first grid point compiled; every later one reused the compiled object
    assert (t.compile_s > 0).sum() == 1 and t.compile_s.iloc[0] > 0
    assert sw.cost["compilations"] == 1
    assert np.isfinite(sw.cost["extra_point_s"]) and np.isfinite(sw.cost["first_fit_s"])


def test_sweep_table_is_tidy(sweep, model):
    sw, _ = sweep
    tab = sw.table
    for col in ("family", "component", "scale", "prior_scale", "parameter", "mean", "median", "lower",
                "upper", "mode"):
        assert col in tab.columns
    assert set(tab.parameter) == {"sd[Batch]", "sigma", "var[Batch]", "var[Residual]", "beta[Intercept]"}
    assert len(tab) == len(SCALES) * 5
    np.testing.assert_allclose(sorted(set(tab.scale)), SCALES)
    base = 2.5 * np.std(model.design.y)
    np.testing.assert_allclose(sorted(set(tab.prior_scale)), np.array(SCALES) * base)
    assert (tab.lower <= tab["median"]).all() and (tab["median"] <= tab.upper).all()
    assert sw.reml["Batch"] == 0.0 and sw.reml["Residual"] > 0


def test_sweep_weak_sd_follows_the_prior_residual_stays(sweep):
    sw, _ = sweep
    tab = sw.table
    weak = tab[tab.parameter == "sd[Batch]"].sort_values("scale")
    med, se = weak["median"].to_numpy(), weak["mcse_median"].to_numpy()
    # monotone within Monte Carlo error (common random numbers: one seed for every grid point)
    for i in range(len(med) - 1):
        assert med[i + 1] >= med[i] - 3 * np.hypot(se[i], se[i + 1]), (med, se)
    assert med[-1] - med[0] > 4 * np.hypot(se[0], se[-1]), (med, se)
    assert med[-1] > 1.5 * med[0]
    res = tab[tab.parameter == "sigma"]
    rmed, rse = res["median"].to_numpy(), res["mcse_median"].to_numpy()
    assert np.ptp(rmed) < 4 * np.sqrt(2) * rse.max() + 0.05 * rmed.mean(), (rmed, rse)
    change = sw.change()
    assert change[("halfnormal", "Batch")] > 0.5


def test_sweep_plot(sweep):
    import matplotlib.pyplot as plt

    sw, _ = sweep
    fig = sw.plot()
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert any("REML" in t.get_text() for t in ax.get_legend().get_texts())
    plt.close(fig)


def test_sweep_on_a_dask_cluster_matches_threads(sweep, model, compile_counter):
    distributed = pytest.importorskip("distributed")
    sw, _ = sweep
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dk = prior_sweep(model, scales=SCALES[1:3], random_seed=5, executor=client, reweight=False, **KW)
    assert dk.executor == "dask"
    assert compile_counter == []  # in-process workers reuse the compiled model
    cols = ["scale", "parameter", "mean", "median", "lower", "upper"]
    ref = sw.table[sw.table.scale.isin(SCALES[1:3])][cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(dk.table[cols].reset_index(drop=True), ref)  # same seed, same draws


def test_sweep_warning_points_at_the_callers_line(model, monkeypatch):
    """A grid point with a bad R-hat warns once, at the line that called prior_sweep."""
    import bayesvc.studies.sweep as sweep_module

    real = sweep_module._fit_point

    def bad_rhat(task):
        out = real(task)
        out["rows"] = [{**r, "r_hat": 1.5} for r in out["rows"]]
        return out

    monkeypatch.setattr(sweep_module, "_fit_point", bad_rhat)
    with pytest.warns(bvc.SamplingWarning, match="R-hat above 1.05") as rec:
        prior_sweep(model, scales=[1.0], random_seed=5, draws=50, tune=50, chains=2, mode=False)
    hits = [w for w in rec if "prior_sweep" in str(w.message)]
    assert len(hits) == 1 and hits[0].filename == __file__


def test_sweep_rejects_bad_arguments(model):
    with pytest.raises(bvc.SpecificationError, match="unknown component"):
        prior_sweep(model, components=["Plate"])
    with pytest.raises(bvc.SpecificationError, match="scales must be positive"):
        prior_sweep(model, scales=[0, 1])
    with pytest.raises(bvc.SpecificationError, match="unknown family"):
        prior_sweep(model, families=["lognormal"])


# ----------------------------------------------------------------------------- power scaling

@pytest.fixture(scope="module")
def fit(model, sweep):
    return sample_cached(model, random_seed=3, thin_random_effects=KW["draws"], log_likelihood=False, **KW)


def test_sensitivity_flags_the_batch_sd_not_the_residual(fit, sweep):
    s = sensitivity(fit)
    assert isinstance(s, SensitivityResult)
    assert s.likelihood == "marginal"
    assert list(s.table.index) == ["sd[Batch]", "sigma", "beta[Intercept]"]
    assert set(s.table.diagnosis) <= set(DIAGNOSES)
    assert (s.table[["psense_prior", "psense_likelihood"]] >= 0).all().all()
    v = s.verdicts
    assert bool(v.loc["Batch", "flagged"]) and bool(v.loc["Batch", "reml_boundary"])
    assert "data hardly inform the Batch variance" in v.loc["Batch", "verdict"]  # variances by default
    assert "data hardly inform the Batch SD" in sensitivity(fit, scale="sd").verdicts.loc["Batch", "verdict"]
    assert "REML is 0" in v.loc["Batch", "verdict"]
    assert v.loc["Batch", "p_near_zero"] > 0.1
    assert not v.loc["Residual", "flagged"] and v.loc["Residual", "diagnosis"] == "ok"
    assert v.loc["Residual", "verdict"].startswith("ok")
    assert s.flagged == ["Batch"]
    # with the sweep, the verdict says the posterior follows the prior
    sw, _ = sweep
    s2 = sensitivity(fit, sweep=sw)
    assert "its posterior follows the prior" in s2.verdicts.loc["Batch", "verdict"]
    assert "report the prior and the sweep" in s2.verdicts.loc["Batch", "verdict"]
    assert s2.flagged == ["Batch"]


def test_sensitivity_detects_prior_data_conflict(model, sweep, compile_counter):
    # a residual prior far below the data's residual SD: same graph, new scale (no recompilation)
    r = sample_cached(model, priors={"Residual": bvc.HalfNormal(0.3)}, random_seed=3,
                      thin_random_effects=KW["draws"], log_likelihood=False, **KW)
    assert compile_counter == []
    s = sensitivity(r)
    assert s.table.loc["sigma", "diagnosis"] == "prior-data conflict"
    assert s.verdicts.loc["Residual", "flagged"]
    assert "prior-data conflict" in s.verdicts.loc["Residual", "verdict"]


def test_sensitivity_conditional_likelihood_and_plot(model, sweep):
    r = sample_cached(model, random_seed=3, log_likelihood=True, draws=150, tune=150, chains=2)
    s = sensitivity(r, likelihood="conditional")
    assert s.likelihood == "conditional"
    assert set(s.table.diagnosis) <= set(DIAGNOSES)
    pc = s.plot()
    assert type(pc).__name__ == "PlotCollection"
    d = s.to_dict()
    assert {"parameter", "psense_prior", "psense_likelihood", "diagnosis"} <= set(d["components"][0])


# ----------------------------------------------------------------------------- command line

def test_cli_sensitivity_json(capsys, dyestuff2_csv, sweep, compile_counter):
    rc = main(["sensitivity", str(dyestuff2_csv), FORMULA, "--json", "--seed", "1", "--draws", "200",
               "--tune", "200", "--chains", "2", "--scales", "0.5,2"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert {"components", "sweep"} <= set(got)
    comps = {c["parameter"]: c for c in got["components"]}
    assert set(comps) == {"sd[Batch]", "sigma"}
    for c in got["components"]:
        assert {"parameter", "psense_prior", "psense_likelihood", "diagnosis"} <= set(c)
        assert c["diagnosis"] in DIAGNOSES
    assert comps["sd[Batch]"]["flagged"] and not comps["sigma"]["flagged"]
    assert len(got["sweep"]) == 2 * 3
    assert {row["parameter"] for row in got["sweep"]} == {"var[Batch]", "var[Residual]", "beta[Intercept]"}
    for row in got["sweep"]:
        assert {"prior_scale", "parameter", "mean", "median", "lower", "upper"} <= set(row)
    assert sorted({row["scale"] for row in got["sweep"]}) == [0.5, 2.0]
    assert compile_counter == []  # same data and formula: the compiled model is reused


def test_cli_sensitivity_marginalize(capsys, dyestuff2_csv, sweep, compile_counter):
    """--marginalize false samples the non-centered model (one new compilation, cached under its
    own key) for the first fit and every grid point."""
    rc = main(["sensitivity", str(dyestuff2_csv), FORMULA, "--json", "--seed", "1", "--draws", "100",
               "--tune", "100", "--chains", "2", "--scales", "2", "--marginalize", "false"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert len(got["sweep"]) == 3
    assert len(compile_counter) == 1 and compile_counter[0]["z_Batch"] is not None
    kinds = {key[2] for key in bayes_cache._CACHE}
    assert {"full", "none"} <= kinds


def test_cli_sensitivity_bad_scales(capsys, dyestuff2_csv):
    rc = main(["sensitivity", str(dyestuff2_csv), FORMULA, "--scales", "a,b"])
    _, err = capsys.readouterr()
    assert rc == 2
    assert err.strip().startswith("bayesvc: error: --scales")
    assert len(err.strip().splitlines()) == 1
