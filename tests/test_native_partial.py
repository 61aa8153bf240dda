"""The partial collapse through bayesvc's own nutpie callbacks (bayesvc.kernel.native_partial): the
log posterior against the dense multivariate normal plus SciPy's prior densities, its gradient
against central differences, on every code path (fixed effects integrated or sampled, centered and
non-centered terms, several sampled and small terms, non-unit z values, grouped and ungrouped level
sums); compile-once reuse; the PyMC route where the form has no native version.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.stats as st

import bayesvc as bvc
from bayesvc.estimators.bayes import native_partial as enp
from bayesvc.estimators.bayes.native import _prior_tables
from bayesvc.estimators.plan import MarginalizationPlan
from bayesvc.kernel import native_partial as kn
from bayesvc.priors import resolve_priors

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning")


def _data(seed=0, n=240):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"s": rng.integers(0, 40, n), "d": rng.integers(0, 12, n), "e": rng.integers(0, 9, n),
                       "g": rng.integers(0, 4, n), "f": rng.integers(0, 3, n), "x": rng.normal(size=n)})
    df["y"] = (1 + 0.5 * df.x + rng.normal(size=40)[df.s] + 0.6 * rng.normal(size=12)[df.d]
               + 0.4 * rng.normal(size=4)[df.g] + rng.normal(size=n))
    for c in "sdegf":
        df[c] = df[c].astype(str)
    return df


@pytest.fixture(scope="module")
def three():
    """s (integrated, grouped level sums), d (sampled), g (small, joined)."""
    return bvc.VCModel.from_formula("y ~ 1 + x + (1|s) + (1|d) + (1|g)", _data())


@pytest.fixture(scope="module")
def five():
    """The integrated term a random slope (z = x: every level's sum of z^2 differs, so the level
    sums are not grouped), two sampled terms (one a slope), two small joined terms."""
    return bvc.VCModel.from_formula("y ~ 1 + x + (0 + x|s) + (1|d) + (0 + x|e) + (1|g) + (1|f)", _data(1))


def _plan(model, k, joint, centered, fixed):
    names = [t.name for t in model.design.terms]
    return MarginalizationPlan("partial", names.index(k), tuple(names.index(c) for c in centered), "test",
                               tuple(sorted(names.index(j) for j in joint)), fixed)


def _reference(model, plan, ps, x):
    """log N(r | 0, V) + SciPy log densities of every prior + log-Jacobian at ``x`` (dense, n x n)."""
    d = model.design
    tables = _prior_tables(d, ps)
    fint = plan.fixed and tables[2] == 1
    p, nk = d.k_fe, len(d.component_names)
    off = 0 if fint else p
    beta = tables[3][:, 0] if fint else x[:p]
    sigma = np.exp(x[off])
    c = np.array([ps.sd[n].scale for n in d.component_names])
    c = np.where(np.isfinite(c), c, 1.0)
    u = x[off + 1:off + 1 + nk]
    sds = c * np.logaddexp(0.0, u)
    r, lp, o = d.y - d.X @ beta, 0.0, off + 1 + nk
    V = sigma**2 * np.eye(d.nobs) + ((d.X * tables[3][:, 1] ** 2) @ d.X.T if fint else 0.0)
    for i, t in enumerate(d.terms):
        Z, tau = t.Z.toarray(), sds[i]
        if i in plan.integrated:
            V += tau**2 * Z @ Z.T
            continue
        v = x[o:o + t.n_levels]
        o += t.n_levels
        if i in plan.centered:
            b, lp = v, lp + st.norm(0.0, tau).logpdf(v).sum()
        else:
            b, lp = tau * v, lp + st.norm().logpdf(v).sum()
        r = r - Z @ b
    if not fint:
        lp += sum(float(ps.fixed[n].logpdf(b)) for n, b in zip(d.fe_names, beta))
    lp += st.multivariate_normal(np.zeros(d.nobs), V).logpdf(r)
    lp += float(ps.residual.logpdf(sigma)) + sum(float(ps.sd[n].logpdf(s)) for n, s in zip(d.component_names, sds))
    return lp + x[off] + np.sum(np.log(c) - np.logaddexp(0.0, -u))


OTHER_PRIORS = {"s": bvc.HalfStudentT(3, 1.5), "g": bvc.HalfCauchy(2.0), "d": bvc.Exponential(1.5),
                "Residual": bvc.Exponential(0.7)}
CASES = [  # model, integrated, joined, centered, fixed integrated, priors
    ("three", "s", ("g",), ("d",), True, {}),
    ("three", "s", ("g",), (), False, {}),
    ("three", "s", ("g",), ("d",), True, {"fixed": "flat"}),  # a flat prior keeps them sampled
    ("three", "s", ("g",), ("d",), False, OTHER_PRIORS),
    ("three", "s", (), (), True, {}),  # the small block is X alone
    ("three", "s", (), ("d",), False, {"fixed": "flat", "s": "flat", "Residual": "flat"}),  # m = 0
    ("five", "s", ("g", "f"), ("d",), True, {}),
    ("five", "s", ("g", "f"), ("d",), False, {}),
    ("five", "d", ("g", "f", "e", "s"), (), True, {}),  # nothing sampled
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_log_posterior_and_gradient(three, five, case):
    name, k, joint, centered, fixed, priors = CASES[case]
    model = {"three": three, "five": five}[name]
    plan = _plan(model, k, joint, centered, fixed)
    ps = resolve_priors(model.design, priors)
    assert enp.native_partial_supported(model.design, plan, ps)
    header, keep, layout, n_x = enp.partial_header(model.design, plan, ps)
    assert bool(keep[kn.ARRAYS.index("dims")][9]) == (name == "three" and bool(joint or fixed))  # grouped
    rng = np.random.default_rng(case)
    xs = [0.5 * rng.normal(size=n_x) for _ in range(3)]
    got = [kn.log_posterior(x, header, np.zeros(n_x)) for x in xs]
    want = [_reference(model, plan, ps, x) for x in xs]
    # equal up to the normalising constants the callback leaves out: compare differences; the dense
    # reference's log-determinant of a 240 x 240 matrix carries ~1e-12 relative rounding
    np.testing.assert_allclose(np.diff(got), np.diff(want), rtol=1e-9, atol=1e-8)
    # gradient vs central differences, step 1e-5: truncation ~1e-10 x the third derivative, rounding
    # ~1e-16 x |log p| (~500) / 1e-5 ~ 1e-8
    x, g = xs[0], np.zeros(n_x)
    kn.log_posterior(x, header, g)
    h = 1e-5
    fd = [(kn.log_posterior(x + h * e, header, np.zeros(n_x)) - kn.log_posterior(x - h * e, header, np.zeros(n_x)))
          / (2 * h) for e in np.eye(n_x)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_expand_names_the_draws(three):
    plan = _plan(three, "s", ("g",), ("d",), False)
    ps = resolve_priors(three.design)
    compiled = enp.native_partial_model(three.design, plan, ps)
    x = compiled.initial_point_func(1)
    header = compiled.user_data
    out = np.zeros(compiled.n_expanded)
    kn.expand(x, header, out)
    names, slices, _ = compiled.shape_info
    got = dict(zip(names, (out[s] for s in slices)))
    assert names == ["beta", "sigma", "sd", "var", "scale", "re_d"]
    beta, sigma, sds = kn._params(x, header)
    np.testing.assert_allclose(got["beta"], x[:2])
    np.testing.assert_allclose(got["var"], sds**2)
    assert got["scale"] == pytest.approx(sigma**2)
    np.testing.assert_array_equal(got["re_d"], x[2 + 1 + 3:])  # centered: the coordinates themselves


def _fit(model, seed=3, **kw):
    return model.sample(draws=150, tune=150, chains=2, random_seed=seed, progressbar=False,
                        log_likelihood=False, marginalize="partial", **kw)


def test_refits_reuse_the_compiled_callbacks_and_give_the_same_draws(three):
    first = _fit(three)
    assert first.marginalize == "partial"
    n_compiled = kn.COMPILATIONS["callbacks"]
    assert n_compiled >= 1
    df = _data()
    other = bvc.VCModel.from_formula("y ~ 1 + x + (1|s) + (1|d) + (1|g)",
                                     df.assign(y=df.y + np.random.default_rng(1).normal(0, 0.5, len(df))))
    _fit(other)
    _fit(three, priors={"d": bvc.HalfNormal(0.3)})
    bigger = bvc.VCModel.from_formula("y ~ 1 + x + (1|s) + (1|d) + (1|g)", _data(5, n=400))
    _fit(bigger)
    assert kn.COMPILATIONS["callbacks"] == n_compiled
    kn.callbacks.cache_clear()  # a fresh compilation (or Numba's disk cache) samples the same draws
    again = _fit(three)
    assert kn.COMPILATIONS["callbacks"] == n_compiled + 1
    for v in ("beta", "sigma", "sd", "re_d", "re_s", "re_g"):
        np.testing.assert_array_equal(first.posterior[v].values, again.posterior[v].values)


def test_correlated_sampled_terms_take_the_pymc_route():
    rng = np.random.default_rng(2)
    n = 200
    df = pd.DataFrame({"s": rng.integers(0, 50, n).astype(str), "g": rng.integers(0, 8, n).astype(str),
                       "x": rng.normal(size=n)})
    df["y"] = rng.normal(size=n)
    m = bvc.VCModel.from_formula("y ~ 1 + x + (1|s) + (1 + x|g)", df)
    plan = m.marginalization("partial")
    assert plan.kind == "partial"
    assert not enp.native_partial_supported(m.design, plan, resolve_priors(m.design))


@pytest.mark.parametrize("case", [0, 1, 4, 6, 8])
def test_compiled_draws_equal_the_numpy_draws(three, five, case):
    """The compiled conditional draws of the integrated terms (and of the fixed effects when they
    are integrated out) equal :func:`draw_integrated`'s, which a test checks against the dense
    Gaussian conditional, for the same random numbers."""
    import xarray as xr

    from bayesvc.estimators.bayes.partial import draw_integrated
    from bayesvc.estimators.bayes.sample import _integrated_fixed_prior

    name, k, joint, centered, fixed, priors = CASES[case]
    model = {"three": three, "five": five}[name]
    d = model.design
    plan = _plan(model, k, joint, centered, fixed)
    ps = resolve_priors(d, priors)
    rng = np.random.default_rng(case)
    shape = (2, 5)
    comps = list(d.component_names)
    post = xr.Dataset({"beta": (("chain", "draw", "fixed"), rng.normal(size=shape + (d.k_fe,))),
                       "sigma": (("chain", "draw"), rng.uniform(0.5, 1.5, shape)),
                       "sd": (("chain", "draw", "component"), rng.uniform(0.2, 1.5, shape + (len(comps),)))},
                      coords={"component": comps})
    fixed_prior = _integrated_fixed_prior(ps) if fixed else None
    if fixed:
        post = post.drop_vars("beta")
    re = {t.name: rng.normal(size=shape + (t.n_levels,)) for i, t in enumerate(d.terms) if i not in plan.integrated}
    want = draw_integrated(d, plan, post, re, np.random.default_rng(7), fixed_prior)
    got = enp.draw_integrated_native(d, plan, ps, post, re, np.random.default_rng(7), fixed_prior)
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-9, atol=1e-9)


def test_native_and_pymc_routes_give_one_posterior(three):
    """The same partial collapse (s and g integrated with the fixed effects, d sampled centered)
    sampled through the native callbacks and through nutpie's compilation of the PyMC model: equal
    quartiles of every SD and the residual SD within 4 combined Monte Carlo standard errors."""
    from arviz_stats import mcse

    from bayesvc.estimators.bayes import sample as sample_fn
    from bayesvc.estimators.bayes.model import build_pymc
    from bayesvc.estimators.bayes.sample import compile_nutpie

    d = three.design
    plan = _plan(three, "s", ("g",), ("d",), True)
    ps = resolve_priors(d)
    kw = dict(draws=1000, tune=1000, chains=2, random_seed=5, progressbar=False, log_likelihood=False)
    native = sample_fn(d, priors=ps, marginalize=plan, **kw)
    built = build_pymc(d, ps, marginalize=plan)
    pymc = sample_fn(d, priors=ps, built=built, compiled=compile_nutpie(built.model), **kw)
    for var in ("sd", "sigma"):
        a, b = (r.idata["posterior"].to_dataset()[var] for r in (native, pymc))
        keys = list(a.coords["component"].values) if var == "sd" else [None]
        for key in keys:
            aa, bb = (a, b) if key is None else (a.sel(component=key), b.sel(component=key))
            for q in (0.25, 0.5, 0.75):
                tol = 4 * np.hypot(mcse(aa, method="quantile", prob=q).item(), mcse(bb, method="quantile", prob=q).item())
                assert abs(float(aa.quantile(q)) - float(bb.quantile(q))) < tol, (var, key, q)
