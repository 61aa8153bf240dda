"""NUTS: run a sampler on a built model, complete the draws with the random effects, and assemble
the labelled ArviZ DataTree of a :class:`~bayesvc.PosteriorResult`.

:func:`sample` is four named steps: resolve the model (:func:`~.model.build_pymc`, or a cached
build), :func:`run_nuts`, :func:`_complete_random_effects`, :func:`_to_datatree`; then it issues the
result's diagnostic messages as :class:`~bayesvc.SamplingWarning`.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import xarray as xr

from ...errors import SamplingWarning, fail, warn
from ...kernel import Kernel
from ...priors import prior_data_name, resolve_priors
from ...results import PosteriorResult
from ...validate import validate_choice, validate_sampling, validate_seed
from ..plan import plan_marginalization
from .draws import draw_random_effects, log_prior_dataset, pointwise_loglik
from .partial import draw_integrated
from .interrupt import ON_INTERRUPT, Interrupted, interrupt_message, sample_nutpie
from .model import BuiltModel, build_pymc, coords_for
from .native import native_model, native_supported
from .native_partial import draw_integrated_native, native_partial_model, native_partial_supported

SAMPLERS = ("nutpie", "pymc", "numpyro")

#: the pointwise log-likelihood is stored by default up to this many (draws x observations)
MAX_POINTWISE = 2e7


def _quiet():
    """Silence PyTensor's object-mode notes, library FutureWarnings and PyTensor's "could not link
    to a BLAS installation" warning around compilation.

    The BLAS warning comes from PyTensor's C backend, which bayesvc's default path does not use
    (nutpie compiles with Numba, and :func:`compile_nutpie` compiles the initial-point function in
    Numba too). Only ``sampler="pymc"`` runs C code; there, linking a system BLAS
    (``PYTENSOR_FLAGS=blas__ldflags=-lblas``) did not change the sampling time of a correlated
    model (sleepstudy, 2 x 1000 iterations: 26.4 s without, 27.4 s with, on a shared machine), so the
    600-character warning says nothing a user should act on.
    """
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.filterwarnings("ignore", message=".*object mode.*")
    warnings.filterwarnings("ignore", message=".*could not link to a BLAS installation.*")
    warnings.filterwarnings("ignore", category=FutureWarning)
    return ctx


def compile_nutpie(model):
    """Compile a PyMC model with nutpie once; :func:`run_nuts` reuses it (e.g. with new prior
    scales via ``with_data``). PyTensor's mode is Numba throughout, the initial-point function
    included (PyMC compiles that one in the default C mode otherwise: a second backend to compile,
    ~6 s of a 17 s correlated fit, measured on a shared machine)."""
    import nutpie
    import pytensor

    ctx = _quiet()
    try:
        with pytensor.config.change_flags(mode="NUMBA"):
            return nutpie.compile_pymc_model(model)
    finally:
        ctx.__exit__(None, None, None)


def run_nuts(model, draws, tune, chains, random_seed, sampler, progressbar, compiled=None,
             on_interrupt="raise"):
    """Sample a PyMC model with the chosen NUTS implementation; returns a DataTree (nutpie, after
    a Ctrl-C with ``on_interrupt="keep"``: an :class:`~.interrupt.Interrupted`)."""
    if sampler == "nutpie":  # nutpie alone: the native full collapse never imports PyMC (0.6 s)
        compiled = compiled if compiled is not None else compile_nutpie(model)
        return sample_nutpie(compiled, on_interrupt, draws, tune=tune, chains=chains, seed=random_seed,
                             progress_bar=progressbar, save_warmup=False)
    import pymc as pm

    with model:
        return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                         progressbar=progressbar, cores=1 if sampler == "pymc" else None,
                         compute_convergence_checks=False, nuts_sampler=sampler)


def _resolve(design, ps, marginalize, kernel, sampler, built: BuiltModel | None):
    """``(built model, nutpie model or None)`` to sample: the one given (a cached build), the full
    collapse or the partial one through bayesvc's own compiled callbacks (:mod:`.native`,
    :mod:`.native_partial`: nothing compiled per model),
    a PyMC model from the compiled-model cache (nutpie: compiled once per model shape) or a new
    PyMC model (the other samplers)."""
    if built is not None:
        return built, None
    plan = plan_marginalization(design, marginalize, kernel)
    if plan.kind == "full" and sampler == "nutpie":
        kernel = kernel or Kernel(design)
        if native_supported(design, kernel, ps):
            return BuiltModel(None, ps, plan, kernel), native_model(design, kernel, ps)
    if plan.kind == "partial" and sampler == "nutpie" and native_partial_supported(design, plan, ps):
        return BuiltModel(None, ps, plan, None), native_partial_model(design, plan, ps)
    if marginalize in (True, "auto") and plan.kind == "none":
        warn(plan.reason)
    if sampler == "numpyro" and plan.kind == "full":
        fail("sampler='numpyro' needs a model written in PyTensor alone: pass marginalize='partial' "
             "or marginalize=False (the full collapse runs a NumPy kernel)")
    kernel = kernel if plan.needs_kernel else None
    if sampler == "nutpie":
        from .cache import compiled_model  # the cache samples through this module: imported here

        return compiled_model(design, ps, kernel, marginalize=plan)
    return build_pymc(design, ps, marginalize=plan, kernel=kernel), None


def _integrated_fixed_prior(ps) -> tuple[np.ndarray, np.ndarray]:
    """This fit's Normal fixed-effect prior ``(means, SDs)`` (the partial collapse integrated the
    fixed effects out: they are drawn with the random effects)."""
    data = ps.data()
    return data[prior_data_name("fixed_mu")], data[prior_data_name("fixed_sigma")]


def _complete_random_effects(design, built: BuiltModel, ps, post: xr.Dataset, seed: int, thin: int,
                             wanted: bool) -> tuple[xr.Dataset, dict]:
    """Add the ``re_<term>`` draws: exact conditional draws of the integrated-out terms, the
    sampled ones as they are. Returns the posterior and the per-term draws (for the likelihood)."""
    plan, coords, re_draws = built.plan, coords_for(design), {}
    rng = np.random.default_rng(seed)
    if plan.kind == "full" and wanted:
        draws_list, _ = draw_random_effects(built.kernel, post, rng, thin)
        for t, arr in zip(design.terms, draws_list):
            re_draws[t.name] = arr[..., 0] if t.scalar else arr
        if thin == 1:
            for t in design.terms:
                dims = ("chain", "draw", f"{t.name}_level") + (() if t.scalar else (f"{t.name}_coef",))
                post[f"re_{t.name}"] = xr.DataArray(re_draws[t.name], dims=dims)
    elif plan.kind != "full":
        for i, t in enumerate(design.terms):
            if i not in plan.integrated:
                re_draws[t.name] = post[f"re_{t.name}"].values
        fixed = _integrated_fixed_prior(ps) if "beta" not in post else None
        if plan.integrated and (wanted or fixed is not None):
            if built.model is None:  # the native partial collapse: its compiled draws
                drawn = draw_integrated_native(design, plan, ps, post, re_draws, rng, fixed)
            else:
                drawn = draw_integrated(design, plan, post, re_draws, rng, fixed)
            if fixed is not None:
                post["beta"] = xr.DataArray(drawn.pop("beta"), dims=("chain", "draw", "fixed"),
                                            coords={"fixed": list(design.fe_names)})
            for name, b in drawn.items() if wanted else ():
                re_draws[name] = b
                post[f"re_{name}"] = xr.DataArray(b, dims=("chain", "draw", f"{name}_level"))
    for dim in [d for t in design.terms for d in (f"{t.name}_level", f"{t.name}_coef", f"{t.name}_pair")]:
        if dim in post.dims:
            post = post.assign_coords({dim: coords[dim]})
    return post, re_draws


def _to_datatree(design, ps, post, sample_stats, re_draws, log_likelihood) -> xr.DataTree:
    """posterior, sample_stats, log_likelihood (when asked and affordable), log_prior, observed_data."""
    groups = {"posterior": post, "sample_stats": sample_stats}
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    affordable = n_samples * design.nobs <= MAX_POINTWISE
    rows = getattr(design, "has_rows", True)
    if log_likelihood is True and not rows:
        fail("log_likelihood=True: the pointwise log-likelihood needs the rows, which a model fitted "
             "from out-of-core data (dask) does not hold; pass log_likelihood=False")
    want_ll = rows and (log_likelihood is True or (log_likelihood == "auto" and affordable))
    if want_ll and re_draws and len(next(iter(re_draws.values()))[0]) == post.sizes["draw"]:
        ll = pointwise_loglik(design, post, re_draws)
        groups["log_likelihood"] = xr.Dataset({"y": (("chain", "draw", "obs"), ll)},
                                              coords={"chain": post.chain, "draw": post.draw})
    groups["log_prior"] = log_prior_dataset(ps, post, design)
    if rows:
        groups["observed_data"] = xr.Dataset({"y": (("obs",), design.y)})
    return xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})


def sample(design, priors=None, draws=1000, tune=1000, chains=4, random_seed=None, sampler="nutpie",
           marginalize=True, progressbar=True, kernel: Kernel | None = None, random_effects=True,
           thin_random_effects=1, log_likelihood="auto", built: BuiltModel | None = None,
           compiled=None, warn_diagnostics: bool = True, on_interrupt: str = "raise") -> PosteriorResult:
    """Sample the posterior with NUTS; returns a :class:`~bayesvc.PosteriorResult`.

    The functional form of :meth:`bayesvc.VCModel.sample` (see there for the arguments).
    ``built`` / ``compiled`` reuse an already built model and its nutpie compilation (the
    compiled-model cache); ``priors`` must then describe the priors that model currently holds.
    ``on_interrupt``: what Ctrl-C during nutpie's sampling does (:mod:`.interrupt`).
    """
    validate_choice(sampler, "sampler", SAMPLERS)
    validate_choice(on_interrupt, "on_interrupt", ON_INTERRUPT)
    draws, tune, chains = validate_sampling(draws, tune, chains)
    seed = validate_seed(random_seed)
    t0 = time.perf_counter()
    # a cached build holds another fit's priors and data: this fit's are ``priors`` and ``design``
    ps = resolve_priors(design, priors)
    built, resolved = _resolve(design, ps, marginalize, kernel, sampler, built)
    compiled = compiled if compiled is not None else resolved
    ctx = _quiet()
    try:
        dt = run_nuts(built.model, draws, tune, chains, seed, sampler, progressbar, compiled=compiled,
                      on_interrupt=on_interrupt)
    finally:
        ctx.__exit__(None, None, None)
    if isinstance(dt, Interrupted):
        warn(interrupt_message(dt.kept, draws, chains), SamplingWarning)
        dt, draws = dt.tree, dt.kept
    t_sample = time.perf_counter() - t0
    post = dt["posterior"].to_dataset()
    post = post.drop_vars([v for v in post.data_vars if v.startswith(("sd_", "z_", "chol_", "prior_"))])
    post, re_draws = _complete_random_effects(design, built, ps, post, seed, thin_random_effects, random_effects)
    tree = _to_datatree(design, ps, post, dt["sample_stats"].to_dataset(), re_draws, log_likelihood)
    result = PosteriorResult(design=design, idata=tree, priors=ps, sampler=sampler,
                             marginalize=built.plan.kind, draws=draws, tune=tune, chains=chains,
                             seed=seed, seconds=time.perf_counter() - t0, sampling_seconds=t_sample)
    if warn_diagnostics:
        for message in result.diagnostic_messages():
            warn(message, SamplingWarning)
    return result
