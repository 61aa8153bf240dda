"""Bad input through the Python API: every error is a one-line ``SpecificationError`` (a
``ValueError``) naming the column or argument; data problems that can be worked around
(missing rows, rank-deficient X, a zero variance) warn and say how."""

import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc

DATA = Path(__file__).parent / "data"


@pytest.fixture
def dyestuff():
    return pd.read_csv(DATA / "Dyestuff.csv")


@contextmanager
def raises_naming(*names, match=None):
    """A one-line SpecificationError (a ValueError) whose message contains every name."""
    with pytest.raises(bvc.SpecificationError, match=match) as info:
        yield info
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "\n" not in msg, msg
    for n in names:
        assert n in msg, f"{n!r} not named in {msg!r}"


def fit(formula, data, **kw):
    return bvc.VCModel.from_formula(formula, data=data, **kw).fit_reml()


# ----------------------------------------------------------------------------- unknown columns

@pytest.mark.parametrize("formula, kw, name", [
    ("Yield ~ 1 + (1|Bach)", {}, "Bach"),                                   # lme4 grouping factor
    ("Yield ~ 1 + temp + (1|Batch)", {}, "temp"),                           # fixed effect
    ("Yeld ~ 1 + (1|Batch)", {}, "Yeld"),                                   # response
    ("Yield ~ 1 + (1 + dose|Batch)", {}, "dose"),                           # random slope
    ("Yield ~ 1", {"groups": "Bach"}, "Bach"),                              # statsmodels groups
    ("Yield ~ 1", {"groups": "Batch", "vc_formula": {"v": "0 + C(cask)"}}, "cask"),  # vc_formula
])
def test_unknown_column(dyestuff, formula, kw, name):
    with raises_naming(repr(name), match="unknown column"):
        fit(formula, dyestuff, **kw)


def test_unknown_column_lists_available(dyestuff):
    with raises_naming("Batch", "Yield"):
        fit("Yield ~ 1 + (1|Bach)", dyestuff)


# ----------------------------------------------------------------------------- missing values

@pytest.fixture
def with_missing(dyestuff):
    df = dyestuff.astype({"Yield": float})
    df.loc[[0, 3], "Yield"] = np.nan
    df.loc[5, "Batch"] = np.nan
    return df


def test_missing_values_error_by_default(with_missing):
    with raises_naming("'Yield' (2)", "'Batch' (1)", "missing='drop'", "3 incomplete rows",
                       match="missing values"):
        fit("Yield ~ 1 + (1|Batch)", with_missing)


def test_missing_values_error_statsmodels_style(with_missing):
    with raises_naming("'Yield' (2)", "'Batch' (1)", match="missing values"):
        fit("Yield ~ 1", with_missing, groups="Batch")


def test_missing_drop_warns_with_count(with_missing, dyestuff):
    with pytest.warns(UserWarning, match=r"dropped 3 rows"):
        res = fit("Yield ~ 1 + (1|Batch)", with_missing, missing="drop")
    assert res.nobs == len(with_missing) - 3
    assert res.design.n_dropped_missing == 3
    # same as fitting the complete rows
    ref = fit("Yield ~ 1 + (1|Batch)", with_missing.dropna())
    assert res.llf == pytest.approx(ref.llf, abs=1e-9)


def test_missing_values_in_unused_column_are_ignored(dyestuff):
    df = dyestuff.assign(other=np.nan)
    res = fit("Yield ~ 1 + (1|Batch)", df)
    assert res.nobs == 30


def test_bad_missing_argument(dyestuff):
    with raises_naming("missing", "'omit'"):
        fit("Yield ~ 1 + (1|Batch)", dyestuff, missing="omit")


# ----------------------------------------------------------------------------- response, levels, empty

def test_non_numeric_response(dyestuff):
    df = dyestuff.assign(Yield=dyestuff.Yield.astype(str) + " g")
    with raises_naming("'Yield'", "numeric"):
        fit("Yield ~ 1 + (1|Batch)", df)


def test_non_finite_response(dyestuff):
    df = dyestuff.astype({"Yield": float})
    df.loc[0, "Yield"] = np.inf
    with raises_naming("'Yield'", "infinite", "missing='drop'"):
        fit("Yield ~ 1 + (1|Batch)", df)


def test_non_numeric_endog_arrays(dyestuff):
    with raises_naming("endog", "numeric"):
        bvc.VCModel(dyestuff.Batch, np.ones(30), groups=dyestuff.Batch, exog_re=np.ones(30))


@pytest.mark.parametrize("kw, formula, name", [
    ({}, "Yield ~ 1 + (1|Batch)", "'Batch'"),
    ({"groups": "Batch"}, "Yield ~ 1", "'Batch'"),
])
def test_grouping_factor_with_one_level(dyestuff, kw, formula, name):
    df = dyestuff.assign(Batch="A")
    with raises_naming(name, "1 level", "at least 2"):
        fit(formula, df, **kw)


def test_grouping_factor_with_one_level_arrays(dyestuff):
    with raises_naming("'groups'", "1 level"):
        bvc.VCModel(dyestuff.Yield, np.ones(30), groups=np.ones(30), exog_re=np.ones(30))


def test_empty_data(dyestuff):
    with raises_naming("empty", "no rows"):
        fit("Yield ~ 1 + (1|Batch)", dyestuff.iloc[:0])


def test_empty_after_dropping_missing(dyestuff):
    df = dyestuff.assign(Yield=np.nan)
    with pytest.warns(UserWarning, match="dropped 30 rows"), raises_naming("empty"):
        fit("Yield ~ 1 + (1|Batch)", df, missing="drop")


def test_empty_arrays():
    with raises_naming("endog", "empty"):
        bvc.VCModel(np.array([]), np.ones((0, 1)), groups=np.array([]), exog_re=np.ones(0))


def test_data_not_a_dataframe(dyestuff):
    with raises_naming("data", "DataFrame", "dict"):
        fit("Yield ~ 1 + (1|Batch)", dyestuff.to_dict())


def test_groups_wrong_length(dyestuff):
    with raises_naming("groups", "(30)"):
        bvc.VCModel(dyestuff.Yield, np.ones(30), groups=dyestuff.Batch[:5], exog_re=np.ones(30))


# ----------------------------------------------------------------------------- malformed formulas

@pytest.mark.parametrize("formula, fragment", [
    ("y ~ x +", "y ~ x +"),                       # dangling '+'
    ("y ~ (1|g", "(1|g"),                         # unbalanced parenthesis
    ("y ~ 1 + (1|g))", "(1|g))"),                 # unbalanced the other way
    ("y ~ 1 + (1|)", "(1|)"),                     # empty grouping factor
    ("y ~ 1 + (1|g|h)", "(1|g|h)"),               # two bars
    ("y 1 + (1|g)", "y 1 + (1|g)"),               # no '~'
    ("log(y) ~ 1 + (1|g)", "log(y)"),             # response not a column
])
def test_malformed_formula(formula, fragment):
    df = pd.DataFrame({"y": np.arange(6.0), "x": np.arange(6.0), "g": [1, 1, 2, 2, 3, 3], "h": 1})
    with raises_naming(fragment, match="malformed formula"):
        fit(formula, df)


def test_formula_without_random_effects(dyestuff):
    with raises_naming("'Yield ~ 1'", "(1|group)"):
        fit("Yield ~ 1", dyestuff)


def test_malformed_fixed_part_statsmodels_style(dyestuff):
    with raises_naming("'1 +'", match="malformed"):
        fit("Yield ~ 1 +", dyestuff, groups="Batch")


def test_malformed_vc_formula(dyestuff):
    with raises_naming("'0 + C(Batch'", match="malformed"):
        fit("Yield ~ 1", dyestuff, groups="Batch", vc_formula={"v": "0 + C(Batch"})


def test_vc_formula_not_a_string(dyestuff):
    with raises_naming("vc_formula['v']", "string"):
        fit("Yield ~ 1", dyestuff, groups="Batch", vc_formula={"v": 1})


def test_mixing_styles(dyestuff):
    with raises_naming("groups="):
        fit("Yield ~ 1 + (1|Batch)", dyestuff, groups="Batch")


# ----------------------------------------------------------------------------- rank deficiency

@pytest.fixture
def collinear(dyestuff):
    rng = np.random.default_rng(1)
    df = dyestuff.assign(x1=rng.normal(size=len(dyestuff)))
    df["x2"] = 2 * df.x1
    return df


def test_rank_deficient_x_drops_with_warning(collinear):
    with pytest.warns(bvc.RankDeficiencyWarning, match="rank deficient") as rec:
        res = fit("Yield ~ x1 + x2 + (1|Batch)", collinear)
    msg = str(next(w.message for w in rec if issubclass(w.category, bvc.RankDeficiencyWarning)))
    dropped = res.design.dropped_fe
    assert len(dropped) == 1 and dropped[0] in ("x1", "x2")
    assert dropped[0] in msg
    assert dropped[0] not in res.fe_params.index
    assert len(res.fe_params) == 2
    kept = "x2" if dropped[0] == "x1" else "x1"
    ref = fit(f"Yield ~ {kept} + (1|Batch)", collinear)
    assert res.llf == pytest.approx(ref.llf, abs=1e-8)


def test_rank_deficient_x_drops_the_later_column_as_lme4(collinear):
    with pytest.warns(bvc.RankDeficiencyWarning, match="x2"):
        res = fit("Yield ~ x1 + x2 + (1|Batch)", collinear)
    assert res.design.dropped_fe == ("x2",)
    assert list(res.fe_params.index) == ["Intercept", "x1"]


def test_rank_deficient_arrays(dyestuff):
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    X = np.column_stack([np.ones(30), x, 3 * x])
    with pytest.warns(bvc.RankDeficiencyWarning, match="dropping 1 column"):
        res = bvc.VCModel(dyestuff.Yield, X, groups=dyestuff.Batch, exog_re=np.ones(30)).fit_reml()
    assert len(res.fe_params) == 2


# ----------------------------------------------------------------------------- boundary fit

def no_group_effect(seed):
    """6 groups x 5 observations, no group effect at all."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"g": np.repeat(np.arange(6), 5), "y": rng.normal(size=30)})


def test_boundary_fit_succeeds_and_says_so():
    df = no_group_effect(1)  # seed 1: between-group mean square < within-group mean square
    msb = 5 * df.groupby("g").y.mean().var(ddof=1)
    msw = df.groupby("g").y.var(ddof=1).mean()
    assert msb < msw  # so the REML estimate of the group variance is exactly 0
    with pytest.warns(bvc.BoundaryFitWarning, match="variance of g estimated as 0"):
        res = fit("y ~ 1 + (1|g)", df)
    assert res.converged
    assert res.vcomp["g"] == 0.0
    assert res.boundary == ("g",)
    # at sigma_g = 0 the model is ordinary least squares: REML scale = sample variance
    assert res.scale == pytest.approx(df.y.var(ddof=1), rel=1e-10)
    assert res.fe_params["Intercept"] == pytest.approx(df.y.mean(), rel=1e-10)


def test_interior_optimum_is_not_reported_as_boundary():
    df = no_group_effect(0)
    msb = 5 * df.groupby("g").y.mean().var(ddof=1)
    msw = df.groupby("g").y.var(ddof=1).mean()
    assert msb > msw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.BoundaryFitWarning)
        res = fit("y ~ 1 + (1|g)", df)
    # balanced one-way ANOVA: REML = the ANOVA estimators when they are positive
    assert res.vcomp["g"] == pytest.approx((msb - msw) / 5, rel=1e-5)
    assert res.scale == pytest.approx(msw, rel=1e-5)
    assert res.boundary == ()


def test_interior_fit_is_not_flagged():
    with warnings.catch_warnings():
        warnings.simplefilter("error", bvc.BoundaryFitWarning)
        res = fit("y ~ 1 + (1|g)", no_group_effect(6))
    assert res.vcomp["g"] > 0
    assert res.boundary == ()


# ----------------------------------------------------------------------------- known gaps (see report)

def test_one_level_per_observation_is_an_error(dyestuff):
    df = dyestuff.assign(obs=np.arange(len(dyestuff)))
    with raises_naming("'obs'"):
        fit("Yield ~ 1 + (1|obs)", df)


def test_constant_response(dyestuff):
    with raises_naming("'Yield'", "constant"):
        fit("Yield ~ 1 + (1|Batch)", dyestuff.assign(Yield=1.0))


@pytest.mark.parametrize("which", ["exog", "exog_re"])
def test_non_numeric_exog_arrays_named(dyestuff, which):
    kw = {"exog": np.ones(30), "exog_re": np.ones(30)}
    kw[which] = np.array(["a"] * 30)
    with raises_naming(which):
        bvc.VCModel(dyestuff.Yield, kw["exog"], groups=dyestuff.Batch, exog_re=kw["exog_re"])
