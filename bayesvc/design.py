"""Model description + data -> :class:`Design`.

A design holds the response, the fixed-effects matrix with names, and one
:class:`RandomTerm` per random-effect term: its level labels, a sparse ``Z`` block (never a dense
N x q matrix) and the names of its variance components. Sufficient statistics
(``[Z X y]'[Z X y]`` in blocks) are computed once, by :func:`sufficient_statistics`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .spec import ModelSpec


@dataclass(frozen=True, eq=False)
class RandomTerm:
    """One random-effect term, built on data.

    Attributes
    ----------
    name : str
        Label of the term (grouping factor, or the ``vc_formula`` key).
    factor : str
        Name of the grouping factor (``"g1:g2"`` for an interaction).
    coef_names : tuple of str
        Columns of the term's model matrix (``("Intercept", "Days")``).
    component_names : tuple of str
        One variance-component name per coefficient (``("Subject", "Days|Subject")``).
    levels : ndarray
        Level labels, in column order of ``Z``.
    Z : scipy.sparse.csc_matrix
        ``n x (n_levels * p)`` block, level-major (all coefficients of level 0 first).
    correlated : bool
        Whether the ``p`` coefficients share an unstructured covariance (``p > 1`` only).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
    >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
    >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
    >>> t.name, t.coef_names, t.component_names, t.correlated
    ('g', ('Intercept', 'x'), ('g', 'x|g'), True)
    >>> list(t.levels), t.Z.shape
    (['a', 'b', 'c'], (12, 6))
    """

    name: str
    factor: str
    coef_names: tuple[str, ...]
    component_names: tuple[str, ...]
    levels: np.ndarray
    Z: sp.csc_matrix = field(repr=False)
    correlated: bool = False

    @property
    def p(self) -> int:
        """Number of coefficients per level (columns of the term's model matrix).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.p
        2
        """
        return len(self.coef_names)

    @property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.n_levels
        3
        """
        return len(self.levels)

    @property
    def q(self) -> int:
        """Number of columns of ``Z`` (``n_levels * p``).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.q
        6
        """
        return self.Z.shape[1]

    @cached_property
    def zvals(self) -> np.ndarray:
        """The term's model-matrix values per observation, ``(n, p)`` (column ``j`` of
        ``Z`` restricted to each row's level); meaningful when :attr:`codes` is not None."""
        zr = self.Z.tocsr()
        out = np.zeros((zr.shape[0], self.p))
        rows = np.repeat(np.arange(zr.shape[0]), np.diff(zr.indptr))
        out[rows, zr.indices % self.p] = zr.data
        return out

    @property
    def nobs_per_level(self) -> float:
        """Mean number of observations with a nonzero z value per level.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.nobs_per_level        # the slope column is zero where x == 0
        3.5
        """
        return self.Z.nnz / self.p / max(self.n_levels, 1)

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters: ``p (p + 1) / 2`` if correlated, else ``p``.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.n_theta
        3
        """
        p = self.p
        return p * (p + 1) // 2 if self.correlated and p > 1 else p

    @cached_property
    def codes(self) -> np.ndarray | None:
        """Level index per observation when every row belongs to one level, else ``None``.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.codes
        array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
        """
        Zr = self.Z.tocsr()
        nnz_rows = np.diff(Zr.indptr)
        if np.any(nnz_rows > self.p):
            return None
        cols = np.full(Zr.shape[0], -1)
        has = nnz_rows > 0
        cols[has] = Zr.indices[Zr.indptr[:-1][has]]
        lev = cols // self.p
        # every nonzero of a row must sit in the same level
        row_of = np.repeat(np.arange(Zr.shape[0]), nnz_rows)
        if np.any(Zr.indices // self.p != lev[row_of]):
            return None
        return lev

    @cached_property
    def block_diagonal(self) -> bool:
        """True when Z'Z is block diagonal with one p x p block per level.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> t = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design.terms[0]
        >>> t.block_diagonal
        True
        """
        return self.codes is not None


@dataclass(frozen=True, eq=False)
class Design:
    """Everything the estimators need, built once from a spec and data.

    Attributes
    ----------
    y : ndarray (n,)
    X : ndarray (n, p)
    fe_names : tuple of str
    terms : tuple of RandomTerm
    response_name : str
    groups : ndarray or None
        The primary grouping labels (statsmodels ``groups``; for lme4 formulas the first bar's
        grouping factor), used for the group-size lines of the summary.
    dropped_fe : tuple of str
        Fixed-effect columns dropped for rank deficiency.
    n_dropped_missing : int
        Rows dropped under ``missing='drop'``.
    spec : ModelSpec or None
        The specification the design was built from (``None`` for arrays).

    Examples
    --------
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
    >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
    >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
    >>> d.nobs, d.fe_names, d.component_names
    (12, ('Intercept', 'x'), ['g', 'x|g'])
    >>> d.X.shape, d.Z.shape
    ((12, 2), (12, 6))
    """

    y: np.ndarray
    X: np.ndarray
    fe_names: tuple[str, ...]
    terms: tuple[RandomTerm, ...]
    response_name: str = "y"
    groups: np.ndarray | None = None
    dropped_fe: tuple[str, ...] = ()
    n_dropped_missing: int = 0
    spec: ModelSpec | None = None

    @property
    def nobs(self) -> int:
        """Number of observations.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
        >>> d.nobs
        12
        """
        return len(self.y)

    @property
    def k_fe(self) -> int:
        """Number of fixed effects (columns of ``X``).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
        >>> d.k_fe
        2
        """
        return self.X.shape[1]

    @property
    def component_names(self) -> list[str]:
        """Names of the variance components (one per coefficient of each term), in term order.

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
        >>> d.component_names
        ['g', 'x|g']
        """
        return [c for t in self.terms for c in t.component_names]

    @cached_property
    def Z(self) -> sp.csc_matrix:
        """All random-effect columns, terms in order (sparse).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
        >>> d.Z.shape, d.Z.format
        ((12, 6), 'csc')
        """
        return sp.hstack([t.Z for t in self.terms], format="csc")

    def group_sizes(self) -> np.ndarray:
        """Number of observations per level of ``groups`` (one group when there are none).

        Examples
        --------
        >>> import numpy as np, pandas as pd, bayesvc as bvc
        >>> df = pd.DataFrame({"g": np.repeat(["a", "b", "c"], 4), "x": np.tile([0.0, 1, 2, 3], 3)})
        >>> df["y"] = np.repeat([1.0, 4, 2], 4) + df.x + np.tile([0.0, 1, -1, 0.5], 3)
        >>> d = bvc.VCModel.from_formula("y ~ x + (1 + x|g)", data=df).design
        >>> d.group_sizes()
        array([4, 4, 4])
        """
        g = self.groups if self.groups is not None else np.zeros(self.nobs)
        return pd.Series(g).value_counts().to_numpy()


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
    >>> import numpy as np, pandas as pd, bayesvc as bvc
    >>> df = pd.DataFrame({"a": np.repeat(np.arange(6), 4), "b": np.tile(np.arange(4), 6)})
    >>> df["y"] = np.arange(24.0) % 7
    >>> st = bvc.sufficient_statistics(bvc.VCModel.from_formula("y ~ 1 + (1|a) + (1|b)", data=df).design)
    >>> st.order, st.first          # term a (6 levels) kept block diagonal, b in the dense block
    ((0, 1), 0)
    >>> st.A11.shape, st.Arr.shape  # Arr: [Z_b X y]'[Z_b X y]
    ((6, 1, 1), (6, 6))
    """
    terms = design.terms
    cand = [i for i, t in enumerate(terms) if t.block_diagonal]
    first = max(cand, key=lambda i: terms[i].q) if cand else None
    rest = sorted((i for i in range(len(terms)) if i != first), key=lambda i: -terms[i].q)
    order = ((first,) if first is not None else ()) + tuple(rest)
    n, p = design.X.shape
    Zr = sp.hstack([terms[i].Z for i in rest] + [sp.csc_matrix((n, 0))], format="csc")
    W = sp.hstack([Zr, sp.csc_matrix(design.X), sp.csc_matrix(design.y[:, None])], format="csc")
    Arr = (W.T @ W).toarray()
    A11 = C1 = None
    if first is not None:
        t = terms[first]
        Z1 = t.Z.tocsc()
        C1 = (W.T @ Z1).tocsr()
        # diagonal p1 x p1 blocks of Z1'Z1, from level codes and z values
        codes, zvals = t.codes, t.zvals
        A11 = np.zeros((t.n_levels, t.p, t.p))
        ok = codes >= 0
        np.add.at(A11, codes[ok], zvals[ok, :, None] * zvals[ok, None, :])
    return SufficientStats(order, first, A11, C1, Arr, Zr.shape[1], p, n)


# the builders live in bayesvc.builders; re-exported here, where users look for them
from .builders import build_design, design_from_arrays  # noqa: E402,F401
