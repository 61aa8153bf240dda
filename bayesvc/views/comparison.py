"""Comparison mode: REML, posterior mode and NUTS side by side, one row per parameter.

:func:`compare` takes fitted results (any of them may be missing) and returns a
:class:`Comparison`; :func:`bayesvc.compare_model` fits what is missing first.

Boundary rule
-------------
A variance row is flagged ``boundary=True`` when

* REML sits at zero: the component is in ``reml.boundary`` or its REML variance is exactly 0; or
* the posterior piles up at zero: the :data:`BOUNDARY_QUANTILE` (2.5 %) posterior quantile of the
  variance is below :data:`BOUNDARY_RATIO` (2 %) of its posterior median, i.e.
  ``P(var < 0.02 * median(var) | y) > 0.025``.

For a posterior whose SD density stays positive at zero (a half-normal-like shape) the ratio is
about ``(0.031 / 0.674)**2 = 0.002``; for a well-identified component it is 0.05 or more
(Dyestuff's batch variance: about 0.06; Penicillin's components: 0.3-0.6), so 0.02 separates them
by a factor of about three either way. The rule does not depend on ``ci_prob``. Fixed effects and
the residual are never flagged.

Verdicts
--------
A view never fits, so the verdict per component (REML estimate and profile interval, the test that
the variance is zero, the posterior and its prior sensitivity, joined in one sentence) is computed
by a study, :func:`bayesvc.studies.component_verdicts` (which :func:`bayesvc.compare_model` calls),
and handed to :func:`compare` as ``verdicts=``; the comparison shows it as a second table with the
sentences below and adds ``"verdicts"`` to :meth:`Comparison.to_dict`.

>>> c = bvc.compare(reml=reml, mode=mode)
>>> list(c.table.parameter), list(c.table.kind)
(['Intercept', 'g', 'Residual'], ['fixed', 'variance', 'variance'])
>>> c.to_dict()["rows"][0]["mean"] is None   # no posterior given: NaN -> null
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..results.summaries import group_header, random_effect_labels
from ..results.table import Summary
from ..validate import validate_ci_kind, validate_ci_prob

#: Posterior quantile and fraction of the posterior median used by the pile-up-at-zero rule.
BOUNDARY_QUANTILE = 0.025
BOUNDARY_RATIO = 0.02

COLUMNS = ["parameter", "kind", "reml", "reml_se", "mode", "mean", "median", "lower", "upper",
           "boundary"]

__all__ = ["Comparison", "compare", "frequentist_label", "posterior_at_zero", "BOUNDARY_QUANTILE",
           "BOUNDARY_RATIO"]


def posterior_at_zero(draws, quantile: float = BOUNDARY_QUANTILE, ratio: float = BOUNDARY_RATIO) -> bool:
    """Whether draws of a variance pile up at zero (the module's boundary rule).

    >>> rng = np.random.default_rng(0)
    >>> bool(posterior_at_zero(rng.normal(size=4000) ** 2))          # half-normal SD
    True
    >>> bool(posterior_at_zero(rng.gamma(20.0, size=4000)))          # well away from zero
    False
    """
    x = np.asarray(draws, dtype=float).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return False
    med = np.median(x)
    return bool(med <= 0 or np.quantile(x, quantile) < ratio * med)


@dataclass(frozen=True)
class Comparison:
    """REML / posterior mode / NUTS comparison table (immutable).

    Attributes
    ----------
    table : DataFrame
        A copy of the rows: columns ``parameter, kind, reml, reml_se, mode, mean, median, lower,
        upper, boundary`` (NaN where an estimator was not given).
    ci_prob, ci_kind
        The posterior interval in ``lower``/``upper``.
    methods : tuple of str
        The estimators present, e.g. ``("REML", "MAP", "NUTS")``.
    verdicts : DataFrame or None
        A copy of the verdict table passed to :func:`compare` (columns of
        :class:`bayesvc.studies.ComponentVerdicts`), ``None`` without one.
    header, labels : tuple
        The summary's header pairs and row labels (as the estimators' summaries label them).

    Examples
    --------
    >>> c = bvc.compare(reml=reml, mode=mode)
    >>> c
    Comparison(3 rows; methods REML, MAP)
    >>> print(c)  # doctest: +NORMALIZE_WHITESPACE
           Mixed Linear Model Estimator Comparison
    =====================================================
    Model:              MixedLM Methods:        REML, MAP
    No. Observations:   48      Log-Likelihood: -68.8989
    No. Groups:         8       Converged:      Yes
    Dependent Variable: y
    -----------------------------------------------------
                     REML    REML SE     Mode    Boundary
    -----------------------------------------------------
    Intercept       0.757      0.576    0.747
    g Var           2.547      1.417    2.179
    Residual Var    0.625      0.140    0.624
    =====================================================

    With a NUTS fit the table adds the posterior mean, median and interval:

    >>> c2 = bvc.compare(reml=reml, posterior=post)
    >>> c2.methods, bool(c2.table["median"].notna().all())
    (('REML', 'NUTS'), True)
    """

    _table: pd.DataFrame = field(repr=False)
    ci_prob: float = 0.95
    ci_kind: str = "eti"
    methods: tuple = ()
    header: tuple = field(default=(), repr=False)
    labels: tuple = field(default=(), repr=False)
    _verdicts: pd.DataFrame | None = field(default=None, repr=False)
    verdict_note: str = field(default="", repr=False)
    verdict_records: tuple = field(default=(), repr=False)
    freq_label: str = "REML"

    @property
    def verdicts(self) -> pd.DataFrame | None:
        """A copy of the verdict table, or ``None`` (module docstring, *Verdicts*)."""
        return None if self._verdicts is None else self._verdicts.copy()

    @property
    def table(self) -> pd.DataFrame:
        """A copy of the comparison rows (see the class docstring for the columns).

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> t = c.table
        >>> list(t.parameter), list(t.kind)
        (['Intercept', 'g', 'Residual'], ['fixed', 'variance', 'variance'])
        >>> bool(t["mean"].isna().all())          # no posterior given
        True
        """
        return self._table.copy()

    @property
    def boundary(self) -> list[str]:
        """Names of the variance rows flagged as boundary.

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> c.boundary
        []
        """
        t = self._table
        return list(t.parameter[t.boundary])

    def summary(self) -> Summary:
        """The comparison as a :class:`~bayesvc.results.table.Summary` (MixedLM-like layout).

        Columns of estimators that were not given are left out.

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> s = c.summary()
        >>> s.title
        'Mixed Linear Model Estimator Comparison'
        >>> list(s.tables["params"].columns)
        ['REML', 'REML SE', 'Mode', 'Boundary']
        """
        t = self._table
        labels = list(self.labels) or [p if k == "fixed" else f"{p} Var" for p, k in zip(t.parameter, t.kind)]
        pct = f"{100 * self.ci_prob:g}%"
        cols = {"reml": self.freq_label, "reml_se": f"{self.freq_label} SE", "mode": "Mode", "mean": "Mean",
                "median": "Median", "lower": f"{self.ci_kind.upper()} {pct} lower",
                "upper": f"{self.ci_kind.upper()} {pct} upper"}
        params = t[list(cols)].rename(columns=cols).astype(float)
        params["Boundary"] = ["yes" if b else "" for b in t.boundary]
        keep = [c for c in params.columns if c == "Boundary" or params[c].notna().any()]
        params = params[keep]
        params.index = pd.Index(labels, dtype=object)
        notes = []
        if t.boundary.any():
            notes.append(f"Boundary: REML variance at zero, or P(var < {BOUNDARY_RATIO:g} x posterior "
                         f"median) > {BOUNDARY_QUANTILE:g}.")
        tables = {"params": params}
        if self._verdicts is not None:
            tables["verdicts"] = _verdict_table(self._verdicts)
            notes += [self.verdict_note] + [f"{c}: {s}" for c, s in self._verdicts.sentence.items()]
        return Summary("Mixed Linear Model Estimator Comparison", list(self.header), tables,
                       float_formats={"params": "%.3f", "verdicts": "%.3g"}, notes=notes)

    def __str__(self) -> str:
        return str(self.summary())

    def __repr__(self) -> str:
        return f"Comparison({len(self._table)} rows; methods {', '.join(self.methods)})"

    def _repr_html_(self) -> str:
        return self.summary()._repr_html_()

    def to_markdown(self) -> str:
        """The comparison as Markdown: a bold title, the header table and the estimates table.

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> for line in c.to_markdown().splitlines()[-5:]:
        ...     print(line)
        |  | REML | REML SE | Mode | Boundary |
        |:--|--:|--:|--:|--:|
        | Intercept | 0.757 | 0.576 | 0.747 |  |
        | g Var | 2.547 | 1.417 | 2.179 |  |
        | Residual Var | 0.625 | 0.140 | 0.624 |  |
        """
        return self.summary().to_markdown()

    def to_latex(self, label: str | None = None) -> str:
        r"""The comparison as a LaTeX ``table`` environment (``label`` adds a ``\label``).

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> for line in c.to_latex(label="tab:cmp").splitlines()[:3]:
        ...     print(line)
        \begin{table}
        \caption{Mixed Linear Model Estimator Comparison}
        \label{tab:cmp}
        """
        return self.summary().to_latex(label)

    def to_dict(self) -> dict:
        """The CLI's JSON contract: ``{"rows": [{column: value, ...}, ...]}`` with NaN -> None.

        Examples
        --------
        >>> c = bvc.compare(reml=reml, mode=mode)
        >>> row = c.to_dict()["rows"][1]
        >>> row["parameter"], row["boundary"], row["mean"]
        ('g', False, None)
        """
        rows = []
        for rec in self._table.to_dict("records"):
            row = {}
            for k in COLUMNS:
                v = rec[k]
                if k in ("parameter", "kind"):
                    row[k] = str(v)
                elif k == "boundary":
                    row[k] = bool(v)
                else:
                    v = float(v)
                    row[k] = v if math.isfinite(v) else None
            rows.append(row)
        if self._verdicts is None:
            return {"rows": rows}
        return {"rows": rows, "verdicts": [dict(r) for r in self.verdict_records]}


#: verdict-table columns shown by the summary (the sentences go below it)
VERDICT_COLUMNS = {"reml_sd": "REML SD", "ci_lower": "CI lower", "ci_upper": "CI upper", "p_value": "p-value",
                   "median": "Post. median", "p_negligible": "P(negl.)", "psense_prior": "Prior sens."}


def _verdict_table(v: pd.DataFrame) -> pd.DataFrame:
    out = v[[c for c in VERDICT_COLUMNS if c in v.columns]].rename(columns=VERDICT_COLUMNS).astype(float)
    out = out[[c for c in out.columns if out[c].notna().any()]]
    out["Verdict"] = list(v["label"] if "label" in v.columns else v.verdict)
    out.index = pd.Index([f"{c} SD" for c in v.index], dtype=object)
    return out



def frequentist_label(fit) -> str:
    """The column label of a frequentist fit: ``"REML"`` or ``"ML"`` (a linear mixed model),
    ``"ML (Laplace)"`` or ``"ML (AGQ, n nodes)"`` (a GLMM, by its ``nagq``).

    >>> frequentist_label(reml)
    'REML'
    """
    if getattr(fit, "family", "gaussian") == "gaussian":
        return str(fit.method)
    nagq = int(getattr(fit, "nagq", 1))
    return "ML (Laplace)" if nagq == 1 else f"ML (AGQ, {nagq} nodes)"


def _design(*results):
    designs = [r.design for r in results if r is not None]
    if not designs:
        raise ValueError("compare needs at least one of reml, mode, posterior")
    d0 = designs[0]
    for d in designs[1:]:
        if list(d.fe_names) != list(d0.fe_names) or list(d.component_names) != list(d0.component_names):
            raise ValueError("compare: the results come from models with different parameters "
                             f"({list(d0.fe_names) + d0.component_names} vs "
                             f"{list(d.fe_names) + d.component_names})")
    return d0


def compare(reml=None, mode=None, posterior=None, ci_prob: float = 0.95, ci_kind: str = "eti",
            verdicts=None) -> Comparison:
    """Put REML, posterior-mode and NUTS estimates side by side.

    Parameters
    ----------
    reml : REMLResult or GLMMResult, optional
        Gives ``reml`` (estimates, copied exactly) and ``reml_se`` (``bse_fe``, ``vcomp_se``,
        ``scale_se``); the summary labels the columns by :func:`frequentist_label` (``"REML"``,
        ``"ML"``, ``"ML (Laplace)"``, ``"ML (AGQ, n nodes)"``).
    mode : ModeResult, optional
        Gives ``mode`` (``fe_params``, ``vcomp``, ``scale``).
    posterior : PosteriorResult, optional
        Gives ``mean``, ``median`` and the ``ci_kind`` interval at ``ci_prob`` (``lower``,
        ``upper``), from :meth:`~bayesvc.PosteriorResult.param_summary`.
    ci_prob : float, default 0.95
    ci_kind : {'eti', 'hdi'}
    verdicts : ComponentVerdicts, optional
        One verdict per component, computed by :func:`bayesvc.studies.component_verdicts` (read:
        its ``table``, ``to_dict()`` and its text's first line); shown as a second table.

    Returns
    -------
    Comparison
        One row per fixed effect, per component variance and ``"Residual"``; ``boundary`` as in
        the module docstring.

    Examples
    --------
    >>> c = bvc.compare(reml=reml, mode=mode)
    >>> c.methods, list(c.table.parameter)
    (('REML', 'MAP'), ['Intercept', 'g', 'Residual'])

    A NUTS fit adds the posterior columns:

    >>> bvc.compare(reml=reml, mode=mode, posterior=post, ci_kind="hdi").methods
    ('REML', 'MAP', 'NUTS')
    """
    validate_ci_kind(ci_kind)
    validate_ci_prob(ci_prob)
    d = _design(reml, mode, posterior)
    names = list(d.fe_names) + list(d.component_names) + ["Residual"]
    kinds = ["fixed"] * d.k_fe + ["variance"] * (len(names) - d.k_fe)
    nan = np.nan
    cols = {c: np.full(len(names), nan) for c in COLUMNS[2:-1]}
    bnd = np.zeros(len(names), dtype=bool)
    methods = []
    label = "REML" if reml is None else frequentist_label(reml)
    if reml is not None:
        methods.append(label)
        est = {**reml.fe_params.to_dict(), **reml.vcomp.to_dict(), "Residual": reml.scale}
        se = {**reml.bse_fe.to_dict(), **reml.vcomp_se.to_dict(), "Residual": reml.scale_se}
        cols["reml"] = np.array([est[n] for n in names], dtype=float)
        cols["reml_se"] = np.array([se.get(n, nan) for n in names], dtype=float)
        at_zero = set(reml.boundary) | {c for c, v in reml.vcomp.items() if v == 0}
        bnd |= np.array([k == "variance" and n in at_zero for n, k in zip(names, kinds)])
    if mode is not None:
        methods.append("MAP")
        est = {**mode.fe_params.to_dict(), **mode.vcomp.to_dict(), "Residual": mode.scale}
        cols["mode"] = np.array([est[n] for n in names], dtype=float)
    if posterior is not None:
        methods.append(str(getattr(posterior, "method", "NUTS")))  # "NUTS (Laplace + IS)" says so
        s = posterior.param_summary(ci_prob=ci_prob, ci_kind=ci_kind)
        lo, hi = [c for c in s.columns if c.startswith(ci_kind)][:2]
        s = s.loc[names]
        for ours, theirs in (("mean", "mean"), ("median", "median"), ("lower", lo), ("upper", hi)):
            cols[ours] = s[theirs].to_numpy(dtype=float)
        var = posterior.posterior["var"]
        piles = {c: posterior_at_zero(var.sel(component=c).values) for c in d.component_names}
        bnd |= np.array([piles.get(n, False) for n in names])
    table = pd.DataFrame({"parameter": names, "kind": kinds, **cols, "boundary": bnd})[COLUMNS]
    vt, note, records = None, "", ()
    if verdicts is not None:
        vt = verdicts.table.copy()
        if list(vt.index) != list(d.component_names):
            raise ValueError(f"compare: the verdicts are for components {list(vt.index)}, the results for "
                             f"{list(d.component_names)}")
        note, records = str(verdicts).splitlines()[0], tuple(verdicts.to_dict())
    rows = {**random_effect_labels(d), "Residual": "Residual Var"}
    return Comparison(table, ci_prob=ci_prob, ci_kind=ci_kind, methods=tuple(methods),
                      header=tuple(_header(d, reml, posterior, methods, ci_prob, ci_kind)),
                      labels=tuple(rows.get(n, n) for n in names), _verdicts=vt,
                      verdict_note=note, verdict_records=records, freq_label=label)


_HEADER_KEEP = ("Model:", "No. Observations:", "No. Groups:", "Dependent Variable:")


def _header(d, reml, posterior, methods, ci_prob, ci_kind):
    h = [pair for pair in group_header(d) if pair[0] in _HEADER_KEEP] + [("Methods:", ", ".join(methods))]
    if reml is not None:
        h += [("Log-Likelihood:", float(reml.llf)), ("Converged:", "Yes" if reml.converged else "No")]
    if posterior is not None:
        h += [("Interval:", f"{ci_kind.upper()} {100 * ci_prob:g}%"),
              ("Chains x draws:", f"{posterior.chains} x {posterior.draws}"),
              ("Divergences:", int(posterior.divergences))]
    return h
