"""Predictions of a REML/ML fit: ``X beta`` plus, with ``random_effects``, the conditional modes
(BLUPs) of the random effects at each row's levels, as lme4's ``predict()`` computes them.

New levels (not seen in fitting) get the population value of that term (lme4's
``allow.new.levels = TRUE``: the term contributes zero) or are refused (``new_levels="error"``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..design.newdata import new_rows, random_part
from ..errors import fail


def term_modes(result) -> list[np.ndarray]:
    """Per term (design order) the conditional modes as (levels, p), from ``random_effects``.

    Examples
    --------
    >>> from bayesvc.results.predict import term_modes
    >>> [b.shape for b in term_modes(reml)]
    [(8, 1)]
    """
    tab = result.random_effects.table
    out = []
    for t in result.design.terms:
        cols = [tab.loc[tab.component == c].set_index("level")["mode"].reindex(t.levels).to_numpy()
                for c in t.component_names]
        out.append(np.column_stack(cols))
    return out


def reml_predict(result, newdata: pd.DataFrame | None = None, random_effects: bool = True,
                 new_levels: str = "population") -> pd.Series:
    """The fitted mean at ``newdata`` (``None``: the fitting data) of a
    :class:`~bayesvc.REMLResult`; see :meth:`~bayesvc.REMLResult.predict`.

    Examples
    --------
    >>> from bayesvc.results.predict import reml_predict
    >>> p = reml_predict(reml)
    >>> p.name, len(p), bool(np.allclose(reml_predict(reml, random_effects=False), reml.fe_params["Intercept"]))
    ('prediction', 48, True)
    """
    if new_levels == "sample":
        fail("new_levels='sample' draws new random effects: it needs posterior draws "
             "(PosteriorResult.predict); a REML fit takes 'population' or 'error'")
    if not isinstance(random_effects, (bool, np.bool_)):
        fail(f"random_effects must be True or False, got {random_effects!r}")
    rows = new_rows(result.design, newdata, new_levels)
    mean = rows.X @ result.fe_params.to_numpy()
    if random_effects:
        mean = mean + random_part(rows, term_modes(result))
    index = newdata.index if newdata is not None else pd.RangeIndex(result.design.nobs)
    return pd.Series(mean, index=index, name="prediction")
