"""``bayesvc predict``: predictions at new data from the command line.

::

    bayesvc predict DATA.csv FORMULA --newdata NEW.csv [--method reml|nuts] [--no-random-effects]
                [--new-levels population|error|sample] [--kind mean|observation] [--ci-prob P]
                [--json] [model and sampling options as fit]

With ``--json`` the last line is ``{"predictions": [{"row": i, "mean": m, "lower": l, "upper": u},
...]}`` (rows of NEW.csv from 0; for REML ``lower`` and ``upper`` are null: a REML prediction is
a point value). The parser's shared pieces (model options, CSV reading, usage errors) are handed
in by :mod:`bayesvc.cli`, so this module does not import it.
"""

from __future__ import annotations

import json
import sys

import numpy as np


def add_predict_command(sub, add_model_args, add_sampling_args, formatter) -> None:
    """Register the ``predict`` subcommand on ``sub`` (argparse subparsers)."""
    p = sub.add_parser(
        "predict", help="predictions at new data (REML or NUTS)", formatter_class=formatter,
        description="Fit DATA.csv (REML, or NUTS with --method nuts) and predict the mean at every "
                    "row of NEW.csv, with the random effects of the levels seen in fitting (or "
                    "without, --no-random-effects). Levels not seen in fitting get the population "
                    "prediction (--new-levels population), an error (error) or, for NUTS, fresh "
                    "draws from the population (sample). FORMULA as for 'fit'. With --json the last "
                    'line is {"predictions": [{"row", "mean", "lower", "upper"}, ...]}.')
    add_model_args(p)
    p.add_argument("--newdata", required=True, metavar="NEW.csv", help="CSV file of rows to predict")
    p.add_argument("--method", choices=("reml", "nuts"), default="reml", help="REML (default) or NUTS")
    p.add_argument("--no-random-effects", action="store_true", dest="no_random_effects",
                   help="predict X beta only (lme4's re.form = NA)")
    p.add_argument("--new-levels", choices=("population", "error", "sample"), default="population",
                   dest="new_levels", help="levels not seen in fitting (sample: NUTS only)")
    p.add_argument("--kind", choices=("mean", "observation"), default="mean",
                   help="NUTS: draws of the mean or of a new observation")
    p.add_argument("--ci-prob", type=float, default=0.95, metavar="P", dest="ci_prob",
                   help="NUTS: interval probability")
    p.add_argument("--json", action="store_true", help="print {\"predictions\": [...]} as the last line")
    add_sampling_args(p)


def run_predict(args, model_from_args, read_csv, usage_error, json_default) -> int:
    """Run ``bayesvc predict`` on parsed ``args``; returns the exit status."""
    if not 0 < args.ci_prob < 1:
        raise usage_error(f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    if args.method == "reml" and args.new_levels == "sample":
        raise usage_error("--new-levels sample needs --method nuts (REML has no draws to sample from)")
    if args.method == "reml" and args.kind != "mean":
        raise usage_error("--kind observation needs --method nuts")
    model = model_from_args(args)
    newdata = read_csv(args.newdata)
    kw = {"random_effects": not args.no_random_effects, "new_levels": args.new_levels}
    if args.method == "reml":
        mean = model.fit_reml().predict(newdata, **kw).to_numpy()
        lower = upper = [None] * len(mean)
    else:
        from .results.posterior_predict import predictive_summary

        post = model.sample(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                            progressbar=not (args.json or args.quiet))
        s = predictive_summary(post.predict(newdata, kind=args.kind, seed=args.seed, **kw), ci_prob=args.ci_prob)
        mean, lower, upper = s["mean"].to_numpy(), s["lower"].to_numpy(), s["upper"].to_numpy()
    rows = [{"row": i, "mean": float(m), "lower": None if lo is None else float(lo),
             "upper": None if hi is None else float(hi)}
            for i, (m, lo, hi) in enumerate(zip(mean, lower, upper))]
    if args.json:
        sys.stdout.flush()
        print(json.dumps({"predictions": rows}, default=json_default))
    else:
        table = newdata.copy()
        table["mean"] = np.asarray(mean)
        if args.method == "nuts":
            table["lower"], table["upper"] = lower, upper
        print(table.to_string())
    return 0
