"""NUTS runs, exact conditional draws of the random effects, and the ArviZ object.

After NUTS on the collapsed model, each posterior draw of (beta, sigma, sd) is completed with an
exact draw of the random effects from their Gaussian conditional
``b | y, beta, sigma, sd ~ N(Lambda u_hat, sigma^2 Lambda A^{-1} Lambda')`` using the kernel's
blocked factor (vectorised over levels; one factorization per draw).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import xarray as xr

from .checks import fail
from .likelihood import Kernel
from .pymc_model import _partial_term, _zvals, build_pymc, can_collapse, choose_marginalization, coords_for

SAMPLERS = ("nutpie", "pymc", "numpyro")


def compile_nutpie(model):
    """Compile once; :func:`run_nuts` reuses it (e.g. with new prior scales via ``with_data``)."""
    import nutpie

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*object mode.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        return nutpie.compile_pymc_model(model)


def run_nuts(model, draws, tune, chains, random_seed, sampler, progressbar, compiled=None):
    """Sample a PyMC model with the chosen NUTS implementation; returns a DataTree."""
    import pymc as pm

    if sampler == "nutpie":
        import nutpie

        compiled = compiled if compiled is not None else compile_nutpie(model)
        return nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=random_seed,
                             progress_bar=progressbar, save_warmup=False)
    with model:
        kw = {"nuts_sampler": sampler}
        return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                         progressbar=progressbar, cores=1 if sampler == "pymc" else None,
                         compute_convergence_checks=False, **kw)


def _stack(post: xr.Dataset, name: str) -> np.ndarray:
    v = post[name]
    return v.values.reshape((-1,) + v.shape[2:])


def draw_random_effects(kernel: Kernel, post: xr.Dataset, rng: np.random.Generator, thin: int = 1):
    """Exact conditional draws of every term's random effects, per posterior draw.

    Returns a list (design term order) of arrays (chain, draw, levels[, p]).
    """
    from .kernel_numba import draw_effects, pack

    beta, sigma, sd = _stack(post, "beta"), _stack(post, "sigma"), _stack(post, "sd")
    nchain, ndraw = post.sizes["chain"], post.sizes["draw"]
    keep = np.arange(0, ndraw, thin)
    terms = kernel.terms
    out = [np.empty((nchain, len(keep), t.n_levels, t.p)) for t in terms]
    q1 = terms[kernel.first].q if kernel.first is not None else 0
    packed = pack(kernel)
    for c in range(nchain):
        for j, d in enumerate(keep):
            i = c * ndraw + d
            z1 = rng.standard_normal((q1, 1)) if q1 else None
            zr = rng.standard_normal((kernel.rz, 1))
            if packed is not None:
                # compiled path: one blocked factorization and two solves per draw
                b1, br = draw_effects(beta[i], float(sigma[i]), sd[i], z1[:, 0], zr[:, 0], *packed)
                out[kernel.first][c, j] = b1.reshape(-1, 1)
                for k in kernel.rest:
                    a, b = kernel.rest_offsets[k]
                    out[k][c, j] = br[a:b].reshape(-1, 1)
                continue
            theta = sd[i] / sigma[i]
            f = kernel.factor(theta)
            modes = kernel.conditional_modes(f, beta[i])
            xs = kernel.draw_u(f, z1, zr)
            for k, t in enumerate(terms):
                out[k][c, j] = modes[k] + sigma[i] * theta[k] * xs[k].reshape(t.n_levels, t.p)
    return out, keep


def draw_partial_term(design, k, post: xr.Dataset, re_draws: dict, rng: np.random.Generator) -> np.ndarray:
    """Exact conditional draws of the term integrated out by ``marginalize='partial'``.

    Given everything else, level ``l`` has precision ``1/tau^2 + a_l/sigma^2`` and mean
    ``(s_l/sigma^2) / precision`` with ``a_l = sum z^2``, ``s_l = sum z r`` (r: residual without it).
    """
    t = design.terms[k]
    codes, z = t.codes, _zvals(t)
    a = np.bincount(codes, weights=z * z, minlength=t.n_levels)
    beta, sigma = post["beta"].values, post["sigma"].values
    tau = post["sd"].sel(component=t.component_names[0]).values
    nc, nd = sigma.shape
    out = np.empty((nc, nd, t.n_levels))
    others = [(u, re_draws[u.name]) for i, u in enumerate(design.terms) if i != k]
    zo = [(u.codes, _zvals(u)) for u, _ in others]
    for c in range(nc):
        for d in range(nd):
            r = design.y - design.X @ beta[c, d]
            for (u, b), (cu, zu) in zip(others, zo):
                r = r - zu * b[c, d][cu]
            s = np.bincount(codes, weights=z * r, minlength=t.n_levels)
            prec = 1.0 / tau[c, d] ** 2 + a / sigma[c, d] ** 2
            out[c, d] = s / sigma[c, d] ** 2 / prec + rng.standard_normal(t.n_levels) / np.sqrt(prec)
    return out


def pointwise_loglik(design, post: xr.Dataset, re_draws: dict[str, np.ndarray]) -> np.ndarray:
    """log N(y_i | x_i beta + z_i b, sigma^2) for every draw and observation."""
    beta, sigma = post["beta"].values, post["sigma"].values
    mu = np.einsum("cdp,np->cdn", beta, design.X)
    for t in design.terms:
        b = re_draws[t.name]
        if b.ndim == 3:
            b = b[..., None]
        codes, zvals = t.codes, t.zvals
        if codes is not None:
            mu += np.einsum("cdnp,np->cdn", b[:, :, codes, :], zvals)
        else:
            flat = b.reshape(b.shape[0], b.shape[1], -1)
            mu += np.einsum("cdq,nq->cdn", flat, t.Z.toarray())
    s = sigma[..., None]
    return -0.5 * (np.log(2 * np.pi) + 2 * np.log(s) + ((design.y - mu) / s) ** 2)


def log_prior_dataset(ps, post: xr.Dataset, design) -> xr.Dataset:
    """Prior log-densities of every free parameter, for power-scaling sensitivity."""
    sd = post["sd"]
    lp_sd = np.stack([ps.sd[c].logpdf(sd.sel(component=c).values) for c in design.component_names], axis=-1)
    beta = post["beta"]
    lp_beta = np.stack([ps.fixed[n].logpdf(beta.sel(fixed=n).values) for n in design.fe_names], axis=-1)
    return xr.Dataset({
        "sd": (("chain", "draw", "component"), lp_sd),
        "sigma": (("chain", "draw"), ps.residual.logpdf(post["sigma"].values)),
        "beta": (("chain", "draw", "fixed"), lp_beta),
    }, coords={"chain": post.chain, "draw": post.draw, "component": design.component_names,
               "fixed": list(design.fe_names)})


def _check_args(sampler, draws, tune, chains):
    if sampler not in SAMPLERS:
        fail(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, (int, np.integer)) or v < (1 if name != "tune" else 0):
            fail(f"{name} must be a positive integer, got {v!r}")


def sample(design, priors=None, draws=1000, tune=1000, chains=4, random_seed=None, sampler="nutpie",
           marginalize=True, progressbar=True, kernel=None, random_effects=True, thin_random_effects=1,
           log_likelihood="auto", model=None, compiled=None):
    """Sample the posterior with NUTS; returns a :class:`~bayesvc.posterior.PosteriorResult`.

    ``model`` / ``compiled`` reuse an already built PyMC model and its nutpie compilation (prior
    sweeps); ``priors`` must then describe the priors that model currently holds.
    """
    from .posterior import PosteriorResult

    _check_args(sampler, draws, tune, chains)
    if marginalize in (True, "auto") and not can_collapse(design):
        warnings.warn("correlated random-effect terms are sampled non-centered (marginalize=False)",
                      stacklevel=3)
        marginalize = False
    t0 = time.perf_counter()
    if can_collapse(design) and marginalize not in (False, "none", "partial"):
        kernel = kernel or Kernel(design)
    mode = model._bayesvc["marginalize"] if model is not None else choose_marginalization(design, marginalize, kernel)
    if sampler == "numpyro" and mode == "full":
        fail("sampler='numpyro' needs a model written in PyTensor alone: pass marginalize='partial' "
             "or marginalize=False (the full collapse runs a NumPy kernel)")
    if model is None:
        model = build_pymc(design, priors, marginalize=mode, kernel=kernel)
        ps = model._bayesvc["priors"]
    else:
        from .priors import resolve_priors

        ps = resolve_priors(design, priors)
    seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0] % (2**31)) \
        if random_seed is None or not isinstance(random_seed, (int, np.integer)) else int(random_seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*object mode.*")
        warnings.filterwarnings("ignore", category=FutureWarning)
        dt = run_nuts(model, draws, tune, chains, seed, sampler, progressbar, compiled=compiled)
    t_sample = time.perf_counter() - t0
    post = dt["posterior"].to_dataset()
    drop = [v for v in post.data_vars if v.startswith("sd_") or v.startswith("z_") or v.startswith("chol_")]
    post = post.drop_vars(drop + [v for v in post.data_vars if v.startswith("prior_")])
    coords = coords_for(design)
    re_draws = {}
    if mode == "full" and random_effects:
        rng = np.random.default_rng(seed)
        draws_list, keep = draw_random_effects(kernel, post, rng, thin_random_effects)
        for t, arr in zip(design.terms, draws_list):
            if t.p == 1:
                re_draws[t.name] = arr[..., 0]
            else:
                re_draws[t.name] = arr
        if thin_random_effects == 1:
            for t in design.terms:
                dims = ("chain", "draw", f"{t.name}_level") + ((f"{t.name}_coef",) if t.p > 1 else ())
                post[f"re_{t.name}"] = xr.DataArray(re_draws[t.name], dims=dims)
    elif mode != "full":
        skip = _partial_term(design) if mode == "partial" else None
        for i, t in enumerate(design.terms):
            if i != skip:
                re_draws[t.name] = post[f"re_{t.name}"].values
        if skip is not None and random_effects:
            t = design.terms[skip]
            rng = np.random.default_rng(seed)
            re_draws[t.name] = draw_partial_term(design, skip, post, re_draws, rng)
            post[f"re_{t.name}"] = xr.DataArray(re_draws[t.name], dims=("chain", "draw", f"{t.name}_level"))
    for t in design.terms:
        for dim in (f"{t.name}_level", f"{t.name}_coef"):
            if dim in post.dims:
                post = post.assign_coords({dim: coords[dim]})
    groups = {"posterior": post, "sample_stats": dt["sample_stats"].to_dataset()}
    n_samples = post.sizes["chain"] * post.sizes["draw"]
    want_ll = log_likelihood is True or (log_likelihood == "auto" and n_samples * design.nobs <= 2e7)
    if want_ll and re_draws and len(next(iter(re_draws.values()))[0]) == post.sizes["draw"]:
        ll = pointwise_loglik(design, post, re_draws)
        groups["log_likelihood"] = xr.Dataset({"y": (("chain", "draw", "obs"), ll)},
                                              coords={"chain": post.chain, "draw": post.draw})
    groups["log_prior"] = log_prior_dataset(ps, post, design)
    groups["observed_data"] = xr.Dataset({"y": (("obs",), design.y)})
    tree = xr.DataTree.from_dict({k: xr.DataTree(v) for k, v in groups.items()})
    return PosteriorResult(design=design, idata=tree, priors=ps, sampler=sampler,
                           marginalize=mode, draws=draws, tune=tune, chains=chains,
                           seed=seed, seconds=time.perf_counter() - t0, sampling_seconds=t_sample)
