"""InstEval: which terms to integrate out, and how to sample the rest (one form per run).

    .venv/bin/python benchmarks/insteval_levers.py default 300        # the cost rule's plan
    .venv/bin/python benchmarks/insteval_levers.py noncentered_d 300  # lecturers non-centered
    .venv/bin/python benchmarks/insteval_levers.py int_d 300          # lecturers integrated, students centered
    .venv/bin/python benchmarks/insteval_levers.py int_d_nc 300       # ... students non-centered
    LOWRANK=1 .venv/bin/python benchmarks/insteval_levers.py default 300   # nutpie's low-rank mass matrix

2 chains x N draws after N tuning, seed 1; prints the plan, seconds, leapfrog steps per draw and the
bulk ESS of each SD, sigma and the fixed effects (numbers in benchmarks/README.md, InstEval section).
"""

import os
import sys
import time
from pathlib import Path

import arviz_stats as azs
import numpy as np
import nutpie
import pandas as pd

import bayesvc as bvc
from bayesvc.estimators.plan import MarginalizationPlan, plan_marginalization

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("LOWRANK"):
    _sample = nutpie.sample

    def _low_rank(*a, **k):
        k["low_rank_modified_mass_matrix"] = True
        return _sample(*a, **k)

    nutpie.sample = _low_rank


def plan_for(m, mode):
    plan = plan_marginalization(m.design, True, m.kernel)
    names = [t.name for t in m.design.terms]
    ds = (names.index("dept:service"),)
    if mode == "noncentered_d":
        return MarginalizationPlan("partial", plan.integrated_term, (), plan.reason, plan.joint, True)
    if mode in ("int_d", "int_d_nc"):
        centered = (names.index("s"),) if mode == "int_d" else ()
        return MarginalizationPlan("partial", names.index("d"), centered, mode, ds, True)
    return plan


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "default"
    draws = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    t0 = time.time()
    df = pd.read_csv(ROOT / "tests" / "data" / "InstEval.csv", dtype={c: str for c in ("s", "d", "dept", "service")})
    m = bvc.VCModel.from_formula("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", data=df)
    plan = plan_for(m, mode)
    print(plan, flush=True)
    r = m.sample(marginalize=plan, draws=draws, tune=draws, chains=2, random_seed=1, progressbar=False,
                 log_likelihood=False, random_effects=False)
    print("seconds", round(time.time() - t0, 1), "sampling", round(r.sampling_seconds, 1))
    post, ss = r.idata["posterior"].to_dataset(), r.idata["sample_stats"].to_dataset()
    print("steps/draw", float(ss["n_steps"].mean()), "divergences", int(ss["diverging"].sum()))
    for v in ("sd", "sigma", "beta"):
        print(v, np.round(azs.ess(post[[v]])[v].values, 0))


if __name__ == "__main__":
    main()
