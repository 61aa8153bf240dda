"""Coverage simulation study (``benchmarks/coverage.py``).

The study itself is marked ``slow`` (not in the default run; ``pytest -m slow`` runs it, about
5-15 minutes on two cores): 50 nested data sets from known variance components, 2 chains x 500
draws after 500 tune each; the pooled coverage of the central 90% intervals of the two component
variances, the residual variance and the intercept (200 intervals, binomial SE ~2.1%) must be
0.90 +- 0.05. Per-parameter coverage is only approximately nominal (fixed truth, default priors
that are not the data-generating distribution, SE ~4.2% each with 50 data sets), so it gets only
a gross-error floor. The quick tests exercise the same code on tiny fits in the default run.
"""

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "coverage.py"


@pytest.fixture(scope="module")
def cov():
    # Not `import coverage`: that name belongs to coverage.py, which numba probes for.
    spec = importlib.util.spec_from_file_location("bayesvc_coverage_study", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_structure(res, n, names):
    assert res["settings"]["replicates_run"] == n
    assert len(res["replicates"]) == n
    assert res["diagnostics"]["replicates_failed"] == 0, res["diagnostics"]["errors"]
    assert list(res["per_parameter"]) == names
    assert set(res["truth"]) == set(names)
    for rec in res["replicates"]:
        assert set(rec["params"]) == set(names)
        for name, p in rec["params"].items():
            assert p["lower"] <= p["median"] <= p["upper"], (name, p)
            assert p["covered"] == (p["lower"] <= p["truth"] <= p["upper"])
        assert rec["divergences"] >= 0 and rec["seconds"] > 0
    pooled = res["pooled"]
    assert pooled["n"] == n * len(names)
    assert pooled["covered"] == sum(int(p["covered"]) for r in res["replicates"] for p in r["params"].values())
    assert pooled["coverage"] == pytest.approx(pooled["covered"] / pooled["n"])
    assert 0 <= pooled["se_binomial"] < 1 and isinstance(pooled["within_tolerance"], bool)
    json.dumps(res)  # JSON-able as a whole


def test_simulate_layout(cov):
    rng = np.random.default_rng(0)
    df = cov.simulate("nested", rng)
    assert len(df) == 30 * 4 * 5 and set(df.columns) == {"y", "g1", "g2"}
    assert df.g1.nunique() == 30 and df.groupby(["g1", "g2"]).size().eq(5).all()
    df = cov.simulate("crossed", rng)
    assert len(df) == 25 * 20 * 2 and df.groupby(["g1", "g2"]).size().eq(2).all()
    assert cov.true_values("nested") == {"g1": 4.0, "g1:g2": 2.25, "Residual": 1.0, "Intercept": 5.0}
    with pytest.raises(ValueError):
        cov.simulate("bogus", rng)


def test_summarize_counts(cov):
    def rec(i, flags):
        return {"replicate": i, "divergences": 0, "max_rhat": 1.0, "min_ess_bulk": 500.0,
                "sampling_warnings": [], "seconds": 1.0,
                "params": {k: {"truth": 0.0, "lower": -1.0, "upper": 1.0, "median": 0.0, "covered": f,
                               "side": "in" if f else "above"} for k, f in flags.items()}}

    reps = [rec(0, {"a": True, "b": True}), rec(1, {"a": False, "b": True}),
            rec(2, {"a": True, "b": True}), {"replicate": 3, "error": "boom", "seconds": 0.1}]
    s = cov.summarize(reps, prob=0.9, tol=0.05)
    assert s["per_parameter"]["a"]["covered"] == 2 and s["per_parameter"]["a"]["n"] == 3
    assert s["per_parameter"]["a"]["truth_above_interval"] == 1
    assert s["pooled"]["covered"] == 5 and s["pooled"]["n"] == 6
    assert s["pooled"]["coverage"] == pytest.approx(5 / 6)
    assert s["pooled"]["se_binomial"] == pytest.approx(math.sqrt(5 / 6 * 1 / 6 / 6))
    assert s["pooled"]["se_cluster"] == pytest.approx(np.std([1, 0.5, 1], ddof=1) / math.sqrt(3))
    assert s["pooled"]["within_tolerance"] is False  # |0.833 - 0.9| > 0.05
    assert s["diagnostics"]["replicates_failed"] == 1 and s["diagnostics"]["errors"] == ["boom"]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_smoke_two_replicates(cov):
    """The whole pipeline on 2 tiny data sets with tiny draws: structure only, not coverage."""
    # the study's own layout: its nutpie compilation is no slower than a tiny one's (it is
    # faster: ~2.5-5 s against ~9 s for 8 x 2 x 3 on the development machine)
    res = cov.run_study(n_datasets=2, design="nested", draws=40, tune=40, chains=1, seed=1)
    _check_structure(res, 2, ["g1", "g1:g2", "Residual", "Intercept"])
    assert res["sizes"] == {"n1": 30, "n2": 4, "reps": 5}
    assert res["replicates"][0]["sampler_seed"] != res["replicates"][1]["sampler_seed"]
    text = cov.table(res)
    assert "pooled" in text and "g1:g2" in text


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
def test_coverage_nested_50(cov):
    res = cov.run_study(n_datasets=50, design="nested")  # 2 chains x 500 draws after 500 tune
    print("\n" + cov.table(res))
    _check_structure(res, 50, ["g1", "g1:g2", "Residual", "Intercept"])
    pooled = res["pooled"]
    assert abs(pooled["coverage"] - 0.90) <= 0.05, cov.table(res)
    # gross-error floor per parameter (nominal 0.90, SE ~0.042 at n=50: 0.70 is ~4.8 SE below)
    for name, p in res["per_parameter"].items():
        assert p["coverage"] >= 0.70, (name, p)
