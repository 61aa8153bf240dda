"""The REML/ML fit with one residual SD per level of a factor: :class:`ResidualByResult`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .reml import REMLResult
from .summaries import reml_summary
from .table import Summary


@dataclass(frozen=True)
class ResidualByResult(REMLResult):
    """A :class:`~bayesvc.REMLResult` with one residual SD per level of ``residual_by``.

    ``scale`` is the residual variance of the reference level (the first level, sorted), as nlme's
    ``sigma``; ``residual_sd`` holds every level's SD (independent of the reference). Standard errors
    are those of the weighted fit at the estimated ratios.

    Examples
    --------
    >>> d = pd.DataFrame({"g": np.repeat(np.arange(10), 6), "h": np.tile(["a", "b"], 30)})
    >>> d["y"] = np.random.default_rng(0).normal(size=60) * np.where(d.h == "a", 1, 3) + d.g % 3
    >>> r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", d, residual_by="h").fit_reml()
    >>> list(r.variances.index), list(r.to_dict()["variances"])
    (['g', 'Residual[a]', 'Residual[b]'], ['g', 'Residual[a]', 'Residual[b]'])
    """

    residual_sd: pd.Series = field(default=None)
    residual_by: str = ""
    seconds: float = 0.0

    @property
    def residual_var(self) -> pd.Series:
        """Residual variance per level."""
        return (self.residual_sd**2).rename("residual_var")

    @property
    def variances(self) -> pd.Series:
        """Component variances plus one ``"Residual[level]"`` per level."""
        return pd.concat([self.vcomp, self.residual_var.rename(lambda k: f"Residual[{k}]")])

    def summary(self, alpha: float = 0.05) -> Summary:
        """The MixedLM layout with one ``Residual Var`` row per level of ``residual_by``."""
        s = reml_summary(self, alpha=alpha)
        params = s.tables["params"]
        extra = pd.DataFrame(np.nan, index=[f"Residual Var [{self.residual_by}={k}]" for k in self.residual_sd.index],
                             columns=params.columns)
        extra.iloc[:, 0] = self.residual_var.to_numpy()
        header = [h for h in s.header if h[0] != "Scale:"]
        header.insert(len(header) - 2, ("Residual by:", self.residual_by))
        return Summary(s.title, header, {"params": pd.concat([params, extra])}, s.float_formats,
                       notes=[f"One residual SD per level of {self.residual_by} (nlme varIdent)."])

    def to_dict(self) -> dict:
        """:meth:`REMLResult.to_dict` with ``variances`` holding one ``Residual[level]`` per level."""
        d = super().to_dict()
        d["variances"] = {k: float(v) for k, v in self.variances.items()}
        d["residual_by"] = self.residual_by
        return d
