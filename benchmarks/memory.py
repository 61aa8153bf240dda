"""Peak memory of REML on large nested and crossed designs (issue 11).

Each case runs in a fresh subprocess, which simulates its data, builds the model and fits it by
REML; the child reports its own peak resident set size (``resource.getrusage(RUSAGE_SELF)
.ru_maxrss``) and the phase times, so that one case's memory never counts against another.

Designs (``n`` rows, seed 1):

* ``nested``: ``y ~ 1 + (1|a/b)``, 1,000 levels of ``a`` with 10 levels of ``b`` each (10,000
  ``a:b`` levels), rows drawn uniformly over the ``a:b`` cells;
* ``crossed``: ``y ~ 1 + (1|a) + (1|b)``, 1,000 x 1,000 levels, rows drawn uniformly over the
  cells (the design of the issue: ~2 x 10^8 pairs of nonzeros at 10^6 rows before the fix).

Usage (from the repository root)::

    python benchmarks/memory.py                      # 10^5 and 10^6 rows, both designs
    python benchmarks/memory.py --rows 1e7 --design crossed
    python benchmarks/memory.py --lme4               # also lme4 on the same data (Rscript)

Prints a markdown table and appends the records to ``benchmarks/results_memory.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
import numpy as np, pandas as pd
design, n = sys.argv[1], int(float(sys.argv[2]))
csv = sys.argv[3] if len(sys.argv) > 3 else ""
rng = np.random.default_rng(1)
t0 = time.perf_counter()
if design == "nested":
    a = rng.integers(0, 1000, n)
    b = a * 10 + rng.integers(0, 10, n)
    y = rng.normal(size=1000)[a] * 1.0 + rng.normal(size=10000)[b] * 0.5 + rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": b % 10, "y": y})
    formula = "y ~ 1 + (1|a/b)"
else:
    a = rng.integers(0, 1000, n)
    b = rng.integers(0, 1000, n)
    y = rng.normal(size=1000)[a] * 1.0 + rng.normal(size=1000)[b] * 0.5 + rng.normal(size=n)
    df = pd.DataFrame({"a": a, "b": b, "y": y})
    formula = "y ~ 1 + (1|a) + (1|b)"
if csv:
    df.to_csv(csv, index=False)
    sys.exit(0)
rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
import bayesvc as bvc
t1 = time.perf_counter()
model = bvc.VCModel.from_formula(formula, data=df)
kernel = model.kernel
t2 = time.perf_counter()
fit = model.fit_reml()
t3 = time.perf_counter()
print(json.dumps({"design": design, "rows": n, "formula": formula,
                  "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "data_rss_gb": rss_data, "simulate_s": t1 - t0, "build_s": t2 - t1,
                  "fit_s": t3 - t2, "llf": fit.llf, "vcomp": fit.vcomp.to_dict()}))
"""

LME4 = r"""
library(lme4)
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1]); d$a <- factor(d$a); d$b <- factor(d$b)
f <- if (args[2] == "nested") y ~ 1 + (1|a/b) else y ~ 1 + (1|a) + (1|b)
t <- system.time(m <- lmer(f, data = d, REML = TRUE))[["elapsed"]]
cat(sprintf("time=%.3f loglik=%.6f\n", t, as.numeric(logLik(m))))
"""


def run_case(design: str, rows: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", CHILD, design, str(rows)], capture_output=True,
                         text=True, env=env, cwd=str(ROOT))
    if out.returncode != 0:
        return {"design": design, "rows": int(float(rows)), "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_lme4(design: str, rows: float) -> dict:
    """lme4 on the same simulated rows; peak RSS of the R process from GNU time (``%M``, KiB)."""
    rscript, gnu_time = shutil.which("Rscript"), shutil.which("time") or "/usr/bin/time"
    if rscript is None or not Path(gnu_time).exists():
        return {"design": design, "rows": int(float(rows)), "engine": "lme4", "error": "Rscript or /usr/bin/time missing"}
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "fit.R"
        subprocess.run([sys.executable, "-c", CHILD, design, str(rows), str(csv)], check=True, cwd=str(ROOT))
        script.write_text(LME4)
        out = subprocess.run([gnu_time, "-f", "maxrss_kb=%M", rscript, str(script), str(csv), design],
                             capture_output=True, text=True)
    text = out.stdout + out.stderr
    rec = {"design": design, "rows": int(float(rows)), "engine": "lme4"}
    for tok in text.replace("\n", " ").split():
        if tok.startswith("maxrss_kb="):
            rec["peak_rss_gb"] = int(tok.split("=")[1]) / 2**20
        elif tok.startswith("time="):
            rec["fit_s"] = float(tok.split("=")[1])
        elif tok.startswith("loglik="):
            rec["llf"] = float(tok.split("=")[1])
    if out.returncode != 0:
        rec["error"] = text.strip().splitlines()[-1:]
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1e5,1e6", help="comma-separated row counts (default 1e5,1e6)")
    ap.add_argument("--design", default="nested,crossed", help="nested, crossed or both")
    ap.add_argument("--lme4", action="store_true", help="also time lme4 (needs Rscript with lme4)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results_memory.json"))
    args = ap.parse_args(argv)
    records = []
    print("| design | rows | engine | peak RSS (GB) | build (s) | fit (s) | llf |")
    print("|---|---|---|---|---|---|---|")
    for design in args.design.split(","):
        for rows in args.rows.split(","):
            recs = [dict(run_case(design, float(rows)), engine="bayesvc")]
            if args.lme4:
                recs.append(run_lme4(design, float(rows)))
            for r in recs:
                records.append(r)
                print(f"| {r['design']} | {r['rows']:,} | {r['engine']} | {r.get('peak_rss_gb', float('nan')):.2f} | "
                      f"{r.get('build_s', float('nan')):.1f} | {r.get('fit_s', float('nan')):.1f} | "
                      f"{r.get('llf', float('nan')):.2f} | {r.get('error', '')}", flush=True)
    path = Path(args.json)
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps(old + records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
