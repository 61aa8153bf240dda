"""How the Bayesian model handles the random effects: the one marginalization rule.

``marginalize`` (the argument of :meth:`bayesvc.VCModel.sample`) resolves, once, to a
:class:`MarginalizationPlan` that model building, sampling, the compiled-model cache and prior
sweeps all read:

* ``"full"``: every random effect integrated out (the collapsed likelihood through the blocked
  kernel with its analytic gradient; scalar variance components only). Random effects are drawn
  exactly afterwards.
* ``"partial"``: the largest scalar factor with one level per observation is integrated out,
  in closed form per level and in PyTensor alone (so JAX samplers run it; Lai, Domke & Sheldon
  2024), jointly with the small scalar factors (at most :data:`JOINT_MAX_LEVELS` levels in all,
  such as InstEval's ``dept:service``: a few levels with much data each are where a sampled SD
  mixes worst); by Woodbury's identity that costs one small dense Cholesky per gradient. The other
  terms are sampled, centered where each level has at least :data:`CENTERED_MIN_OBS_PER_LEVEL`
  observations, non-centered otherwise.
* ``"none"``: the textbook non-centered model ``b = sd * z``, always used for correlated terms
  (LKJ prior).

Cost rule for ``True``/``"auto"``: ``"full"`` when the kernel's dense Schur complement (all terms
but the largest block-diagonal one) has at most :data:`FULL_COLLAPSE_MAX_DENSE` columns or is
diagonal (nested designs); otherwise (large crossed designs such as InstEval, where each gradient
would factor a dense ~1,000-level block) ``"partial"``.

>>> plan_marginalization(model.design, True, model.kernel)
MarginalizationPlan(kind='full', integrated_term=None, centered=(), reason='the dense block has 0 columns (<= 400)', joint=(), fixed=False)
>>> plan_marginalization(slopes.design, True).kind
'none'
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import fail
from ..kernel import Kernel

#: dense Schur complements up to this size are factorized per gradient (full collapse)
FULL_COLLAPSE_MAX_DENSE = 400

#: the partial collapse integrates small scalar factors out with the largest one while their levels
#: add up to at most this many (the dense Woodbury block) and ``levels(largest) * JOINT_MAX_LEVELS**2``
#: stays under :data:`JOINT_MAX_WORK` (the block's cross-products with the largest factor)
JOINT_MAX_LEVELS = 60
JOINT_MAX_WORK = 5e8

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
        ``"partial"``: the index of the largest term integrated out.
    centered : tuple of int
        Terms sampled centered (``"partial"`` only; data-rich scalar terms).
    reason : str
        Why this kind was chosen (shown in summaries and warnings).
    joint : tuple of int
        ``"partial"``: the small scalar terms integrated out with ``integrated_term``.
    fixed : bool
        ``"partial"``: the fixed effects are integrated out with them too (when their prior is
        Normal; a flat prior keeps them sampled), and drawn exactly afterwards.
    """

    kind: str
    integrated_term: int | None
    centered: tuple[int, ...]
    reason: str
    joint: tuple[int, ...] = ()
    fixed: bool = False

    @property
    def integrated(self) -> tuple[int, ...]:
        """Every term integrated out by the partial collapse (none for the other kinds)."""
        return () if self.integrated_term is None else (self.integrated_term, *self.joint)

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


def joint_terms(design, k: int) -> tuple[int, ...]:
    """The small scalar terms integrated out with term ``k`` (smallest first, within
    :data:`JOINT_MAX_LEVELS` levels and :data:`JOINT_MAX_WORK`)."""
    cand = sorted((t.q, i) for i, t in enumerate(design.terms)
                  if i != k and t.scalar and t.codes is not None)
    out, m = [], 0
    for q, i in cand:
        if m + q > JOINT_MAX_LEVELS or design.terms[k].q * (m + q) ** 2 > JOINT_MAX_WORK:
            break
        out.append(i)
        m += q
    return tuple(sorted(out))


def _partial(design, reason: str) -> MarginalizationPlan:
    k = partial_term(design)
    joint = joint_terms(design, k)
    m = sum(design.terms[i].q for i in joint) + design.k_fe
    fixed = design.k_fe <= JOINT_MAX_LEVELS and design.terms[k].q * m**2 <= JOINT_MAX_WORK
    centered = tuple(i for i, t in enumerate(design.terms) if i != k and i not in joint
                     and t.scalar and t.nobs_per_level >= CENTERED_MIN_OBS_PER_LEVEL)
    if joint:
        names = ", ".join(design.terms[i].name for i in joint)
        reason = f"{reason}; with it the small factors {names}"
    if fixed:
        reason = f"{reason}; and the fixed effects, under a Normal prior"
    return MarginalizationPlan("partial", k, centered, reason, joint, fixed)


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
                    "the largest factor is integrated out")
