"""Profile-likelihood and Wald intervals: ML profiles against lme4's ``confint(method = "profile")``
(tests/data/make_profile_reference.R), REML profiles against a brute-force grid of the REML
criterion computed densely, Wald intervals against lme4, boundaries, the CLI and the plot."""

import json
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy.optimize import minimize_scalar  # noqa: E402
from scipy.stats import chi2  # noqa: E402

import bayesvc as bvc  # noqa: E402
from bayesvc.cli import main  # noqa: E402
from bayesvc.views.plots import plot_profile  # noqa: E402

DATA = Path(__file__).parent / "data"
REF = json.loads((DATA / "profile_reference.json").read_text())["models"]

CASES = {
    "dyestuff": ("Dyestuff.csv", "Yield ~ 1 + (1|Batch)", ["Batch"]),
    "dyestuff2": ("Dyestuff2.csv", "Yield ~ 1 + (1|Batch)", ["Batch"]),
    "penicillin": ("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", ["plate", "sample"]),
    "pastes": ("Pastes.csv", "strength ~ 1 + (1|batch/cask)", ["batch", "cask"]),
    "sleepstudy_uncorr": ("sleepstudy.csv", "Reaction ~ 1 + Days + (1|Subject) + (0 + Days|Subject)",
                          ["Subject"]),
    "orthodont": ("Orthodont.csv", "distance ~ 1 + age + (1|Subject)", ["Subject"]),
    "sleepstudy_corr": ("sleepstudy.csv", "Reaction ~ 1 + Days + (1 + Days|Subject)", ["Subject"]),
}
# lme4's VarCorr group names -> ours
GROUPS = {"cask:batch": "batch:cask", "Subject.1": "Days|Subject"}


def _model(key):
    csv, formula, factors = CASES[key]
    return bvc.VCModel.from_formula(formula, data=pd.read_csv(DATA / csv, dtype={f: str for f in factors}))


def _fit(model, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bvc.BoundaryFitWarning)
        return model.fit_reml(reml=reml)


def _ours(ref_row: str, fit, sig_map) -> str:
    """lme4's row name (.sig01, .sigma, (Intercept)) -> our parameter name."""
    if ref_row == ".sigma":
        return "Residual"
    for s in sig_map:
        if s["name"] == ref_row:
            label = {"(Intercept)": "Intercept"}
            if s["scale"] == "cor":   # lme4's .sig02 of (1 + Days | Subject)
                return f"{s['grp']}: {label.get(s['var2'], s['var2'])},{label.get(s['var1'], s['var1'])} (corr)"
            if s["grp"] in GROUPS:
                return GROUPS[s["grp"]]
            return s["grp"] if s["var1"] == "(Intercept)" else f"{s['var1']}|{s['grp']}"
    return "Intercept" if ref_row == "(Intercept)" else ref_row


@pytest.fixture(scope="module", params=list(CASES))
def ml_profile(request):
    key = request.param
    fit = _fit(_model(key), reml=False)
    return key, fit, fit.conf_int(method="profile", level=0.95)


def _compare(ci, ref_ci, fit, sig_map, rtol):
    for row, want in ref_ci.items():
        name = _ours(row, fit, sig_map)
        got = ci.table.loc[name]
        for end in ("lower", "upper"):
            if want[end] == 0:
                assert got[end] == 0.0 and got.at_zero, (name, end)
            else:
                assert got[end] == pytest.approx(want[end], rel=rtol), (name, end, got[end], want[end])


def test_ml_profile_equals_lme4_confint(ml_profile):
    key, fit, ci = ml_profile
    ref = REF[key]["ML"]
    assert set(ci.table.index) == {_ours(r, fit, ref["sig_map"]) for r in ref["profile_confint"]["0.95"]}
    # lme4 interpolates its profile with splines: 1.7e-4 relative at worst (README)
    _compare(ci, ref["profile_confint"]["0.95"], fit, ref["sig_map"], 1e-3)


def test_ml_profile_equals_the_exact_root_finding(ml_profile):
    key, fit, ci = ml_profile
    ref = REF[key]["ML"]
    # exact endpoints of the same profile (uniroot on lme4's devfun2): limited by the inner
    # optimizations (~1e-8 relative)
    _compare(ci, ref["profile_confint_exact"]["0.95"], fit, ref["sig_map"], 1e-5)
    assert list(ci.table.criterion.unique()) == ["ML"]


@pytest.mark.parametrize("key", ["dyestuff", "orthodont"])
def test_level_090(key):
    fit = _fit(_model(key), reml=False)
    ref = REF[key]["ML"]
    _compare(fit.conf_int(level=0.90), ref["profile_confint_exact"]["0.90"], fit, ref["sig_map"], 1e-5)


@pytest.mark.parametrize("key", list(CASES))
@pytest.mark.parametrize("method", ["REML", "ML"])
def test_wald_fixed_effects_equal_lme4(key, method):
    fit = _fit(_model(key), reml=method == "REML")
    ci = fit.conf_int(method="wald")
    ref = REF[key][method]
    for row, want in ref["wald_confint"]["0.95"].items():
        got = ci.table.loc[_ours(row, fit, ref["sig_map"])]
        assert got.lower == pytest.approx(want["lower"], rel=1e-6)
        assert got.upper == pytest.approx(want["upper"], rel=1e-6)


def test_wald_sds_come_from_the_information_matrix():
    fit = _fit(_model("penicillin"), reml=True)
    ci = fit.conf_int(method="wald").table
    sd = np.sqrt(fit.vcomp["plate"])
    se = fit.vcomp_se["plate"] / (2 * sd)
    assert ci.loc["plate", "lower"] == pytest.approx(sd - 1.959963985 * se, rel=1e-8)
    boundary = _fit(_model("dyestuff2"), reml=True).conf_int(method="wald").table
    assert boundary.loc["Batch", "at_zero"] and "use the profile" in boundary.loc["Batch", "note"]


# ----------------------------------------------------------------------------- REML profiles

_EIG = {}


def _dense_reml(design, sd, sigma) -> float:
    """-2 REML log-likelihood (lme4's REMLcrit) at (SD of the one component, residual SD), densely:
    V = sigma^2 I + sd^2 Z Z', through the eigen-decomposition of Z Z' (computed once per design)."""
    X, y = design.X, design.y
    n, p = X.shape
    if id(design) not in _EIG:
        Z = design.terms[0].Z.toarray()
        e, Q = np.linalg.eigh(Z @ Z.T)
        _EIG[id(design)] = (design, e, Q.T @ X, Q.T @ y)
    _, e, Xq, yq = _EIG[id(design)]
    d = sigma**2 + sd**2 * e                                   # eigenvalues of V
    XtVX = (Xq.T / d) @ Xq
    beta = np.linalg.solve(XtVX, (Xq.T / d) @ yq)
    r = yq - Xq @ beta
    logdet_xvx = np.linalg.slogdet(XtVX)[1]
    return float((n - p) * np.log(2 * np.pi) + np.log(d).sum() + logdet_xvx + np.sum(r * r / d))


def _dense_profile(design, which, values, hat):
    """The dense REML criterion minimised over the other SD (bounded 1-D search around ``hat``),
    on a grid of ``values`` of the SD ``which`` ("sd" or "sigma")."""
    out = []
    for v in values:
        f = (lambda s: _dense_reml(design, v, s)) if which == "sd" else (lambda t: _dense_reml(design, t, v))
        res = minimize_scalar(f, bounds=(1e-3 * hat, 5 * hat), method="bounded",
                              options={"xatol": 1e-9 * hat})
        out.append(min(res.fun, f(0.0)) if which == "sigma" else res.fun)  # the SD may sit at 0
    return np.array(out)


def _grid_crossing(values, prof, crit):
    """Where the grid profile crosses ``crit`` (linear interpolation between grid points)."""
    above = prof > crit
    k = np.flatnonzero(above[1:] != above[:-1])[0]
    t = (crit - prof[k]) / (prof[k + 1] - prof[k])
    return values[k] + t * (values[k + 1] - values[k])


@pytest.mark.parametrize("key", ["dyestuff", "orthodont"])
def test_reml_profile_matches_a_brute_force_grid(key):
    fit = _fit(_model(key), reml=True)
    ci = fit.conf_int(method="profile").table
    dev_min = -2 * fit.llf
    crit = dev_min + chi2.ppf(0.95, 1)
    comp = fit.vcomp.index[0]
    sd_hat, sig_hat = np.sqrt(fit.vcomp[comp]), np.sqrt(fit.scale)
    assert _dense_reml(fit.design, sd_hat, sig_hat) == pytest.approx(dev_min, abs=1e-8)
    for name, which, hat in ((comp, "sd", sig_hat), ("Residual", "sigma", sd_hat)):
        for end in ("lower", "upper"):
            x = ci.loc[name, end]
            grid = x * np.linspace(0.995, 1.005, 41)
            prof = _dense_profile(fit.design, which, grid, hat)
            # grid spacing 2.5e-4 relative: linear interpolation is good to ~1e-6 of x
            assert _grid_crossing(grid, prof, crit) == pytest.approx(x, rel=1e-5), (name, end)
    assert list(ci.criterion) == ["REML", "REML", "ML"] + ["ML"] * (len(ci) - 3)
    # REML profiles are not lme4's (which profiles ML for REML fits too): wider here
    assert ci.loc[comp, "upper"] > REF[key]["ML"]["profile_confint_exact"]["0.95"][".sig01"]["upper"]


def test_reml_profile_at_the_boundary():
    fit = _fit(_model("dyestuff2"), reml=True)
    ci = fit.conf_int()
    row = ci.table.loc["Batch"]
    assert row.lower == 0.0 and row.at_zero and "down to 0" in row.note
    assert ci.lower_at_zero == ["Batch"]
    crit = -2 * fit.llf + chi2.ppf(0.95, 1)
    sig_hat = np.sqrt(fit.scale)
    # the REML profile at SD = 0 stays below the critical value; at the upper end it reaches it
    assert _dense_profile(fit.design, "sd", [0.0], sig_hat)[0] < crit
    grid = row.upper * np.linspace(0.995, 1.005, 41)
    assert _grid_crossing(grid, _dense_profile(fit.design, "sd", grid, sig_hat), crit) == pytest.approx(
        row.upper, rel=1e-5)


def test_pastes_batch_reaches_zero_and_fixed_effects_are_ml_for_reml_fits():
    model = _model("pastes")
    reml, ml = _fit(model, True), _fit(model, False)
    a, b = reml.conf_int().table, ml.conf_int().table
    assert a.loc["batch", "at_zero"] and not a.loc["batch:cask", "at_zero"]
    assert a.loc["Intercept", "lower"] == pytest.approx(b.loc["Intercept", "lower"], rel=1e-9)
    assert "ML profile" in a.loc["Intercept", "note"]
    assert reml.conf_int() is reml.conf_int()     # computed once per fit


def _sleep_blocks():
    """sleepstudy as 18 subjects x 10 days: per subject Z_i = X_i = [1, Days], and y_i."""
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str}).sort_values(["Subject", "Days"])
    X = np.stack([np.ones(len(df)), df.Days.to_numpy(float)], axis=1).reshape(18, 10, 2)
    return X, df.Reaction.to_numpy(float).reshape(18, 10)


def _dense_reml_corr(blocks, sd1, cor, sd2, sigma) -> float:
    """-2 REML log-likelihood of ``Reaction ~ Days + (1 + Days | Subject)`` (lme4's REMLcrit),
    densely: V_i = Z_i S Z_i' + sigma^2 I per subject, S from (SD, correlation, SD)."""
    X, y = blocks
    if min(sd1, sd2, sigma) < 0 or abs(cor) > 1:
        return np.inf
    S = np.array([[sd1 * sd1, cor * sd1 * sd2], [cor * sd1 * sd2, sd2 * sd2]])
    V = X @ S @ X.transpose(0, 2, 1) + sigma**2 * np.eye(10)
    Lc = np.linalg.cholesky(V)
    Xw = np.linalg.solve(Lc, X)                                   # L^-1 X per subject
    yw = np.linalg.solve(Lc, y[..., None])[..., 0]
    XtVX = np.einsum("lia,lib->ab", Xw, Xw)
    beta = np.linalg.solve(XtVX, np.einsum("lia,li->a", Xw, yw))
    r = yw - Xw @ beta
    n, p = y.size, 2
    return float((n - p) * np.log(2 * np.pi) + 2 * np.log(np.diagonal(Lc, axis1=1, axis2=2)).sum()
                 + np.linalg.slogdet(XtVX)[1] + np.sum(r * r))


def _dense_profile_corr(blocks, j, value, start):
    """The dense REML criterion minimised over the other three of (SD, cor, SD, sigma) with
    parameter ``j`` held at ``value`` (Nelder-Mead from the REML estimate, restarted once)."""
    from scipy.optimize import minimize

    def f(z):
        return _dense_reml_corr(blocks, *np.insert(z, j, value))

    z = np.delete(np.asarray(start, dtype=float), j)
    for _ in range(2):
        res = minimize(f, z, method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-11, "maxfev": 20000})
        z = res.x
    return res.fun


def test_correlated_term_reml_profile_matches_a_brute_force_grid():
    """Every SD, the correlation and sigma of (1 + Days | Subject), REML profile: at each endpoint
    the dense REML criterion (minimised over the other parameters by an independent optimizer)
    crosses the critical value there. Grid spacing 1e-3 (relative for SDs, absolute for the
    correlation): linear interpolation is good to ~1e-6."""
    df = pd.read_csv(DATA / "sleepstudy.csv", dtype={"Subject": str})
    fit = _fit(bvc.VCModel.from_formula("Reaction ~ 1 + Days + (1 + Days|Subject)", data=df), True)
    ci = fit.conf_int(method="profile").table
    blocks = _sleep_blocks()
    C = fit.cov_re["Subject"].to_numpy()
    hat = [np.sqrt(C[0, 0]), C[0, 1] / np.sqrt(C[0, 0] * C[1, 1]), np.sqrt(C[1, 1]), np.sqrt(fit.scale)]
    dev_min = -2 * fit.llf
    assert _dense_reml_corr(blocks, *hat) == pytest.approx(dev_min, abs=1e-8)
    crit = dev_min + chi2.ppf(0.95, 1)
    names = ["Subject", "Subject: Intercept,Days (corr)", "Days|Subject", "Residual"]
    assert list(ci.index[:4]) == names and list(ci.criterion[:4]) == ["REML"] * 4
    for j, name in enumerate(names):
        assert ci.loc[name, "estimate"] == pytest.approx(hat[j], rel=1e-9)
        for end in ("lower", "upper"):
            x = ci.loc[name, end]
            grid = x + 1e-3 * np.array([-1.0, 0.0, 1.0]) * (1.0 if j == 1 else x)
            prof = np.array([_dense_profile_corr(blocks, j, v, hat) for v in grid])
            assert _grid_crossing(grid, prof, crit) == pytest.approx(x, rel=1e-5, abs=1e-6), (name, end)
    # REML profiles are wider than lme4's (ML profiles for REML fits too)
    ml = REF["sleepstudy_corr"]["ML"]["profile_confint_exact"]["0.95"]
    assert ci.loc["Subject", "upper"] > ml[".sig01"]["upper"] and ci.loc["Residual", "lower"] > 0


def test_correlated_term_at_the_boundary():
    """Data simulated without slope variance (8 groups): the slope SD's interval starts at 0 and
    the correlation's spans [-1, 1] (the profile does not reach the critical value before the
    bounds), each row saying so."""
    rng = np.random.default_rng(7)
    g = np.repeat(np.arange(8), 6)
    x = np.tile(np.linspace(-1, 1, 6), 8)
    df = pd.DataFrame({"g": g.astype(str), "x": x, "y": 2 + x + 1.5 * rng.normal(size=8)[g] + rng.normal(size=48)})
    fit = _fit(bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df), True)
    ci = fit.conf_int().table
    slope, corr = ci.loc["x|g"], ci.loc["g: Intercept,x (corr)"]
    assert slope.lower == 0.0 and slope.at_zero and "down to 0" in slope.note
    assert (corr.lower, corr.upper) == (-1.0, 1.0) and not corr.at_zero and "out to -1 and 1" in corr.note
    assert ci.loc["g", "lower"] > 0 and ci.loc["Residual", "lower"] > 0


def test_cli_fit_ci_json_correlated_term(capsys):
    """``fit --ci profile --json`` of a correlated model: every SD, the correlation and the fixed
    effects, equal to lme4's confint(method = "profile") of the ML fit."""
    rc = main(["fit", str(DATA / "sleepstudy.csv"), "Reaction ~ 1 + Days + (1 + Days|Subject)",
               "--method", "ml", "--ci", "profile", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])["conf_int"]
    ref = REF["sleepstudy_corr"]["ML"]["profile_confint"]["0.95"]
    names = {".sig01": "Subject", ".sig02": "Subject: Intercept,Days (corr)", ".sig03": "Days|Subject",
             ".sigma": "Residual", "(Intercept)": "Intercept", "Days": "Days"}
    assert list(got) == list(names.values())
    for row, name in names.items():
        # lme4 interpolates its profile with splines (1.6e-4 relative from the exact endpoints)
        assert got[name] == pytest.approx([ref[row]["lower"], ref[row]["upper"]], rel=1e-3), name


def test_bad_arguments():
    fit = _fit(_model("dyestuff"), True)
    with pytest.raises(bvc.SpecificationError, match="method must be one of"):
        fit.conf_int(method="bootstrap")
    with pytest.raises(bvc.SpecificationError, match="level must lie in"):
        fit.conf_int(level=95)


# ----------------------------------------------------------------------------- CLI and plot

def test_cli_fit_ci_json(capsys):
    rc = main(["fit", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)", "--method", "ml",
               "--ci", "profile", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    exact = REF["dyestuff"]["ML"]["profile_confint_exact"]["0.95"]
    assert list(got["conf_int"]) == ["Batch", "Residual", "Intercept"]
    assert got["conf_int"]["Batch"] == pytest.approx([exact[".sig01"]["lower"], exact[".sig01"]["upper"]],
                                                     rel=1e-5)
    assert got["conf_int"]["Residual"] == pytest.approx([exact[".sigma"]["lower"], exact[".sigma"]["upper"]],
                                                        rel=1e-5)


def test_cli_fit_ci_text_and_errors(capsys):
    rc = main(["fit", str(DATA / "Dyestuff2.csv"), "Yield ~ 1 + (1|Batch)", "--ci", "wald"])
    out, err = capsys.readouterr()
    assert rc == 0 and "95% wald confidence intervals" in out
    rc = main(["fit", str(DATA / "Dyestuff.csv"), "Yield ~ 1 + (1|Batch)", "--ci", "wald", "--method", "map"])
    err = capsys.readouterr().err
    assert rc == 2 and err.strip().splitlines() == ["bayesvc: error: --ci needs --method reml or ml, got map"]


def test_plot_profile():
    fit = _fit(_model("pastes"), True)
    fig = plot_profile(fit.conf_int())
    assert len(fig.axes) == 4 and "lower end at 0" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="profile"):
        plot_profile(fit.conf_int(method="wald"))
