"""The result of a prior-scale sweep: a tidy table of posterior summaries per grid point, the
timings, and the plot of each component's posterior against its prior scale."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..validate import validate_choice
from ..views.plots import plot_sweep

#: the scales a sweep reports in: variances (the default, as every summary) or SDs
SCALES = ("variance", "sd")


@dataclass(frozen=True)
class SweepResult:
    """A prior-scale sweep.

    Attributes
    ----------
    table : DataFrame
        Tidy: one row per (family, swept component, scale, parameter) with columns ``family``,
        ``component`` (the component whose prior was varied), ``scale`` (multiple of the default
        scale), ``prior_scale`` (the prior's scale in the SD's units; Exponential: its mean),
        ``prior`` (repr), ``prior_median`` (of the swept prior, an SD), ``parameter``
        (``sd[<component>]``, ``sigma``, ``var[<component>]``, ``var[Residual]``, ``beta[<name>]``),
        ``mean``, ``median``, ``lower``, ``upper`` (equal-tailed ``ci_prob`` interval), ``mode``
        (posterior mode, :meth:`~bayesvc.VCModel.fit_map`), ``mcse_median``, ``r_hat``,
        ``ess_bulk``, ``divergences``.
    reml : Series
        REML SDs of the components and of the residual (``"Residual"``), the plot's reference.
    timings : DataFrame
        Per grid point: ``compile_s`` (0 when the compiled model was reused), ``sample_s``,
        ``map_s``, ``total_s``, ``worker`` (pid:thread).
    base_scales : dict
        Component -> the default (data-scaled) scale that ``scale`` multiplies.
    executor : str
        How the grid points ran.
    wall_seconds : float
    ci_prob : float
    scale : {'variance', 'sd'}
        What printing, :meth:`swept`, :meth:`change`, :meth:`to_records` and :meth:`plot` report by
        default; :meth:`in_scale` gives the other.

    Examples
    --------
    >>> sweep                      # prior_sweep(model, scales=(0.5, 1, 2), draws=200, ...)
    SweepResult(1 component(s) x 3 scale(s), families ['halfnormal'])
    >>> sweep.swept().scale.unique().tolist(), list(sweep.reml.index), sweep.cost["compilations"] <= 1
    ([0.5, 1.0, 2.0], ['g', 'Residual'], True)
    >>> list(sweep.change().index), sorted(sweep.to_records(columns=("component", "median"))[0])
    ([('halfnormal', 'g')], ['component', 'median'])

    Variances by default, SDs on request (the same draws: medians are squares of each other):

    >>> v, sd = sweep.swept(), sweep.in_scale("sd").swept()
    >>> v.parameter[0], sd.parameter[0], bool(np.allclose(v["median"], sd["median"] ** 2, rtol=1e-6))
    ('var[g]', 'sd[g]', True)
    """

    table: pd.DataFrame
    reml: pd.Series
    timings: pd.DataFrame
    base_scales: dict
    executor: str
    wall_seconds: float
    ci_prob: float = 0.95
    priors: object = field(default=None, repr=False)
    scale: str = "variance"

    def in_scale(self, scale: str) -> SweepResult:
        """The same sweep reporting ``scale`` (``"variance"`` or ``"sd"``)."""
        return replace(self, scale=validate_choice(scale, "scale", SCALES))

    def _rows(self, scale: str | None) -> pd.DataFrame:
        """The table without the rows of the other scale (fixed effects are in both)."""
        scale = validate_choice(scale or self.scale, "scale", SCALES)
        other = self.table.parameter.str.startswith("var[") == (scale == "sd")
        other &= ~self.table.parameter.str.startswith("beta[")
        return self.table[~other]

    @property
    def reml_values(self) -> pd.Series:
        """The REML reference in :attr:`scale`: variances (squares of :attr:`reml`) or SDs."""
        return self.reml**2 if self.scale == "variance" else self.reml

    @property
    def cost(self) -> dict:
        """First fit (compile + sample) against an extra grid point (sample only), in seconds.

        Keys: ``compilations``, ``compile_s``, ``first_fit_s``, ``extra_point_s``, ``wall_s``,
        ``extra_over_first``.

        """
        t = self.timings
        first = t[t.compile_s > 0]
        extra = t[t.compile_s == 0]
        out = {"compilations": len(first),
               "compile_s": float(first.compile_s.mean()) if len(first) else 0.0,
               "first_fit_s": float(first.total_s.mean()) if len(first) else float("nan"),
               "extra_point_s": float(extra.total_s.median()) if len(extra) else float("nan"),
               "wall_s": self.wall_seconds}
        out["extra_over_first"] = out["extra_point_s"] / out["first_fit_s"] if len(first) else float("nan")
        return out

    def swept(self, scale: str | None = None) -> pd.DataFrame:
        """Rows for each swept component's own variance (``var[<component>]``) or, with
        ``scale="sd"``, SD (what the plot shows); ``scale`` defaults to :attr:`scale`.

        """
        t = self.table
        prefix = "var[" if (scale or self.scale) == "variance" else "sd["
        return t[t.parameter == prefix + t.component + "]"].reset_index(drop=True)

    def change(self, scale: str | None = None) -> pd.Series:
        """Per swept component (and family): relative spread of its posterior median across the
        grid, ``(max - min) / median at the scale nearest 1``, of its variance (or, with
        ``scale="sd"``, its SD). Large: the prior drives it.

        """
        out = {}
        for (fam, comp), g in self.swept(scale).groupby(["family", "component"], sort=False):
            ref = g.iloc[int(np.argmin(np.abs(np.log(g.scale.to_numpy()))))]["median"]
            out[(fam, comp)] = float((g["median"].max() - g["median"].min()) / ref) if ref > 0 else np.inf
        return pd.Series(out, name="change")

    def plot(self, components=None, ax=None):
        """Each swept component's posterior median and interval (and mode) against its prior scale,
        with the REML estimate (dashed) and the prior's own median (dotted) as references
        (:func:`bayesvc.views.plots.plot_sweep`). Returns the matplotlib Figure."""
        return plot_sweep(self, components=components, ax=ax)

    def to_records(self, columns=("family", "component", "scale", "prior_scale", "parameter", "mean",
                                  "median", "lower", "upper", "mode"), scale: str | None = None) -> list[dict]:
        """The table's ``columns`` as a list of plain dicts (floats as Python floats; for JSON):
        the variance rows and fixed effects, or with ``scale="sd"`` the SD rows and fixed effects
        (``scale`` defaults to :attr:`scale`).

        """
        recs = self._rows(scale)[list(columns)].to_dict(orient="records")
        return [{k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in r.items()}
                for r in recs]

    def __repr__(self) -> str:
        s = self.swept()
        return (f"SweepResult({s.component.nunique()} component(s) x {s.scale.nunique()} scale(s), "
                f"families {list(dict.fromkeys(s.family))})")

    def __str__(self) -> str:
        cols = ["family", "parameter", "scale", "prior_scale", "median", "lower", "upper", "mode"]
        c = self.cost
        how = (f"{c['compilations']} compilation(s); first fit {c['first_fit_s']:.2f} s"
               if c["compilations"] else "compiled model reused")
        what = "variances" if self.scale == "variance" else "SDs"
        return (f"Prior sweep of the {what} ({self.executor}; {how}; extra grid point "
                f"{c['extra_point_s']:.2f} s; prior_scale is the scale of each SD prior)\n"
                + self.swept()[cols].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
