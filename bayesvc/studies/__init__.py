"""Stage 7: studies that fit many times and summarise: prior sensitivity by power-scaling
(:mod:`~.sensitivity`) and prior-scale sweeps (:mod:`~.sweep`)."""

from .sensitivity import SensitivityResult, sensitivity
from .sweep import prior_sweep, sample_cached
from .sweep_result import SweepResult
from .verdict import ComponentVerdicts, component_verdicts

__all__ = ["sensitivity", "SensitivityResult", "prior_sweep", "SweepResult", "sample_cached",
           "component_verdicts", "ComponentVerdicts"]
