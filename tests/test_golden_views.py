"""Golden text of the seed nested design's posterior-mode summary and REML/mode comparison
(deterministic estimators; the REML summary's golden text is in test_summary.py)."""

import numpy as np
import pytest

import bayesvc as bvc
from bayesvc.datasets import generate_nested

MODE = """\
             Mixed Linear Model Posterior Mode
============================================================
Model:            MixedLM Dependent Variable: y
No. Observations: 40000   Method:             Posterior mode
No. Groups:       200     Scale:              15.8825
Min. group size:  200     Log-posterior:      -116033.4365
Max. group size:  200     Converged:          Yes
Mean group size:  200.0
------------------------------------------------------------
                 Mode       Std.Err.      [0.025      0.975]
------------------------------------------------------------
Intercept       -0.035         0.149      -0.326       0.257
group1 Var       3.895                     3.120       4.864
group2 Var       8.742                     8.289       9.220
============================================================"""

COMPARISON = """\
        Mixed Linear Model Estimator Comparison
========================================================
Model:              MixedLM Methods:        REML, MAP
No. Observations:   40000   Log-Likelihood: -116022.3805
No. Groups:         200     Converged:      Yes
Dependent Variable: y
--------------------------------------------------------
                  REML     REML SE     Mode     Boundary
--------------------------------------------------------
Intercept        -0.035      0.149    -0.035
group1 Var        3.918      0.445     3.895
group2 Var        8.742      0.237     8.742
Residual Var     15.883      0.118    15.883
========================================================"""


def _text(obj) -> str:
    return "\n".join(line.rstrip() for line in str(obj).splitlines())


@pytest.fixture(scope="module")
def fits():
    np.random.seed(3123)
    df = generate_nested()
    m = bvc.VCModel.from_formula("y ~ 1", data=df, groups="group1", re_formula="1",
                                 vc_formula={"group2": "0 + C(group2)"})
    return m.fit_reml(), m.fit_map()


def test_mode_summary_golden(fits):
    assert _text(fits[1].summary()) == MODE


def test_comparison_golden_and_exact_reml_column(fits):
    reml, mode = fits
    cmp = bvc.compare(reml=reml, mode=mode)
    assert _text(cmp) == COMPARISON
    t = cmp.table.set_index("parameter")
    assert t.loc["group1", "reml"] == reml.vcomp["group1"]
    assert t.loc["Residual", "reml"] == reml.scale
