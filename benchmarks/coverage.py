"""Simulation study: frequentist coverage of bayesvc's NUTS 90% credible intervals.

Run from the repository root, with the main environment::

    .venv/bin/python benchmarks/coverage.py                                  # 50 nested data sets
    .venv/bin/python benchmarks/coverage.py --design crossed
    .venv/bin/python benchmarks/coverage.py --design nested crossed --n-datasets 50 \\
        --draws 500 --tune 500 --chains 2 --seed 20240 --out benchmarks/results_coverage.json

What it does
------------
For each of ``--n-datasets`` replicates a data set is simulated from fixed, known parameters
(``TRUTH`` below), the model is fitted with NUTS (``VCModel.sample``: nutpie, default priors
and marginalization, no random-effect draws; see ``_fit``), and the central ``--prob``
(default 90%) equal-tailed posterior interval (the 5% and 95% quantiles of the pooled draws) of
every variance component (``var``), of the residual variance (``scale``) and of the intercept
(``beta``) is checked for whether it contains the true value.

=========  ===========================================  ==========================================
design     data                                         truth
=========  ===========================================  ==========================================
nested     30 ``g1`` x 4 ``g2``-within-``g1`` x 5 reps  intercept 5; SD g1 = 2, SD g1:g2 = 1.5,
           (600 rows), ``y ~ 1 + (1|g1/g2)``            residual SD 1
crossed    25 ``g1`` x 20 ``g2`` crossed x 2 reps       intercept 5; SD g1 = 2, SD g2 = 1.5,
           (1000 rows), ``y ~ 1 + (1|g1) + (1|g2)``     residual SD 1
=========  ===========================================  ==========================================

Each replicate gets its own data and hence its own model (and nutpie compilation, 2-5 s); the
replicates run in a loop in one process, so imports and PyTensor's compilation caches are
shared. Seeds: ``np.random.SeedSequence(--seed).spawn(n)``; replicate ``i``'s child sequence
draws the data and gives the sampler's integer seed, so a replicate is reproducible on its own
(``--only i``).

Reading the result (the acceptance check)
-----------------------------------------
Bayesian intervals have exactly nominal *frequentist* coverage only when the truth is drawn from
the prior that the analysis uses. Here the truth is a fixed point and the priors are the
package defaults (half-normal with scale 2.5 sd(y) on every SD, normal on the intercept): weakly
informative and correctly specified in support, but not the data-generating distribution. So
each parameter's coverage is only *approximately* 90% (with finitely many groups the
variance-component intervals can be a little off), and with 50 replicates each per-parameter
estimate has a binomial standard error of sqrt(.9 x .1 / 50) ~ 4.2% anyway. The check is
therefore made on the **pooled** coverage over all parameters and replicates
(50 x 4 = 200 intervals; binomial SE ~ sqrt(.9 x .1 / 200) ~ 2.1%; the issue's 150 counts 3
parameters per replicate, ~ 2.4%): it must lie within 0.90 +- 0.05, i.e. about +-2.4 binomial
SEs. The intervals within one replicate share a data set and are not independent, so the JSON
also reports a replicate-clustered SE (SD of the per-replicate coverage fractions / sqrt(n)),
which is the more honest one; the pass/fail rule is the fixed +-0.05 band.

Output: a markdown table on stdout (per-parameter and pooled coverage, sampler diagnostics,
timing) and a JSON file (default ``benchmarks/results_coverage.json``; results for other designs
already in the file are kept). Exit status 0 when every requested design's pooled coverage is
within the band and no replicate failed, else 1.

From Python (the slow test does this), load the file under another module name: ``coverage``
is also the name of coverage.py, which numba probes for, so ``benchmarks/`` must not be put on
``sys.path`` (run as a script, this file takes its own directory off ``sys.path`` first)::

    import importlib.util
    spec = importlib.util.spec_from_file_location("bayesvc_coverage_study", "benchmarks/coverage.py")
    cov = importlib.util.module_from_spec(spec); spec.loader.exec_module(cov)
    res = cov.run_study(n_datasets=50, design="nested")
    res["pooled"]["coverage"], res["pooled"]["se_binomial"]
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # `python benchmarks/coverage.py` puts benchmarks/ first on sys.path, where this file would
    # shadow coverage.py (numba imports it when present): take the directory off again.
    _here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _here]

import argparse
import json
import math
import os
import platform
import time
import warnings
from datetime import UTC, datetime

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results_coverage.json"
DESIGNS = ("nested", "crossed")

#: data-generating parameters and layout of each design
TRUTH = {
    "nested": {
        "formula": "y ~ 1 + (1|g1/g2)",
        "sizes": {"n1": 30, "n2": 4, "reps": 5},
        "intercept": 5.0, "sd": {"g1": 2.0, "g1:g2": 1.5}, "residual_sd": 1.0,
    },
    "crossed": {
        "formula": "y ~ 1 + (1|g1) + (1|g2)",
        "sizes": {"n1": 25, "n2": 20, "reps": 2},
        "intercept": 5.0, "sd": {"g1": 2.0, "g2": 1.5}, "residual_sd": 1.0,
    },
}
DEFAULTS = {"n_datasets": 50, "draws": 500, "tune": 500, "chains": 2, "seed": 20240, "prob": 0.90}
NOMINAL_TOL = 0.05


# --------------------------------------------------------------------------- simulation
def true_values(design: str) -> dict[str, float]:
    """The estimands on the scale reported: component variances, residual variance, intercept."""
    t = TRUTH[design]
    out = {c: s**2 for c, s in t["sd"].items()}
    out["Residual"] = t["residual_sd"] ** 2
    out["Intercept"] = t["intercept"]
    return out


def simulate(design: str, rng: np.random.Generator, sizes: dict | None = None) -> pd.DataFrame:
    """One data set from ``TRUTH[design]`` (``sizes`` overrides the layout, e.g. for a smoke test)."""
    if design not in TRUTH:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    t = TRUTH[design]
    sz = {**t["sizes"], **(sizes or {})}
    n1, n2, reps = sz["n1"], sz["n2"], sz["reps"]
    g1 = np.repeat(np.arange(n1), n2 * reps)
    g2 = np.tile(np.repeat(np.arange(n2), reps), n1)
    sd = list(t["sd"].values())
    if design == "nested":
        b1 = rng.normal(0.0, sd[0], n1)
        b2 = rng.normal(0.0, sd[1], (n1, n2))
        mu = t["intercept"] + b1[g1] + b2[g1, g2]
    else:  # crossed
        b1 = rng.normal(0.0, sd[0], n1)
        b2 = rng.normal(0.0, sd[1], n2)
        mu = t["intercept"] + b1[g1] + b2[g2]
    y = mu + rng.normal(0.0, t["residual_sd"], g1.size)
    # string labels: g2 levels are only unique within g1 in the nested design (the formula's
    # g1/g2 builds the g1:g2 interaction)
    return pd.DataFrame({"y": y, "g1": [f"a{i}" for i in g1], "g2": [f"b{j}" for j in g2]})


# --------------------------------------------------------------------------- one replicate
def _fit(m, draws: int, **kw):
    """NUTS fit of the hyperparameters only (the study needs no random-effect draws).

    ``m.sample(random_effects=False)`` would be the natural call, but in bayesvc at commits
    109f2a2..b54ee9c it fails in full-collapse mode (``KeyError: 're_<term>'``: the branch for
    the non-collapsed forms is taken). Asking for the random effects of only one draw per chain
    (``thin_random_effects=draws``) costs next to nothing, takes the working branch, stores no
    ``re_*`` variables and, with ``log_likelihood=False``, computes no pointwise log-likelihood.
    The NUTS draws are the same either way (the random effects are drawn after sampling).
    """
    return m.sample(draws=draws, random_effects=True, thin_random_effects=draws, log_likelihood=False,
                    **kw)


def _posterior_draws(r) -> dict[str, np.ndarray]:
    post = r.idata["posterior"]
    out = {}
    var = post["var"]
    for c in var.coords["component"].values:
        out[str(c)] = np.ravel(var.sel(component=c).values)
    out["Residual"] = np.ravel(post["scale"].values)
    beta = post["beta"]
    for f in beta.coords["fixed"].values:
        out[str(f)] = np.ravel(beta.sel(fixed=f).values)
    return out


def run_replicate(design: str, index: int, seq: np.random.SeedSequence, draws: int, tune: int,
                  chains: int, prob: float = 0.90, sizes: dict | None = None) -> dict:
    """Simulate, fit and check the intervals of one replicate; returns a JSON-able record."""
    import bayesvc as bvc

    rng = np.random.default_rng(seq)
    sampler_seed = int(seq.generate_state(1)[0] % (2**31))
    t0 = time.perf_counter()
    rec: dict = {"replicate": index, "sampler_seed": sampler_seed}
    try:
        df = simulate(design, rng, sizes)
        m = bvc.VCModel.from_formula(TRUTH[design]["formula"], data=df)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", bvc.SamplingWarning)
            r = _fit(m, draws=draws, tune=tune, chains=chains, random_seed=sampler_seed,
                     progressbar=False)
        rec["fit_seconds"] = float(r.seconds)
        rec["marginalize"] = str(r.marginalize)
        truth = true_values(design)
        post = _posterior_draws(r)
        missing = set(truth) - set(post)
        if missing:
            raise RuntimeError(f"posterior lacks {sorted(missing)}; has {sorted(post)}")
        a = (1.0 - prob) / 2.0
        params = {}
        for name, value in truth.items():
            x = post[name]
            lo, hi = (float(q) for q in np.quantile(x, [a, 1.0 - a]))
            params[name] = {"truth": value, "lower": lo, "upper": hi, "median": float(np.median(x)),
                            "covered": bool(lo <= value <= hi),
                            "side": "below" if value < lo else ("above" if value > hi else "in")}
        rec["params"] = params
        try:
            d = r.diagnostics()
            rec["max_rhat"] = float(d.r_hat.max())
            rec["min_ess_bulk"] = float(d.ess_bulk.min())
        except Exception:  # noqa: BLE001 - too few draws for the estimators (smoke runs)
            rec["max_rhat"] = rec["min_ess_bulk"] = None
        rec["divergences"] = int(r.divergences)
        rec["sampling_warnings"] = [str(w.message) for w in caught
                                    if issubclass(w.category, bvc.SamplingWarning)]
    except Exception as e:  # noqa: BLE001 - record and go on: one failed fit must not lose the study
        rec["error"] = f"{type(e).__name__}: {e}"
    rec["seconds"] = time.perf_counter() - t0
    return rec


# --------------------------------------------------------------------------- aggregation
def _binom_se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n) if n else float("nan")


def summarize(replicates: list[dict], prob: float = 0.90, tol: float = NOMINAL_TOL) -> dict:
    """Per-parameter and pooled coverage of the successful replicates.

    ``se_binomial`` treats every interval as an independent Bernoulli trial; ``se_cluster`` is
    the SD of the per-replicate coverage fractions over sqrt(#replicates) (intervals that share
    a data set are dependent). ``within_tolerance``: |pooled - prob| <= tol.
    """
    ok = [r for r in replicates if "error" not in r]
    names = list(ok[0]["params"]) if ok else []
    per = {}
    for name in names:
        hits = [r["params"][name]["covered"] for r in ok]
        below = sum(r["params"][name]["side"] == "below" for r in ok)
        above = sum(r["params"][name]["side"] == "above" for r in ok)
        n, k = len(hits), int(sum(hits))
        p = k / n
        per[name] = {"covered": k, "n": n, "coverage": p, "se_binomial": _binom_se(prob, n),
                     "truth_below_interval": below, "truth_above_interval": above,
                     "mean_width": float(np.mean([r["params"][name]["upper"] - r["params"][name]["lower"]
                                                  for r in ok])),
                     "mean_median": float(np.mean([r["params"][name]["median"] for r in ok]))}
    n = sum(v["n"] for v in per.values())
    k = sum(v["covered"] for v in per.values())
    pooled_p = k / n if n else float("nan")
    frac = [np.mean([r["params"][nm]["covered"] for nm in names]) for r in ok]
    se_cluster = float(np.std(frac, ddof=1) / math.sqrt(len(frac))) if len(frac) > 1 else float("nan")
    pooled = {"covered": k, "n": n, "coverage": pooled_p,
              "se_binomial": _binom_se(pooled_p, n) if n else float("nan"),
              "se_binomial_at_nominal": _binom_se(prob, n) if n else float("nan"),
              "se_cluster": se_cluster, "nominal": prob, "tolerance": tol,
              "within_tolerance": bool(n and abs(pooled_p - prob) <= tol)}
    rhats = [r["max_rhat"] for r in ok if r.get("max_rhat") is not None]
    ess = [r["min_ess_bulk"] for r in ok if r.get("min_ess_bulk") is not None]
    diag = {"replicates_ok": len(ok), "replicates_failed": len(replicates) - len(ok),
            "errors": [r["error"] for r in replicates if "error" in r],
            "max_rhat": max(rhats) if rhats else None,
            "replicates_rhat_above_1.01": sum(x > 1.01 for x in rhats),
            "min_ess_bulk": min(ess) if ess else None,
            "median_min_ess_bulk": float(np.median(ess)) if ess else None,
            "divergences_total": int(sum(r["divergences"] for r in ok)),
            "replicates_with_divergences": sum(r["divergences"] > 0 for r in ok),
            "replicates_with_sampling_warnings": sum(bool(r["sampling_warnings"]) for r in ok)}
    return {"per_parameter": per, "pooled": pooled, "diagnostics": diag}


def run_study(n_datasets: int = DEFAULTS["n_datasets"], design: str = "nested",
              draws: int = DEFAULTS["draws"], tune: int = DEFAULTS["tune"],
              chains: int = DEFAULTS["chains"], seed: int = DEFAULTS["seed"],
              prob: float = DEFAULTS["prob"], tol: float = NOMINAL_TOL, sizes: dict | None = None,
              only: list[int] | None = None, progress=None) -> dict:
    """The whole study for one design, in this process; returns the JSON-able result.

    ``progress`` (optional) is called with each replicate's record as it finishes.
    """
    if design not in TRUTH:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    seqs = np.random.SeedSequence(seed).spawn(n_datasets)
    idx = range(n_datasets) if only is None else only
    t0 = time.perf_counter()
    reps = []
    for i in idx:
        rec = run_replicate(design, i, seqs[i], draws, tune, chains, prob, sizes)
        reps.append(rec)
        if progress is not None:
            progress(rec)
    wall = time.perf_counter() - t0
    t = TRUTH[design]
    out = {
        "design": design, "formula": t["formula"], "sizes": {**t["sizes"], **(sizes or {})},
        "truth": true_values(design),
        "settings": {"n_datasets": n_datasets, "replicates_run": len(reps), "draws": draws,
                     "tune": tune, "chains": chains, "seed": seed, "prob": prob,
                     "interval": "central (equal-tailed) posterior quantiles of pooled draws",
                     "priors": "package defaults"},
        **summarize(reps, prob, tol),
        "timing": {"wall_seconds": wall,
                   "mean_replicate_seconds": float(np.mean([r["seconds"] for r in reps])) if reps else None,
                   "max_replicate_seconds": float(np.max([r["seconds"] for r in reps])) if reps else None},
        "replicates": reps,
    }
    return out


# --------------------------------------------------------------------------- reporting
def table(res: dict) -> str:
    p, d, tm = res["pooled"], res["diagnostics"], res["timing"]
    s = res["settings"]
    rows = [(f"### {res['design']}: `{res['formula']}`, {res['sizes']}; {s['replicates_run']} data sets, "
             f"{s['chains']} chains x {s['draws']} draws after {s['tune']} tune, seed {s['seed']}"), "",
            (f"| parameter | truth | {s['prob']:.0%} coverage | covered / n | truth below / above | "
             "mean width | mean post. median |"),
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name, v in res["per_parameter"].items():
        rows.append(f"| {name} | {res['truth'][name]:g} | {v['coverage']:.3f} (SE {v['se_binomial']:.3f}) | "
                    f"{v['covered']} / {v['n']} | {v['truth_below_interval']} / {v['truth_above_interval']} | "
                    f"{v['mean_width']:.3f} | {v['mean_median']:.3f} |")
    if p["n"]:
        rows.append(f"| **pooled** | | **{p['coverage']:.3f}** (SE {p['se_binomial']:.3f} binomial, "
                    f"{p['se_cluster']:.3f} clustered) | {p['covered']} / {p['n']} | | | |")
    rows.append("")
    verdict = "PASS" if p["within_tolerance"] and not d["replicates_failed"] else "FAIL"
    rows.append(f"pooled coverage {p['coverage']:.3f} vs nominal {p['nominal']:.2f} +- {p['tolerance']:.2f}: "
                f"**{verdict}**")
    rhat = "-" if d["max_rhat"] is None else f"{d['max_rhat']:.4f}"
    ess = "-" if d["min_ess_bulk"] is None else f"{d['min_ess_bulk']:.0f}"
    rows.append(f"sampler: {d['replicates_ok']} ok, {d['replicates_failed']} failed; max R-hat {rhat} "
                f"({d['replicates_rhat_above_1.01']} replicates > 1.01); min bulk ESS {ess}; "
                f"{d['divergences_total']} divergences in {d['replicates_with_divergences']} replicates")
    rows.append(f"time: {tm['wall_seconds']:.1f} s wall, {tm['mean_replicate_seconds']:.2f} s per replicate "
                f"(max {tm['max_replicate_seconds']:.2f})")
    rows.append("")
    return "\n".join(rows)


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def _git_state() -> dict | None:
    """Commit and dirty flag of the checkout: the package changes fast, results need provenance."""
    import subprocess

    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=False).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bayesvc"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": rev or None, "bayesvc_dirty": bool(dirty)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-datasets", type=int, default=DEFAULTS["n_datasets"])
    ap.add_argument("--design", nargs="+", choices=DESIGNS, default=["nested"])
    ap.add_argument("--draws", type=int, default=DEFAULTS["draws"])
    ap.add_argument("--tune", type=int, default=DEFAULTS["tune"])
    ap.add_argument("--chains", type=int, default=DEFAULTS["chains"])
    ap.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    ap.add_argument("--prob", type=float, default=DEFAULTS["prob"], help="interval probability (0.90)")
    ap.add_argument("--tolerance", type=float, default=NOMINAL_TOL, help="allowed |pooled - prob| (0.05)")
    ap.add_argument("--only", type=int, nargs="+", help="run only these replicate indices (debugging)")
    ap.add_argument("--out", type=Path, default=RESULTS, help="JSON output (default: %(default)s)")
    ap.add_argument("--quiet", action="store_true", help="no per-replicate progress lines")
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)
    import bayesvc

    meta = {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
            "bayesvc": bayesvc.__version__, "git": _git_state(), "loadavg_start": _loadavg(),
            "command": "python benchmarks/coverage.py " + " ".join(sys.argv[1:] if argv is None else argv)}
    print(f"# Coverage study: {args.n_datasets} data sets per design, {args.prob:.0%} central intervals; "
          f"{os.cpu_count()} CPUs, load {(_loadavg() or ['-'])[0]}\n", flush=True)

    def progress(rec):
        if args.quiet:
            return
        if "error" in rec:
            msg = f"FAILED {rec['error']}"
        else:
            miss = [k for k, v in rec["params"].items() if not v["covered"]]
            msg = (f"{rec['seconds']:5.1f} s  div {rec['divergences']}  "
                   f"rhat {rec['max_rhat'] if rec['max_rhat'] is None else round(rec['max_rhat'], 3)}  "
                   f"missed: {', '.join(miss) or '-'}")
        print(f"  [{rec['replicate']:3d}] {msg}", file=sys.stderr, flush=True)

    results = {}
    for design in args.design:
        print(f"[{design}] running ...", file=sys.stderr, flush=True)
        res = run_study(args.n_datasets, design, args.draws, args.tune, args.chains, args.seed,
                        args.prob, args.tolerance, only=args.only, progress=progress)
        results[design] = res
        print(table(res), flush=True)

    meta["loadavg_end"] = _loadavg()
    old = {}
    if args.out.exists():
        try:
            old = json.loads(args.out.read_text()).get("results", {})
        except (json.JSONDecodeError, AttributeError):
            old = {}
    merged = {**old, **{d: {**r, "meta": meta} for d, r in results.items()}}
    args.out.write_text(json.dumps({"results": merged}, indent=2) + "\n")
    try:
        shown = args.out.resolve().relative_to(ROOT)
    except ValueError:
        shown = args.out
    print(f"wrote {shown}")
    ok = all(r["pooled"]["within_tolerance"] and not r["diagnostics"]["replicates_failed"]
             for r in results.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
