"""Bambi side of the GLMM NUTS benchmark (run inside a venv with Bambi 0.21 + nutpie; it must not
import bayesvc). Prints ONE JSON line::

    /work/.venv-bambi/bin/python benchmarks/bambi_glmm_fit.py --design binomial --draws 1000

Designs (Bambi's default priors; group-specific effects non-centered, Bambi's default)::

    binomial  tests/data/glmer_sim_binary.csv   y ~ 1 + x + (1|subject) + (1|item), family bernoulli
    poisson   tests/data/grouseticks.csv        TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)

Reported: ``fit_seconds`` (``model.fit``: PyMC build + nutpie compilation + sampling), nutpie's
``sampling_seconds``, and the minimum bulk ESS over the group SDs and the fixed effects.
"""

import time

T0 = time.perf_counter()

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse
import json
import warnings

import numpy as np
import pandas as pd

DATA = os.path.join(os.path.dirname(_HERE), "tests", "data")
DESIGNS = {
    "binomial": ("glmer_sim_binary.csv", "y ~ 1 + x + (1|subject) + (1|item)", "bernoulli",
                 ["subject", "item"]),
    "poisson_sim": ("glmer_sim_pois_crossed.csv", "y ~ 1 + x + (1|a) + (1|b)", "poisson", ["a", "b"]),
    "poisson": ("grouseticks.csv", "TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)", "poisson",
                ["BROOD", "LOCATION", "YEAR", "INDEX"]),
}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--design", choices=sorted(DESIGNS), required=True)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")
    import arviz_stats as azs
    import bambi as bmb

    name, formula, family, factors = DESIGNS[args.design]
    df = pd.read_csv(os.path.join(DATA, name), dtype={f: str for f in factors})
    t0 = time.perf_counter()
    model = bmb.Model(formula, df, family=family)
    idata = model.fit(draws=args.draws, tune=args.tune, chains=args.chains, inference_method="nutpie",
                      random_seed=args.seed, progressbar=False)
    t_fit = time.perf_counter() - t0
    post = idata["posterior"]
    names = [v for v in post.data_vars if v.endswith("_sigma")]
    fixed = [v for v in post.data_vars if "|" not in v and not v.endswith("_sigma")
             and v not in ("mu", "p") and not v.endswith("_mean")]
    ess = azs.ess(idata, var_names=names + fixed, method="bulk")
    ess_by = {v: float(np.min(ess[v].values)) for v in names + fixed}
    ss = idata["sample_stats"]
    samp = ss.attrs.get("sampling_time", post.attrs.get("sampling_time"))
    print(json.dumps({"engine": "bambi", "design": args.design, "formula": formula, "family": family,
                      "fit_seconds": t_fit, "sampling_seconds": float(samp) if samp else None,
                      "ess_bulk": ess_by, "min_ess_bulk": min(ess_by.values()),
                      "divergences": int(ss["diverging"].values.sum()),
                      "sd_means": {v: float(post[v].mean()) for v in names},
                      "wall_seconds": time.perf_counter() - T0}))


if __name__ == "__main__":
    main()
