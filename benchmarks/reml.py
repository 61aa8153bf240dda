"""REML wall-time benchmark: bayesvc vs statsmodels vs lme4 on three designs.

Run from the repository root::

    .venv/bin/python benchmarks/reml.py                  # full run (~3 min on a 2-core box)
    .venv/bin/python benchmarks/reml.py --skip-statsmodels
    .venv/bin/python benchmarks/reml.py --quick          # 1 repeat each, no InstEval
    .venv/bin/python benchmarks/reml.py --blas-threads 1 # cap OpenBLAS threads (threadpoolctl)

Designs
-------
1. ``nested``   the seed notebook's nested design (40,000 rows, 200 group1 x 20 group2 levels)
2. ``crossed``  the seed notebook's crossed design (40,000 rows, 100 x 100 crossed levels)
3. ``insteval`` lme4's InstEval, ``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)``
   (73,421 rows; statsmodels cannot fit it in reasonable time and is not tried)

Timing
------
* bayesvc and statsmodels: in-process ``time.perf_counter()`` around model construction + fit
  (the whole user-visible call), best of ``--repeats`` (statsmodels' crossed fit takes ~30 s and
  is run once; its nested fit is repeated only while the repeats stay under a time budget).
* lme4: one ``Rscript benchmarks/reml_lme4.R`` call on CSVs written to a temporary directory;
  it times each ``lmer()`` with ``system.time()`` (elapsed), best of the same repeats.

Ratios are ``other / bayesvc`` (> 1 means bayesvc is faster). Log-likelihoods (REML, lme4's
scale) are printed for every engine to show the fits agree. Results go to stdout (a markdown
table) and to ``benchmarks/results_reml.json``.

BLAS threads
------------
By default the Python side runs with NumPy/SciPy's OpenBLAS thread pool as it comes (one
thread per core). On a small, shared machine this is badly oversubscribed: a 1159 x 1159
Cholesky (InstEval's dense Schur complement) took 0.017 s single-threaded but up to ~1.4 s with
2 OpenBLAS threads while other processes were busy. ``--blas-threads N`` caps every BLAS pool of
the process (bayesvc and statsmodels alike) with threadpoolctl; R here uses the single-threaded
reference BLAS, so ``--blas-threads 1`` is the like-for-like comparison with lme4.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
INSTEVAL_CSV = ROOT / "tests" / "data" / "InstEval.csv"
R_SCRIPT = HERE / "reml_lme4.R"
RESULTS_JSON = HERE / "results_reml.json"

# what bayesvc is measured against
TARGET_SM_CROSSED = 50.0  # >= 50x faster than statsmodels on the crossed seed design
TARGET_LME4 = 1.0  # no slower than lme4 on every design
LME4_REFERENCE = {"nested": 0.29, "crossed": 0.30, "insteval": 14.3}  # s, this sandbox, earlier
MIXEDMODELS_JL_INSTEVAL = 2.0  # s, MixedModels.jl's published InstEval fit

DESIGNS = ("nested", "crossed", "insteval")
BVC_FORMULA = {
    "nested": 'VCModel.from_formula("y ~ 1", groups="group1", re_formula="1", '
              'vc_formula={"group2": "0 + C(group2)"})',
    "crossed": 'VCModel.from_formula("y ~ 1", groups=<const>, '
               'vc_formula={"g1": "0 + C(group1)", "g2": "0 + C(group2)"})',
    "insteval": 'VCModel.from_formula("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)")',
}
LME4_FORMULA = {
    "nested": "y ~ 1 + (1|group1/group2)",
    "crossed": "y ~ 1 + (1|group1) + (1|group2)",
    "insteval": "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
}


# ----------------------------------------------------------------------------- data
def load_data(with_insteval: bool) -> dict[str, pd.DataFrame]:
    from bayesvc.datasets import seed_data

    nested, crossed = seed_data()
    out = {"nested": nested, "crossed": crossed}
    if with_insteval:
        out["insteval"] = pd.read_csv(INSTEVAL_CSV, dtype={c: str for c in ("s", "d", "dept", "service")})
    return out


# ----------------------------------------------------------------------------- timing helpers
def best_of(fn, repeats: int, budget_s: float = float("inf")):
    """Run ``fn`` up to ``repeats`` times (at least once; no new repeat once ``budget_s`` of
    total time is spent); return (best seconds, all seconds, last return value)."""
    times, value, spent = [], None, 0.0
    for _ in range(max(1, repeats)):
        if times and spent >= budget_s:
            break
        t0 = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return min(times), times, value


# ----------------------------------------------------------------------------- bayesvc
def bayesvc_fit(name: str, df: pd.DataFrame):
    """Construction + fit, timed in two parts; returns (result, build_s, fit_s)."""
    import bayesvc as bvc

    t0 = time.perf_counter()
    if name == "nested":
        m = bvc.VCModel.from_formula("y ~ 1", data=df, groups="group1", re_formula="1",
                                     vc_formula={"group2": "0 + C(group2)"})
    elif name == "crossed":
        m = bvc.VCModel.from_formula("y ~ 1", data=df, groups="const",
                                     vc_formula={"g1": "0 + C(group1)", "g2": "0 + C(group2)"})
    else:
        m = bvc.VCModel.from_formula("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", data=df)
    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit_reml()
    t2 = time.perf_counter()
    return res, t1 - t0, t2 - t1


def run_bayesvc(name: str, df: pd.DataFrame, repeats: int) -> dict:
    if name == "crossed":
        df = df.assign(const=1)  # statsmodels' groups=np.ones(n): one group holding everything
    parts = []

    def call():
        res, b, f = bayesvc_fit(name, df)
        parts.append((b, f))
        return res

    best, times, res = best_of(call, repeats)
    i = int(np.argmin(times))
    return {
        "time": best, "times": times, "build_time": parts[i][0], "fit_time": parts[i][1],
        "llf": float(res.llf), "converged": bool(res.converged), "n_evals": res.opt.n_evals,
        "optimizer_seconds": res.opt.seconds, "gradient": res.opt.gradient,
        "vcomp": {k: float(v) for k, v in res.vcomp.items()}, "scale": float(res.scale),
    }


# ----------------------------------------------------------------------------- statsmodels
def run_statsmodels(name: str, df: pd.DataFrame, repeats: int) -> dict:
    import statsmodels.api as sm

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if name == "nested":
                m = sm.MixedLM.from_formula("y ~ 1", re_formula="1", vc_formula={"group2": "0 + C(group2)"},
                                            groups="group1", data=df)
            else:  # crossed, as the seed notebook: one group holding everything
                m = sm.MixedLM.from_formula("y ~ 1", groups=np.ones(len(df)),
                                            vc_formula={"g1": "0 + C(group1)", "g2": "0 + C(group2)"},
                                            data=df)
            return m.fit()

    # crossed takes ~30 s: run once; nested: repeat while the total stays under 20 s
    reps, budget = (1, 0.0) if name == "crossed" else (repeats, 20.0)
    best, times, res = best_of(call, reps, budget)
    return {"time": best, "times": times, "llf": float(res.llf), "converged": bool(res.converged),
            "vcomp": {k: float(v) for k, v in zip(res.model.exog_vc.names, res.vcomp)},
            "scale": float(res.scale)}


# ----------------------------------------------------------------------------- lme4
def run_lme4(data: dict[str, pd.DataFrame], repeats: int) -> tuple[dict, dict]:
    """One Rscript call for every design; returns ({design: result}, info)."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return {}, {"skipped": "Rscript not found"}
    probe = subprocess.run([rscript, "-e", "quit(status = !requireNamespace('lme4', quietly = TRUE))"],
                           capture_output=True)
    if probe.returncode != 0:
        return {}, {"skipped": "R package lme4 not installed"}
    with tempfile.TemporaryDirectory(prefix="bayesvc_bench_") as tmp:
        for name, df in data.items():
            df.to_csv(os.path.join(tmp, f"{name}.csv"), index=False)
        t0 = time.perf_counter()
        proc = subprocess.run([rscript, str(R_SCRIPT), tmp, str(repeats)], capture_output=True, text=True)
        wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        return {}, {"skipped": f"Rscript failed with status {proc.returncode}"}
    kv = {}
    for line in proc.stdout.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            kv[k.strip()] = v.strip()
    out = {}
    for name in data:
        if f"{name}.time" not in kv:
            continue
        out[name] = {"time": float(kv[f"{name}.time"]),
                     "times": [float(x) for x in kv[f"{name}.times"].split(",")],
                     "llf": float(kv[f"{name}.loglik"])}
    info = {"lme4_version": kv.get("lme4.version"), "R_version": kv.get("R.version"),
            "rscript_wall_seconds": wall}
    return out, info


# ----------------------------------------------------------------------------- report
def _fmt_t(r: dict | None, na: str = "n/a") -> str:
    return na if r is None else f"{r['time']:.3f}"


def _fmt_ratio(r: dict | None, base: dict | None) -> str:
    return "n/a" if r is None or base is None else f"{r['time'] / base['time']:.1f}x"


def _fmt_llf(r: dict | None) -> str:
    return "n/a" if r is None else f"{r['llf']:.4f}"


def report(results: dict, skipped: dict) -> list[str]:
    lines = []
    lines.append("| design | nobs | bayesvc (s) | build + fit (s) | statsmodels (s) | sm / bvc | lme4 (s) "
                 "| lme4 / bvc | llf bayesvc | llf statsmodels | llf lme4 | max abs llf diff |")
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in DESIGNS:
        r = results.get(name)
        if r is None:
            lines.append(f"| {name} | | {skipped.get(name, 'skipped')} | | | | | | | | | |")
            continue
        b, s, l = r.get("bayesvc"), r.get("statsmodels"), r.get("lme4")
        llfs = [x["llf"] for x in (s, l) if x is not None]
        diff = max((abs(v - b["llf"]) for v in llfs), default=float("nan"))
        lines.append(
            f"| {name} | {r['nobs']} | {_fmt_t(b)} | {b['build_time']:.3f} + {b['fit_time']:.3f} "
            f"| {_fmt_t(s)} | {_fmt_ratio(s, b)} | {_fmt_t(l)} | {_fmt_ratio(l, b)} "
            f"| {_fmt_llf(b)} | {_fmt_llf(s)} | {_fmt_llf(l)} | {diff:.2e} |")
    return lines


def targets(results: dict) -> list[str]:
    lines = ["Targets (ratio = other / bayesvc; > 1 means bayesvc is faster):"]
    r = results.get("crossed", {})
    if r.get("statsmodels"):
        ratio = r["statsmodels"]["time"] / r["bayesvc"]["time"]
        ok = "MET" if ratio >= TARGET_SM_CROSSED else "NOT MET"
        lines.append(f"  - >= {TARGET_SM_CROSSED:.0f}x faster than statsmodels on crossed: {ratio:.1f}x  [{ok}]")
    else:
        lines.append(f"  - >= {TARGET_SM_CROSSED:.0f}x faster than statsmodels on crossed: not measured")
    for name in DESIGNS:
        r = results.get(name)
        ref = f"(earlier lme4 here: ~{LME4_REFERENCE[name]} s)"
        if not r or not r.get("lme4"):
            lines.append(f"  - no slower than lme4 on {name}: not measured {ref}")
            continue
        ratio = r["lme4"]["time"] / r["bayesvc"]["time"]
        ok = "MET" if ratio >= TARGET_LME4 else "NOT MET"
        lines.append(f"  - no slower than lme4 on {name}: bayesvc {r['bayesvc']['time']:.3f} s vs lme4 "
                     f"{r['lme4']['time']:.3f} s = {ratio:.2f}x  [{ok}] {ref}")
    r = results.get("insteval")
    if r:
        lines.append(f"  - for reference, MixedModels.jl publishes ~{MIXEDMODELS_JL_INSTEVAL:.0f} s for InstEval; "
                     f"bayesvc here {r['bayesvc']['time']:.2f} s "
                     f"({r['bayesvc']['time'] / MIXEDMODELS_JL_INSTEVAL:.1f}x that, different machine)")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-statsmodels", action="store_true", help="do not fit with statsmodels")
    ap.add_argument("--skip-lme4", action="store_true", help="do not fit with lme4")
    ap.add_argument("--quick", action="store_true", help="one repeat of each timing and no InstEval")
    ap.add_argument("--repeats", type=int, default=None,
                    help="repeats for the small designs (best is reported; default 3, InstEval 2)")
    ap.add_argument("--blas-threads", type=int, default=None,
                    help="cap the BLAS thread pools of this process (threadpoolctl); default: leave as is")
    ap.add_argument("--json", type=Path, default=RESULTS_JSON, help="where to write the results")
    args = ap.parse_args(argv)
    repeats = 1 if args.quick else (args.repeats or 3)
    repeats_big = 1 if args.quick else min(repeats, 2)

    import bayesvc

    blas = _limit_blas(args.blas_threads)
    lib = _library_fingerprint(bayesvc)
    print(f"bayesvc {bayesvc.__version__} (sources sha1 {lib['sources_sha1'][:12]}, git HEAD {lib['git_head']})",
          flush=True)
    print(f"BLAS: {blas['description']}", flush=True)
    data = load_data(with_insteval=not args.quick)
    skipped = {} if not args.quick else {"insteval": "skipped (--quick)"}
    results: dict = {}
    for name, df in data.items():
        print(f"[{name}] bayesvc ...", flush=True)
        b = run_bayesvc(name, df, repeats if name != "insteval" else repeats_big)
        results[name] = {"nobs": len(df), "bayesvc": b, "statsmodels": None, "lme4": None,
                         "formula_bayesvc": BVC_FORMULA[name], "formula_lme4": LME4_FORMULA[name]}
        print(f"    {b['time']:.3f} s (build {b['build_time']:.3f} + fit {b['fit_time']:.3f}; "
              f"{b['n_evals']} deviance evals), llf {b['llf']:.6f}", flush=True)
        if not args.skip_statsmodels and name != "insteval":
            print(f"[{name}] statsmodels ...", flush=True)
            s = run_statsmodels(name, df, repeats)
            results[name]["statsmodels"] = s
            print(f"    {s['time']:.3f} s, llf {s['llf']:.6f}", flush=True)

    lme4_info = {"skipped": "--skip-lme4"} if args.skip_lme4 else None
    if not args.skip_lme4:
        print("[all] lme4 (one Rscript call) ...", flush=True)
        lres, lme4_info = run_lme4(data, repeats)
        for name, r in lres.items():
            results[name]["lme4"] = r
            print(f"    {name}: {r['time']:.3f} s, llf {r['llf']:.6f}", flush=True)
        if "skipped" in lme4_info:
            print(f"    lme4 skipped: {lme4_info['skipped']}", flush=True)

    table = report(results, skipped)
    tgt = targets(results)
    print()
    print(f"## REML wall times (seconds; best of repeats) and log-likelihoods; BLAS: {blas['description']}")
    print()
    print("\n".join(table))
    print()
    print("\n".join(tgt))
    print("\nstatsmodels does not fit InstEval in reasonable time: n/a by design.")

    out = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count()},
        "versions": {"bayesvc": bayesvc.__version__, "numpy": np.__version__, "pandas": pd.__version__,
                     "statsmodels": _version("statsmodels"), **({k: v for k, v in lme4_info.items()
                                                                 if k in ("lme4_version", "R_version")})},
        "options": {"repeats": repeats, "repeats_insteval": repeats_big, "quick": args.quick,
                    "skip_statsmodels": args.skip_statsmodels, "skip_lme4": args.skip_lme4,
                    "blas_threads": args.blas_threads},
        "blas": blas,
        "bayesvc_sources": lib,
        "lme4": lme4_info,
        "targets": {"statsmodels_crossed_min_ratio": TARGET_SM_CROSSED, "lme4_min_ratio": TARGET_LME4,
                    "lme4_reference_seconds": LME4_REFERENCE,
                    "mixedmodels_jl_insteval_seconds": MIXEDMODELS_JL_INSTEVAL},
        "results": results,
        "table_markdown": table,
        "targets_report": tgt,
    }
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json.relative_to(ROOT) if args.json.is_relative_to(ROOT) else args.json}")
    return 0


def _library_fingerprint(pkg) -> dict:
    """Identify the bayesvc sources measured (the tree may hold uncommitted edits)."""
    import hashlib

    root = Path(pkg.__file__).resolve().parent
    h = hashlib.sha1()
    for f in sorted(root.glob("*.py")):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", str(root)], cwd=ROOT,
                                    capture_output=True, text=True).stdout.strip())
    except OSError:
        head, dirty = None, None
    return {"sources_sha1": h.hexdigest(), "git_head": head, "uncommitted_changes": dirty}


_BLAS_LIMITER = None  # keeps the threadpoolctl limit alive for the whole run


def _limit_blas(n: int | None) -> dict:
    try:
        import threadpoolctl
    except ImportError:
        threadpoolctl = None
    global _BLAS_LIMITER
    if n is not None:
        if threadpoolctl is None:
            raise SystemExit("--blas-threads needs threadpoolctl (pip install threadpoolctl)")
        _BLAS_LIMITER = threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    pools = []
    if threadpoolctl is not None:
        pools = [{k: p.get(k) for k in ("internal_api", "version", "num_threads", "filepath")}
                 for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"]
    threads = sorted({p["num_threads"] for p in pools})
    desc = (f"{'capped' if n is not None else 'default'}, "
            f"{'/'.join(map(str, threads)) if threads else '?'} thread(s) per pool, "
            f"{len(pools)} pool(s) ({', '.join(sorted({str(p['internal_api']) for p in pools})) or 'unknown'})")
    return {"requested_threads": n, "pools": pools, "description": desc}


def _version(mod: str) -> str | None:
    try:
        return __import__(mod).__version__
    except Exception:
        return None


if __name__ == "__main__":
    sys.exit(main())
