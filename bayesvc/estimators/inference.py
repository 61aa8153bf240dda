"""The inference a REML/ML result asks its estimator for: profile and Wald intervals
(:mod:`~bayesvc.estimators.profile`) and tests of a component (:mod:`~bayesvc.estimators.lrt`).

Results are records and sit below the estimators, so a result cannot import them. The estimator
that builds a :class:`~bayesvc.REMLResult` hands it a :class:`FitInference` holding the fit's
kernel; :meth:`~bayesvc.REMLResult.conf_int` and :meth:`~bayesvc.REMLResult.test_component` call it.
Profiles are deterministic, so each ``(method, level)`` is computed once per result.

>>> type(reml.inference).__name__, reml.inference.kernel is model.kernel
('FitInference', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kernel import Kernel


@dataclass(frozen=True, eq=False)
class FitInference:
    """The estimator's inference for one fit, reusing its kernel."""

    kernel: Kernel
    _intervals: dict = field(default_factory=dict, repr=False)

    def conf_int(self, result, method: str = "profile", level: float = 0.95):
        """:func:`bayesvc.estimators.profile.conf_int` (cached per ``(method, level)``)."""
        from .profile import conf_int

        key = (method, level)
        if key not in self._intervals:
            self._intervals[key] = conf_int(result, method=method, level=level, kernel=self.kernel)
        return self._intervals[key]

    def test_component(self, result, name: str, **kwargs):
        """:func:`bayesvc.estimators.lrt.test_component`."""
        from .lrt import test_component

        return test_component(result, name, kernel=self.kernel, **kwargs)
