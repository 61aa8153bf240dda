"""Exception and warning types shared by every layer, and :func:`fail`.

Every user-facing error is a :class:`SpecificationError` (a ``ValueError``) whose message names the
column or argument and what is wrong with it, so that the CLI can print it as one line and a
notebook user sees the cause rather than a traceback from deep inside a library.

This module imports nothing from bayesvc: it is the bottom layer.
"""

from __future__ import annotations

import os
import warnings
from typing import NoReturn

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class SpecificationError(ValueError):
    """Bad input: the message names the argument or column and what was wrong.

    A subclass of ``ValueError``, raised by every input check of bayesvc.

    Examples
    --------
    >>> try:
    ...     bvc.VCModel.from_formula("y ~ x + (1|g)", data=df)
    ... except bvc.SpecificationError as err:
    ...     print(err)
    unknown column 'x' in formula 'y ~ x + (1|g)'; data has columns ['g', 'y']
    """


class BoundaryFitWarning(UserWarning):
    """A variance component was estimated at zero (a singular fit).

    Examples
    --------
    >>> import warnings
    >>> flat = pd.DataFrame({"g": np.repeat(np.arange(6), 5), "y": np.tile([1.0, 2, 3, 5, 8], 6)})
    >>> with warnings.catch_warnings(record=True) as caught:   # identical group means
    ...     warnings.simplefilter("always")
    ...     r = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=flat).fit_reml()
    >>> [str(w.message) for w in caught if w.category is bvc.BoundaryFitWarning]
    ['boundary (singular) fit: variance of g estimated as 0']
    """


class RankDeficiencyWarning(UserWarning):
    """Fixed-effect columns were dropped because X is rank deficient.

    Examples
    --------
    >>> import warnings
    >>> d2 = df.assign(x=np.arange(48.0), x2=2 * np.arange(48.0))
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     m = bvc.VCModel.from_formula("y ~ x + x2 + (1|g)", data=d2)
    >>> [str(w.message) for w in caught if w.category is bvc.RankDeficiencyWarning]
    ['fixed-effect model matrix is rank deficient so dropping 1 column(s): x2']
    """


class SamplingWarning(UserWarning):
    """R-hat, ESS or divergences suggest the draws are not trustworthy.

    Issued by :meth:`bayesvc.VCModel.sample` after sampling (thresholds: R-hat above 1.01, bulk or
    tail ESS below 400, any divergent transition); the message says what to change. Turn it into
    an error for a scripted run:

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", bvc.SamplingWarning)
    ...     try:
    ...         model.sample(draws=20, tune=20, chains=2, random_seed=1, progressbar=False)
    ...     except bvc.SamplingWarning as w:
    ...         print(type(w).__name__, "increase" in str(w) or "run longer" in str(w))
    SamplingWarning True
    """


class SweepError(RuntimeError):
    """A grid point of a parallel sweep failed (a worker died, a fit raised): the message names the
    grid point (component, family, scale) and the cause; ``partial`` holds the result of the
    points that finished (``None`` when none did), ``failed`` the failed points' labels.

    Examples
    --------
    >>> err = SweepError("prior_sweep: grid point (component 'g', family 'halfnormal', scale 2) failed",
    ...                  partial=None, failed=[{"component": "g", "family": "halfnormal", "scale": 2.0}])
    >>> err.failed[0]["component"], err.partial is None
    ('g', True)
    """

    def __init__(self, message: str, partial=None, failed=()):
        super().__init__(message)
        self.partial, self.failed = partial, list(failed)


def fail(message: str) -> NoReturn:
    """Raise :class:`SpecificationError` with ``message`` (one line naming the argument)."""
    raise SpecificationError(message)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the user's line as the location: the first frame outside the bayesvc package."""
    warnings.warn(message, category, skip_file_prefixes=(_PACKAGE_DIR,))
