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
    "----------------------------------------------------------\n"
    "                Coef.  Std.Err.   z    P>|z| [0.025 0.975]\n"
    "----------------------------------------------------------\n"
    "Intercept       -0.035    0.149 -0.232 0.817 -0.326  0.257\n"
    "group1 Var       3.918    0.445                           \n"
    "group2 Var       8.742    0.237                           \n"
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


def _tokens(text: str) -> list[list[str]]:
    """The cells of each line (rules as one character: their widths are checked apart)."""
    return [[line[0]] if line and len(set(line)) == 1 else line.split() for line in text.splitlines()]


def _widths_equal_rules(text: str) -> bool:
    """Every line but the title (and notes) is exactly as wide as the '=' rules."""
    lines = text.splitlines()
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"="}]
    width = len(lines[rules[0]])
    return all(len(line) == width for line in lines[rules[0]:rules[-1] + 1])


def test_layout_matches_statsmodels_text(res):
    """Same lines, cells and header layout as statsmodels' own summary; the table is padded to the
    rules' width (statsmodels' table comes out one column-padding wider than its rules)."""
    text = str(res.summary())
    ours = [line.rstrip() for line in text.splitlines()]
    theirs = STATSMODELS.splitlines()
    assert len(ours) == len(theirs)
    # title, rules and header lines without estimates: identical
    for i in [0, 1, 2, 3, 7, 14]:
        assert ours[i] == theirs[i], (i, ours[i], theirs[i])
    # group-size halves of the header and the labels of its right half: identical
    for i in (4, 5, 6):
        assert ours[i][:46] == theirs[i][:46]
    # every line holds the same cells once digits are masked
    mask = lambda line: re.sub(r"\d", "9", line)  # noqa: E731
    assert _tokens(mask(text)) == _tokens(mask(STATSMODELS))
    # statsmodels' table rule overshoots its '=' rules; ours equals them
    assert len(theirs[8]) == len(theirs[1]) + 1
    assert _widths_equal_rules(text)


@pytest.mark.parametrize("alpha", [0.05, 0.1])
def test_renderer_matches_statsmodels_summary2(res, sleep_res, alpha):
    """statsmodels' summary2 arithmetic: identical text where the table is the widest block (the
    correlated model's long labels); where the header is wider, the same cells with the table
    padded to exactly the rules' width (statsmodels miscounts the table's separators there)."""
    wide_header, wide_table = res.summary(alpha=alpha), sleep_res.summary(alpha=alpha)
    assert str(wide_table) == _statsmodels_render(wide_table)
    assert str(wide_header) != _statsmodels_render(wide_header)
    for s in (wide_header, wide_table):
        assert _tokens(str(s)) == _tokens(_statsmodels_render(s))
        assert _widths_equal_rules(str(s))
    wide_table.notes.append("A note long enough to be wrapped to the table's width. " * 3)
    assert str(wide_table) == _statsmodels_render(wide_table)


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


def test_correlated_term_rows_read_as_lme4(sleep_res):
    """lme4's names (group, then coefficient) with statsmodels' Var / Cov suffixes, and the
    correlation lme4 prints; standard errors for all of them."""
    t = sleep_res.summary().tables["params"]
    assert list(t.index) == ["Intercept", "Days", "Subject (Intercept) Var", "Subject Days Var",
                             "Subject (Intercept) x Days Cov", "Subject (Intercept) x Days Corr"]
    C, se = sleep_res.cov_re["Subject"], sleep_res.cov_re_se["Subject"]
    assert t.loc["Subject (Intercept) x Days Cov", "Coef."] == C.loc["Days", "Intercept"]
    assert t.loc["Subject (Intercept) x Days Cov", "Std.Err."] == se.loc["Days", "Intercept"]
    assert t.loc["Subject Days Var", "Std.Err."] == sleep_res.vcomp_se["Days|Subject"]
    corr = C.loc["Days", "Intercept"] / np.sqrt(C.loc["Days", "Days"] * C.loc["Intercept", "Intercept"])
    assert t.loc["Subject (Intercept) x Days Corr", "Coef."] == pytest.approx(corr, rel=1e-12)
    assert t.loc["Subject (Intercept) x Days Corr", "Std.Err."] > 0
    assert t.loc[t.index[2:], ["z", "P>|z|", "[0.025", "0.975]"]].isna().all().all()
    text = str(sleep_res.summary())
    assert "Subject (Intercept) x Days Corr" in text
    assert "Dependent Variable:        Reaction" in text
    assert "No. Groups:               18" in text
    assert _widths_equal_rules(text)


def test_correlation_se_is_the_delta_method_of_cov_vc(sleep_res):
    C = sleep_res.cov_re["Subject"].to_numpy()
    names = ["Subject", "Subject: Intercept,Days", "Days|Subject"]
    V = sleep_res.cov_vc.loc[names, names].to_numpy()
    r = C[1, 0] / np.sqrt(C[0, 0] * C[1, 1])
    eps = 1e-4 * np.array([C[0, 0], np.sqrt(C[0, 0] * C[1, 1]), C[1, 1]])
    def corr(x):
        return x[1] / np.sqrt(x[0] * x[2])
    x0 = np.array([C[0, 0], C[1, 0], C[1, 1]])
    g = np.array([(corr(x0 + e) - corr(x0 - e)) / (2 * e[k]) for k, e in enumerate(np.diag(eps))])
    t = sleep_res.summary().tables["params"]
    assert t.loc["Subject (Intercept) x Days Corr", "Std.Err."] == pytest.approx(np.sqrt(g @ V @ g), rel=1e-6)
    assert t.loc["Subject (Intercept) x Days Corr", "Coef."] == pytest.approx(r, rel=1e-12)


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
