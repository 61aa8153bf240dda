"""Workflow benchmark (issue 16): whole-process fits against Bambi, in-process refits, prior-sweep
cost and the tuning-length study, all in one run, with the machine's load recorded per result.

Run from the repository root (Bambi's environment: ``bash benchmarks/setup_bambi_env.sh``)::

    .venv/bin/python benchmarks/workflow.py                    # everything (~10-20 min on 2 cores)
    .venv/bin/python benchmarks/workflow.py --skip-bambi --designs dyestuff penicillin
    .venv/bin/python benchmarks/workflow.py --only inprocess   # refit, sweep, tuning study only

Parts:

* ``whole``: each design (default ``dyestuff penicillin nested crossed insteval``) as one fresh
  process per engine through :mod:`benchmarks.nuts` (bayesvc's ``VCModel.sample``; Bambi 0.21 +
  nutpie), 4 chains x 1000 draws after 1000 tuning; also the CLI,
  ``bayesvc fit tests/data/Dyestuff.csv "Yield ~ 1 + (1|Batch)" --method nuts``, timed as a whole
  process. Ratios: wall seconds Bambi / bayesvc and min-ESS/s bayesvc / Bambi.
* ``inprocess`` (one bayesvc process): the first Dyestuff fit; a refit on a new response of the
  same shape and on another data set (Penicillin) in the same process; a prior sweep of the
  Batch SD at one extra grid point (scales 1, 2) and at four (0.5, 1, 2, 5), ``mode=False`` and
  ``mode=True``, each against the first fit; the tuning study: min bulk ESS, max R-hat and
  divergences of 4 x 1000 draws after 1000 / 300 / 150 tuning iterations on Dyestuff and
  Penicillin (``--seed-tuning``: also the seed's nested and crossed designs).

Writes ``benchmarks/results_workflow.json`` and prints markdown tables.
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import importlib.util
import json
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results_workflow.json"


def _nuts():
    spec = importlib.util.spec_from_file_location("bench_nuts", HERE / "nuts.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


INPROCESS_CHILD = r'''
import time
T0 = time.perf_counter()
import json, os, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np, pandas as pd
import arviz_stats as azs
import bayesvc as bvc
from bayesvc.kernel import native
out = {"import_s": time.perf_counter() - T0}

def load():
    return os.getloadavg()[0]

def diag(r):
    ess = azs.ess(r.idata, var_names=["sd", "sigma"], method="bulk")
    rhat = azs.rhat(r.idata, var_names=["sd", "sigma"])
    e = float(min(np.min(ess["sd"].values), ess["sigma"].values))
    h = float(max(np.max(rhat["sd"].values), rhat["sigma"].values))
    return {"min_ess_bulk": e, "max_rhat": h, "divergences": int(r.divergences),
            "sampling_s": float(r.sampling_seconds), "n_steps": float(r.idata["sample_stats"]["n_steps"].values.mean())}

KW = dict(draws=1000, tune=1000, chains=4, random_seed=1, progressbar=False)
dye = pd.read_csv("tests/data/Dyestuff.csv", dtype={"Batch": str})
t = time.perf_counter()
m = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", dye)
first = m.sample(**KW)
out["first_fit_s"] = time.perf_counter() - t
out["first_fit_load"] = load()
out["first_fit"] = diag(first)
# refit, same shape, new response
dye2 = dye.assign(Yield=dye.Yield + np.random.default_rng(2).normal(0, 20, len(dye)))
t = time.perf_counter()
m2 = bvc.VCModel.from_formula("Yield ~ 1 + (1|Batch)", dye2)
r2 = m2.sample(**KW)
out["refit_new_response_s"] = time.perf_counter() - t
pen = pd.read_csv("tests/data/Penicillin.csv", dtype={"plate": str, "sample": str})
t = time.perf_counter()
m3 = bvc.VCModel.from_formula("diameter ~ 1 + (1|plate) + (1|sample)", pen)
m3.sample(**KW)
out["refit_other_data_s"] = time.perf_counter() - t
out["refit_load"] = load()
out["native_compilations"] = native.COMPILATIONS["callbacks"]
# the PyMC route (a correlated term: non-centered), compiled once per shape: first fit, a refit on
# a new response, and the RSS growth over 10 more refits
import psutil
sleep = pd.read_csv("tests/data/sleepstudy.csv", dtype={"Subject": str})
def sleep_fit(seed):
    y = sleep.Reaction + np.random.default_rng(seed).normal(0, 5, len(sleep)) * (seed > 0)
    return bvc.VCModel.from_formula("Reaction ~ Days + (Days|Subject)", sleep.assign(Reaction=y)).sample(**KW)
t = time.perf_counter(); rc = sleep_fit(0)
out["correlated_first_fit_s"] = time.perf_counter() - t
out["correlated_first_fit"] = diag(rc)
t = time.perf_counter(); sleep_fit(1)
out["correlated_refit_s"] = time.perf_counter() - t
rss0 = psutil.Process().memory_info().rss
for seed in range(2, 12):
    sleep_fit(seed)
out["correlated_rss_growth_10_refits_mb"] = (psutil.Process().memory_info().rss - rss0) / 2**20
sweeps = {}
for label, scales, mode in (("one_extra", (1, 2), False), ("four", (0.5, 1, 2, 5), False),
                            ("four_with_mode", (0.5, 1, 2, 5), True)):
    t = time.perf_counter()
    sw = bvc.prior_sweep(m, scales=scales, components=["Batch"], draws=1000, tune=1000, chains=4,
                         random_seed=1, mode=mode)
    wall = time.perf_counter() - t
    tab = sw.table[sw.table.parameter == "sd[Batch]"]
    sweeps[label] = {"wall_s": wall, "cost": sw.cost, "over_first_fit": wall / out["first_fit_s"], "load": load(),
                     "methods": tab.method.tolist(), "khat": [float(k) for k in tab.khat]}
sweeps["one_extra"]["extra_point_over_first_fit"] = (sweeps["one_extra"]["wall_s"] - out["first_fit_s"]) / out["first_fit_s"]
out["sweeps"] = sweeps
designs = {"dyestuff": m, "penicillin": m3}
if "--seed-tuning" in sys.argv:
    from bayesvc.datasets import seed_data
    nested, crossed = seed_data()
    designs["nested"] = bvc.VCModel.from_formula("y ~ 1 + (1|group1/group2)", nested)
    designs["crossed"] = bvc.VCModel.from_formula("y ~ 1 + (1|group1) + (1|group2)", crossed)
tuning = {}
for name, model in designs.items():
    for tune in (1000, 300, 150):
        r = model.sample(draws=1000, tune=tune, chains=4, random_seed=1, progressbar=False, log_likelihood=False)
        tuning[f"{name}/{tune}"] = {**diag(r), "load": load()}
out["tuning"] = tuning
out["wall_s"] = time.perf_counter() - T0
print(json.dumps(out), flush=True)
'''


def run_inprocess(timeout: float, seed_tuning: bool = False) -> dict:
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-P", "-c", INPROCESS_CHILD] + (["--seed-tuning"] if seed_tuning else [])
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                       timeout=timeout, env=env, check=False)
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return {**json.loads(line), "parent_wall_s": time.perf_counter() - t0}
    return {"error": f"exit {p.returncode}", "stderr_tail": p.stderr[-3000:]}


def run_cli(timeout: float) -> dict:
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-P", "-m", "bayesvc.cli", "fit", "tests/data/Dyestuff.csv",
                        "Yield ~ 1 + (1|Batch)", "--method", "nuts"], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, env=env, check=False)
    return {"wall_s": time.perf_counter() - t0, "rc": p.returncode, "load": os.getloadavg()[0]}


def _whole(nuts, designs, skip_bambi: bool, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = {}
    for d in designs:
        res = {"load_before": os.getloadavg()[0]}
        print(f"[{d}] bayesvc ...", file=sys.stderr, flush=True)
        res["bayesvc"] = nuts.run_child(nuts.bayesvc_cmd(d, 1000, 1000, 4, 1), timeout, env)
        if not skip_bambi and nuts.BAMBI_PY.exists():
            print(f"[{d}] bambi ...", file=sys.stderr, flush=True)
            res["bambi"] = nuts.run_child(nuts.bambi_cmd(d, 1000, 1000, 4, 1), timeout, env)
        b, o = res["bayesvc"], res.get("bambi")
        if o is not None and "error" not in b and "error" not in o:
            res["ess_per_s_ratio"] = b["ess_per_second"] / o["ess_per_second"]
            res["wall_ratio"] = o["parent_wall_seconds"] / b["parent_wall_seconds"]
        res["load_after"] = os.getloadavg()[0]
        out[d] = res
        print(nuts.table(d, res), flush=True)
    return out


def report(results: dict) -> str:
    rows = ["| design | bayesvc wall s | Bambi wall s | wall ratio | bayesvc ESS/s | Bambi ESS/s | ESS/s ratio | load |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for d, r in results.get("whole", {}).items():
        b, o = r.get("bayesvc", {}), r.get("bambi", {})
        rows.append(f"| {d} | {b.get('parent_wall_seconds', float('nan')):.1f} | {o.get('parent_wall_seconds', float('nan')):.1f} | "
                    f"{r.get('wall_ratio', float('nan')):.1f}x | {b.get('ess_per_second', float('nan')):.1f} | "
                    f"{o.get('ess_per_second', float('nan')):.2f} | {r.get('ess_per_s_ratio', float('nan')):.1f}x | "
                    f"{r['load_before']:.1f}-{r['load_after']:.1f} |")
    ip = results.get("inprocess", {})
    if "first_fit_s" in ip:
        rows += ["", f"first fit {ip['first_fit_s']:.2f} s; refit new response {ip['refit_new_response_s']:.2f} s; "
                 f"refit other data {ip['refit_other_data_s']:.2f} s; correlated (sleepstudy, non-centered) first fit "
                 f"{ip.get('correlated_first_fit_s', float('nan')):.1f} s, refit {ip.get('correlated_refit_s', float('nan')):.2f} s, "
                 f"RSS +{ip.get('correlated_rss_growth_10_refits_mb', float('nan')):.0f} MB over 10 refits; sweeps: "
                 + ", ".join(f"{k} {v['wall_s']:.1f} s ({v['over_first_fit']:.2f}x first fit)" for k, v in ip["sweeps"].items())]
        rows += ["", "| design/tune | min ESS | max R-hat | div | sampling s | steps |", "|---|---:|---:|---:|---:|---:|"]
        for k, v in ip["tuning"].items():
            rows.append(f"| {k} | {v['min_ess_bulk']:.0f} | {v['max_rhat']:.4f} | {v['divergences']} | "
                        f"{v['sampling_s']:.2f} | {v['n_steps']:.1f} |")
    return "\n".join(rows)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--designs", nargs="+", default=["dyestuff", "penicillin", "nested", "crossed", "insteval"])
    ap.add_argument("--skip-bambi", action="store_true")
    ap.add_argument("--only", choices=("whole", "inprocess"))
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--seed-tuning", action="store_true", help="add the seed designs to the tuning study")
    ap.add_argument("--output", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    nuts = _nuts()
    results = {"meta": {"timestamp": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
                        "loadavg_start": list(os.getloadavg())}}
    if args.only != "whole":
        print("[inprocess] ...", file=sys.stderr, flush=True)
        results["inprocess"] = run_inprocess(args.timeout, args.seed_tuning)
        results["cli_dyestuff"] = run_cli(args.timeout)
    if args.only != "inprocess":
        results["whole"] = _whole(nuts, args.designs, args.skip_bambi, args.timeout)
    results["meta"]["loadavg_end"] = list(os.getloadavg())
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
