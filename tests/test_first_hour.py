"""What a new user meets in the first hour: where warnings point, what the NUTS summary and JSON of a
correlated model say, the command line's options, help and messages, printing random effects."""

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main

DATA = Path(__file__).parent / "data"
DYESTUFF = str(DATA / "Dyestuff.csv")


def run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def _widths_equal_rules(text: str) -> bool:
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    return all(len(line) == len(lines[rules[0]]) for line in lines[rules[0]:rules[-1] + 1])


# ----------------------------------------------------------------------------- warnings point here

def _caught(category, fn):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        fn()
    hits = [w for w in rec if issubclass(w.category, category)]
    assert hits, [str(w.message) for w in rec]
    return hits


def test_data_warnings_point_at_the_users_line():
    """Boundary fits, dropped rank-deficient columns and dropped incomplete rows are reported at
    the line that called bayesvc (``bayesvc.errors.warn``), not inside the package."""
    dye = pd.read_csv(DYESTUFF)
    dye2 = pd.read_csv(DATA / "Dyestuff2.csv")
    collinear = dye.assign(x1=np.arange(len(dye), dtype=float), x2=2 * np.arange(len(dye), dtype=float))
    gaps = dye.astype({"Yield": float})
    gaps.loc[[0, 7], "Yield"] = np.nan
    cases = [
        (bvc.BoundaryFitWarning,
         lambda: bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=dye2).fit_reml()),
        (bvc.RankDeficiencyWarning,
         lambda: bvc.VCModel.from_formula("Yield ~ x1 + x2 + (1|Batch)", data=collinear)),
        (bvc.RankDeficiencyWarning,
         lambda: bvc.VCModel(dye.Yield, collinear[["x1", "x2"]].assign(c=1.0), dye.Batch)),
        (UserWarning,
         lambda: bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=gaps, missing="drop")),
    ]
    for category, fn in cases:
        for w in _caught(category, fn):
            assert w.filename == __file__, (category, w.filename, str(w.message))


@pytest.fixture(scope="module")
def sleep_nuts():
    """A short NUTS fit of a correlated model (its diagnostics are poor on purpose: short chains)."""
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    m = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df)
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        post = m.sample(draws=150, tune=150, chains=2, random_seed=3, progressbar=False)
    return m, post, rec


def test_sampling_warnings_point_at_the_users_line_and_blas_is_quiet(sleep_nuts):
    _, _, rec = sleep_nuts
    sampling = [w for w in rec if issubclass(w.category, bvc.SamplingWarning)]
    assert sampling, "150 draws per chain should fall short of ESS 400"
    fixture_file = __file__
    assert all(w.filename == fixture_file for w in sampling)
    assert not [w for w in rec if "BLAS" in str(w.message)]


# ----------------------------------------------------------------------------- NUTS, correlated

def test_nuts_summary_has_scale_covariance_and_correlation_rows(sleep_nuts):
    _, post, _ = sleep_nuts
    s = post.summary()
    head = dict(s.header)
    assert head["Scale:"] == post.scale == pytest.approx(float(post.posterior["scale"].mean()), rel=1e-12)
    t = s.tables["params"]
    assert list(t.index) == ["Intercept", "Days", "Subject (Intercept) Var", "Subject Days Var",
                             "Subject (Intercept) x Days Cov", "Subject (Intercept) x Days Corr",
                             "Residual Var"]
    p = post.posterior
    sd = p["sd"]
    corr = p["corr_Subject"].sel(Subject_pair="Intercept,Days")
    cov = p["cov_Subject"].sel(Subject_pair="Intercept,Days")
    np.testing.assert_allclose(cov, corr * sd.sel(component="Subject") * sd.sel(component="Days|Subject"),
                               rtol=1e-10)
    assert t.loc["Subject (Intercept) x Days Cov", "Mean"] == pytest.approx(float(cov.mean()), rel=1e-12)
    assert t.loc["Subject (Intercept) x Days Corr", "Mean"] == pytest.approx(float(corr.mean()), rel=1e-12)
    assert -1 < t.loc["Subject (Intercept) x Days Corr", "ETI 95% lower"] < 1
    assert _widths_equal_rules(str(s))


def test_nuts_json_reports_diagnostics_not_convergence(sleep_nuts):
    _, post, _ = sleep_nuts
    d = post.to_dict()
    assert d["converged"] is None and d["llf"] is None
    diag = d["diagnostics"]
    assert set(diag) == {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "ok"}
    verdicts = post.diagnostics()
    assert diag["max_r_hat"] == float(verdicts.r_hat.max())
    assert diag["ok"] is bool(verdicts.ok.all() and post.divergences == 0)
    assert list(d["covariances"]) == ["Subject: Intercept,Days"] == list(d["correlations"])
    assert d["covariances"]["Subject: Intercept,Days"]["mean"] == pytest.approx(
        float(post.posterior["cov_Subject"].mean()), rel=1e-12)
    json.dumps(d)


def test_mode_summary_has_scale_and_rules_as_wide_as_its_table():
    m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=pd.read_csv(DYESTUFF, dtype={"Batch": str}))
    mode = m.fit_map()
    text = str(mode.summary())
    assert dict(mode.summary().header)["Scale:"] == mode.scale
    assert _widths_equal_rules(text)


# ----------------------------------------------------------------------------- command line

def test_cli_help_shows_defaults(capsys):
    assert main(["fit", "--help"]) == 0
    out = capsys.readouterr().out.replace("\n", " ")
    out = " ".join(out.split())
    for text in ("NUTS draws per chain (default: 1000)", "(default: reml)", "(default: error)",
                 "--marginalize {auto,true,full,partial,false,laplace}", "(default: auto)"):
        assert text in out, text
    assert main(["sensitivity", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: 0.5,1,2,5)" in out and "report SDs instead of variances" in out


def _value_options(parser):
    """``(subcommand, action)`` for every option of every subcommand that takes a value."""
    import argparse

    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for a in p._actions:
            takes_value = a.nargs != 0 and not isinstance(a, argparse._HelpAction)
            if a.option_strings and takes_value and not a.required:
                yield name, p, a


def test_every_help_shows_its_defaults():
    """``python -m bayesvc.cli [SUB] --help`` as a user runs it: every option that takes a value
    says its default once, either argparse's ``(default: X)`` or in its own words."""
    import subprocess
    import sys

    from bayesvc.cli import build_parser

    import argparse

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    helps = {}
    for sub in ("", *subs):
        proc = subprocess.run([sys.executable, "-m", "bayesvc.cli", *([sub] if sub else []), "--help"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        helps[sub] = " ".join(proc.stdout.split())
    assert {"fit", "compare", "sensitivity", "test", "demo"} <= set(subs)
    assert all(c in helps[""] for c in subs)
    checked = 0
    for name, p, action in _value_options(parser):
        raw = p.formatter_class(p.prog)._get_help_string(action)
        text = " ".join((raw % {"default": action.default}).split())
        if action.default not in (None, False, []):
            want = f"(default: {action.default})"
            assert text.endswith(want), (name, action.dest, text)
            assert want in helps[name], (name, action.dest)
        assert text.count("(default") + text.count("; default") == 1, (name, action.dest, text)
        checked += 1
    assert checked > 40


@pytest.mark.parametrize("flag, value", [("auto", "auto"), ("true", True), ("full", "full"),
                                         ("partial", "partial"), ("false", False),
                                         ("laplace", "laplace")])
def test_cli_marginalize_reaches_sample(capsys, monkeypatch, flag, value):
    seen = {}

    def fake_sample(self, **kw):
        seen.update(kw)
        raise bvc.SpecificationError("stop here")

    monkeypatch.setattr(bvc.VCModel, "sample", fake_sample)
    rc, _, err = run(capsys, "fit", DYESTUFF, "Yield ~ 1 + (1|Batch)", "--method", "nuts",
                     "--marginalize", flag)
    assert rc == 2 and "stop here" in err
    assert seen["marginalize"] is value if isinstance(value, bool) else seen["marginalize"] == value


def test_cli_messages_spell_the_cli_options(capsys, monkeypatch):
    """Library advice names API arguments; on the command line it names the options."""
    def fake_sample(self, **kw):
        bvc.errors.warn("3 divergent transitions: increase tune, or try another parameterization "
                        "(marginalize=False)", bvc.SamplingWarning)
        raise bvc.SpecificationError("stop")

    monkeypatch.setattr(bvc.VCModel, "sample", fake_sample)
    rc, _, err = run(capsys, "fit", DYESTUFF, "Yield ~ 1 + (1|Batch)", "--method", "nuts")
    assert rc == 2
    assert "bayesvc: warning: 3 divergent transitions: increase tune, or try another " \
           "parameterization (--marginalize false)" in err
    # the API keeps the API's spelling
    gaps = pd.read_csv(DYESTUFF).astype({"Yield": float})
    gaps.loc[0, "Yield"] = np.nan
    with pytest.raises(bvc.SpecificationError, match="pass missing='drop'"):
        bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", data=gaps)


def test_cli_nuts_json_converged_is_null(capsys):
    rc, out, err = run(capsys, "fit", DYESTUFF, "Yield ~ 1 + (1|Batch)", "--method", "nuts", "--json",
                       "--draws", "60", "--tune", "60", "--chains", "1", "--seed", "2")
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    assert got["converged"] is None and got["llf"] is None
    assert set(got["diagnostics"]) == {"max_r_hat", "min_ess_bulk", "min_ess_tail", "divergences", "ok"}
    assert got["diagnostics"]["ok"] is False  # 60 draws cannot reach ESS 400


# ----------------------------------------------------------------------------- printing

def test_print_random_effects_shows_the_table_head():
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    r = bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df).fit_reml()
    text = str(r.ranef())
    lines = text.splitlines()
    assert lines[0] == "RandomEffects(36 rows; components ['Subject', 'Days|Subject'])"
    assert lines[1].split() == ["component", "term", "level", "coef", "mode", "cond_var"]
    assert len(lines) == 2 + 10 + 1 and lines[-1] == "... 26 more rows (.table holds them all)"
    assert repr(r.ranef()) == text
    first = r.ranef().table.iloc[0]
    assert lines[2].split()[-2:] == [f"{first['mode']:.4f}", f"{first['cond_var']:.4f}"]
    html = r.ranef()._repr_html_()
    assert html.count("<tr") == 11 and "26 more rows" in html
