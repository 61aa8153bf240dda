"""statsmodels' MixedLM summary layout (bayesvc.results.table, bayesvc.results.summaries)."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import bayesvc as bvc
from bayesvc.datasets import generate_nested, nested_vcspec
from bayesvc.results.summaries import reml_summary
from bayesvc.results.table import Summary, format_header, format_table, format_value

DATA = Path(__file__).parent / "data"

# Our summary of the seed's nested model, character for character (trailing blanks included:
# statsmodels pads every cell of a table to its column width).
GOLDEN = (
    "          Mixed Linear Model Regression Results\n"
    "==========================================================\n"
    "Model:            MixedLM Dependent Variable: y           \n"
    "No. Observations: 40000   Method:             REML        \n"
    "No. Groups:       200     Scale:              15.8826     \n"
    "Min. group size:  200     Log-Likelihood:     -116022.3805\n"
    "Max. group size:  200     Converged:          Yes         \n"
    "Mean group size:  200.0                                   \n"
    "-----------------------------------------------------------\n"
    "            Coef.   Std.Err.    z     P>|z|  [0.025  0.975]\n"
    "-----------------------------------------------------------\n"
    "Intercept   -0.035     0.149  -0.232  0.817  -0.326   0.257\n"
    "group1 Var   3.918     0.445                               \n"
    "group2 Var   8.742     0.237                               \n"
    "==========================================================\n"
)

# statsmodels' own MixedLM.summary() on the same data (0.14; trailing blanks stripped). Its
# estimates differ slightly (its optimizer stops earlier; its variance SEs are on another scale).
STATSMODELS = """\
          Mixed Linear Model Regression Results
==========================================================
Model:            MixedLM Dependent Variable: y
No. Observations: 40000   Method:             REML
No. Groups:       200     Scale:              15.8825
Min. group size:  200     Log-Likelihood:     -116022.3805
Max. group size:  200     Converged:          Yes
Mean group size:  200.0
-----------------------------------------------------------
            Coef.   Std.Err.    z     P>|z|  [0.025  0.975]
-----------------------------------------------------------
Intercept   -0.035     0.149  -0.232  0.817  -0.326   0.257
group1 Var   3.917     0.112
group2 Var   8.742     0.063
==========================================================
"""


@pytest.fixture(scope="module")
def nested():
    np.random.seed(3123)
    return generate_nested()


@pytest.fixture(scope="module")
def res(nested):
    return bvc.VCModel.from_formula("y ~ 1", data=nested, groups="group1", re_formula="1",
                                    vc_formula={"group2": "0 + C(group2)"}).fit_reml()


@pytest.fixture(scope="module")
def sleep_res():
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    return bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df).fit_reml()


def _statsmodels_render(s: Summary) -> str:
    """The same formatted pieces laid out by statsmodels' own summary2."""
    summary2 = pytest.importorskip("statsmodels.iolib.summary2")
    sm = summary2.Summary()
    sm.add_dict(dict(s.formatted_header()))
    sm.add_title(s.title)
    for df in s.formatted_tables().values():
        sm.add_df(df, align="r")
    for note in s.notes:
        sm.add_text(note)
    return str(sm)


# ----------------------------------------------------------------------------- golden text

def test_golden_text(res):
    s = res.summary()
    assert isinstance(s, Summary)
    assert str(s) == GOLDEN
    assert repr(s) == GOLDEN


def test_layout_matches_statsmodels_text(res):
    ours = [line.rstrip() for line in str(res.summary()).splitlines()]
    theirs = STATSMODELS.splitlines()
    assert len(ours) == len(theirs)
    # lines without estimates: identical
    no_estimates = [0, 1, 2, 3, 7, 8, 9, 10, 14]
    for i in no_estimates:
        assert ours[i] == theirs[i], (i, ours[i], theirs[i])
    # group-size halves of the header and the labels of its right half: identical
    for i in (4, 5, 6):
        assert ours[i][:46] == theirs[i][:46]
    # every line has the same shape once digits are masked (same widths, columns, rules)
    mask = lambda line: re.sub(r"\d", "9", line)  # noqa: E731
    assert [mask(x) for x in ours] == [mask(x) for x in theirs]


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_renderer_matches_statsmodels_summary2(res, sleep_res, alpha):
    for r in (res, sleep_res):
        s = r.summary(alpha=alpha)
        assert str(s) == _statsmodels_render(s)
    s.notes.append("A note long enough to be wrapped to the table's width. " * 3)
    assert str(s) == _statsmodels_render(s)


# ----------------------------------------------------------------------------- contents

def test_params_table_holds_the_results_numbers(res):
    t = res.summary().tables["params"]
    assert list(t.index) == ["Intercept", "group1 Var", "group2 Var"]
    assert list(t.columns) == ["Coef.", "Std.Err.", "z", "P>|z|", "[0.025", "0.975]"]
    b, se = res.fe_params["Intercept"], res.bse_fe["Intercept"]
    assert t.loc["Intercept", "Coef."] == b
    assert t.loc["Intercept", "Std.Err."] == se
    assert t.loc["Intercept", "z"] == b / se
    assert t.loc["Intercept", "P>|z|"] == pytest.approx(2 * norm.sf(abs(b / se)), rel=1e-12)
    q = norm.ppf(0.975)
    assert t.loc["Intercept", "[0.025"] == pytest.approx(b - q * se, rel=1e-14)
    assert t.loc["Intercept", "0.975]"] == pytest.approx(b + q * se, rel=1e-14)
    for comp in ("group1", "group2"):
        assert t.loc[f"{comp} Var", "Coef."] == res.vcomp[comp]
        assert t.loc[f"{comp} Var", "Std.Err."] == res.vcomp_se[comp]
        assert t.loc[f"{comp} Var", ["z", "P>|z|", "[0.025", "0.975]"]].isna().all()
    head = dict(res.summary().header)
    assert head["Scale:"] == res.scale and head["Log-Likelihood:"] == res.llf
    assert head["No. Observations:"] == 40000 and head["No. Groups:"] == 200


def test_array_interface_names(nested):
    n = len(nested)
    r = bvc.VCModel(nested.y, np.ones(n), groups=nested.group1, exog_re=np.ones(n),
                    exog_vc=nested_vcspec(nested)).fit_reml()
    s = r.summary()
    assert list(s.tables["params"].index) == ["const", "x_re1 Var", "group2 Var"]
    lines = str(s).splitlines()
    assert lines[2].startswith("Model:            MixedLM Dependent Variable: y")
    assert any(line.startswith("x_re1 Var") for line in lines)


def test_correlated_term_has_covariance_row(sleep_res):
    t = sleep_res.summary().tables["params"]
    assert list(t.index) == ["Intercept", "Days", "Subject Var", "Subject x Days|Subject Cov",
                             "Days|Subject Var"]
    C = sleep_res.cov_re["Subject"]
    assert t.loc["Subject x Days|Subject Cov", "Coef."] == C.loc["Days", "Intercept"]
    assert np.isnan(t.loc["Subject x Days|Subject Cov", "Std.Err."])
    text = str(sleep_res.summary())
    assert "Subject x Days|Subject Cov" in text
    assert "Dependent Variable:      Reaction" in text
    assert "No. Groups:              18" in text


def test_alpha_sets_interval_columns(res):
    t = res.summary(alpha=0.1).tables["params"]
    assert list(t.columns[-2:]) == ["[0.05", "0.95]"]
    assert t.loc["Intercept", "0.95]"] == pytest.approx(
        res.fe_params["Intercept"] + norm.ppf(0.95) * res.bse_fe["Intercept"], rel=1e-14)
    with pytest.raises(ValueError, match="alpha"):
        reml_summary(res, alpha=1.5)


# ----------------------------------------------------------------------------- other renderings

def test_html_markdown_latex(res):
    s = res.summary()
    h = s._repr_html_()
    assert "<table" in h and "<caption>Mixed Linear Model Regression Results</caption>" in h
    assert "<th>Intercept</th><td>-0.035</td>" in h and "P&gt;|z|" in h
    md = s.to_markdown()
    assert "| Intercept | -0.035 | 0.149 |" in md
    assert "P>\\|z\\|" in md and "| Model: | MixedLM | Dependent Variable: | y |" in md
    tex = s.to_latex(label="tab:reml")
    assert tex.startswith("\\begin{table}") and "\\label{tab:reml}" in tex
    assert "\\begin{tabular}{lrrrrrr}" in tex and "P$>$$|$z$|$" in tex
    assert "Intercept & -0.035 & 0.149 & -0.232 & 0.817 & -0.326 & 0.257 \\\\" in tex


# ----------------------------------------------------------------------------- formatters

def test_format_value():
    assert format_value(np.nan) == "" and format_value(None) == "" and format_value(np.inf) == ""
    assert format_value(3) == "3" and format_value(np.int64(7)) == "7"
    assert format_value(True) == "Yes" and format_value(np.bool_(False)) == "No"
    assert format_value(1.23456, "%.2f") == "1.23" and format_value(1.23456, "{:.1f}") == "1.2"
    assert format_value(0.5, lambda x: f"{100 * x:.0f}%") == "50%"
    assert format_value("REML") == "REML"


def test_format_table_and_header_for_other_summaries():
    df = pd.DataFrame({"Mean": [1.23456, np.nan], "ESS bulk": [812.4, 1500.0]}, index=["a", "b"])
    out = format_table(df, {"Mean": "%.3f", "ESS bulk": "%.0f"})
    assert out.values.tolist() == [["1.235", "812"], ["", "1500"]]
    assert format_table(df).loc["a", "Mean"] == "1.2346"
    assert format_header([("Chains x draws:", "4 x 1000"), ("Max. R-hat:", 1.00123)]) == [
        ("Chains x draws:", "4 x 1000"), ("Max. R-hat:", "1.0012")]
    s = Summary("Posterior", [("Divergences:", 0)], {"params": df},
                float_formats={"params": {"Mean": "%.3f", "ESS bulk": "%.0f"}})
    lines = str(s).splitlines()
    assert lines[1] == "=" * len(lines[1]) and lines[-1] == lines[1]
    assert lines[2].startswith("Divergences: 0")
    assert str(s) == _statsmodels_render(s)
