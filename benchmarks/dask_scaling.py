"""Out-of-core scaling: the dask pass, the REML fit on its statistics, the client's peak memory,
and the in-memory path where it fits; Parquet data from benchmarks/dask_generate.py.

Each measurement runs in a fresh subprocess so that its peak RSS (``ru_maxrss``) is its own:

* ``ooc``: a LocalCluster (``--workers`` processes, 1 thread each, bayesvc imported on each
  before the clock starts) runs the pass; the client
  process (whose peak RSS is reported) receives only the merged statistics and fits;
* ``mem``: ``pd.read_parquet`` of every file, ``VCModel.from_formula(data=frame)``, the fit.

    python benchmarks/dask_scaling.py DATA_DIR [--designs nested crossed] [--mem] [--json PATH]

``DATA_DIR/<design>/`` holds one design's files (dask_generate.py). Rows per second per core is
rows / pass wall time / workers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

# this folder holds coverage.py, which would shadow the coverage package numba imports
sys.path = [q for q in sys.path if os.path.abspath(q or ".") != os.path.dirname(os.path.abspath(__file__))]

FORMULAS = {"nested": "y ~ x + f + (1|g1/g2)", "crossed": "y ~ x + f + (1|a) + (1|b)"}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _warm() -> None:
    import bayesvc.design.outofcore  # noqa: F401


def one(kind: str, folder: str, design: str, workers: int) -> dict:
    """One measurement in this process (see the module docstring)."""
    import warnings

    import bayesvc as bvc

    warnings.simplefilter("ignore")
    glob = os.path.join(folder, "*.parquet")
    out = {"kind": kind, "design": design}
    t0 = time.perf_counter()
    if kind == "ooc":
        import dask
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster, set_as_default=False)
        client.run(_warm)  # importing bayesvc on a worker is a fixed cost, not the pass's
        out["cluster_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with dask.config.set(scheduler=client):
            model = bvc.VCModel.from_formula(FORMULAS[design], data=glob)
        out["pass_s"] = time.perf_counter() - t0
        client.close()
        cluster.close()
    else:
        import pandas as pd

        data = pd.read_parquet(folder)
        out["read_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        model = bvc.VCModel.from_formula(FORMULAS[design], data=data)
        out["build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = model.fit_reml()
    out.update(fit_s=time.perf_counter() - t0, rows=int(model.design.nobs), llf=float(res.llf),
               vcomp={k: float(v) for k, v in res.vcomp.items()}, scale=float(res.scale),
               fe_params={k: float(v) for k, v in res.fe_params.items()}, peak_rss_mb=_peak_mb())
    if kind == "ooc":
        out["rows_per_s_per_core"] = out["rows"] / out["pass_s"] / workers
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data")
    p.add_argument("--designs", nargs="+", default=["nested", "crossed"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--mem", action="store_true", help="also time the in-memory path")
    p.add_argument("--json", default=None)
    p.add_argument("--one", nargs=2, metavar=("KIND", "DESIGN"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        kind, design = args.one
        print(json.dumps(one(kind, os.path.join(args.data, design), design, args.workers)))
        return
    results = []
    for design in args.designs:
        for kind in ["ooc"] + (["mem"] if args.mem else []):
            cmd = [sys.executable, __file__, args.data, "--workers", str(args.workers), "--one", kind, design]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(f"{design} {kind}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print(json.dumps(r), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
