"""The ``bayesvc`` command line.

::

    bayesvc fit DATA.csv FORMULA [--method reml|ml|map|nuts] [--json] [--groups G]
                [--re-formula F] [--vc NAME=FORMULA ...] [--missing error|drop]
                [--draws N --tune N --chains N --seed S]
                [--marginalize auto|true|full|partial|false|laplace] [--quiet]
                [--ci profile|wald] [--level L]
    bayesvc compare DATA.csv FORMULA [--json] [--ci-prob P] [--negligible F] [--no-verdicts]
                [model and sampling options as fit]
    bayesvc test DATA.csv FORMULA --component NAME [--method exact|bootstrap|chibar] [--nsim N]
                [--seed S] [--ml] [--executor threads|processes] [--workers N] [--json]
                [model options as fit]
    bayesvc sensitivity DATA.csv FORMULA [--scales 0.5,1,2,5] [--families halfnormal,...]
                [--components C,...] [--threshold T] [--executor threads|processes|ADDRESS] [--sd]
                [--marginalize auto|true|full|partial|false|laplace] [--json] [model and sampling options as fit]
    bayesvc predict DATA.csv FORMULA --newdata NEW.csv [--method reml|nuts] [--no-random-effects]
                [--new-levels population|error|sample] [--json]   (:mod:`bayesvc.cli_predict`)
    bayesvc demo [--draws N] [--quiet] [--no-nuts]

Bad input (an unknown column, a malformed formula, a missing file, a CSV that does not parse)
prints one line, ``bayesvc: error: <message>``, to stderr and exits with status 2; warnings
(dropped rows, dropped rank-deficient columns, boundary fits) print one line each as
``bayesvc: warning: <message>``. With ``--json`` the last line of stdout is one JSON object:
the result's ``to_dict()`` plus ``"seconds"``, the wall time of the fit (for ``compare``:
``{"rows": [...], "verdicts": [...]}``, :meth:`bayesvc.Comparison.to_dict`; for ``test``:
``{"component", "statistic", "p_value", "method", "nsim", ...}``,
:meth:`bayesvc.results.inference.ComponentTest.to_dict`). ``fit --ci`` adds ``"conf_int":
{name: [lower, upper]}`` (SD scale for the components and ``"Residual"``). For ``--method nuts``,
``llf`` and ``converged`` are null (NUTS maximizes nothing) and ``diagnostics`` holds the verdicts
on the draws (``max_r_hat``, ``min_ess_bulk``, ``min_ess_tail``, ``divergences``, ``ok``). Messages
spell the library's arguments as the CLI's options (``--missing drop``, not ``missing='drop'``).

This module only parses arguments and formats output; the demo lives in :mod:`bayesvc.demo`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import pandas as pd

from .cli_predict import add_predict_command, run_predict
from .cli_options import add_wider_args, wider_kwargs
from .demo import run_demo
from .design.outofcore import dask_scheduler, is_parquet_path
from .errors import SpecificationError, SweepError
from .model import VCModel, compare_model
from .studies import prior_sweep, sample_cached, sensitivity

from .cli_parse import (UsageError, _csv_list, _int_at_least, _json_default, _one_line,  # noqa: F401
                        _parse_vc, _positive_int, cli_spelling)

PROG = "bayesvc"
METHODS = ("reml", "ml", "map", "nuts")


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UsageError(f"{message} (see '{self.prog} --help')")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each option's default, except where it is None or False (flags, and
    options whose help says what their absence means)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


#: ``marginalize=`` as the CLI spells it (``--marginalize``)
MARGINALIZE = {"auto": "auto", "true": True, "full": "full", "partial": "partial", "false": False,
               "laplace": "laplace"}

def _add_model_args(p: argparse.ArgumentParser) -> None:
    """DATA.csv, FORMULA and the model-building options (shared by fit and compare)."""
    p.add_argument("data", metavar="DATA.csv", help="CSV file with a header row, or Parquet files "
                   "(path, directory or quoted glob 'data/*.parquet': one dask pass, data beyond memory)")
    p.add_argument("formula", metavar="FORMULA", help="model formula, quoted")
    p.add_argument("--groups", metavar="G", help="statsmodels style: the grouping column (default: none, an lme4-style FORMULA)")
    p.add_argument("--re-formula", metavar="F", dest="re_formula",
                   help="statsmodels style: correlated random coefficients per group (default: 1)")
    p.add_argument("--vc", metavar="NAME=FORMULA", action="append", default=[],
                   help="statsmodels style: a variance component, e.g. cask='0 + C(cask)' "
                        "(repeatable; default: none)")
    p.add_argument("--missing", choices=("error", "drop"), default="error",
                   help="rows with missing values in the model's columns: error, or drop them "
                        "with a warning")
    add_wider_args(p)
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="Parquet data: run the pass on this dask.distributed scheduler (tcp://host:8786; "
                        "default: none, in this process)")


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    """NUTS sampling options and --quiet (shared by fit and compare)."""
    p.add_argument("--draws", type=_positive_int, default=1000, metavar="N", help="NUTS draws per chain")
    p.add_argument("--tune", type=_int_at_least(0), default=1000, metavar="N", help="NUTS tuning steps")
    p.add_argument("--chains", type=_positive_int, default=4, metavar="N", help="NUTS chains")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="NUTS random seed (default: a fresh one each run)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_marginalize(p: argparse.ArgumentParser) -> None:
    """``--marginalize``: how NUTS treats the random effects (``VCModel.sample(marginalize=...)``)."""
    p.add_argument("--marginalize", choices=tuple(MARGINALIZE), default="auto",
                   help="NUTS: integrate the random effects out by the cost rule (auto, or true), "
                        "all of them (full), the largest factor and the small ones (partial), or "
                        "sample them non-centered (false); GLMMs: laplace is the Laplace-integrated "
                        "likelihood corrected by importance sampling")


def _model_command(sub, name: str, help: str, description: str, json_help: str) -> argparse.ArgumentParser:
    """A subcommand on DATA.csv and FORMULA with the model options, ``--json`` and the sampling
    options (``fit``, ``compare``, ``sensitivity``); the caller adds its own options."""
    p = sub.add_parser(name, help=help, description=description, formatter_class=_HelpFormatter)
    _add_model_args(p)
    p.add_argument("--json", action="store_true", help=json_help)
    _add_sampling_args(p)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__  # the package root, for its version only

    parser = _Parser(prog=PROG, description="Bayesian variance-component / linear mixed models.",
                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{fit,compare,sensitivity,test,predict,demo}",
                                parser_class=_Parser)
    fit = _model_command(
        sub, "fit", "fit a model to a CSV file",
        "Fit a linear mixed model to DATA.csv. FORMULA is lme4 style ('y ~ x + (1|g)'), or "
        "statsmodels style ('y ~ x' with --groups, --re-formula, --vc).",
        "print one JSON object (the result plus 'seconds') as the last line")
    fit.add_argument("--method", choices=METHODS, default="reml",
                     help="estimator: REML, ML, posterior mode (map) or NUTS")
    _add_marginalize(fit)
    _add_ci_args(fit)
    compare = _model_command(
        sub, "compare", "REML, posterior mode and NUTS side by side",
        "Fit REML, the posterior mode and NUTS to DATA.csv and print one table with a row per "
        "parameter (fixed effects, component variances, residual) and a boundary flag. FORMULA as "
        "for 'fit'.", 'print {"rows": [...]} (one object per parameter) as the last line')
    compare.add_argument("--ci-prob", type=float, default=0.95, metavar="P", dest="ci_prob",
                         help="posterior interval probability")
    _add_marginalize(compare)
    _add_verdict_args(compare)
    sens = _model_command(
        sub, "sensitivity", "prior sensitivity: power-scaling diagnostics and a prior-scale sweep",
        "Fit NUTS to DATA.csv, report the power-scaling prior and likelihood sensitivity of every SD "
        "and fixed effect with a verdict per component, and refit across a grid of SD-prior scales "
        "(multiples of the default scale 2.5 * sd(y)) for each component. FORMULA as for 'fit'. "
        'With --json the last line is {"components": [...], "fixed": [...], "sweep": [...], ...}.',
        "print one JSON object (components, fixed, sweep) as the last line")
    _add_sensitivity_args(sens)
    _add_marginalize(sens)
    _add_test_command(sub)
    add_predict_command(sub, _add_model_args, _add_sampling_args, _HelpFormatter)
    demo = sub.add_parser(
        "demo", help="run the seed notebook's nested and crossed analyses", formatter_class=_HelpFormatter,
        description="Fit the seed notebook's nested and crossed variance-component models three "
                    "ways each (statsmodels-style formula, lme4 formula, VCSpec arrays), check "
                    "that they agree, then compare REML with NUTS.")
    demo.add_argument("--draws", type=_positive_int, default=1000, metavar="N", help="NUTS draws per chain")
    demo.add_argument("--quiet", action="store_true", help="less output, no progress bars")
    demo.add_argument("--no-nuts", action="store_true", dest="no_nuts", help="REML only")
    return parser


def _add_sensitivity_args(sens: argparse.ArgumentParser) -> None:
    sens.add_argument("--scales", default="0.5,1,2,5", metavar="S,S,...",
                      help="prior scales, as multiples of each component's default scale")
    sens.add_argument("--families", default="halfnormal", metavar="F,F,...",
                      help="SD-prior families to sweep: halfnormal, halfstudentt, halfcauchy, "
                           "exponential")
    sens.add_argument("--components", default=None, metavar="C,C,...",
                      help="components whose prior is swept (default: all)")
    sens.add_argument("--threshold", type=float, default=0.05, metavar="T",
                      help="power-scaling sensitivity threshold")
    sens.add_argument("--executor", default="threads", metavar="threads|processes|ADDRESS",
                      help="where grid points run: threads (share one compiled model), processes, "
                           "or a dask scheduler address such as tcp://host:8786")
    sens.add_argument("--sd", action="store_true",
                      help="report SDs instead of variances (the scale of every other summary)")


def _add_ci_args(fit: argparse.ArgumentParser) -> None:
    fit.add_argument("--ci", choices=("profile", "wald"), default=None,
                     help="confidence intervals (REML/ML fits): profile likelihood on the fit's criterion, "
                          "or Wald; adds 'conf_int' to --json (default: none)")
    fit.add_argument("--level", type=float, default=0.95, metavar="L", help="interval level")


def _add_verdict_args(compare: argparse.ArgumentParser) -> None:
    compare.add_argument("--negligible", type=float, default=0.1, metavar="F",
                         help="a component SD below F residual SDs is negligible")
    compare.add_argument("--no-verdicts", action="store_true", dest="no_verdicts",
                         help="no verdict per component (no tests, profiles or sensitivity)")


def _add_test_command(sub) -> None:
    p = sub.add_parser(
        "test", help="test that a variance component is zero", formatter_class=_HelpFormatter,
        description="Fit DATA.csv by REML (or ML with --ml) and test that the variance of one component "
                    "is zero: exact restricted likelihood ratio test (RLRsim's exactRLRT; approximate "
                    "with other components present), parametric bootstrap, or the 50:50 chi-bar-squared "
                    'asymptotic. With --json the last line is {"component", "statistic", "p_value", '
                    '"method", "nsim", ...}. FORMULA as for \'fit\'.')
    _add_model_args(p)
    p.add_argument("--component", required=True, metavar="NAME", help="the component to test")
    p.add_argument("--method", choices=("exact", "bootstrap", "chibar"), default="exact",
                   help="null distribution")
    p.add_argument("--nsim", type=_positive_int, default=None, metavar="N",
                   help="simulations (default 100000 exact, 1000 bootstrap)")
    p.add_argument("--seed", type=int, default=None, metavar="S",
                   help="random seed of the simulation (default: a fresh one, recorded in the result)")
    p.add_argument("--ml", action="store_true", help="test an ML fit (likelihood ratio) instead of REML")
    p.add_argument("--executor", choices=("threads", "processes"), default=None,
                   help="where bootstrap refits run (default: this process)")
    p.add_argument("--workers", type=_positive_int, default=None, metavar="N",
                   help="bootstrap workers (default: one per CPU with --executor)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")


# ----------------------------------------------------------------------------- helpers

def _read_csv(path: str):
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise UsageError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"{path} is a directory, not a CSV file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or _one_line(err)}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"cannot parse {path} as CSV: {_one_line(err)}") from None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {cli_spelling(_one_line(message))}", file=sys.stderr if file is None else file)


# ----------------------------------------------------------------------------- commands

def _model_from_args(args):
    """The VCModel that DATA.csv, FORMULA and the model options (:func:`_add_model_args`) describe."""
    vc = _parse_vc(args.vc)
    if (vc or args.re_formula is not None) and args.groups is None:
        raise UsageError("--re-formula and --vc need --groups (the statsmodels-style grouping column)")
    if is_parquet_path(args.data):  # data beyond memory: one dask pass (design/outofcore.py)
        with dask_scheduler(args.scheduler):
            return VCModel.from_formula(args.formula, args.data, groups=args.groups,
                                        re_formula=args.re_formula, vc_formula=vc, missing=args.missing)
    if args.scheduler is not None:
        raise UsageError("--scheduler needs Parquet data (a .parquet path, directory or glob)")
    data = _read_csv(args.data)
    return VCModel.from_formula(args.formula, data, groups=args.groups, re_formula=args.re_formula,
                                vc_formula=vc, missing=args.missing, **wider_kwargs(args))



def _fit(args) -> int:
    if args.ci is not None and args.method not in ("reml", "ml"):
        raise UsageError(f"--ci needs --method reml or ml, got {args.method}")
    if not 0 < args.level < 1:
        raise UsageError(f"--level must lie in (0, 1), got {args.level}")
    model = _model_from_args(args)
    if args.method in ("reml", "ml"):
        def fit():
            return model.fit_reml(reml=args.method == "reml")
    else:
        attr = "fit_map" if args.method == "map" else "sample"
        fn = getattr(model, attr, None)
        if fn is None:
            raise UsageError(f"method {args.method} is not available in this version")
        if args.method == "map":
            def fit():
                return fn()
        else:
            def fit():
                return fn(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                          progressbar=not (args.json or args.quiet),
                          marginalize=MARGINALIZE[args.marginalize])
    t0 = time.perf_counter()
    result = fit()
    seconds = time.perf_counter() - t0
    ci = result.conf_int(method=args.ci, level=args.level) if args.ci is not None else None
    if args.json:
        out = dict(result.to_dict())
        out["seconds"] = seconds
        if hasattr(result, "r2") and getattr(result.design, "has_rows", True):  # R-squared (needs X)
            out["r2"] = result.r2()
        if ci is not None:
            out["conf_int"] = ci.to_dict()
        sys.stdout.flush()
        print(json.dumps(out, default=_json_default))
    else:
        print(result.summary())
        if ci is not None:
            print()
            print(ci)
    return 0


def _compare(args) -> int:
    if not 0 < args.ci_prob < 1:
        raise UsageError(f"--ci-prob must lie in (0, 1), got {args.ci_prob}")
    if not args.negligible > 0:
        raise UsageError(f"--negligible must be a positive fraction of the residual SD, "
                         f"got {args.negligible}")
    model = _model_from_args(args)
    comparison = compare_model(model, draws=args.draws, tune=args.tune, chains=args.chains,
                               random_seed=args.seed, progressbar=not (args.json or args.quiet),
                               ci_prob=args.ci_prob, verdicts=not args.no_verdicts,
                               negligible=args.negligible, marginalize=MARGINALIZE[args.marginalize])
    if args.json:
        sys.stdout.flush()
        print(json.dumps(comparison.to_dict(), default=_json_default))
    else:
        print(comparison)
    return 0


def _sensitivity(args) -> int:
    scales = _csv_list(args.scales, "--scales", float)
    if any(not s > 0 for s in scales):
        raise UsageError(f"--scales must be positive, got {args.scales!r}")
    if not 0 < args.threshold < 1:
        raise UsageError(f"--threshold must lie in (0, 1), got {args.threshold}")
    model = _model_from_args(args)
    t0 = time.perf_counter()
    light = model.design.scalar  # the collapsed likelihood needs no random-effect draws
    marginalize = MARGINALIZE[args.marginalize]
    result = sample_cached(model, draws=args.draws, tune=args.tune, chains=args.chains,
                           random_seed=args.seed, progressbar=False, marginalize=marginalize,
                           **({"thin_random_effects": args.draws, "log_likelihood": False} if light
                              else {"log_likelihood": True}))
    first_fit = time.perf_counter() - t0  # compile (or cache hit) + sample
    sweep = prior_sweep(model, scales=scales, families=_csv_list(args.families, "--families"),
                        components=_csv_list(args.components, "--components"), draws=args.draws,
                        tune=args.tune, chains=args.chains, random_seed=args.seed,
                        executor=args.executor, scale="sd" if args.sd else "variance",
                        marginalize=marginalize)
    sens = sensitivity(result, threshold=args.threshold, sweep=sweep, scale="sd" if args.sd else "variance")
    seconds = time.perf_counter() - t0
    if args.json:
        out = sens.to_dict()
        out["sweep"] = sweep.to_records()
        extra = sweep.cost["extra_point_s"]
        out["cost"] = {"first_fit_s": first_fit, "extra_point_s": extra,
                       "extra_over_first": extra / first_fit, "sweep_wall_s": sweep.wall_seconds}
        out["seconds"] = seconds
        sys.stdout.flush()
        print(json.dumps(out, default=_json_default))
    else:
        print(sens)
        print()
        print(sweep)
        print(f"\nfirst fit {first_fit:.2f} s (with compilation), extra grid point "
              f"{sweep.cost['extra_point_s']:.2f} s")
    return 0


def _test(args) -> int:
    model = _model_from_args(args)
    t0 = time.perf_counter()
    fit = model.fit_reml(reml=not args.ml)
    kw = {"executor": args.executor, "workers": args.workers} if args.method == "bootstrap" else {}
    result = fit.test_component(args.component, method=args.method, nsim=args.nsim, seed=args.seed, **kw)
    if args.json:
        out = result.to_dict()
        out["seconds"] = time.perf_counter() - t0
        sys.stdout.flush()
        print(json.dumps(out, default=_json_default))
    else:
        print(result)
    return 0


def _predict(args) -> int:
    return run_predict(args, _model_from_args, _read_csv, UsageError, _json_default)


def _demo(args) -> int:
    return run_demo(draws=args.draws, nuts=not args.no_nuts, quiet=args.quiet)


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            try:
                args = parser.parse_args(argv)
            except SystemExit as exc:  # --help / --version
                return int(exc.code or 0) if not isinstance(exc.code, str) else 2
            if args.command is None:
                parser.print_help(sys.stderr)
                return 2
            commands = {"fit": _fit, "compare": _compare, "sensitivity": _sensitivity, "test": _test,
                        "predict": _predict}
            return commands.get(args.command, _demo)(args)
        except UsageError as err:
            msg = _one_line(err)
        except FileNotFoundError as err:
            msg = f"no such file: {err.filename}" if err.filename else _one_line(err)
        except (SpecificationError, pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as err:
            msg = _one_line(err)
        except KeyboardInterrupt:
            print(f"{PROG}: interrupted", file=sys.stderr)
            return 130
        except SweepError as err:  # a grid point failed (not bad input): exit 1, one line
            print(f"{PROG}: error: {_one_line(err)}", file=sys.stderr)
            return 1
        except BrokenPipeError:  # output piped into `head` and closed: not an error
            try:
                sys.stdout = open(os.devnull, "w")
            except OSError:
                pass
            return 0
    print(f"{PROG}: error: {cli_spelling(msg)}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
