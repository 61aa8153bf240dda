"""Prior-scale sweeps: refit a model across a grid of SD-prior scales (and families).

Every SD prior's swept parameter enters the PyMC model as data (``prior_<component>``), so the model
is built and compiled with nutpie once per prior *structure* (the family of each SD prior, see
:mod:`bayesvc.estimators.bayes.cache`) and each grid point only swaps that data with
``compiled.with_data(...)``: a grid point costs sampling, not compilation. Worker processes (a
process pool, a Dask cluster with worker processes) fill their own cache on their first grid point:
the nutpie object cannot be pickled, the model can.

Executors
---------
- ``executor=None`` (default): grid points one after the other on the one compiled model (nutpie
  already runs the chains of a grid point in parallel).
- ``"threads"``: a ``ThreadPoolExecutor`` with ``workers`` (default ``max(1, cpu_count // chains)``)
  threads; an ``int`` n: n threads.
- ``"processes"``: a spawn-context ``ProcessPoolExecutor`` with ``workers`` processes (same
  default); worth it when cores are free and the grid is large against one compilation per worker.
- any ``concurrent.futures.Executor`` instance (tasks and results pickle), and a
  ``dask.distributed.Client`` (through ``client.get_executor()``), the way a sweep scales past one
  machine.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ..errors import SamplingWarning, SpecificationError, SweepError, fail, warn
from ..estimators.bayes import sample
from ..estimators.bayes.cache import cached_build, design_token, set_priors
from ..estimators.parallel import executor_pool
from ..priors import Prior, PriorSet, resolve_priors, sd_family
from ..validate import validate_choice, validate_ci_prob, validate_sampling, validate_seed
from .reweight import reweighted_sweep
from .sweep_result import SCALES, SweepResult


def sample_cached(model, priors=None, marginalize=True, **kw):
    """``model.sample(priors=priors, marginalize=marginalize, **kw)`` through the compiled-model
    cache (no recompilation for priors that differ from an earlier fit only in their scales)."""
    from ..estimators.bayes import sample_cached as _sample_cached

    return _sample_cached(model.design, priors, kernel=_kernel(model, marginalize), marginalize=marginalize,
                          **kw)


def _kernel(model, marginalize):
    """The model's kernel where the marginalization may need it (the full collapse, or the cost
    rule of ``True``/``"auto"``); building it costs time on big designs."""
    return model.kernel if model.design.scalar and marginalize not in (False, "none", "partial") else None


def sweepable(design) -> list[str]:
    """Components whose prior scale is model data (all but those of correlated terms, whose SDs
    enter an LKJ prior)."""
    return [c for t in design.terms if not (t.p > 1 and t.correlated) for c in t.component_names]


# ----------------------------------------------------------------------------- one grid point

def _labels(design) -> list[tuple[str, str, str, object]]:
    """(parameter label, component, posterior variable, selection) for every summarised parameter:
    each SD and its variance (``var[<component>]``, ``var[Residual]``), and the fixed effects."""
    out = [(f"sd[{c}]", c, "sd", {"component": c}) for c in design.component_names]
    out.append(("sigma", "Residual", "sigma", {}))
    out += [(f"var[{c}]", c, "var", {"component": c}) for c in design.component_names]
    out.append(("var[Residual]", "Residual", "scale", {}))
    out += [(f"beta[{n}]", n, "beta", {"fixed": n}) for n in design.fe_names]
    return out


def _mode_value(mode, var, comp) -> float:
    if mode is None:
        return np.nan
    if var in ("sd", "var"):
        return float(mode.sd[comp] if var == "sd" else mode.vcomp[comp])
    if var in ("sigma", "scale"):
        return float(np.sqrt(mode.scale) if var == "sigma" else mode.scale)
    return float(mode.fe_params[comp])


def _point_rows(res, mode, ci_prob) -> list[dict]:
    """Posterior summaries (and the mode) of every parameter at one grid point."""
    from arviz_stats import mcse

    post = res.posterior
    try:
        diag = res.diagnostics()
    except Exception:  # noqa: BLE001 - too few draws for R-hat / ESS
        diag = None
    lo_q, hi_q = (1 - ci_prob) / 2, (1 + ci_prob) / 2
    rows = []
    for label, comp, var, sel in _labels(res.design):
        da = post[var].sel(sel) if sel else post[var]
        # a variance's R-hat and ESS are its SD's (rank-based diagnostics: unchanged by squaring)
        dlabel = {"var": f"sd[{comp}]", "scale": "sigma"}.get(var, label)
        x = da.values.ravel()
        try:
            se = float(mcse(da, method="median"))
        except Exception:  # noqa: BLE001
            se = np.nan
        rows.append({"parameter": label, "mean": float(x.mean()), "median": float(np.median(x)),
                     "lower": float(np.quantile(x, lo_q)), "upper": float(np.quantile(x, hi_q)),
                     "mode": _mode_value(mode, var, comp), "mcse_median": se,
                     "r_hat": float(diag.loc[dlabel, "r_hat"]) if diag is not None else np.nan,
                     "ess_bulk": float(diag.loc[dlabel, "ess_bulk"]) if diag is not None else np.nan})
    return rows


def _fit_point(task: dict) -> dict:
    """Run one grid point (also in a worker process); returns plain summaries and timings."""
    t0 = time.perf_counter()
    vcmodel, ps = task["vcmodel"], task["priors"]
    built, compiled, t_compile = cached_build(vcmodel.design, task["build_priors"],
                                              _kernel(vcmodel, task["marginalize"]), task["token"],
                                              task["marginalize"])
    compiled = set_priors(built, compiled, ps, vcmodel.design)
    with threadpool_limits(1):
        t1 = time.perf_counter()
        # one random-effect draw per chain: the sweep summarises SDs and fixed effects only
        res = sample(vcmodel.design, priors=ps, draws=task["draws"], tune=task["tune"], chains=task["chains"],
                     random_seed=task["seed"], progressbar=False, built=built, compiled=compiled,
                     random_effects=True, thin_random_effects=task["draws"], log_likelihood=False,
                     warn_diagnostics=False)
        t_sample = time.perf_counter() - t1
        t2 = time.perf_counter()
        mode = None
        if task["mode"]:
            try:
                mode = vcmodel.fit_map(priors=ps)
            except Exception:  # noqa: BLE001 - the mode is a convenience column
                mode = None
        t_map = time.perf_counter() - t2
    out = {"rows": _point_rows(res, mode, task["ci_prob"]), "divergences": res.divergences,
           "compile_s": t_compile, "sample_s": t_sample, "map_s": t_map, "total_s": time.perf_counter() - t0,
           "worker": f"{os.getpid()}:{threading.current_thread().name}", "method": "refit", "khat": np.nan}
    if task.get("keep_draws"):
        out["draws"] = _point_draws(res)
    return out


def _point_draws(res) -> dict:
    """Flattened draws of every summarised parameter, by label (for reweighting)."""
    post = res.posterior
    return {label: (post[var].sel(sel) if sel else post[var]).values.ravel()
            for label, _, var, sel in _labels(res.design)}


def _modes(model, ps, wanted: bool) -> dict:
    """``{label: posterior mode}`` at the priors ``ps`` (empty when not wanted or it fails)."""
    if not wanted:
        return {}
    try:
        mode = model.fit_map(priors=ps)
    except Exception:  # noqa: BLE001 - the mode is a convenience column
        return {}
    return {label: _mode_value(mode, var, comp) for label, comp, var, _ in _labels(model.design)}


# ----------------------------------------------------------------------------- executors

def _pool(executor, chains: int, workers: int | None):
    """``(Executor, owned, label)``: the executor to run grid points on, and whether we close it
    (:func:`bayesvc.estimators.parallel.executor_pool`; one thread by default, since nutpie already
    runs a grid point's chains in parallel)."""
    return executor_pool(executor, workers, max(1, (os.cpu_count() or 1) // max(chains, 1)), "prior_sweep",
                         thread_prefix="bayesvc-sweep")


def _run(tasks: list[dict], executor, chains: int, workers: int | None = None) -> tuple[list, str, dict]:
    """Results in task order (``None`` where a point failed), where they ran, and the failures by
    task index (a dead worker: ``BrokenProcessPool``, dask's ``KilledWorker``; a fit that raised)."""
    pool, owned, label = _pool(executor, chains, workers)
    results, errors = [], {}
    try:
        futures = []
        for i, t in enumerate(tasks):
            try:
                futures.append(pool.submit(_fit_point, t))
            except SpecificationError:
                raise
            except Exception as err:  # noqa: BLE001 - a broken pool refuses new work
                futures.append(None)
                errors[i] = err
        for i, f in enumerate(futures):
            try:
                results.append(f.result() if f is not None else None)
            except SpecificationError:
                raise
            except Exception as err:  # noqa: BLE001 - reported with the grid point, below
                results.append(None)
                errors[i] = err
        return results, label, errors
    finally:
        if owned:
            pool.shutdown()


def _failure(meta: list[dict], errors: dict, partial) -> SweepError:
    """The error of a sweep whose points ``errors`` failed, naming the first and keeping ``partial``."""
    first = min(errors)
    m, err = meta[first], errors[first]
    cause = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    more = f" (and {len(errors) - 1} more point(s))" if len(errors) > 1 else ""
    kept = len(meta) - len(errors)
    return SweepError(f"prior_sweep: grid point (component {m['component']!r}, family {m['family']!r}, "
                      f"scale {m['scale']:g}) failed{more}: {cause}; {kept} of {len(meta)} point(s) "
                      "finished and are kept in the error's .partial",
                      partial=partial, failed=[{k: meta[i][k] for k in ("component", "family", "scale")}
                                               for i in sorted(errors)])


# ----------------------------------------------------------------------------- the sweep

def _components(design, components) -> list[str]:
    ok = sweepable(design)
    comps = ok if components is None else list(components)
    unknown = [c for c in comps if c not in design.component_names]
    if unknown:
        fail(f"prior_sweep: unknown component(s) {unknown}; components are {list(design.component_names)}")
    fixed = [c for c in comps if c not in ok]
    if fixed or not comps:
        fail(f"prior_sweep: the SDs of correlated terms have an LKJ prior with a fixed scale and cannot "
             f"be swept ({fixed or list(design.component_names)}); sweepable: {ok or 'none'}")
    return comps


def _scales(scales) -> list[float]:
    scales = [scales] if isinstance(scales, (int, float)) else list(scales)
    try:
        scales = [float(s) for s in scales]
    except (TypeError, ValueError):
        fail(f"prior_sweep: scales must be positive numbers, got {scales}")
    if not scales or any(not np.isfinite(s) or s <= 0 for s in scales):
        fail(f"prior_sweep: scales must be positive numbers, got {scales}")
    return scales


def _grid(model, base: PriorSet, comps, scales, fams, absolute, common: dict) -> tuple[list, list, dict]:
    """One task (and its table labels) per (family, component, scale)."""
    design = model.design
    default = resolve_priors(design)
    base_scales = {}
    for c in comps:
        s0 = base.sd[c].scale
        base_scales[c] = s0 if np.isfinite(s0) and s0 > 0 else default.sd[c].scale
    tasks, meta = [], []
    for fam, template, explicit in fams:
        for c in comps:
            for k in scales:
                s0 = template.scale if (explicit and not absolute) else base_scales[c]
                value = k if absolute else k * s0
                p = template.with_scale(value)
                ps = base.replace_sd(c, p)
                # built (and compiled) at the default scale whichever grid point comes first: the
                # initial point depends on the scales the graph was built with
                canon = (base.replace_sd(c, template.with_scale(base_scales[c]))
                         if ps.structure() != base.structure() else base)
                tasks.append({**common, "vcmodel": model, "priors": ps, "build_priors": canon})
                meta.append({"family": fam, "component": c,
                             "scale": value / base_scales[c] if absolute else k,
                             "prior_scale": value, "prior": repr(p), "prior_median": float(p.ppf(0.5))})
    return tasks, meta, base_scales


def _collect(meta, results, draws, chains) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, trows = [], []
    for m, r in zip(meta, results):
        rows += [{**m, **row, "divergences": r["divergences"], "method": r["method"], "khat": r["khat"]}
                 for row in r["rows"]]
        trows.append({**{k: m[k] for k in ("family", "component", "scale")},
                      **{k: r[k] for k in ("compile_s", "sample_s", "map_s", "total_s", "worker", "method")}})
    table = pd.DataFrame(rows)
    bad = table[(table.r_hat > 1.05) | (table.divergences > 0.01 * draws * chains)]
    if len(bad):
        warn(f"prior_sweep: {bad[['family', 'component', 'scale']].drop_duplicates().shape[0]} "
             "grid point(s) with R-hat above 1.05 or more than 1% divergent transitions: "
             "increase draws/tune before reading their summaries", SamplingWarning)
    return table, pd.DataFrame(trows)


def prior_sweep(model, scales=(0.5, 1, 2, 5), families=("halfnormal",), components=None, draws=500,
                tune=500, chains=2, random_seed=None, executor=None, ci_prob=0.95, *,
                absolute: bool = False, priors=None, mode: bool = True,
                workers: int | None = None, scale: str = "variance", marginalize=True,
                reweight: bool = True) -> SweepResult:
    """Refit ``model`` (a :class:`~bayesvc.VCModel`) across a grid of SD-prior scales, one
    component at a time.

    Parameters
    ----------
    scales : sequence of float
        Multiples of each component's default scale (``2.5 * sd(y)``, or the scale of its prior in
        ``priors``), or absolute scales in the SD's units with ``absolute=True``. For Exponential
        priors the scale is the mean ``1/lam``.
    families : sequence of str or Prior
        ``"halfnormal"``, ``"halfstudentt"`` (nu = 3), ``"halfcauchy"``, ``"exponential"``, or
        Prior instances (their other parameters, e.g. ``nu``, are kept; with ``absolute=False``
        their scale is what ``scales`` multiplies).
    components : sequence of str, optional
        Components whose prior is varied (default: all but those of correlated terms). The others,
        the residual and the fixed effects keep their priors (``priors`` or the defaults).
    draws, tune, chains : int
        NUTS settings per grid point.
    random_seed : int, optional
        One seed for every grid point (common random numbers: differences along the grid are
        the prior's, not Monte Carlo noise).
    executor, workers
        Where grid points run (module docstring).
    ci_prob : float
        Probability of the equal-tailed intervals.
    mode : bool
        Add the posterior mode of each grid point (:meth:`VCModel.fit_map`; cheap).
    reweight : bool
        Fit the base priors once and reach each grid point by Pareto-smoothed importance
        reweighting of its draws (:mod:`bayesvc.studies.reweight`), refitting only the points whose
        k-hat exceeds 0.7; the table's ``method`` (``"reweighted"`` / ``"refit"``) and ``khat``
        columns say which. ``False``: refit every point.
    scale : {'variance', 'sd'}
        What the result reports by default (printing, :meth:`SweepResult.swept`,
        :meth:`~SweepResult.change`, :meth:`~SweepResult.to_records`, the plot): variances, as the
        fit and comparison summaries do, or SDs. The table holds both.
    marginalize : bool or str
        How every grid point treats the random effects, as :meth:`VCModel.sample`'s
        ``marginalize`` (one compiled model per prior structure and marginalization).

    Returns
    -------
    SweepResult

    Examples
    --------
    >>> sweep.table.columns[:4].tolist(), sweep.swept().scale.unique().tolist()
    (['family', 'component', 'scale', 'prior_scale'], [0.5, 1.0, 2.0])
    """
    design = model.design
    base = resolve_priors(design, priors)
    comps = _components(design, components)
    scale_list = _scales(scales)
    fams = [sd_family(f) for f in ([families] if isinstance(families, (str, Prior)) else families)]
    draws, tune, chains = validate_sampling(draws, tune, chains, prefix="prior_sweep: ")
    common = {"token": design_token(design), "draws": draws, "tune": tune, "chains": chains,
              "seed": validate_seed(random_seed), "ci_prob": validate_ci_prob(ci_prob),
              "mode": bool(mode) and design.scalar, "marginalize": marginalize}
    tasks, meta, base_scales = _grid(model, base, comps, scale_list, fams, absolute, common)
    reml = model.fit_reml()  # the plot's reference (a boundary fit is reported once, here)
    reml_sd = pd.Series({**{c: float(np.sqrt(max(v, 0.0))) for c, v in reml.vcomp.items()},
                         "Residual": float(np.sqrt(reml.scale))}, name="reml_sd")
    t0 = time.perf_counter()
    scale = validate_choice(scale, "scale", SCALES)
    with threadpool_limits(1):
        errors: dict = {}
        if reweight:
            pos = {id(t): i for i, t in enumerate(tasks)}

            def run_points(ts):
                res, how, errs = _run(ts, executor, chains, workers)
                errors.update({pos[id(ts[i])]: e for i, e in errs.items()})
                return [r if r is not None else {} for r in res], how

            results, how = reweighted_sweep(base, tasks, meta, _fit_point, run_points,
                                            lambda ps: _modes(model, ps, common["mode"]))
            results = [None if i in errors else r for i, r in enumerate(results)]
        else:
            results, how, errors = _run(tasks, executor, chains, workers)
    done = [i for i, r in enumerate(results) if r is not None]
    partial = None
    if done:
        table, timings = _collect([meta[i] for i in done], [results[i] for i in done], draws, chains)
        partial = SweepResult(table=table, reml=reml_sd, timings=timings, base_scales=base_scales,
                              executor=how, wall_seconds=time.perf_counter() - t0, ci_prob=ci_prob,
                              priors=base, scale=scale)
    if errors:
        raise _failure(meta, errors, partial)
    return partial
