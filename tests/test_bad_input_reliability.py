"""Issue 11's hostile inputs, one case per bullet, through the API and the CLI: a one-line
``SpecificationError`` naming the argument (CLI: exit 2, one ``bayesvc: error:`` line), or, where
the fit is legitimate, the right numbers with a named warning."""

import warnings

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.cli import main


def _frame(seed=0, n_groups=8, per=6):
    rng = np.random.default_rng(seed)
    n = n_groups * per
    d = pd.DataFrame({"g": np.repeat(np.arange(n_groups), per), "x": rng.normal(size=n)})
    d["y"] = 1 + 0.5 * d.x + np.repeat(rng.normal(size=n_groups), per) + rng.normal(size=n)
    return d


@pytest.fixture
def data():
    return _frame()


def one_line(info, *names):
    msg = str(info.value)
    assert "\n" not in msg, msg
    for n in names:
        assert n in msg, f"{n!r} not in {msg!r}"
    return msg


def reml(formula, d, **kw):
    return bvc.VCModel.from_formula(formula, data=d, **kw).fit_reml()


def cli_error(capsys, tmp_path, d, *argv):
    path = tmp_path / "d.csv"
    d.to_csv(path, index=False)
    rc = main(["fit", str(path), *map(str, argv)])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and lines[0].startswith("bayesvc: error: "), err
    return lines[0]


# ------------------------------------------------------------------------------- seeds

@pytest.mark.parametrize("seed", [-1, 2**70])
def test_seed_out_of_range_refused_before_compiling(data, seed, monkeypatch):
    import sys

    smp = sys.modules["bayesvc.estimators.bayes.sample"]

    def never(*a, **k):  # compilation must not start
        raise AssertionError("compiled before validating the seed")

    monkeypatch.setattr(smp, "compile_nutpie", never)
    monkeypatch.setattr(smp, "build_pymc", never)
    model = bvc.VCModel.from_formula("y ~ x + (1|g)", data=data)
    with pytest.raises(bvc.SpecificationError) as info:
        model.sample(draws=10, tune=10, chains=1, random_seed=seed, progressbar=False)
    one_line(info, "random_seed", str(seed))


def test_cli_seed_negative(capsys, tmp_path, data):
    line = cli_error(capsys, tmp_path, data, "y ~ x + (1|g)", "--method", "nuts", "--seed", "-1")
    assert "seed" in line and "-1" in line


# ------------------------------------------------------------------------------- priors

@pytest.mark.parametrize("make", [lambda: bvc.HalfNormal(-1), lambda: bvc.HalfNormal(0),
                                  lambda: bvc.HalfCauchy(0.0), lambda: bvc.Exponential(-2),
                                  lambda: bvc.HalfStudentT(3, -1.0), lambda: bvc.HalfNormal(float("inf"))])
def test_prior_scale_not_positive_refused_in_constructor(make):
    with pytest.raises(bvc.SpecificationError) as info:
        make()
    one_line(info, "must be a positive finite number")


# ------------------------------------------------------------------------------- inf = missing

def test_inf_in_covariate_is_missing(data):
    d = data.copy()
    d.loc[5, "x"] = np.inf
    d.loc[9, "x"] = -np.inf
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ x + (1|g)", d)
    one_line(info, "'x' (2)", "missing='drop'")
    with pytest.warns(UserWarning, match="dropped 2 rows"):
        got = reml("y ~ x + (1|g)", d, missing="drop")
    # the same fit as without those rows (x is kept, not dropped as rank deficient)
    want = reml("y ~ x + (1|g)", data.drop(index=[5, 9]))
    assert list(got.fe_params.index) == ["Intercept", "x"]
    np.testing.assert_allclose(got.fe_params, want.fe_params, rtol=1e-10)
    np.testing.assert_allclose(got.vcomp, want.vcomp, rtol=1e-10)


def test_inf_in_response_is_missing(data):
    d = data.copy()
    d.loc[0, "y"] = np.inf
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ x + (1|g)", d)
    one_line(info, "'y' (1)")
    with pytest.warns(UserWarning, match="dropped 1 rows"):
        assert reml("y ~ x + (1|g)", d, missing="drop").design.nobs == len(d) - 1


def test_cli_inf(capsys, tmp_path, data):
    d = data.copy()
    d.loc[3, "x"] = np.inf
    assert "'x'" in cli_error(capsys, tmp_path, d, "y ~ x + (1|g)")


# ------------------------------------------------------------------------------- formulas

@pytest.mark.parametrize("formula", ["y ~ 1 + (|g)", "y ~ 1 + ( | g)", "y ~ x + (||g)"])
def test_empty_bar_expression_is_malformed(data, formula):
    with pytest.raises(bvc.SpecificationError) as info:
        reml(formula, data)
    one_line(info, "malformed formula", "(1|g)")


def test_cli_empty_bar(capsys, tmp_path, data):
    assert "malformed formula" in cli_error(capsys, tmp_path, data, "y ~ 1 + (|g)")


@pytest.mark.parametrize("factor", ["g:g", "g/g", "g/h:g"])
def test_grouping_column_given_twice(data, factor):
    d = data.assign(h=data.g % 2)
    with pytest.raises(bvc.SpecificationError) as info:
        reml(f"y ~ 1 + (1|{factor})", d)
    one_line(info, "'g'", "more than once")


def test_cli_grouping_twice(capsys, tmp_path, data):
    assert "more than once" in cli_error(capsys, tmp_path, data, "y ~ 1 + (1|g:g)")


def test_unicode_and_backquoted_names_as_formulae(data):
    want = reml("y ~ x + (1|g)", data)
    d = data.rename(columns={"y": "rendement_é", "x": "xé", "g": "größe"})
    got = reml("rendement_é ~ xé + (1|größe)", d)
    np.testing.assert_allclose(got.fe_params, want.fe_params, rtol=1e-10)
    np.testing.assert_allclose(got.vcomp, want.vcomp, rtol=1e-10)
    assert list(got.fe_params.index) == ["Intercept", "xé"] and list(got.vcomp.index) == ["größe"]
    d = data.rename(columns={"y": "my y", "x": "my x", "g": "my g"})
    got = reml("`my y` ~ `my x` + (1|`my g`)", d)
    np.testing.assert_allclose(got.fe_params, want.fe_params, rtol=1e-10)
    assert "my x" in got.fe_params.index


def test_cli_unicode(capsys, tmp_path, data):
    d = data.rename(columns={"y": "rendement_é", "x": "xé"})
    path = tmp_path / "u.csv"
    d.to_csv(path, index=False)
    rc = main(["fit", str(path), "rendement_é ~ xé + (1|g)", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    import json
    assert "xé" in json.loads(out.strip().splitlines()[-1])["fe_params"]


# ------------------------------------------------------------------------------- identical factors

@pytest.mark.parametrize("relabel", [lambda g: (g * 5 + 3) % 11, lambda g: g.map("L{}".format)])
def test_relabelled_factor_detected(data, relabel):
    d = data.assign(h=relabel(data.g))
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ 1 + (1|g) + (1|h)", d)
    one_line(info, "'g'", "'h'", "not identifiable")


def test_nested_identical_factor_detected(data):
    # one level of b per level of a: a/b adds no split, a and a:b group the rows alike
    d = data.assign(b=data.g * 10)
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ 1 + (1|g/b)", d)
    one_line(info, "'g'", "'g:b'", "not identifiable")


def test_cli_identical_factors(capsys, tmp_path, data):
    d = data.assign(h=data.g + 100)
    assert "not identifiable" in cli_error(capsys, tmp_path, d, "y ~ 1 + (1|g) + (1|h)")


def test_crossed_factors_not_flagged():
    d = pd.DataFrame({"a": np.repeat(np.arange(6), 4), "b": np.tile(np.arange(4), 6)})
    d["y"] = np.random.default_rng(2).normal(size=24) + d.a * 0.3
    assert len(reml("y ~ 1 + (1|a) + (1|b)", d).vcomp) == 2


# ------------------------------------------------------------------------------- (0 + f | g)

def test_factor_slopes_boundary_names_the_zero_component():
    """(0 + f | g) where level c has no between-group variation: any component the boundary warning
    says is 0 is 0 in the fit, and a 'singular covariance' warning only comes with a singular
    covariance matrix."""
    rng = np.random.default_rng(11)
    n_g, reps = 40, 4
    g = np.repeat(np.arange(n_g), 3 * reps)
    f = np.tile(np.repeat(["a", "b", "c"], reps), n_g)
    b = rng.normal(size=(n_g, 2)) @ np.array([[1.0, 0.5], [0.0, 0.8]])
    eff = np.where(f == "a", b[g, 0], np.where(f == "b", b[g, 1], 1.2 * rng.normal(size=n_g)[g]))
    d = pd.DataFrame({"g": g, "f": f, "y": eff + 0.3 * rng.normal(size=len(g))})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = reml("y ~ 1 + (0 + f|g)", d)
    msgs = [str(w.message) for w in caught if w.category is bvc.BoundaryFitWarning]
    vc = r.vcomp
    for m in msgs:
        if "estimated as 0" in m:
            named = m.split("variance of ")[1].split(" estimated")[0].split(", ")
            for c in named:
                assert vc[c] < 1e-6 * vc.max(), (m, vc.to_dict())
        else:
            cov = r.cov_re["g"].to_numpy()
            assert np.linalg.eigvalsh(cov)[0] < 1e-6 * np.trace(cov), (m, cov)
    # f[c]|g has a real variance near 1.2**2 and must never be called zero
    assert vc["f[c]|g"] > 0.5
    assert not any("f[c]|g" in m for m in msgs)


# ------------------------------------------------------------------------------- VCSpec shapes

def _vc_inputs():
    groups = np.repeat([0, 1, 2], 4)
    y = np.repeat([1.0, 4, 2], 4) + np.tile([0.0, 1, -1, 0.5], 3)
    mats = [np.kron(np.eye(2), np.ones((2, 1)))] * 3
    return y, np.ones((12, 1)), groups, mats


@pytest.mark.parametrize("names, colnames, n_mats, what", [
    (["p"], [[["a", "b", "c"]] * 3], 1, "3 names but exog_vc.mats[0][0] has 2 columns"),   # longer
    (["p"], [[["a"]] * 3], 1, "1 names but exog_vc.mats[0][0] has 2 columns"),            # shorter
    (["p", "q"], [[["a", "b"]] * 3], 1, "exog_vc has 2 names but 1 entries in mats"),     # names
    (["p"], [[["a", "b"]] * 2], 1, "exog_vc.colnames[0] ('p') has 2 entries"),           # groups
])
def test_vcspec_shapes_checked(names, colnames, n_mats, what):
    y, X, groups, mats = _vc_inputs()
    vc = bvc.VCSpec(names, colnames, [mats] * n_mats)
    with pytest.raises(bvc.SpecificationError) as info:
        bvc.design_from_arrays(y, X, groups, exog_vc=vc)
    one_line(info, what)


def test_vcspec_right_shapes_labels():
    y, X, groups, mats = _vc_inputs()
    d = bvc.design_from_arrays(y, X, groups, exog_vc=bvc.VCSpec(["p"], [[["a", "b"]] * 3], [mats]))
    assert list(d.terms[0].levels) == ["0:a", "0:b", "1:a", "1:b", "2:a", "2:b"]


# ------------------------------------------------------------------------------- fixed effects

def test_x_wider_than_rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 9))
    with pytest.warns(bvc.RankDeficiencyWarning), pytest.raises(bvc.SpecificationError) as info:
        bvc.VCModel(rng.normal(size=6), X, [0, 0, 0, 1, 1, 1]).fit_reml()
    one_line(info, "fixed effects", "6 independent columns for 6 observations")


def test_fixed_factor_one_level_per_row(data):
    d = data.assign(id=[f"r{i}" for i in range(len(data))])
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ id + (1|g)", d)
    one_line(info, "'id'", "every row", "no residual degrees of freedom")


def test_cli_fixed_factor_one_level_per_row(capsys, tmp_path, data):
    d = data.assign(id=[f"r{i}" for i in range(len(data))])
    assert "'id'" in cli_error(capsys, tmp_path, d, "y ~ id + (1|g)")


# ------------------------------------------------------------------------------- labels, response

def test_mixed_int_and_str_labels(data):
    d = data.copy()
    d["g"] = d["g"].astype(object)
    d.loc[d.g == 0, "g"] = "1"   # '1' and 1 both present
    with pytest.raises(bvc.SpecificationError) as info:
        reml("y ~ 1 + (1|g)", d)
    one_line(info, "'g'", "'1'", "int", "str")
    with pytest.raises(bvc.SpecificationError) as info:
        bvc.VCModel(d.y, np.ones((len(d), 1)), d.g.to_numpy()).fit_reml()
    one_line(info, "groups", "'1'")


def test_boolean_response_warned(data):
    d = data.assign(y=data.y > data.y.median())
    with pytest.warns(UserWarning, match="response 'y' is boolean"):
        r = reml("y ~ 1 + (1|g)", d)
    np.testing.assert_allclose(r.fe_params["Intercept"], 0.5, atol=0.2)
