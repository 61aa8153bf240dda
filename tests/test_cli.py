"""The ``bayesvc`` command line, run in-process (plus one run of the installed console script)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main

DATA = Path(__file__).parent / "data"
DYESTUFF = str(DATA / "Dyestuff.csv")
DYE_FORMULA = "Yield ~ 1 + (1|Batch)"
JSON_KEYS = {"method", "llf", "fe_params", "variances", "covariances", "converged", "seconds"}


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def assert_one_line_error(rc, err, *names):
    assert rc == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bayesvc: error: "), lines[0]
    for n in names:
        assert n in lines[0], f"{n!r} not in {lines[0]!r}"


def api_fit(path, formula, reml=True, **kw):
    return bvc.VCModel.from_formula(formula, data=pd.read_csv(path), **kw).fit_reml(reml=reml)


# ----------------------------------------------------------------------------- fit

def test_fit_plain_output(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA)
    assert rc == 0, err
    assert "Mixed Linear Model Regression Results" in out
    assert "Batch" in out


@pytest.mark.parametrize("method", ["reml", "ml"])
def test_fit_json_matches_api(capsys, method):
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA, "--method", method, "--json")
    assert rc == 0, err
    got = last_json(out)
    assert JSON_KEYS <= set(got)
    assert got["method"] == method
    assert got["converged"] is True
    assert isinstance(got["seconds"], float) and got["seconds"] >= 0
    assert got["covariances"] == {}
    res = api_fit(DYESTUFF, DYE_FORMULA, reml=method == "reml")
    want = res.to_dict()
    assert got["llf"] == pytest.approx(res.llf, rel=1e-12)
    assert set(got["fe_params"]) == {"Intercept"}
    assert set(got["variances"]) == {"Batch", "Residual"}
    for key in ("fe_params", "variances"):
        for k, v in want[key].items():
            assert got[key][k] == pytest.approx(v, rel=1e-12), (key, k)
    assert got["variances"]["Residual"] == pytest.approx(res.scale, rel=1e-12)


def test_groups_flag_is_statsmodels_random_intercept(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF, "Yield ~ 1", "--groups", "Batch", "--json")
    assert rc == 0, err
    got = last_json(out)
    ref = api_fit(DYESTUFF, DYE_FORMULA)
    assert got["llf"] == pytest.approx(ref.llf, rel=1e-10)
    assert got["variances"]["Batch"] == pytest.approx(ref.vcomp["Batch"], rel=1e-6)


def test_vc_and_groups_equal_nested_lme4_formula(capsys):
    pastes = str(DATA / "Pastes.csv")
    rc, out, err = run(capsys, "fit", pastes, "strength ~ 1", "--groups", "batch", "--re-formula", "1",
                       "--vc", "cask=0 + C(cask)", "--json")
    assert rc == 0, err
    sm = last_json(out)
    assert set(sm["variances"]) == {"batch", "cask", "Residual"}
    rc, out, err = run(capsys, "fit", pastes, "strength ~ 1 + (1|batch/cask)", "--json")
    assert rc == 0, err
    lme4 = last_json(out)
    assert set(lme4["variances"]) == {"batch", "batch:cask", "Residual"}
    assert sm["llf"] == pytest.approx(lme4["llf"], abs=1e-7)
    for a, b in [("batch", "batch"), ("cask", "batch:cask"), ("Residual", "Residual")]:
        assert sm["variances"][a] == pytest.approx(lme4["variances"][b], rel=1e-5)


def test_correlated_model_reports_covariance(capsys, lme4_ref):
    rc, out, err = run(capsys, "fit", DATA / "sleepstudy.csv",
                       "Reaction ~ 1 + Days + (1 + Days|Subject)", "--json")
    assert rc == 0, err
    got = last_json(out)
    assert set(got["variances"]) == {"Subject", "Days|Subject", "Residual"}
    assert len(got["covariances"]) == 1
    (key, cov), = got["covariances"].items()
    assert "Subject" in key and "Days" in key
    ref = lme4_ref["sleepstudy_corr"]["REML"]
    want = next(e["vcov"] for e in ref["varcorr"] if e["var2"] is not None)
    assert cov == pytest.approx(want, rel=1e-4)
    assert got["llf"] == pytest.approx(ref["logLik"], abs=1e-4)


@pytest.fixture
def csv_with_missing(tmp_path):
    df = pd.read_csv(DYESTUFF).astype({"Yield": float})
    df.loc[[0, 7], "Yield"] = np.nan
    path = tmp_path / "dye_missing.csv"
    df.to_csv(path, index=False)
    return path


def test_missing_values_error_by_default(capsys, csv_with_missing):
    rc, out, err = run(capsys, "fit", csv_with_missing, DYE_FORMULA)
    assert_one_line_error(rc, err, "missing values", "'Yield' (2)", "pass --missing drop")  # CLI spelling
    assert "missing='drop'" not in err


def test_missing_drop_warns_and_fits(capsys, csv_with_missing):
    rc, out, err = run(capsys, "fit", csv_with_missing, DYE_FORMULA, "--missing", "drop", "--json")
    assert rc == 0, err
    assert "bayesvc: warning: dropped 2 rows" in err
    assert "Traceback" not in err
    got = last_json(out)
    ref = api_fit(DYESTUFF, DYE_FORMULA)  # different data: the fit must change
    assert got["llf"] != pytest.approx(ref.llf)


def test_boundary_fit_warns_on_one_line(capsys):
    rc, out, err = run(capsys, "fit", DATA / "Dyestuff2.csv", DYE_FORMULA, "--json")
    assert rc == 0, err
    assert last_json(out)["variances"]["Batch"] == 0.0
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and all(ln.startswith("bayesvc: warning: ") for ln in lines)
    assert any("Batch" in ln and "boundary" in ln for ln in lines)


# ----------------------------------------------------------------------------- errors

def test_missing_file(capsys, tmp_path):
    path = tmp_path / "nope.csv"
    rc, out, err = run(capsys, "fit", path, DYE_FORMULA)
    assert_one_line_error(rc, err, f"no such file: {path}")


def test_directory_instead_of_file(capsys, tmp_path):
    rc, out, err = run(capsys, "fit", tmp_path, DYE_FORMULA)
    assert_one_line_error(rc, err, str(tmp_path))


@pytest.mark.parametrize("content, names", [
    ("", ["cannot parse", "as CSV"]),                          # empty file
    ("Batch,Yield\n", ["data is empty"]),                      # header only
    ("Batch,Yield\nA,1\nA,2,3\nB,4\n", ["cannot parse", "as CSV"]),  # ragged rows
])
def test_bad_csv(capsys, tmp_path, content, names):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    rc, out, err = run(capsys, "fit", path, DYE_FORMULA)
    assert_one_line_error(rc, err, *names)


@pytest.mark.parametrize("formula, names", [
    ("Yield ~ 1 + (1|Bach)", ["unknown column", "'Bach'"]),
    ("Yield ~ temp + (1|Batch)", ["unknown column", "'temp'"]),
    ("Yield ~ 1 +", ["malformed formula", "Yield ~ 1 +"]),
    ("Yield ~ (1|Batch", ["malformed formula", "(1|Batch"]),
    ("Batch ~ 1 + (1|Batch)", ["'Batch'", "numeric"]),
    ("Yield ~ 1", ["no random-effect term"]),
])
def test_bad_model(capsys, formula, names):
    rc, out, err = run(capsys, "fit", DYESTUFF, formula)
    assert_one_line_error(rc, err, *names)


def test_grouping_factor_with_one_level(capsys, tmp_path):
    path = tmp_path / "one.csv"
    pd.read_csv(DYESTUFF).assign(Batch="A").to_csv(path, index=False)
    rc, out, err = run(capsys, "fit", path, DYE_FORMULA)
    assert_one_line_error(rc, err, "'Batch'", "1 level")


@pytest.mark.parametrize("extra, names", [
    (["--method", "bogus"], ["--method", "bogus"]),
    (["--missing", "keep"], ["--missing"]),
    (["--draws", "0"], ["--draws"]),
    (["--vc", "cask"], ["--vc", "NAME=FORMULA"]),
    (["--vc", "cask=0 + C(cask)"], ["--groups"]),
    (["--re-formula", "1"], ["--groups"]),
    (["--no-such-flag"], ["--no-such-flag"]),
])
def test_usage_errors(capsys, extra, names):
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA, *extra)
    assert_one_line_error(rc, err, *names)


def test_missing_arguments(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF)
    assert_one_line_error(rc, err, "FORMULA")


@pytest.mark.parametrize("method, attr", [("map", "fit_map"), ("nuts", "sample")])
def test_method_not_available(capsys, monkeypatch, method, attr):
    monkeypatch.delattr(bvc.VCModel, attr, raising=False)
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA, "--method", method)
    assert_one_line_error(rc, err, f"method {method} is not available in this version")


def test_help_and_no_command(capsys):
    assert main(["--help"]) == 0
    assert "fit" in capsys.readouterr().out
    assert main(["fit", "--help"]) == 0
    assert "--method" in capsys.readouterr().out
    assert main([]) == 2
    capsys.readouterr()


# ----------------------------------------------------------------------------- other estimators

@pytest.mark.skipif(not hasattr(bvc.VCModel, "fit_map"), reason="VCModel.fit_map not in this version")
def test_fit_map_json(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA, "--method", "map", "--json")
    assert rc == 0, err
    got = last_json(out)
    assert {"method", "seconds"} <= set(got)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(bvc.VCModel, "sample"), reason="VCModel.sample not in this version")
def test_fit_nuts_json(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF, DYE_FORMULA, "--method", "nuts", "--json",
                       "--draws", "200", "--tune", "200", "--chains", "2", "--seed", "1")
    assert rc == 0, err
    got = last_json(out)
    assert {"method", "seconds"} <= set(got)


# ----------------------------------------------------------------------------- demo

def test_demo_reml_only(capsys):
    rc, out, err = run(capsys, "demo", "--no-nuts", "--quiet")
    assert rc == 0, err
    assert out.count("fits agree") == 2
    assert "MISMATCH" not in out
    assert out.count("Mixed Linear Model Regression Results") == 2


# ----------------------------------------------------------------------------- installed script

def test_console_script_subprocess(tmp_path):
    script = Path(sys.executable).with_name("bayesvc")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "bayesvc.cli"]
    ok = subprocess.run([*cmd, "fit", DYESTUFF, DYE_FORMULA, "--json"],
                        capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert JSON_KEYS <= set(last_json(ok.stdout))
    bad = subprocess.run([*cmd, "fit", str(tmp_path / "nope.csv"), DYE_FORMULA],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2
    assert bad.stderr.strip() == f"bayesvc: error: no such file: {tmp_path / 'nope.csv'}"
