"""How the Bayesian model handles the random effects: the one marginalization rule.

``marginalize`` (the argument of :meth:`bayesvc.VCModel.sample`) resolves, once, to a
:class:`MarginalizationPlan` that model building, sampling, the compiled-model cache and prior
sweeps all read:

* ``"full"``: every random effect integrated out (the collapsed likelihood through the blocked
  kernel with its analytic gradient; scalar variance components only). Random effects are drawn
  exactly afterwards.
* ``"partial"``: only the largest scalar factor with one level per observation is integrated out,
  in closed form per level and in PyTensor alone (so JAX samplers run it; Lai, Domke & Sheldon
  2024); the other terms are sampled, centered where each level has at least
  :data:`CENTERED_MIN_OBS_PER_LEVEL` observations, non-centered otherwise.
* ``"none"``: the textbook non-centered model ``b = sd * z``, always used for correlated terms
  (LKJ prior).

Cost rule for ``True``/``"auto"``: ``"full"`` when the kernel's dense Schur complement (all terms
but the largest block-diagonal one) has at most :data:`FULL_COLLAPSE_MAX_DENSE` columns or is
diagonal (nested designs); otherwise (large crossed designs such as InstEval, where each gradient
would factor a dense ~1,000-level block) ``"partial"``.

>>> plan_marginalization(model.design, True, model.kernel)
MarginalizationPlan(kind='full', integrated_term=None, centered=(), reason='the dense block has 0 columns (<= 400)')
>>> plan_marginalization(slopes.design, True).kind
'none'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import fail
from ..kernel import Kernel

#: dense Schur complements up to this size are factorized per gradient (full collapse)
FULL_COLLAPSE_MAX_DENSE = 400

#: scalar terms with at least this many observations per level are sampled centered in the
#: partial / non-centered models: with informative data the centered form mixes better
CENTERED_MIN_OBS_PER_LEVEL = 20

KINDS = ("full", "partial", "none")


@dataclass(frozen=True)
class MarginalizationPlan:
    """The resolved marginalization (module docstring).

    Attributes
    ----------
    kind : {'full', 'partial', 'none'}
    integrated_term : int or None
        ``"partial"``: the index of the term integrated out.
    centered : tuple of int
        Terms sampled centered (``"partial"`` only; data-rich scalar terms).
    reason : str
        Why this kind was chosen (shown in summaries and warnings).
    """

    kind: str
    integrated_term: int | None
    centered: tuple[int, ...]
    reason: str

    @property
    def needs_kernel(self) -> bool:
        """Whether the model evaluates the blocked kernel (the full collapse)."""
        return self.kind == "full"

    @property
    def label(self) -> str:
        """``collapsed``, ``partly collapsed`` or ``non-centered`` (summary headers)."""
        return {"full": "collapsed", "partial": "partly collapsed", "none": "non-centered"}[self.kind]


def partial_term(design) -> int | None:
    """Index of the largest scalar term with one level per observation (integrated out by the
    partial collapse), or None."""
    cand = [i for i, t in enumerate(design.terms) if t.scalar and t.codes is not None]
    return max(cand, key=lambda i: design.terms[i].q) if cand else None


def _partial(design, reason: str) -> MarginalizationPlan:
    k = partial_term(design)
    centered = tuple(i for i, t in enumerate(design.terms)
                     if i != k and t.scalar and t.nobs_per_level >= CENTERED_MIN_OBS_PER_LEVEL)
    return MarginalizationPlan("partial", k, centered, reason)


def plan_marginalization(design, marginalize=True, kernel=None) -> MarginalizationPlan:
    """Resolve ``marginalize`` (True/'auto', 'full', 'partial', False/'none') for ``design``.

    ``kernel`` (the model's :class:`~bayesvc.kernel.Kernel`) is needed by the cost rule and built
    when not given.
    """
    if isinstance(marginalize, MarginalizationPlan):
        return marginalize
    if marginalize is False or marginalize == "none":
        return MarginalizationPlan("none", None, (), "requested (marginalize=False)")
    if marginalize is not True and marginalize not in ("auto", "full", "partial"):
        fail(f"marginalize must be True, False, 'auto', 'full' or 'partial', got {marginalize!r}")
    if marginalize == "partial":
        if design.weights is not None:
            fail("marginalize='partial' does not take prior weights yet: use marginalize='full' or False")
        if partial_term(design) is None:
            fail("marginalize='partial' needs a scalar random-intercept-like term to integrate out")
        return _partial(design, "requested (marginalize='partial')")
    if not design.scalar:
        if marginalize == "full":
            fail("marginalize='full' needs scalar variance components; this model has a correlated "
                 "term such as (1 + x|g): use marginalize=False")
        return MarginalizationPlan("none", None, (), "correlated random-effect terms are sampled "
                                   "non-centered (marginalize=False)")
    if marginalize == "full":
        return MarginalizationPlan("full", None, (), "requested (marginalize='full')")
    kernel = kernel or Kernel(design)
    if kernel.rz <= FULL_COLLAPSE_MAX_DENSE:
        return MarginalizationPlan("full", None, (),
                                   f"the dense block has {kernel.rz} columns (<= {FULL_COLLAPSE_MAX_DENSE})")
    if kernel.diag_S:
        return MarginalizationPlan("full", None, (), "nested design: the dense block is diagonal")
    if partial_term(design) is None or design.weights is not None:
        return MarginalizationPlan("full", None, (), "no term can be integrated out alone"
                                   if design.weights is None else "prior weights: full collapse")
    return _partial(design, f"the dense block has {kernel.rz} columns (> {FULL_COLLAPSE_MAX_DENSE}): "
                    "only the largest factor is integrated out")
