"""The full collapse through bayesvc's own nutpie callbacks (bayesvc.kernel.native): the log posterior
against the NumPy kernel plus SciPy's prior densities, its gradient against central differences,
and compile-once reuse (counted compilations, identical draws after a fresh compile).
"""

import numpy as np
import pandas as pd
import pytest

import bayesvc as bvc
from bayesvc.estimators.bayes import native as est_native
from bayesvc.kernel import native
from bayesvc.kernel.compiled import kernel_arrays
from bayesvc.priors import resolve_priors

from conftest import load_factors

pytestmark = pytest.mark.filterwarnings("ignore::bayesvc.SamplingWarning")


@pytest.fixture(scope="module")
def penicillin():
    return bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)",
                                    load_factors("Penicillin.csv", ["plate", "sample"]))


PRIORS = [
    {},  # the defaults: HalfNormal SDs, Normal fixed effects
    {"plate": bvc.HalfStudentT(3, 1.5), "sample": bvc.HalfCauchy(2.0), "Residual": bvc.Exponential(0.7)},
    {"plate": "flat", "sample": "flat", "Residual": "flat", "fixed": "flat"},
]


def _reference(model, ps, x):
    """log p(y | beta, sigma, SD) (NumPy kernel) + SciPy prior log densities + log-Jacobian, at
    ``x = (beta, log sigma, u)`` with ``SD = c softplus(u)``, ``c`` each prior's scale (1 if none)."""
    d = model.design
    p = d.k_fe
    c = np.array([ps.sd[n].scale for n in d.component_names])
    c = np.where(np.isfinite(c), c, 1.0)
    u = x[p + 1:]
    beta, sigma, sd = x[:p], np.exp(x[p]), c * np.logaddexp(0.0, u)
    lp = model.kernel.loglik(beta, sigma, sd) + float(ps.residual.logpdf(sigma))
    lp += sum(float(ps.sd[c].logpdf(s)) for c, s in zip(d.component_names, sd))
    lp += sum(float(ps.fixed[n].logpdf(b)) for n, b in zip(d.fe_names, beta))
    log_jac = x[p] + np.sum(np.log(c) - np.logaddexp(0.0, -u))
    return lp + float(log_jac)


@pytest.mark.parametrize("which", range(len(PRIORS)))
def test_log_posterior_matches_kernel_and_scipy(penicillin, which):
    ps = resolve_priors(penicillin.design, PRIORS[which])
    header, keep = native.pack(kernel_arrays(penicillin.kernel), *est_native._prior_tables(penicillin.design, ps))
    rng = np.random.default_rng(which)
    xs = [np.array([22.9, np.log(0.55), 0.85, 1.9]) + 0.3 * rng.normal(size=4) for _ in range(3)]
    got = [native.log_posterior(x, header, np.zeros(4)) for x in xs]
    want = [_reference(penicillin, ps, x) for x in xs]
    # equal up to the normalising constants the callback leaves out: compare differences
    np.testing.assert_allclose(np.diff(got), np.diff(want), rtol=1e-9, atol=1e-9)
    # gradient vs central differences, step 1e-4: truncation ~2e-9 x the third derivative; the
    # criterion's rounding noise (~1e-10 on Penicillin's Cholesky) contributes ~1e-6, hence atol 1e-5
    x, g = xs[0], np.zeros(4)
    native.log_posterior(x, header, g)
    h = 1e-4
    fd = [(native.log_posterior(x + h * e, header, np.zeros(4)) - native.log_posterior(x - h * e, header, np.zeros(4)))
          / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-5)


def test_unsupported_point_is_rejected(penicillin):
    ps = resolve_priors(penicillin.design)
    header, keep = native.pack(kernel_arrays(penicillin.kernel), *est_native._prior_tables(penicillin.design, ps))
    assert native.log_posterior(np.array([22.0, 800.0, 0.0, 0.0]), header, np.zeros(4)) == -np.inf


def _fit(model, seed=3, priors=None):
    return model.sample(draws=150, tune=150, chains=2, random_seed=seed, progressbar=False,
                        log_likelihood=False, priors=priors)


def test_refits_reuse_the_compiled_callbacks_and_give_the_same_draws(penicillin):
    df = load_factors("Penicillin.csv", ["plate", "sample"])
    first = _fit(penicillin)
    n_compiled = native.COMPILATIONS["callbacks"]
    assert n_compiled >= 1
    # a new response, new prior scales, a data set of another size: no compilation
    df2 = df.assign(diameter=df.diameter + np.random.default_rng(1).normal(0, 0.5, len(df)))
    other = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", df2)
    _fit(other)
    _fit(penicillin, priors={"plate": bvc.HalfNormal(0.3)})
    dye = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", pd.read_csv("tests/data/Dyestuff.csv"))
    assert _fit(dye).marginalize == "full"
    assert native.COMPILATIONS["callbacks"] == n_compiled
    # a fresh compilation (from Numba's disk cache, or compiled anew) samples the same draws
    native.callbacks.cache_clear()
    again = _fit(penicillin)
    assert native.COMPILATIONS["callbacks"] == n_compiled + 1
    for v in ("beta", "sigma", "sd", "re_plate"):
        np.testing.assert_array_equal(first.posterior[v].values, again.posterior[v].values)
