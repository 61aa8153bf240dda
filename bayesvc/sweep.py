"""Prior-scale sweeps: refit a model across a grid of SD-prior scales (and families).

Every SD prior's scale enters the PyMC model as data (``prior_<component>``, see
:func:`bayesvc.pymc_model.prior_data`), so the model is built and compiled with nutpie once per
prior *structure* (the family of each SD prior) and each grid point only swaps that data with
``compiled.with_data(...)``: a grid point costs sampling, not compilation.

Compiled models live in a small per-process cache keyed by (model token, prior structure). The
token is attached to the :class:`~bayesvc.VCModel` instance (weakly), so a second sweep of the same
model in the same process compiles nothing either. Worker processes (a process pool, a Dask
cluster with worker processes) fill their own cache on their first grid point: the nutpie object
cannot be pickled (its logp function is a closure over numba code), the ``VCModel`` can.

Executors
---------
The collapsed likelihood is a Python-level PyTensor Op (numba object mode), so sampling holds the
GIL except inside LAPACK, and nutpie already runs the chains of one grid point on its own threads.
Grid points on threads share the compiled model but barely run concurrently (measured on a 2-core
machine: 4 Dyestuff grid points took 2.2 s one after the other, 2.4 s on two threads, 3.9 s on
four). Real parallelism needs processes: the compiled object does not pickle, the ``VCModel`` does,
so each worker process compiles once per prior structure (5-10 s) and then reuses it.

- ``executor=None`` (default): a ``concurrent.futures.ThreadPoolExecutor`` with one worker (or
  ``workers``): grid points one after the other on the one compiled model.
- ``"threads"``: a ``ThreadPoolExecutor`` with ``workers`` (default ``max(1, cpu_count // chains)``)
  threads; an ``int`` n: n threads.
- ``"processes"``: a spawn-context ``ProcessPoolExecutor`` with ``workers`` processes (same
  default); worth it when cores are free and the grid is large against one compilation per worker.
- any ``concurrent.futures.Executor`` instance (tasks and results pickle).
- a ``dask.distributed.Client``: grid points are submitted to the cluster (``client.map``), the way
  a sweep scales past one machine; in-process workers (``Client(processes=False)``) reuse this
  process's compiled model, worker processes compile their own once.
"""

from __future__ import annotations

import os
import threading
import time
import warnings

import numpy as np
import pandas as pd

from . import sampling as _sampling
from .checks import fail
from .priors import Exponential, Flat, HalfCauchy, HalfNormal, HalfStudentT, Prior, PriorSet, resolve_priors

FAMILIES = {
    "halfnormal": lambda s: HalfNormal(s),
    "halfstudentt": lambda s: HalfStudentT(3.0, s),
    "halfcauchy": lambda s: HalfCauchy(s),
    "exponential": lambda s: Exponential(1.0 / s),
}
_ALIASES = {"half_normal": "halfnormal", "hn": "halfnormal", "halft": "halfstudentt",
            "half_student_t": "halfstudentt", "studentt": "halfstudentt", "student_t": "halfstudentt",
            "half_cauchy": "halfcauchy", "cauchy": "halfcauchy", "exp": "exponential"}


# ----------------------------------------------------------------------------- priors

def prior_scale(prior: Prior) -> float:
    """The scale of an SD prior on the SD's own units (Exponential: its mean ``1/lam``)."""
    if isinstance(prior, Exponential):
        return 1.0 / prior.lam
    if prior.param_name is None:
        return float("nan")
    return float(prior.param_value)


def with_scale(prior: Prior, scale: float) -> Prior:
    """``prior`` with its scale set to ``scale`` (Exponential: mean ``scale``)."""
    if isinstance(prior, Exponential):
        return Exponential(1.0 / scale)
    return prior.with_param(float(scale))


def prior_quantile(prior: Prior, q):
    """Quantiles of an SD prior (for reference lines in plots)."""
    from scipy import stats

    q = np.asarray(q, dtype=float)
    if isinstance(prior, HalfNormal):
        return stats.halfnorm.ppf(q, scale=prior.sigma)
    if isinstance(prior, HalfStudentT):
        return stats.t.ppf((1 + q) / 2, df=prior.nu, scale=prior.sigma)
    if isinstance(prior, HalfCauchy):
        return stats.halfcauchy.ppf(q, scale=prior.beta)
    if isinstance(prior, Exponential):
        return stats.expon.ppf(q, scale=1 / prior.lam)
    return np.full(q.shape, np.nan)


def _family(f) -> tuple[str, Prior | None]:
    """(label, template) for a family given as a name or a Prior instance (template: its shape)."""
    if isinstance(f, Prior):
        if f.param_name is None or isinstance(f, Flat):
            fail(f"prior_sweep: {f!r} has no scale to sweep")
        return type(f).__name__.lower(), f
    if not isinstance(f, str):
        fail(f"prior_sweep: a family is a name {sorted(FAMILIES)} or a Prior instance, got {f!r}")
    key = f.lower().replace("-", "").replace(" ", "")
    key = _ALIASES.get(key, key)
    if key not in FAMILIES:
        fail(f"prior_sweep: unknown family {f!r}; use one of {sorted(FAMILIES)} or a Prior instance")
    return key, None


def _structure(ps: PriorSet) -> tuple:
    """What the compiled graph depends on: every prior with its swept parameter neutralised."""
    def norm(p):
        return repr(p.with_param(1.0)) if p.param_name else repr(p)

    return (tuple((c, norm(p)) for c, p in ps.sd.items()), norm(ps.residual),
            tuple((n, norm(p)) for n, p in ps.fixed.items()))


def _prior_data(ps: PriorSet, model=None) -> dict:
    """``prior_<name>`` data values of ``ps`` (only those ``model`` holds, when given)."""
    from .pymc_model import prior_data_name

    out = {prior_data_name(c): float(p.param_value) for c, p in ps.sd.items() if p.param_name}
    if ps.residual.param_name:
        out[prior_data_name("Residual")] = float(ps.residual.param_value)
    if model is not None:
        out = {k: v for k, v in out.items() if k in model.named_vars}
    return out


def _sweepable(design) -> list[str]:
    """Components whose prior scale is model data (not those of correlated terms: LKJ priors)."""
    return [c for t in design.terms if not (t.p > 1 and t.correlated) for c in t.component_names]


from .sweep_cache import (  # noqa: E402,F401  (the compiled-model cache, re-exported)
    _compiled, _kernel_for, _token, clear_cache, compiled_model, sample_cached,
)


# ----------------------------------------------------------------------------- one grid point

def _labels(design) -> list[tuple[str, str, str, object]]:
    """(parameter label, component, posterior variable, selection) for every summarised parameter."""
    out = [(f"sd[{c}]", c, "sd", {"component": c}) for c in design.component_names]
    out.append(("sigma", "Residual", "sigma", {}))
    out += [(f"beta[{n}]", n, "beta", {"fixed": n}) for n in design.fe_names]
    return out


def _fit_point(task: dict) -> dict:
    """Run one grid point (also in a worker process); returns plain summaries and timings."""
    from arviz_stats import mcse
    from threadpoolctl import threadpool_limits

    from .checks import BoundaryFitWarning
    from .posterior import SamplingWarning

    t0 = time.perf_counter()
    vcmodel, ps = task["vcmodel"], task["priors"]
    model, compiled, t_compile = _compiled(vcmodel, task["token"], task.get("build_priors", ps))
    compiled = compiled.with_data(**_prior_data(ps, model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SamplingWarning)
        warnings.simplefilter("ignore", BoundaryFitWarning)  # REML is reported once, by the sweep
        with threadpool_limits(1):
            t1 = time.perf_counter()
            # one random-effect draw per chain: the sweep summarises SDs and fixed effects only
            res = _sampling.sample(vcmodel.design, priors=ps, draws=task["draws"], tune=task["tune"],
                                   chains=task["chains"], random_seed=task["seed"], progressbar=False,
                                   kernel=_kernel_for(vcmodel, model), model=model, compiled=compiled,
                                   random_effects=True, thin_random_effects=task["draws"],
                                   log_likelihood=False)
            t_sample = time.perf_counter() - t1
            t2 = time.perf_counter()
            mode = None
            if task["mode"]:
                try:
                    mode = vcmodel.fit_map(priors=ps)
                except Exception:  # noqa: BLE001 - the mode is a convenience column
                    mode = None
            t_map = time.perf_counter() - t2
    post = res.posterior
    try:
        diag = res.diagnostics()
    except Exception:  # noqa: BLE001 - too few draws for R-hat / ESS
        diag = None
    lo_q, hi_q = (1 - task["ci_prob"]) / 2, (1 + task["ci_prob"]) / 2
    rows = []
    for label, comp, var, sel in _labels(vcmodel.design):
        da = post[var].sel(sel) if sel else post[var]
        x = da.values.ravel()
        if mode is None:
            m = np.nan
        elif var == "sd":
            m = float(mode.sd[comp])
        elif var == "sigma":
            m = float(np.sqrt(mode.scale))
        else:
            m = float(mode.fe_params[comp])
        try:
            se = float(mcse(da, method="median"))
        except Exception:  # noqa: BLE001
            se = np.nan
        rows.append({"parameter": label, "mean": float(x.mean()), "median": float(np.median(x)),
                     "lower": float(np.quantile(x, lo_q)), "upper": float(np.quantile(x, hi_q)),
                     "mode": m, "mcse_median": se,
                     "r_hat": float(diag.loc[label, "r_hat"]) if diag is not None else np.nan,
                     "ess_bulk": float(diag.loc[label, "ess_bulk"]) if diag is not None else np.nan})
    return {"rows": rows, "divergences": res.divergences, "compile_s": t_compile,
            "sample_s": t_sample, "map_s": t_map, "total_s": time.perf_counter() - t0,
            "worker": f"{os.getpid()}:{threading.current_thread().name}"}


# ----------------------------------------------------------------------------- executors

def _is_dask_client(ex) -> bool:
    return type(ex).__module__.startswith("distributed") and hasattr(ex, "map") and hasattr(ex, "gather")


def _run(tasks: list[dict], executor, chains: int, workers: int | None = None) -> tuple[list[dict], str]:
    from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

    if _is_dask_client(executor):
        futures = executor.map(_fit_point, tasks, pure=False)
        return executor.gather(futures), "dask"
    if isinstance(executor, Executor):
        return [f.result() for f in [executor.submit(_fit_point, t) for t in tasks]], type(executor).__name__
    n = int(workers) if workers else max(1, (os.cpu_count() or 1) // max(chains, 1))
    if executor is None and not workers:
        n = 1  # threads barely overlap on the collapsed kernel (GIL); see the module docstring
    if executor is None or executor == "threads" or isinstance(executor, (int, np.integer)):
        if isinstance(executor, (int, np.integer)) and not isinstance(executor, bool):
            if executor < 1:
                fail(f"prior_sweep: executor={executor} threads: need at least 1")
            n = int(executor)
        with ThreadPoolExecutor(max_workers=n, thread_name_prefix="bayesvc-sweep") as ex:
            return [f.result() for f in [ex.submit(_fit_point, t) for t in tasks]], f"threads({n})"
    if executor == "processes":
        import multiprocessing as mp

        with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as ex:
            return [f.result() for f in [ex.submit(_fit_point, t) for t in tasks]], f"processes({n})"
    fail("prior_sweep: executor must be None, 'threads', 'processes', a number of threads, a "
         f"concurrent.futures.Executor or a dask.distributed.Client, got {executor!r}")


# ----------------------------------------------------------------------------- the sweep

from .sweep_result import SweepResult  # noqa: E402


def prior_sweep(model, scales=(0.5, 1, 2, 5), families=("halfnormal",), components=None, draws=500,
                tune=500, chains=2, random_seed=None, executor=None, ci_prob=0.95, *,
                absolute: bool = False, priors=None, mode: bool = True,
                workers: int | None = None) -> SweepResult:
    """Refit ``model`` across a grid of SD-prior scales, one component at a time.

    Parameters
    ----------
    model : VCModel
    scales : sequence of float
        Multiples of each component's default scale (``2.5 * sd(y)``, or the scale of its prior in
        ``priors``), or absolute scales in the SD's units with ``absolute=True``. For Exponential
        priors the scale is the mean ``1/lam``.
    families : sequence of str or Prior
        ``"halfnormal"``, ``"halfstudentt"`` (nu = 3), ``"halfcauchy"``, ``"exponential"``, or
        Prior instances (their other parameters, e.g. ``nu``, are kept; with ``absolute=False``
        their scale is what ``scales`` multiplies).
    components : sequence of str, optional
        Components whose prior is varied (default: all, except those of correlated terms, whose
        LKJ prior has a fixed scale). The others, the residual and the fixed
        effects keep their priors (``priors`` or the defaults).
    draws, tune, chains : int
        NUTS settings per grid point.
    random_seed : int, optional
        One seed for every grid point (common random numbers: differences along the grid are
        the prior's, not Monte Carlo noise).
    executor : None, 'threads', 'processes', int, concurrent.futures.Executor or dask Client
        Where grid points run (see the module docstring).
    ci_prob : float
        Probability of the equal-tailed intervals.
    workers : int, optional
        Threads or processes for ``executor=None`` / ``"threads"`` / ``"processes"`` (default
        ``max(1, cpu_count // chains)``).
    mode : bool
        Add the posterior mode of each grid point (:meth:`VCModel.fit_map`; cheap).

    Returns
    -------
    SweepResult

    Examples
    --------
    Every grid point samples with NUTS, so the lines that need the sweep are not run as
    doctests.

    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = bvc.datasets.example_data()  # 8 groups x 6, columns g, y
    >>> model = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=df)
    >>> sweep = bvc.prior_sweep(model, scales=(0.5, 1, 2), draws=300, tune=300,
    ...                         random_seed=1)                     # doctest: +SKIP
    >>> sweep.table.columns[:4].tolist()                               # doctest: +SKIP
    ['family', 'component', 'scale', 'prior_scale']

    Several families, absolute scales (in the SD's units), grid points in worker processes:

    >>> sweep = bvc.prior_sweep(model, scales=(1, 2, 5), absolute=True,
    ...                         families=("halfnormal", "halfcauchy"),
    ...                         executor="processes", workers=2)       # doctest: +SKIP
    >>> sorted(sweep.table.family.unique())                            # doctest: +SKIP
    ['halfcauchy', 'halfnormal']
    """
    from threadpoolctl import threadpool_limits

    from .pymc_model import can_collapse

    design = model.design
    base = resolve_priors(design, priors)
    sweepable = _sweepable(design)
    comps = sweepable if components is None else list(components)
    unknown = [c for c in comps if c not in design.component_names]
    if unknown:
        fail(f"prior_sweep: unknown component(s) {unknown}; components are {list(design.component_names)}")
    fixed = [c for c in comps if c not in sweepable]
    if fixed or not comps:
        fail(f"prior_sweep: the SDs of correlated terms have an LKJ prior with a fixed scale and cannot "
             f"be swept ({fixed or list(design.component_names)}); sweepable: {sweepable or 'none'}")
    if isinstance(scales, (int, float)):
        scales = [scales]
    scales = [float(s) for s in scales]
    if not scales or any(not np.isfinite(s) or s <= 0 for s in scales):
        fail(f"prior_sweep: scales must be positive numbers, got {scales}")
    if isinstance(families, (str, Prior)):
        families = [families]
    fams = [_family(f) for f in families]
    for name, v in (("draws", draws), ("tune", tune), ("chains", chains)):
        if not isinstance(v, (int, np.integer)) or v < (0 if name == "tune" else 1):
            fail(f"prior_sweep: {name} must be a positive integer, got {v!r}")
    if not 0 < ci_prob < 1:
        fail(f"prior_sweep: ci_prob must be in (0, 1), got {ci_prob}")
    seed = int(np.random.SeedSequence(random_seed).generate_state(1)[0] % (2**31)) \
        if not isinstance(random_seed, (int, np.integer)) else int(random_seed)
    default = resolve_priors(design)
    base_scales = {}
    for c in comps:
        s0 = prior_scale(base.sd[c])
        base_scales[c] = s0 if np.isfinite(s0) and s0 > 0 else prior_scale(default.sd[c])
    token = _token(model)
    tasks, meta = [], []
    for fam, template in fams:
        for c in comps:
            for k in scales:
                s0 = prior_scale(template) if (template is not None and not absolute) else base_scales[c]
                value = k if absolute else k * s0
                shape = template if template is not None else FAMILIES[fam](1.0)
                p = with_scale(shape, value)
                ps = PriorSet({**base.sd, c: p}, base.residual, base.fixed)
                # built (and compiled) at the default scale whichever grid point comes first: the
                # initial point depends on the scales the graph was built with
                canon = PriorSet({**base.sd, c: with_scale(shape, base_scales[c])}, base.residual,
                                 base.fixed) if _structure(ps) != _structure(base) else base
                tasks.append({"vcmodel": model, "token": token, "priors": ps, "build_priors": canon,
                              "draws": int(draws),
                              "tune": int(tune), "chains": int(chains), "seed": seed,
                              "ci_prob": float(ci_prob), "mode": bool(mode) and can_collapse(design)})
                meta.append({"family": fam, "component": c,
                             "scale": value / base_scales[c] if absolute else k,
                             "prior_scale": value, "prior": repr(p),
                             "prior_median": float(prior_quantile(p, 0.5))})
    reml = model.fit_reml()
    reml_sd = pd.Series({**{c: float(np.sqrt(max(v, 0.0))) for c, v in reml.vcomp.items()},
                         "Residual": float(np.sqrt(reml.scale))}, name="reml_sd")
    t0 = time.perf_counter()
    with threadpool_limits(1):
        results, how = _run(tasks, executor, chains, workers)
    wall = time.perf_counter() - t0
    rows, trows = [], []
    for m, r in zip(meta, results):
        for row in r["rows"]:
            rows.append({**m, **row, "divergences": r["divergences"]})
        trows.append({**{k: m[k] for k in ("family", "component", "scale")},
                      **{k: r[k] for k in ("compile_s", "sample_s", "map_s", "total_s", "worker")}})
    table = pd.DataFrame(rows)
    bad = table[(table.r_hat > 1.05) | (table.divergences > 0.01 * draws * chains)]
    if len(bad):
        warnings.warn(f"prior_sweep: {bad[['family', 'component', 'scale']].drop_duplicates().shape[0]} "
                      "grid point(s) with R-hat above 1.05 or more than 1% divergent transitions: "
                      "increase draws/tune before reading their summaries", stacklevel=2)
    return SweepResult(table=table, reml=reml_sd, timings=pd.DataFrame(trows), base_scales=base_scales,
                       executor=how, wall_seconds=wall, ci_prob=ci_prob, priors=base)
