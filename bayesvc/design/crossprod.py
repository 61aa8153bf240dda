"""Sufficient statistics of a design: the blocks of ``[Z X y]'[Z X y]`` (MixedModels.jl's ``A``).

The collapsed likelihood needs the data only through these cross-products; they are computed once
per design, here, and the kernel (:mod:`bayesvc.kernel`) works on them alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .design import Design


@dataclass(frozen=True, eq=False)
class SufficientStats:
    """Blocks of ``[Z X y]'[Z X y]`` with the terms in the order ``order``.

    ``first`` is the term kept block diagonal (the largest such term) or ``None``; the
    remaining terms, X and y form the dense "rest" block of size ``m = q_rest + p + 1``.
    """

    order: tuple[int, ...]
    first: int | None
    A11: np.ndarray | None  # (L1, p1, p1) diagonal blocks of Z1'Z1
    C1: sp.csr_matrix | None  # m x q1: [Z_rest X y]' Z1
    Arr: np.ndarray  # m x m: [Z_rest X y]'[Z_rest X y]
    q_rest: int
    p: int
    n: int


def sufficient_statistics(design: Design) -> SufficientStats:
    """Compute the blocked cross-products once (MixedModels.jl's ``A`` blocks).

    The term with the most columns among those whose Z'Z is block diagonal goes first so that
    its block stays (block) diagonal; the others follow by decreasing size.

    Parameters
    ----------
    design : Design

    Returns
    -------
    SufficientStats

    Examples
    --------
    >>> grid = pd.DataFrame({"a": np.repeat(np.arange(6), 4), "b": np.tile(np.arange(4), 6)})
    >>> grid["y"] = np.arange(24.0) % 7
    >>> st = bvc.sufficient_statistics(bvc.VCModel.from_formula("y ~ 1 + (1|a) + (1|b)", data=grid).design)
    >>> st.order, st.first          # term a (6 levels) kept block diagonal, b in the dense block
    ((0, 1), 0)
    >>> st.A11.shape, st.Arr.shape  # Arr: [Z_b X y]'[Z_b X y]
    ((6, 1, 1), (6, 6))
    """
    if getattr(design, "stats", None) is not None:  # computed out of core (design/summary.py)
        return design.stats
    terms = design.terms
    cand = [i for i, t in enumerate(terms) if t.block_diagonal]
    first = max(cand, key=lambda i: terms[i].q) if cand else None
    rest = sorted((i for i in range(len(terms)) if i != first), key=lambda i: -terms[i].q)
    order = ((first,) if first is not None else ()) + tuple(rest)
    n, p = design.X.shape
    Zr = sp.hstack([terms[i].Z for i in rest] + [sp.csc_matrix((n, 0))], format="csc")
    W = sp.hstack([Zr, sp.csc_matrix(design.X), sp.csc_matrix(design.y[:, None])], format="csc")
    rw = None
    if design.weights is not None:
        # prior weights: Var(e_i) = sigma^2 / w_i, i.e. every row of [Z X y] times sqrt(w_i)
        rw = np.sqrt(design.weights)
        W = sp.diags(rw) @ W
    Arr = (W.T @ W).toarray()
    A11 = C1 = None
    if first is not None:
        t = terms[first]
        Z1 = t.Z.tocsc() if rw is None else (sp.diags(rw) @ t.Z).tocsc()
        C1 = (W.T @ Z1).tocsr()
        # diagonal p1 x p1 blocks of Z1'Z1, from level codes and z values
        codes, zvals = t.codes, t.zvals if rw is None else t.zvals * rw[:, None]
        A11 = np.zeros((t.n_levels, t.p, t.p))
        ok = codes >= 0
        np.add.at(A11, codes[ok], zvals[ok, :, None] * zvals[ok, None, :])
    return SufficientStats(order, first, A11, C1, Arr, Zr.shape[1], p, n)
