"""The command line's options for the wider models (prior weights, residual SD by group, GLMM family
and offset), kept apart from :mod:`bayesvc.cli` so that it stays small."""

from __future__ import annotations

import argparse

WIDER = (("--weights", "COL", "prior weights: residual variance sigma^2 / w (lme4's weights=); the trials "
                               "of a binomial proportion"),
         ("--residual-by", "COL", "one residual SD per level of COL (nlme's varIdent(form = ~ 1 | COL))"),
         ("--family", None, "binomial (logit) or poisson (log): a GLMM by Laplace ML (--method ml)"),
         ("--offset", "COL", "GLMM offset column, added to the linear predictor (e.g. log exposure)"))


def add_wider_args(p: argparse.ArgumentParser) -> None:
    """Prior weights, residual SD by group, GLMM family and offset (:func:`wider_kwargs`)."""
    for flag, meta, text in WIDER:
        p.add_argument(flag, metavar=meta, default=None, help=text,
                       **({"choices": ("gaussian", "binomial", "poisson")} if flag == "--family" else {}))


def wider_kwargs(args) -> dict:
    """The options of :func:`add_wider_args` that were given."""
    names = [flag[2:].replace("-", "_") for flag, _, _ in WIDER]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
