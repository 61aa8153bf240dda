"""NUTS benchmark: bayesvc (collapsed likelihood + nutpie) vs Bambi 0.21 (+ nutpie).

Run from the repository root, with the main environment::

    bash benchmarks/setup_bambi_env.sh                  # once: creates .venv-bambi (Bambi 0.21)
    .venv/bin/python benchmarks/nuts.py                 # 4 chains x 1000 draws after 1000 tune
    .venv/bin/python benchmarks/nuts.py --quick         # 2 chains x 300 draws after 300 tune
    .venv/bin/python benchmarks/nuts.py --designs crossed --skip-bambi
    .venv/bin/python benchmarks/nuts.py --designs nested crossed   # only the two seed designs
    .venv/bin/python benchmarks/nuts.py --designs insteval --quick --skip-bambi
    .venv/bin/python benchmarks/nuts.py --blas-threads 1   # one OpenBLAS thread per child

Designs (default: all three): the seed notebook's ``nested`` (40,000 rows; 200 group1 x 20
group2-within-group1 levels) and ``crossed`` (40,000 rows; 100 x 100 crossed levels) data sets, and
``insteval``: lme4's InstEval ratings, ``tests/data/InstEval.csv`` (73,421 rows; 2,972 students
``s`` crossed with 1,128 lecturers ``d``, plus ``dept:service``; ``s``, ``d``, ``dept`` and
``service`` read as strings). For ``insteval`` bayesvc's cost rule picks
``marginalize="partial"``; the JSON records the mode actually used (``marginalize``) for every
design.

=========  ==============================================  =================================
design     bayesvc                                         Bambi
=========  ==============================================  =================================
nested     ``y ~ 1 + (1|group1/group2)``                   ``y ~ 1 + (1|group1) + (1|group1:group2)``
crossed    ``y ~ 1 + (1|group1) + (1|group2)``             ``y ~ 1 + (1|group1) + (1|group2)``
insteval   ``y ~ 1 + service + (1|s) + (1|d)               the same formula
           + (1|dept:service)``
=========  ==============================================  =================================

Timing
------
Every fit is a fresh subprocess (run with ``python -P``, so that modules in ``benchmarks/`` or
the repository root, e.g. ``benchmarks/coverage.py``, cannot shadow installed packages) timed by this (parent) process with ``time.perf_counter()``
around ``subprocess.run``: the whole user-visible cost, i.e. interpreter start + imports + data
generation + model construction + compilation + sampling (+ for bayesvc the exact conditional
draws of the random effects, the pointwise log-likelihood and the ArviZ object). Each child also
reports its own times: whole process (``perf_counter`` taken before its imports),
``fit_seconds`` (the in-process fitting call: ``m.sample(...)`` for bayesvc, i.e. PyMC model
build + nutpie compile + sampling + random-effect draws + ArviZ object; ``model.fit(...)`` for
Bambi, i.e. PyMC model build + nutpie compile + sampling + post-processing; the table's
``fit s`` column), the mean number of leapfrog steps per kept draw (nutpie's ``n_steps``: tells
the cost of one gradient apart from the geometry) and ``sampling_seconds`` (JSON only; *not* comparable across engines: bayesvc's
``PosteriorResult.sampling_seconds`` includes model build + compilation, Bambi's is nutpie's own
sampling loop as PyMC records it).

``min ESS`` is the smallest bulk ESS (arviz-stats) over the variance parameters: every
component SD and the residual SD (bayesvc ``sd`` and ``sigma``; Bambi ``1|..._sigma`` and
``sigma``). ``ESS/s`` = min ESS / parent-measured wall seconds. The headline ``ratio`` is
bayesvc ESS/s / Bambi ESS/s (target >= 50 on the seed designs, >= 2 on InstEval), with max R-hat <= 1.01 and no divergences for
bayesvc. Timings on a shared machine are noisy: compare the ratio from a single run, not
absolute seconds across runs. Results: a markdown table on stdout and
``benchmarks/results_nuts.json``.

BLAS threads
------------
nutpie runs the chains on threads, and bayesvc's likelihood Op calls LAPACK (Cholesky, ``dpotri``)
from each of them. With OpenBLAS's default pool (one thread per core) this oversubscribes a small
shared machine badly: on the 2-core box, under load, one crossed-design ``loglik_grad`` took ~1.6 ms
with ``OPENBLAS_NUM_THREADS=1`` and ~365 ms with 2. ``--blas-threads N`` sets
``OPENBLAS_NUM_THREADS``/``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` for both engines' children alike
(the default leaves the environment as it is, i.e. what a user gets out of the box).
"""

from __future__ import annotations

import os
import sys

# Don't import from this script's folder (benchmarks/coverage.py etc. would shadow packages).
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import math
import platform
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BAMBI_PY = ROOT / ".venv-bambi" / "bin" / "python"
BAMBI_SCRIPT = HERE / "bambi_fit.py"
RESULTS = HERE / "results_nuts.json"
DESIGNS = ("nested", "crossed", "insteval")
#: small lme4 data sets (tests/data), also run by benchmarks/workflow.py: (csv, formula, factors)
SMALL = {"dyestuff": ("Dyestuff.csv", "Yield ~ 1 + (1|Batch)", ("Batch",)),
         "penicillin": ("Penicillin.csv", "diameter ~ 1 + (1|plate) + (1|sample)", ("plate", "sample"))}
ALL_DESIGNS = (*SMALL, *DESIGNS)
BAYESVC_FORMULAS = {
    "nested": "y ~ 1 + (1|group1/group2)",
    "crossed": "y ~ 1 + (1|group1) + (1|group2)",
    "insteval": "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
    **{k: v[1] for k, v in SMALL.items()},
}
SMALL_CSV = {k: (str(ROOT / "tests" / "data" / v[0]), v[2]) for k, v in SMALL.items()}
INSTEVAL_CSV = str(ROOT / "tests" / "data" / "InstEval.csv")
INSTEVAL_STR_COLS = ("s", "d", "dept", "service")
TARGET_RATIO, RHAT_MAX = 50.0, 1.01
#: the issue's target per design: 50x on the seed designs, 2x on InstEval (partial collapse)
TARGETS = {"nested": 50.0, "crossed": 50.0, "insteval": 5.0, "dyestuff": 3.0, "penicillin": 3.0}
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")

# The bayesvc child: one JSON line on stdout. Kept self-contained so that it can be copied and run
# by hand: python -c "$(python benchmarks/nuts.py --print-child)" nested 1000 1000 4 1
BAYESVC_CHILD = rf'''
import time
T_PROCESS_START = time.perf_counter()
import json, sys, warnings
design, D, T, C, S = sys.argv[1], *map(int, sys.argv[2:6])
formula = {BAYESVC_FORMULAS!r}[design]
warnings.filterwarnings("ignore")
import numpy as np
import arviz_stats as azs
import bayesvc as bvc
t_import = time.perf_counter() - T_PROCESS_START
t0 = time.perf_counter()
if design == "insteval":
    import pandas as pd
    data = pd.read_csv({INSTEVAL_CSV!r}, dtype={{c: str for c in {INSTEVAL_STR_COLS!r}}})
elif design in {SMALL_CSV!r}:
    import pandas as pd
    path, factors = {SMALL_CSV!r}[design]
    data = pd.read_csv(path, dtype={{c: str for c in factors}})
else:
    from bayesvc.datasets import seed_data
    nested, crossed = seed_data()
    data = nested if design == "nested" else crossed
t_data = time.perf_counter() - t0
t0 = time.perf_counter()
m = bvc.VCModel.from_formula(formula, data=data)
t_build = time.perf_counter() - t0
t0 = time.perf_counter()
api = "VCModel.sample"
r = m.sample(draws=D, tune=T, chains=C, random_seed=S, progressbar=False)
t_fit = time.perf_counter() - t0
post = r.idata["posterior"]
ess = azs.ess(r.idata, var_names=["sd", "sigma"], method="bulk")
rhat = azs.rhat(r.idata, var_names=["sd", "sigma"])
comps = [str(c) for c in post["sd"].coords["component"].values]
ess_by = dict(zip(["sd[" + c + "]" for c in comps], map(float, np.ravel(ess["sd"].values))))
ess_by["sigma"] = float(ess["sigma"].values)
rhat_by = dict(zip(["sd[" + c + "]" for c in comps], map(float, np.ravel(rhat["sd"].values))))
rhat_by["sigma"] = float(rhat["sigma"].values)
sdm = post["sd"].values.reshape(-1, len(comps)).mean(axis=0)
means = {{"sd[" + c + "]": float(v) for c, v in zip(comps, sdm)}}
means["sigma"] = float(post["sigma"].values.mean())
ss = r.idata["sample_stats"]
n_steps = float(ss["n_steps"].values.mean()) if "n_steps" in ss else None
import importlib.metadata as md
versions = {{p: md.version(p) for p in ("pymc", "pytensor", "nutpie", "arviz-stats", "numpy")}}
print(json.dumps({{
    "engine": "bayesvc", "api": api, "design": design, "formula": formula, "nobs": int(len(data)),
    "draws": D, "tune": T, "chains": C, "seed": S,
    "marginalize": getattr(r, "marginalize", None),
    "import_seconds": t_import, "data_seconds": t_data, "build_seconds": t_build, "fit_seconds": t_fit,
    "sampling_seconds": float(r.sampling_seconds),
    "ess_bulk": ess_by, "min_ess_bulk": min(ess_by.values()),
    "rhat": rhat_by, "max_rhat": max(rhat_by.values()),
    "divergences": int(r.divergences), "mean_n_steps": n_steps, "posterior_means": means, "versions": versions,
    "wall_seconds": time.perf_counter() - T_PROCESS_START,
}}), flush=True)
'''


def _last_json_line(text: str) -> dict | None:
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def run_child(cmd: list[str], timeout: float, env: dict | None = None) -> dict:
    """Run one fit as a subprocess; returns its JSON plus the parent-measured wall time."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env,
                           check=False)
    except subprocess.TimeoutExpired as e:
        return {"error": f"timed out after {timeout:.0f} s", "parent_wall_seconds": time.perf_counter() - t0,
                "stderr_tail": (e.stderr or b"")[-2000:].decode() if isinstance(e.stderr, bytes)
                else (e.stderr or "")[-2000:]}
    wall = time.perf_counter() - t0
    out = _last_json_line(p.stdout)
    if p.returncode != 0 or out is None:
        return {"error": f"exit status {p.returncode}", "parent_wall_seconds": wall,
                "stderr_tail": p.stderr[-3000:], "stdout_tail": p.stdout[-1000:]}
    out["parent_wall_seconds"] = wall
    out["ess_per_second"] = out["min_ess_bulk"] / wall
    return out


def bayesvc_cmd(design, draws, tune, chains, seed):
    return [sys.executable, "-P", "-c", BAYESVC_CHILD, design, str(draws), str(tune), str(chains), str(seed)]


def bambi_cmd(design, draws, tune, chains, seed):
    return [str(BAMBI_PY), "-P", str(BAMBI_SCRIPT), "--design", design, "--draws", str(draws), "--tune",
            str(tune), "--chains", str(chains), "--seed", str(seed)]


def _fmt(x, spec):
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def table(design: str, res: dict) -> str:
    rows = [f"### {design}", "",
            "| engine | wall s | fit s | min bulk ESS | ESS/s | max R-hat | divergences | leapfrog steps/draw |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for eng in ("bayesvc", "bambi"):
        r = res.get(eng)
        if r is None:
            continue
        if "error" in r:
            rows.append(f"| {eng} | {_fmt(r.get('parent_wall_seconds'), '.1f')} | failed: {r['error']} | | | | | |")
            continue
        flag = " (R-hat > 1.01: ESS unreliable)" if r["max_rhat"] > RHAT_MAX else ""
        rows.append(f"| {eng}{flag} | {r['parent_wall_seconds']:.1f} | {_fmt(r.get('fit_seconds'), '.1f')} | "
                    f"{r['min_ess_bulk']:.0f} | {r['ess_per_second']:.2f} | {r['max_rhat']:.4f} | "
                    f"{r['divergences']} | {_fmt(r.get('mean_n_steps'), '.1f')} |")
    rows.append("")
    ratio = res.get("ratio")
    if ratio is not None:
        b = res["bayesvc"]
        target = TARGETS.get(design, TARGET_RATIO)
        ok = (ratio >= target and b["max_rhat"] <= RHAT_MAX and b["divergences"] == 0)
        rows.append(f"ratio bayesvc ESS/s / Bambi ESS/s (whole-process wall) = **{ratio:.1f}x** "
                    f"(target >= {target:g}x, bayesvc R-hat <= {RHAT_MAX}, 0 divergences: "
                    f"{'met' if ok else 'NOT met'}); on fit s only: "
                    f"{_fmt(res.get('ratio_fit'), '.1f')}x")
        rows.append("")
    return "\n".join(rows)


def _loadavg():
    try:
        return list(os.getloadavg())
    except OSError:
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 chains x 300 draws after 300 tune")
    ap.add_argument("--draws", type=int)
    ap.add_argument("--tune", type=int)
    ap.add_argument("--chains", type=int)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--designs", nargs="+", choices=ALL_DESIGNS, default=list(DESIGNS))
    ap.add_argument("--skip-bambi", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0, help="per-fit subprocess limit (s)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="set OPENBLAS/OMP/MKL_NUM_THREADS=N in every child (default: as inherited)")
    ap.add_argument("--output", type=Path, default=RESULTS)
    ap.add_argument("--print-child", action="store_true", help="print the bayesvc child script and exit")
    args = ap.parse_args(argv)
    if args.print_child:
        print(BAYESVC_CHILD)
        return 0

    d0, t0, c0 = (300, 300, 2) if args.quick else (1000, 1000, 4)
    draws = args.draws or d0
    tune = args.tune if args.tune is not None else t0
    chains = args.chains or c0
    run_bambi = not args.skip_bambi
    if run_bambi and not BAMBI_PY.exists():
        print(f"note: {BAMBI_PY.relative_to(ROOT)} not found; run `bash benchmarks/setup_bambi_env.sh` "
              "first. Skipping Bambi.", file=sys.stderr)
        run_bambi = False

    env = None
    if args.blas_threads is not None:
        env = dict(os.environ)
        for var in BLAS_ENV:
            env[var] = str(args.blas_threads)
    blas = {v: (env or os.environ).get(v) for v in BLAS_ENV}
    print(f"# NUTS benchmark: {chains} chains x {draws} draws after {tune} tune, seed {args.seed}; "
          f"{os.cpu_count()} CPUs, load {_fmt((_loadavg() or [None])[0], '.2f')}; "
          f"BLAS threads: {args.blas_threads if args.blas_threads is not None else 'inherited'}\n",
          flush=True)
    meta = {
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(), "python": sys.version.split()[0], "cpu_count": os.cpu_count(),
        "draws": draws, "tune": tune, "chains": chains, "seed": args.seed,
        "loadavg_start": _loadavg(),
        "blas_threads": args.blas_threads, "blas_env": blas,
        "commands": {},
    }
    results = {}
    for design in args.designs:
        res = {}
        cmd = bayesvc_cmd(design, draws, tune, chains, args.seed)
        meta["commands"][f"bayesvc/{design}"] = " ".join(cmd[:3]) + " <BAYESVC_CHILD> " + " ".join(cmd[4:])
        print(f"[{design}] bayesvc ...", file=sys.stderr, flush=True)
        res["bayesvc"] = run_child(cmd, args.timeout, env)
        if run_bambi:
            cmd = bambi_cmd(design, draws, tune, chains, args.seed)
            meta["commands"][f"bambi/{design}"] = " ".join(cmd)
            print(f"[{design}] bambi ...", file=sys.stderr, flush=True)
            res["bambi"] = run_child(cmd, args.timeout, env)
        b, o = res["bayesvc"], res.get("bambi")
        if o is not None and "error" not in b and "error" not in o and o["ess_per_second"] > 0:
            res["ratio"] = b["ess_per_second"] / o["ess_per_second"]
            if o["min_ess_bulk"] > 0:
                res["ratio_fit"] = ((b["min_ess_bulk"] / b["fit_seconds"])
                                    / (o["min_ess_bulk"] / o["fit_seconds"]))
        for eng in ("bayesvc", "bambi"):
            if eng in res and "error" in res[eng]:
                print(f"[{design}] {eng} failed: {res[eng]['error']}\n{res[eng].get('stderr_tail', '')}",
                      file=sys.stderr, flush=True)
        results[design] = res
        print(table(design, res), flush=True)

    meta["loadavg_end"] = _loadavg()
    args.output.write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    try:
        shown = args.output.relative_to(ROOT)
    except ValueError:
        shown = args.output
    print(f"wrote {shown}")
    failed = any("error" in r for res in results.values() for r in res.values() if isinstance(r, dict))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
