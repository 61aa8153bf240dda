"""The blocked collapsed likelihood against a dense closed form (V = sigma^2 I + Z G Z')."""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from conftest import numerical_gradient


def dense_loglik(design, beta, sigma, tau):
    Z = design.Z.toarray()
    comp = np.concatenate([[tau[i]] * t.q for i, t in enumerate(design.terms)])
    V = sigma**2 * np.eye(design.nobs) + (Z * comp**2) @ Z.T
    r = design.y - design.X @ beta
    _, ld = np.linalg.slogdet(V)
    return -0.5 * (design.nobs * np.log(2 * np.pi) + ld + r @ np.linalg.solve(V, r))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    n = 240
    df = pd.DataFrame({"x": rng.normal(size=n), "g1": rng.integers(0, 6, n), "g2": rng.integers(0, 5, n),
                       "h": rng.integers(0, 7, n)})
    df["y"] = (1 + 0.5 * df.x + 1.5 * rng.normal(size=6)[df.g1] + rng.normal(size=(6, 5))[df.g1, df.g2]
               + rng.normal(size=7)[df.h] + rng.normal(size=n))
    return df


FORMULAS = ["y ~ x + (1|g1/g2) + (1|h)", "y ~ x + (1|g1/g2)", "y ~ x + (1|g1)", "y ~ x + (1|g1) + (1|h)",
            "y ~ x + (1|g1) + (0 + x|h)"]


@pytest.mark.parametrize("formula", FORMULAS)
def test_loglik_and_gradient_match_dense(formula, data):
    d = bvc.VCModel.from_formula(formula, data=data).design
    k = bvc.Kernel(d)
    nt = len(d.terms)
    beta, sigma, tau = np.array([0.9, 0.4]), 1.1, np.array([1.3, 0.8, 0.7])[:nt]
    ll, db, ds, dt = k.loglik_grad(beta, sigma, tau)
    assert ll == pytest.approx(dense_loglik(d, beta, sigma, tau), abs=1e-9)
    num = numerical_gradient
    assert db == pytest.approx(num(lambda b: dense_loglik(d, b, sigma, tau), beta), rel=1e-6, abs=1e-6)
    assert dt == pytest.approx(num(lambda t: dense_loglik(d, beta, sigma, t), tau), rel=1e-6, abs=1e-6)
    assert ds == pytest.approx(num(lambda s: dense_loglik(d, beta, s[0], tau), np.array([sigma]))[0], rel=1e-6)


@pytest.mark.parametrize("reml", [True, False])
def test_profiled_gradient_matches_finite_differences(reml, data):
    d = bvc.VCModel.from_formula(FORMULAS[0], data=data).design
    k = bvc.Kernel(d)
    th = np.array([0.8, 0.5, 0.3])
    _, g = k.deviance_grad(th, reml)
    num = numerical_gradient(lambda t: k.deviance(t, reml), th)
    assert g == pytest.approx(num, rel=1e-6)


def test_staged_pipeline_equals_one_call(data):
    """lme4's modular pipeline: spec -> design -> devfun -> optimize equals VCModel.fit_reml()."""
    spec = bvc.parse_lme4(FORMULAS[0])
    design = bvc.build_design(spec, data)
    devfun = bvc.make_devfun(design, reml=True)
    opt = bvc.optimize_deviance(devfun.kernel, reml=True)
    res = bvc.VCModel.from_formula(FORMULAS[0], data=data).fit_reml()
    assert -0.5 * opt.deviance == pytest.approx(res.llf, abs=1e-10)
    assert devfun(np.array(opt.theta_final)) == pytest.approx(opt.deviance, abs=1e-10)


PARITY = ["y ~ x + (1|g1/g2)", "y ~ x + (1|g1) + (1|h)", "y ~ x + (1|g1/g2) + (1|h)", "y ~ x + (1|g1)"]


@pytest.mark.parametrize("formula", PARITY)
def test_numpy_and_numba_kernels_agree(formula, data):
    """Nested (diagonal rest block), crossed and partially crossed designs: the compiled kernel gives
    the NumPy kernel's log-likelihood, gradient and exact random-effect draw (same normals)."""
    from bayesvc.kernel.compiled import draw_effects as compiled_draw
    from bayesvc.kernel.compiled import kernel_arrays, logp_grad
    from bayesvc.kernel.conditional import draw_effects

    d = bvc.VCModel.from_formula(formula, data=data).design
    k = bvc.Kernel(d)
    arrays = kernel_arrays(k)
    assert arrays is not None
    nt = len(d.terms)
    beta, sigma, tau = np.array([0.9, 0.4]), 1.1, np.array([1.3, 0.8, 0.7])[:nt]
    want = k.loglik_grad(beta, sigma, tau)
    got = logp_grad(beta, sigma, tau, arrays)
    assert got[0] == pytest.approx(want[0], rel=1e-12, abs=1e-9)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10)
    rng = np.random.default_rng(3)
    z1 = rng.standard_normal((d.terms[k.first].q, 1))
    zr = rng.standard_normal((k.rz, 1))
    b1, br = compiled_draw(beta, sigma, tau, z1[:, 0], zr[:, 0], arrays)
    ref = draw_effects(k, k.factorize(tau / sigma), beta, sigma, z1, zr)
    np.testing.assert_allclose(b1, ref[k.first][:, 0], rtol=1e-9, atol=1e-10)
    for i in k.rest:
        a, b = k.rest_offsets[i]
        np.testing.assert_allclose(br[a:b], ref[i][:, 0], rtol=1e-9, atol=1e-10)


def test_exact_draws_have_the_conditional_moments(data):
    """Many exact draws reproduce the conditional modes and covariances (independent check of the
    draw algebra: the sample mean is within 5 standard errors of the mode)."""
    from bayesvc.kernel.conditional import conditional_covariances, conditional_modes, draw_effects

    d = bvc.VCModel.from_formula("y ~ x + (1|g1) + (1|h)", data=data).design
    k = bvc.Kernel(d)
    beta, sigma, tau = np.array([0.9, 0.4]), 1.1, np.array([1.3, 0.7])
    f = k.factorize(tau / sigma)
    rng = np.random.default_rng(0)
    n = 4000
    draws = [draw_effects(k, f, beta, sigma, rng.standard_normal((d.terms[k.first].q, 1)),
                          rng.standard_normal((k.rz, 1))) for _ in range(n)]
    modes, covs = conditional_modes(k, f, beta), conditional_covariances(k, f, sigma**2)
    for i in range(len(d.terms)):
        x = np.stack([dr[i][:, 0] for dr in draws])
        sd = np.sqrt(covs[i][:, 0, 0])
        assert np.all(np.abs(x.mean(0) - modes[i][:, 0]) < 5 * sd / np.sqrt(n))
        np.testing.assert_allclose(x.std(0), sd, rtol=0.1)
