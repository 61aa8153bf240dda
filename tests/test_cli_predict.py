"""``bayesvc predict``: REML predictions equal lme4's predict() (tests/data/lme4_predict.json) through
the CLI, the JSON contract, NUTS intervals, and one-line errors."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesvc.cli import main

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "lme4_predict.json").read_text())["models"]["sleepstudy_corr"]
SLEEP = str(DATA / REF["data"])
NEW = str(DATA / REF["newdata_file"])


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def last_json(out):
    return json.loads(out.strip().splitlines()[-1])


def test_reml_json_equals_lme4(capsys):
    rc, out, err = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", NEW, "--json")
    assert rc == 0, err
    preds = last_json(out)["predictions"]
    assert [p["row"] for p in preds] == list(range(8))
    assert all(p["lower"] is None and p["upper"] is None for p in preds)
    want = REF["predict"]["newdata"]["re_form_NULL_allow_new_levels"]
    np.testing.assert_allclose([p["mean"] for p in preds], want, rtol=1e-6)
    rc, out, _ = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", NEW, "--json", "--no-random-effects")
    np.testing.assert_allclose([p["mean"] for p in last_json(out)["predictions"]],
                               REF["predict"]["newdata"]["re_form_NA"], rtol=1e-6)


def test_text_output_has_a_mean_column(capsys):
    rc, out, _ = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", NEW)
    assert rc == 0 and "mean" in out.splitlines()[0] and "new_subject" in out


def test_errors_are_one_line(capsys, tmp_path):
    rc, _, err = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", NEW, "--new-levels", "error")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "'Subject'" in err and "'999'" in err and "new_subject" in err
    rc, _, err = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", NEW, "--new-levels", "sample")
    assert rc == 2 and "needs --method nuts" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("Subject\n308\n")
    rc, _, err = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", bad)
    assert rc == 2 and err.startswith("bayesvc: error: unknown column 'Days' in newdata")
    rc, _, err = run(capsys, "predict", SLEEP, REF["formula"], "--newdata", tmp_path / "none.csv")
    assert rc == 2 and "no such file" in err


def test_nuts_intervals_cover_the_mean(capsys):
    rc, out, err = run(capsys, "predict", SLEEP, "Reaction ~ 1 + Days + (1 | Subject)", "--newdata", NEW,
                       "--method", "nuts", "--new-levels", "sample", "--draws", 200, "--tune", 200,
                       "--chains", 2, "--seed", 1, "--json")
    assert rc == 0, err
    preds = last_json(out)["predictions"]
    assert all(p["lower"] < p["mean"] < p["upper"] for p in preds)
    width = [p["upper"] - p["lower"] for p in preds]
    assert width[4] > 2 * width[0]  # a new subject carries the between-subject spread


def test_fit_json_has_r2(capsys):
    rc, out, err = run(capsys, "fit", SLEEP, REF["formula"], "--json")
    assert rc == 0, err
    r2 = last_json(out)["r2"]
    assert abs(r2["marginal"] - REF["r2_nakagawa"]["R2_marginal"]) < 1e-5
    assert abs(r2["conditional"] - REF["r2_nakagawa"]["R2_conditional"]) < 1e-5
