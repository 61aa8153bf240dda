"""Parallel sweeps that fail say where (issue 11): a dead worker (``BrokenProcessPool``, dask's
``KilledWorker``) or a failing fit is reported with its grid point (component, family, scale), and
the points that finished are kept; the CLI's ``sensitivity --executor`` takes a dask address."""

from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.estimators.parallel import executor_pool
from bayesvc.studies import sweep as sweep_mod


def _fake_point(task):
    """A grid point's summaries without sampling: the prior scale as the 'posterior' SD."""
    s = float(task["priors"].sd["g"].scale)
    rows = [{"parameter": lab, "mean": s, "median": s, "lower": s / 2, "upper": 2 * s, "mode": np.nan,
             "mcse_median": 0.0, "r_hat": 1.0, "ess_bulk": 1000.0}
            for lab, *_ in sweep_mod._labels(task["vcmodel"].design)]
    return {"rows": rows, "divergences": 0, "compile_s": 0.0, "sample_s": 0.0, "map_s": 0.0,
            "total_s": 0.0, "worker": "fake", "method": "refit", "khat": float("nan")}


class FailingExecutor(Executor):
    """Runs tasks in the calling thread; the task numbered ``bad`` fails with ``error``."""

    def __init__(self, bad, error):
        self.bad, self.error, self.n = bad, error, 0

    def submit(self, fn, /, *args, **kwargs):
        f = Future()
        if self.n == self.bad:
            f.set_exception(self.error)
        else:
            f.set_result(fn(*args, **kwargs))
        self.n += 1
        return f


def _killed_worker():
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover
        pytest.skip("dask.distributed not installed")
    from types import SimpleNamespace

    return KilledWorker("_fit_point-5f1e", SimpleNamespace(address="tcp://127.0.0.1:4000"), 3)


@pytest.fixture
def model():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(np.arange(6), 5)})
    d["y"] = rng.normal(size=6)[d.g] + rng.normal(size=30)
    return bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=d)


@pytest.mark.parametrize("error", [BrokenProcessPool("A process in the process pool was terminated"),
                                   "killed", RuntimeError("boom")])
def test_failed_point_named_and_finished_points_kept(monkeypatch, model, error):
    monkeypatch.setattr(sweep_mod, "_fit_point", _fake_point)
    err = _killed_worker() if error == "killed" else error
    with pytest.raises(bvc.SweepError) as info:
        bvc.prior_sweep(model, scales=(0.5, 1, 2, 5), executor=FailingExecutor(2, err), mode=False,
                        reweight=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "component 'g', family 'halfnormal', scale 2" in msg and type(err).__name__ in msg
    assert "3 of 4 point(s) finished" in msg
    assert info.value.failed == [{"component": "g", "family": "halfnormal", "scale": 2.0}]
    kept = info.value.partial.table
    assert sorted(kept.scale.unique()) == [0.5, 1.0, 5.0]
    # the kept points' numbers are those of their own grid point
    base = info.value.partial.base_scales["g"]
    row = kept[(kept.scale == 5.0) & (kept.parameter == "sd[g]")].iloc[0]
    assert row["mean"] == pytest.approx(5.0 * base)


def test_bad_input_in_a_point_is_not_wrapped(monkeypatch, model):
    def bad(task):
        bvc.errors.fail("priors: something named")

    monkeypatch.setattr(sweep_mod, "_fit_point", bad)
    with pytest.raises(bvc.SpecificationError, match="something named"):
        bvc.prior_sweep(model, scales=(1, 2), executor=FailingExecutor(-1, None), mode=False,
                        reweight=False)


def test_cli_sensitivity_executor_accepts_scheduler_address():
    from bayesvc.cli import build_parser

    args = build_parser().parse_args(["sensitivity", "d.csv", "y ~ 1 + (1|g)", "--executor",
                                      "tcp://127.0.0.1:8786"])
    assert args.executor == "tcp://127.0.0.1:8786"


def test_scheduler_address_connects_a_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        pool, owned, label = executor_pool(cluster.scheduler_address, None, 1, "prior_sweep")
        try:
            assert owned and label.startswith("dask(")
            assert pool.submit(abs, -3).result() == 3
        finally:
            pool.shutdown()


def test_unreachable_scheduler_is_one_line():
    with pytest.raises(bvc.SpecificationError, match="cannot connect to the dask scheduler"):
        executor_pool("tcp://127.0.0.1:9", None, 1, "prior_sweep")


class _KillsItsWorker:
    """Unpickling this in a worker process ends that process (``os._exit``): a real dead worker."""

    def __reduce__(self):
        import os

        return (os._exit, (1,))


def test_a_real_dead_process_worker_is_named(monkeypatch, model):
    """executor='processes' with one spawned worker: the third grid point's task kills the worker
    as it arrives, so that point and the one queued behind it fail with BrokenProcessPool, and the
    two points that finished first are kept."""
    real_run = sweep_mod._run

    def poisoned(tasks, executor, chains, workers=None):
        tasks = [dict(t, poison=_KillsItsWorker()) if i == 2 else t for i, t in enumerate(tasks)]
        return real_run(tasks, executor, chains, workers)

    monkeypatch.setattr(sweep_mod, "_run", poisoned)
    with pytest.raises(bvc.SweepError) as info:
        bvc.prior_sweep(model, scales=(0.5, 1, 2, 5), executor="processes", workers=1, mode=False,
                        reweight=False, draws=100, tune=100, chains=1, random_seed=1)
    msg = str(info.value)
    assert "component 'g', family 'halfnormal', scale 2" in msg and "BrokenProcessPool" in msg
    assert [f["scale"] for f in info.value.failed] == [2.0, 5.0]
    assert sorted(info.value.partial.table.scale.unique()) == [0.5, 1.0]
