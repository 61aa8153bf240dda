"""Tests that a variance component is zero, on a REML fit (restricted likelihood ratio, RLRT) or
an ML fit (likelihood ratio, LRT).

The statistic is ``2 (llf - llf0)``: the fit against the same model without the component
(:func:`bayesvc.design.reduce.drop_component`, refitted by the same criterion), 0 when the
component is estimated as zero. Its null distribution:

* ``"exact"``: the finite-sample null distribution of Crainiceanu and Ruppert (2004),
  :mod:`bayesvc.estimators.rlrt` (RLRsim's ``exactRLRT`` / ``exactLRT``). Exact when the component
  is the model's only one. In the presence of other components (REML fits only) it is Greven et
  al.'s (2008) approximation, the null distribution of the model with only the tested component
  (RLRsim's ``exactRLRT(m, mA, m0)``), and the result says ``approximate=True``.
* ``"bootstrap"``: parametric bootstrap: responses simulated from the fit without the component,
  both models refitted (warm-started at the observed fits) on each; refits run on the executors of
  :mod:`bayesvc.estimators.parallel` in blocks of :data:`BOOT_BLOCK` with their own seeds, so a
  seed gives the same p-value whatever the executor.
* ``"chibar"``: the asymptotic 50:50 mixture of chi-square(0) and chi-square(1) (Self and Liang
  1987; Stram and Lee 1994), labelled approximate: too conservative in small samples, where the
  null puts more than half its mass at zero.

>>> t = test_component(reml, "g", method="chibar")
>>> t.method, t.approximate, bool(np.isclose(t.p_value, 0.5 * stats.chi2.sf(t.statistic, 1)))
('chibar', True, True)
"""

from __future__ import annotations

import os
import time

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from ..design.covariance import term_lambda, theta_slices
from ..design.reduce import component_z, drop_component, locate_component, with_response
from ..errors import fail
from ..kernel import Kernel
from ..kernel.criteria import profiled_deviance
from ..results.inference import ComponentTest
from ..validate import validate_choice, validate_count, validate_seed
from .parallel import run_tasks
from .reml import optimize_deviance
from .rlrt import simulate_null, spectral_weights

METHODS = ("exact", "bootstrap", "chibar")
#: default simulations: the exact null is cheap, a bootstrap replicate costs two refits
NSIM = {"exact": 100_000, "bootstrap": 1000, "chibar": 0}
#: bootstrap replicates per task (one seed each)
BOOT_BLOCK = 50
#: statistics below this count as 0 (the optimizer's tolerance on the deviance is ~1e-9)
ZERO_STAT = 1e-8
#: L-BFGS-B settings of the bootstrap refits: deviances to ~1e-9 (measured on Pastes), far below
#: what a p-value needs, with ~40% fewer evaluations than the fit's defaults
BOOT_OPT = {"ftol": 1e-10, "gtol": 1e-6}

REFERENCES = {
    "exact": "exact finite-sample null (Crainiceanu & Ruppert 2004; RLRsim's exactRLRT)",
    "exact-ml": "exact finite-sample null (Crainiceanu & Ruppert 2004; RLRsim's exactLRT)",
    "approx": ("approximate: the exact null of the model with only this component (Greven et al. "
               "2008; RLRsim's exactRLRT(m, mA, m0))"),
    "chibar": "approximate: asymptotic 50:50 mixture of chi2(0) and chi2(1)",
    "bootstrap": "parametric bootstrap: {n} refits of both models under the fitted null",
}


class NullFit:
    """The fit of the model without the tested component: its criterion, and the parameters
    (beta, residual variance, theta of the remaining terms) that the bootstrap simulates from."""

    def __init__(self, reduced, kernel_full, reml: bool, theta0=None):
        self.design, self.reml = reduced, reml
        if reduced.terms:
            k0 = Kernel(reduced)
            opt = optimize_deviance(k0, reml=reml, theta0=theta0)
            self.theta, self.deviance = np.asarray(opt.theta_final), opt.deviance
            f = k0.factorize(self.theta)
        else:  # a linear model: the full kernel at theta = 0
            f = kernel_full.factorize(np.zeros(kernel_full.n_theta))
            self.theta, self.deviance = np.zeros(0), profiled_deviance(kernel_full, f, reml)
        n, p = reduced.nobs, reduced.k_fe
        self.beta, self.scale = f.beta, f.pwrss / (n - p if reml else n)

    def simulate(self, rng: np.random.Generator) -> np.ndarray:
        """One response from the null fit: ``X beta + sum_t Z_t b_t + e``."""
        d = self.design
        y = d.X @ self.beta + rng.normal(scale=np.sqrt(self.scale), size=d.nobs)
        for t, s in zip(d.terms, theta_slices(d.terms)):
            L = term_lambda(t, self.theta[s]) * np.sqrt(self.scale)
            b = rng.normal(size=(t.n_levels, t.p)) @ L.T
            y += t.Z @ b.ravel()
        return y


def _theta_without(design, theta, name) -> np.ndarray:
    """``theta`` without the tested component's entry (the reduced design's start)."""
    i, j = locate_component(design, name)
    return np.delete(np.asarray(theta, dtype=float), theta_slices(design.terms)[i].start + j)


def _statistic(dev0: float, dev1: float) -> float:
    t = dev0 - dev1
    return float(t) if t > ZERO_STAT else 0.0


def _boot_block(task) -> np.ndarray:
    """Statistics of one block of bootstrap replicates (runs in worker processes too)."""
    null, design, reml, theta1 = task["null"], task["design"], task["reml"], task["theta1"]
    rng = np.random.default_rng(task["seed"])
    out = np.empty(task["n"])
    with threadpool_limits(1):
        for r in range(task["n"]):
            y = null.simulate(rng)
            k1 = Kernel(with_response(design, y))
            dev1 = optimize_deviance(k1, reml=reml, theta0=theta1, **BOOT_OPT).deviance
            if null.design.terms:
                k0 = Kernel(with_response(null.design, y))
                dev0 = optimize_deviance(k0, reml=reml, theta0=null.theta, **BOOT_OPT).deviance
            else:
                dev0 = k1.deviance(np.zeros(k1.n_theta), reml)
            out[r] = _statistic(dev0, dev1)
    return out


def _bootstrap(result, null, nsim, seed, executor, workers) -> tuple[np.ndarray, str]:
    reml = result.method == "REML"
    sizes = [BOOT_BLOCK] * (nsim // BOOT_BLOCK) + ([nsim % BOOT_BLOCK] if nsim % BOOT_BLOCK else [])
    seeds = np.random.SeedSequence(seed).spawn(len(sizes))
    tasks = [{"null": null, "design": result.design, "reml": reml, "theta1": np.asarray(result.theta),
              "seed": s, "n": n} for s, n in zip(seeds, sizes)]
    blocks, where = run_tasks(_boot_block, tasks, executor, workers, default_workers=os.cpu_count() or 1,
                              what="test_component")
    return np.concatenate(blocks), where


def _check(result, name, method, nsim):
    validate_choice(method, "method", METHODS)
    if result.method not in ("REML", "ML"):
        fail(f"test_component needs a REML or ML fit, got {result.method}")
    locate_component(result.design, name)
    return NSIM[method] if nsim is None else validate_count(nsim, "nsim")


def test_component(result, name: str, method: str = "exact", nsim: int | None = None, seed=None, *,
                   kernel: Kernel | None = None, executor=None, workers: int | None = None) -> ComponentTest:
    """Test ``H0``: the variance of component ``name`` is zero (module docstring).

    Parameters
    ----------
    result : REMLResult
        A REML fit (restricted likelihood ratio) or an ML fit (likelihood ratio).
    name : str
        A component with one covariance parameter (not one of a correlated term).
    method : {'exact', 'bootstrap', 'chibar'}
    nsim : int, optional
        Simulations (default 100,000 for ``"exact"``, 1,000 for ``"bootstrap"``).
    seed : int, optional
        Seed of the simulation (drawn and recorded when not given).
    kernel : Kernel, optional
        The fit's kernel (:attr:`bayesvc.VCModel.kernel`), reused.
    executor, workers
        Where bootstrap refits run (:mod:`bayesvc.estimators.parallel`; default: in this thread).

    Returns
    -------
    ComponentTest

    Examples
    --------
    >>> t = test_component(reml, "g", method="bootstrap", nsim=60, seed=3)
    >>> t.method, t.nsim, t.executor, bool(t.p_value == 1 / 61)   # no replicate reaches it
    ('bootstrap', 60, 'serial', True)
    """
    nsim = _check(result, name, method, nsim)
    reml = result.method == "REML"
    design = result.design
    kernel = kernel or Kernel(design)
    with threadpool_limits(1):
        null = NullFit(drop_component(design, name), kernel, reml, _theta_without(design, result.theta, name))
    stat = 0.0 if name in result.boundary else _statistic(null.deviance, -2 * result.llf)
    seed = validate_seed(seed) if method != "chibar" else None
    common = {"component": name, "statistic": stat, "statistic_name": "RLRT" if reml else "LRT",
              "method": method, "criterion": result.method, "seed": seed}
    if method == "chibar":
        p = 1.0 if stat == 0 else 0.5 * float(stats.chi2.sf(stat, 1))
        return ComponentTest(**common, p_value=p, nsim=0, mc_se=0.0, approximate=True,
                             reference=REFERENCES["chibar"])
    if method == "exact":
        alone = len(design.component_names) == 1
        if not (alone or reml):
            fail(f"the exact LRT of {name!r} among other components has no ML version; test a REML fit "
                 "(Greven et al.'s approximation) or use method='bootstrap'")
        sample = simulate_null(spectral_weights(design.X, component_z(design, name), reml=reml), nsim,
                               np.random.default_rng(seed))
        p = 1.0 if stat == 0 else float(np.mean(sample > stat))
        ref = REFERENCES["approx"] if not alone else REFERENCES["exact" if reml else "exact-ml"]
        return ComponentTest(**common, p_value=p, nsim=nsim, mc_se=float(np.sqrt(p * (1 - p) / nsim)),
                             approximate=not alone, reference=ref, null_sample=sample)
    t0 = time.perf_counter()
    sample, where = _bootstrap(result, null, nsim, seed, executor, workers)
    p = float((1 + np.sum(sample >= stat)) / (1 + nsim))
    ref = REFERENCES["bootstrap"].format(n=nsim) + f" ({time.perf_counter() - t0:.1f} s)"
    return ComponentTest(**common, p_value=p, nsim=nsim, mc_se=float(np.sqrt(p * (1 - p) / nsim)),
                         approximate=False, reference=ref, null_sample=sample, executor=where)


test_component.__test__ = False  # a statistical test, not a unit test: pytest must not collect it
