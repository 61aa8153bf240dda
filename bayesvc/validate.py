"""Validators for the arguments many functions share (one place, as arviz-stats' ``validate.py``).

Each returns the normalised value or raises :class:`~bayesvc.errors.SpecificationError` with one
line naming the argument. Nothing here imports numerical code beyond NumPy.

>>> validate_seed(7), validate_ci_prob(0.9), validate_ci_kind("hdi")
(7, 0.9, 'hdi')
>>> validate_seed(-1)
Traceback (most recent call last):
...
bayesvc.errors.SpecificationError: random_seed must be an integer in [0, 2**63), got -1
"""

from __future__ import annotations

import numpy as np

from .errors import fail

#: seeds must fit an unsigned 63-bit integer (nutpie takes a u64, NumPy and JAX an int64)
SEED_MAX = 2**63


def validate_seed(random_seed, name: str = "random_seed") -> int:
    """An integer seed in ``[0, 2**63)``: ``None`` draws a fresh one, a NumPy ``Generator`` one
    from its stream; anything else is refused before any model is compiled."""
    if random_seed is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] % (2**31))
    if isinstance(random_seed, np.random.Generator):
        return int(random_seed.integers(0, 2**31))
    if isinstance(random_seed, (bool, np.bool_)) or not isinstance(random_seed, (int, np.integer)):
        fail(f"{name} must be an integer in [0, 2**63) or None, got {random_seed!r}")
    if not 0 <= int(random_seed) < SEED_MAX:
        fail(f"{name} must be an integer in [0, 2**63), got {random_seed!r}")
    return int(random_seed)


def validate_count(value, name: str, minimum: int = 1) -> int:
    """A whole number of at least ``minimum`` (draws, chains: 1; tune: 0)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        fail(f"{name} must be {what}, got {value!r}")
    return int(value)


def validate_sampling(draws, tune, chains, prefix: str = "") -> tuple[int, int, int]:
    """``draws >= 1``, ``tune >= 0``, ``chains >= 1``."""
    return (validate_count(draws, f"{prefix}draws"), validate_count(tune, f"{prefix}tune", 0),
            validate_count(chains, f"{prefix}chains"))


def validate_ci_prob(ci_prob, name: str = "ci_prob") -> float:
    """A probability strictly between 0 and 1."""
    try:
        ok = 0 < float(ci_prob) < 1
    except (TypeError, ValueError):
        ok = False
    if not ok:
        fail(f"{name} must lie in (0, 1), got {ci_prob!r}")
    return float(ci_prob)


def validate_ci_kind(ci_kind) -> str:
    """``'eti'`` (equal-tailed) or ``'hdi'`` (highest density)."""
    if ci_kind not in ("eti", "hdi"):
        fail(f"ci_kind must be 'eti' or 'hdi', got {ci_kind!r}")
    return ci_kind


def validate_alpha(alpha) -> float:
    """A significance level in (0, 1): intervals at level ``1 - alpha``."""
    return validate_ci_prob(alpha, "alpha")


def validate_choice(value, name: str, choices) -> str:
    """One of ``choices``."""
    if value not in choices:
        fail(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value
