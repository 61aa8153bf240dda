"""GLMM NUTS benchmark: bayesvc's two engines (the non-centered joint model, and NUTS on the
Laplace likelihood corrected by importance sampling, ``marginalize="laplace"``) vs Bambi 0.21 +
nutpie, on binomial and Poisson designs, min-ESS per second from one run each, in the same process
run. See benchmarks/README.md.

    .venv/bin/python benchmarks/glmm.py [--draws 1000 --tune 1000 --chains 2 --bambi PYTHON]
    .venv/bin/python benchmarks/glmm.py --no-bambi      # the two bayesvc engines only

For the Laplace engine *min ESS* is the minimum bulk ESS of the resampled draws (what a user
reads), and ``min_ess_reweighted`` the NUTS draws' minimum bulk ESS times the importance
efficiency (Kish ESS / draws); the ratio ``laplace / joint`` compares min ESS per second of the
whole fit.

Bambi runs in its own environment (``--bambi``, default /work/.venv-bambi/bin/python) through
benchmarks/bambi_glmm_fit.py. Both engines sample the same likelihood non-centered with their own
default priors; min ESS is the minimum bulk ESS over the fixed effects and the group SDs.
Writes benchmarks/results_glmm.json.
"""

import os
import sys

# benchmarks/coverage.py would shadow the coverage package that numba imports: drop this folder
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data"
DESIGNS = {
    "binomial": ("glmer_sim_binary.csv", "y ~ 1 + x + (1|subject) + (1|item)", "binomial",
                 ["subject", "item"]),
    "poisson_sim": ("glmer_sim_pois_crossed.csv", "y ~ 1 + x + (1|a) + (1|b)", "poisson", ["a", "b"]),
    "poisson": ("grouseticks.csv", "TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|LOCATION)", "poisson",
                ["BROOD", "LOCATION", "YEAR", "INDEX"]),
}


def run_bayesvc(design, draws, tune, chains, seed, marginalize=False):
    import arviz_stats as azs

    import bayesvc as bvc

    name, formula, family, factors = DESIGNS[design]
    df = pd.read_csv(DATA / name, dtype={f: str for f in factors})
    t0 = time.perf_counter()
    m = bvc.VCModel.from_formula(formula, df, family=family)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = m.sample(draws=draws, tune=tune, chains=chains, random_seed=seed, progressbar=False,
                     marginalize=marginalize)
    t_fit = time.perf_counter() - t0
    post = p.idata["posterior"].to_dataset()[["beta", "sd"]]
    ess = azs.ess(post, method="bulk")
    ess_by = {f"beta[{k}]": float(v) for k, v in zip(post.fixed.values, ess["beta"].values)}
    ess_by.update({f"sd[{k}]": float(v) for k, v in zip(post.component.values, ess["sd"].values)})
    extra = {}
    if "importance" in p.idata.children:
        a = p.idata["importance"].attrs
        extra = {k: float(a[k]) for k in ("khat", "efficiency", "min_ess_nuts", "min_ess_reweighted")}
    return {"engine": "bayesvc" if marginalize is False else "bayesvc_laplace", "design": design, **extra, "formula": formula, "family": family,
            "fit_seconds": t_fit, "sampling_seconds": p.sampling_seconds, "ess_bulk": ess_by,
            "min_ess_bulk": min(ess_by.values()), "divergences": p.divergences,
            "sd_means": {k: float(v) for k, v in zip(post.component.values, post["sd"].mean(("chain", "draw")).values)}}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bambi", default="/work/.venv-bambi/bin/python")
    ap.add_argument("--json", default=str(HERE / "results_glmm.json"))
    ap.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated subset of the designs")
    ap.add_argument("--no-bambi", action="store_true", help="skip the Bambi runs")
    args = ap.parse_args(argv)
    out = {}
    for design in args.designs.split(","):
        out[design] = {}
        for eng, marg in (("bayesvc", False), ("bayesvc_laplace", "laplace")):
            print(f"[{design}] {eng} ...", file=sys.stderr, flush=True)
            out[design][eng] = run_bayesvc(design, args.draws, args.tune, args.chains, args.seed, marg)
        if args.no_bambi:
            continue
        print(f"[{design}] bambi ...", file=sys.stderr, flush=True)
        cmd = [args.bambi, str(HERE / "bambi_glmm_fit.py"), "--design", design, "--draws", str(args.draws),
               "--tune", str(args.tune), "--chains", str(args.chains), "--seed", str(args.seed)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        o = json.loads(r.stdout.strip().splitlines()[-1]) if r.returncode == 0 else {"error": r.stderr[-2000:]}
        out[design]["bambi"] = o
    _table(out)
    Path(args.json).write_text(json.dumps(out, indent=2, default=float))
    return 0


def _table(out):
    print("| design | engine | fit s | min ESS | min ESS / s | divergences | k-hat |")
    print("|---|---|---|---|---|---|---|")
    for design, res in out.items():
        for eng in ("bayesvc", "bayesvc_laplace", "bambi"):
            e = res.get(eng)
            if e is None:
                continue
            if "error" in e:
                print(f"| {design} | {eng} | failed | | | | |")
                continue
            e["min_ess_per_second"] = e["min_ess_bulk"] / e["fit_seconds"]
            k = f"{e['khat']:.2f}" if "khat" in e else ""
            print(f"| {design} | {eng} | {e['fit_seconds']:.1f} | {e['min_ess_bulk']:.0f} | "
                  f"{e['min_ess_per_second']:.1f} | {e['divergences']} | {k} |")
        res["ratio_laplace_joint"] = (res["bayesvc_laplace"]["min_ess_per_second"]
                                      / res["bayesvc"]["min_ess_per_second"])
        print(f"| {design} | ratio laplace / joint | | | {res['ratio_laplace_joint']:.2f} | | |")
        if "bambi" in res and "error" not in res["bambi"]:
            res["ratio_min_ess_per_second"] = (res["bayesvc"]["min_ess_per_second"]
                                               / res["bambi"]["min_ess_per_second"])
            print(f"| {design} | ratio joint / bambi | | | {res['ratio_min_ess_per_second']:.2f} | | |")


if __name__ == "__main__":
    sys.exit(main())
