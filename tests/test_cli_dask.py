"""``bayesvc fit/compare/sensitivity`` on Parquet files (data beyond memory, one dask pass), and
``--scheduler``; reference: the same command on the CSV (checked against lme4 in test_cli.py)."""

import os
import warnings

import dask.dataframe as dd
import pytest

from conftest import load_factors
from test_cli import assert_one_line_error, last_json, run

PEN = "diameter ~ 1 + (1|plate) + (1|sample)"


@pytest.fixture(scope="module")
def penicillin_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("pen")
    df = load_factors("Penicillin.csv", ["plate", "sample"])
    df.to_csv(root / "pen.csv", index=False)
    dd.from_pandas(df, npartitions=3).to_parquet(root / "pq", write_index=False)
    return str(root / "pen.csv"), str(root / "pq" / "*.parquet"), str(root / "pq")


def test_fit_parquet_glob_and_directory_equal_csv(capsys, penicillin_files):
    csv, glob, folder = penicillin_files
    want = last_json(run(capsys, "fit", csv, PEN, "--json")[1])
    for data in (glob, folder):
        rc, out, _ = run(capsys, "fit", data, PEN, "--json")
        assert rc == 0
        got = last_json(out)
        assert got["llf"] == pytest.approx(want["llf"], rel=1e-8)
        for k, v in want["variances"].items():
            assert got["variances"][k] == pytest.approx(v, rel=1e-5)  # optimizer tolerance


def test_scheduler_errors_in_one_line(capsys, penicillin_files):
    csv, glob, _ = penicillin_files
    assert_one_line_error(*run(capsys, "fit", csv, PEN, "--scheduler", "tcp://127.0.0.1:1")[::2],
                          "--scheduler needs Parquet")
    assert_one_line_error(*run(capsys, "fit", glob, PEN, "--scheduler", "tcp://127.0.0.1:1")[::2],
                          "cannot connect to the dask scheduler")
    assert_one_line_error(*run(capsys, "fit", glob, "diameter ~ 1 + (1|nope)")[::2], "unknown column 'nope'")


def test_scheduler_address_of_a_local_cluster(capsys, penicillin_files):
    distributed = pytest.importorskip("distributed")
    csv, glob, _ = penicillin_files
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.environ["PYTHONPATH"] = os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=None)
    try:
        rc, out, _ = run(capsys, "fit", glob, PEN, "--json", "--scheduler", cluster.scheduler_address)
    finally:
        cluster.close()
    assert rc == 0
    want = last_json(run(capsys, "fit", csv, PEN, "--json")[1])
    assert last_json(out)["llf"] == pytest.approx(want["llf"], rel=1e-8)


def test_compare_and_sensitivity_on_parquet(capsys, penicillin_files):
    _, glob, _ = penicillin_files
    rc, out, err = run(capsys, "compare", glob, PEN, "--draws", "60", "--tune", "60", "--chains", "2",
                       "--seed", "1", "--json")
    assert rc == 0, err
    got = last_json(out)
    rows = {r["parameter"]: r for r in got["rows"]}
    assert rows["plate"]["reml"] is not None and rows["plate"]["mean"] is not None
    assert len(got["verdicts"]) == 2
    assert "needs the rows" in out  # the exact test is refused per component, in its verdict row
    rc, out, err = run(capsys, "sensitivity", glob, PEN, "--draws", "60", "--tune", "60", "--chains", "2",
                       "--seed", "1", "--scales", "1,2", "--json")
    assert rc == 0, err
    assert last_json(out)["sweep"]
