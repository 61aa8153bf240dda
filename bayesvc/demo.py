"""The seed notebook's analyses, end to end (``bayesvc demo``).

The data are generated exactly as in the seed notebook (:func:`bayesvc.datasets.seed_data`:
``np.random.seed(3123)``, then the nested data set, then the crossed one). Each design is stated
three ways -- statsmodels-style formula, lme4 formula, and statsmodels' array interface with a
:class:`~bayesvc.VCSpec` -- and fitted by REML; the three fits must agree. Then, where this version
has NUTS (``VCModel.sample``), the statsmodels-style model is sampled and compared with REML.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from . import datasets
from .model import VCModel
from .results.table import Summary
from .views import compare, variance_shares

#: relative tolerance for "the three ways to state a model give the same REML fit"
AGREE_RTOL = 1e-6


def nested_models(df) -> dict[str, VCModel]:
    """The nested design (group2 within group1), stated three ways."""
    n = len(df)
    return {
        "statsmodels-style formula": VCModel.from_formula(
            "y ~ 1", data=df, groups="group1", re_formula="1", vc_formula={"group2": "0 + C(group2)"}),
        "lme4 formula": VCModel.from_formula("y ~ 1 + (1|group1/group2)", data=df),
        "VCSpec arrays": VCModel(df.y, np.ones(n), groups=df.group1, exog_re=np.ones(n),
                                 exog_vc=datasets.nested_vcspec(df)),
    }


def crossed_models(df) -> dict[str, VCModel]:
    """The crossed design (group1 x group2), stated three ways."""
    n = len(df)
    oo = np.ones(n)  # the seed's constant groups: every effect is a variance component
    return {
        "statsmodels-style formula": VCModel.from_formula(
            "y ~ 1", groups=oo, vc_formula={"g1": "0 + C(group1)", "g2": "0 + C(group2)"}, data=df),
        "lme4 formula": VCModel.from_formula("y ~ 1 + (1|group1) + (1|group2)", data=df),
        "VCSpec arrays": VCModel(df.y, np.ones((n, 1)), groups=np.ones(n),
                                 exog_vc=datasets.crossed_vcspec(df)),
    }


def _numbers(res) -> np.ndarray:
    """llf, fixed effects and variances (in component order), for comparing fits whose
    components are named differently by the three interfaces."""
    return np.concatenate([[res.llf], res.fe_params.to_numpy(), res.variances.to_numpy()])


def max_rel_diff(results) -> float:
    """Largest relative difference between any fit and the first one."""
    ref = _numbers(results[0])
    worst = 0.0
    for res in results[1:]:
        x = _numbers(res)
        if x.shape != ref.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(x - ref) / np.maximum(np.abs(ref), 1e-8))))
    return worst


def _side_by_side(left: str, right: str, gap: int = 4) -> str:
    a, b = str(left).splitlines(), str(right).splitlines()
    width = max((len(s) for s in a), default=0)
    rows = max(len(a), len(b))
    a += [""] * (rows - len(a))
    b += [""] * (rows - len(b))
    return "\n".join(f"{x:<{width}}{' ' * gap}{y}".rstrip() for x, y in zip(a, b))


def _rule(title: str, out) -> None:
    print(f"\n{'=' * 78}\n{title}\n{'=' * 78}", file=out)


def run_demo(draws: int = 1000, nuts: bool = True, quiet: bool = False, tune: int = 1000,
             chains: int = 4, seed: int = 3123, out=None) -> int:
    """Run the seed notebook's nested and crossed analyses; returns 0, or 1 if the three ways
    to state a model disagree.

    ``quiet`` prints only the statsmodels-style summary of each design (not all three) and no
    progress bars; ``nuts=False`` stops after REML.
    """
    out = sys.stdout if out is None else out
    nested, crossed = datasets.seed_data()
    status = 0
    fitted = {}
    for label, df, build in (("nested", nested, nested_models), ("crossed", crossed, crossed_models)):
        _rule(f"{label} design: {len(df)} observations, REML", out)
        models = build(df)
        results = {}
        for how, model in models.items():
            results[how] = res = model.fit_reml()
            if not quiet or how == "statsmodels-style formula":
                print(f"\n--- {label}, {how}: {model!r}", file=out)
                print(res.summary(), file=out)
        diff = max_rel_diff(list(results.values()))
        ways = ", ".join(models)
        if diff <= AGREE_RTOL:
            print(f"\n{label}: the {ways} fits agree (llf {results['lme4 formula'].llf:.4f}; "
                  f"largest relative difference {diff:.1e} <= {AGREE_RTOL:.0e})", file=out)
        else:
            status = 1
            print(f"\n{label}: MISMATCH: the {ways} fits differ "
                  f"(largest relative difference {diff:.1e} > {AGREE_RTOL:.0e})", file=out)
        key = "statsmodels-style formula"
        fitted[label] = (models[key], results[key])

    if not nuts:
        return status
    for label, (model, reml) in fitted.items():
        _rule(f"{label} design: NUTS ({chains} chains x {draws} draws, {tune} tuning) vs REML", out)
        posterior = model.sample(draws=draws, tune=tune, chains=chains, random_seed=seed,
                                 progressbar=not quiet)
        print(f"NUTS ({posterior.sampler}, marginalize={posterior.marginalize!r}): "
              f"{posterior.seconds:.1f} s including compilation and exact random-effect draws", file=out)
        if not quiet:
            print(posterior.summary(), file=out)
        print(compare(reml=reml, mode=model.fit_map(), posterior=posterior), file=out)
        print(shares_summary(posterior), file=out)
    return status


def shares_summary(result, ci_prob: float = 0.95) -> Summary:
    """:func:`~bayesvc.variance_shares` as a table in the layout and float format of the other
    summaries (rows: the components' and the residual's share of the total variance).

    Examples
    --------
    >>> print(shares_summary(reml))  # doctest: +NORMALIZE_WHITESPACE
       Variance shares (REML)
    ============================
             Share [0.025 0.975]
    ----------------------------
    g        0.803  0.556  0.930
    Residual 0.197  0.070  0.444
    ============================
    <BLANKLINE>
    """
    s = variance_shares(result, ci_prob=ci_prob)
    a = (1 - ci_prob) / 2
    table = pd.DataFrame({"Share": s.share.to_numpy(), f"[{a:g}": s.lower.to_numpy(),
                          f"{1 - a:g}]": s.upper.to_numpy()}, index=pd.Index(s.component, dtype=object))
    return Summary(f"Variance shares ({s.method.iloc[0]})", [], {"shares": table},
                   float_formats={"shares": "%.3f"})
