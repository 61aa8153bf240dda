"""Bambi side of the NUTS benchmark (run inside ``.venv-bambi``; see ``setup_bambi_env.sh``).

Fits the seed notebook's nested or crossed data, or lme4's InstEval (``tests/data/InstEval.csv``),
with Bambi 0.21 + nutpie and prints ONE JSON line::

    .venv-bambi/bin/python benchmarks/bambi_fit.py --design nested --draws 1000 --tune 1000 \
        --chains 4 --seed 1

Models (Bambi's default priors; group-specific effects non-centered, Bambi's default)::

    nested   y ~ 1 + (1|group1) + (1|group1:group2)
    crossed  y ~ 1 + (1|group1) + (1|group2)
    insteval y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)   (s, d, dept, service as strings)

Reported: ``wall_seconds`` (process start -> just before printing, measured with
``time.perf_counter()`` taken before any import), ``import_seconds``, ``data_seconds`` (data
generation / CSV read), ``build_seconds``
(``bmb.Model(...)``), ``fit_seconds`` (``model.fit``: PyMC model build + nutpie compilation +
sampling + Bambi's post-processing), ``sampling_seconds`` (nutpie's own sampling time, as PyMC
records it), and for the SD parameters (the group SDs and sigma): minimum bulk ESS, maximum
R-hat (arviz-stats), the number of divergences and the mean leapfrog steps per draw.

This file is standalone: it must not import bayesvc (bayesvc is not installed in .venv-bambi),
so the seed notebook's two data generators are copied verbatim from ``bayesvc/datasets.py``.
"""

import time

T_PROCESS_START = time.perf_counter()

import os
import sys

# Never import from this script's folder: benchmarks/ holds modules (e.g. coverage.py) whose names
# shadow installed packages that numba/Bambi import ("module 'coverage' has no attribute 'types'").
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import warnings

import numpy as np
import pandas as pd


# --------------------------------------------------------------------------- seed data
def _load_datasets():
    """bayesvc/datasets.py by path: it needs only numpy and pandas, while importing the bayesvc
    package would need formulae 0.9, which this (Bambi) environment cannot have."""
    import types
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bayesvc" / "datasets.py"
    # its package-relative imports (VCSpec) serve other functions than the generators: drop them
    src = "\n".join(line for line in path.read_text().splitlines() if not line.startswith("from ."))
    mod = types.ModuleType("bayesvc_datasets")
    exec(compile(src, str(path), "exec"), mod.__dict__)
    return mod


def seed_data():
    return _load_datasets().seed_data()


FORMULAS = {
    "nested": "y ~ 1 + (1|group1) + (1|group1:group2)",
    "crossed": "y ~ 1 + (1|group1) + (1|group2)",
    "insteval": "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)",
    "dyestuff": "Yield ~ 1 + (1|Batch)",
    "penicillin": "diameter ~ 1 + (1|plate) + (1|sample)",
}
SMALL = {"dyestuff": ("Dyestuff.csv", ("Batch",)), "penicillin": ("Penicillin.csv", ("plate", "sample"))}
INSTEVAL_CSV = os.path.join(os.path.dirname(_HERE), "tests", "data", "InstEval.csv")
INSTEVAL_STR_COLS = ("s", "d", "dept", "service")


def load_data(design):
    """The design's data frame, grouping columns as strings."""
    if design == "insteval":
        return pd.read_csv(INSTEVAL_CSV, dtype={c: str for c in INSTEVAL_STR_COLS})
    if design in SMALL:
        name, factors = SMALL[design]
        return pd.read_csv(os.path.join(os.path.dirname(_HERE), "tests", "data", name),
                           dtype={c: str for c in factors})
    nested, crossed = seed_data()
    return as_groups(nested if design == "nested" else crossed)


def as_groups(df):
    """Integer-valued float/int labels -> strings, so Bambi/formulae treat them as factors."""
    df = df.copy()
    for c in ("group1", "group2"):
        df[c] = df[c].astype(int).astype(str)
    return df


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--design", choices=sorted(FORMULAS), required=True)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    warnings.filterwarnings("ignore", category=FutureWarning)
    t0 = time.perf_counter()
    import arviz_stats as azs
    import bambi as bmb
    t_import = time.perf_counter() - t0

    t0 = time.perf_counter()
    df = load_data(args.design)
    t_data = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = bmb.Model(FORMULAS[args.design], df)
    t_build = time.perf_counter() - t0

    t0 = time.perf_counter()
    idata = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, inference_method="nutpie",
                      random_seed=args.seed, progressbar=False)
    t_fit = time.perf_counter() - t0

    post = idata["posterior"]
    sd_vars = [v for v in post.data_vars if v.endswith("_sigma")] + ["sigma"]
    ess = azs.ess(idata, var_names=sd_vars, method="bulk")
    rhat = azs.rhat(idata, var_names=sd_vars)
    ess_by = {v: float(np.min(ess[v].values)) for v in sd_vars}
    rhat_by = {v: float(np.max(rhat[v].values)) for v in sd_vars}
    ss = idata["sample_stats"]
    div = int(ss["diverging"].values.sum()) if "diverging" in ss else None
    n_steps = float(ss["n_steps"].values.mean()) if "n_steps" in ss else None
    samp = ss.attrs.get("sampling_time", post.attrs.get("sampling_time"))
    means = {v: float(post[v].values.mean()) for v in sd_vars}

    import importlib.metadata as md

    versions = {}
    for p in ("bambi", "formulae", "pymc", "pytensor", "nutpie", "arviz-stats", "numpy"):
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = None
    out = {
        "engine": "bambi",
        "design": args.design,
        "formula": FORMULAS[args.design],
        "nobs": len(df),
        "draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed,
        "import_seconds": t_import,
        "data_seconds": t_data,
        "build_seconds": t_build,
        "fit_seconds": t_fit,
        "sampling_seconds": float(samp) if samp is not None else None,
        "sd_vars": sd_vars,
        "ess_bulk": ess_by,
        "min_ess_bulk": min(ess_by.values()),
        "rhat": rhat_by,
        "max_rhat": max(rhat_by.values()),
        "divergences": div,
        "mean_n_steps": n_steps,
        "posterior_means": means,
        "versions": versions,
        "python": sys.version.split()[0],
        "pid": os.getpid(),
        "wall_seconds": time.perf_counter() - T_PROCESS_START,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
