"""The design: what the estimators need from a model and its data.

A :class:`Design` holds the response, the fixed-effects matrix with names, and one
:class:`RandomTerm` per random-effect term: its level labels, a sparse ``Z`` block (never a dense
N x q matrix) and the names of its variance components.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..spec import ModelSpec


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
    encoding : object
        How the term's model matrix is built on new data (formulae's matrix of the term's
        expression; ``None`` for an intercept ``1`` or a term new data cannot rebuild): read by
        :mod:`bayesvc.design.newdata`.

    Examples
    --------
    >>> t = slopes.design.terms[0]          # (1 + x | g) on 3 groups of 4
    >>> t.name, t.coef_names, t.component_names, t.correlated
    ('g', ('Intercept', 'x'), ('g', 'x|g'), True)
    >>> list(t.levels), t.Z.shape, (t.p, t.n_levels, t.q, t.n_theta)
    (['a', 'b', 'c'], (12, 6), (2, 3, 6, 3))
    >>> t.codes, t.block_diagonal, t.nobs_per_level  # the slope column is zero where x == 0
    (array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]), True, 3.5)
    """

    name: str
    factor: str
    coef_names: tuple[str, ...]
    component_names: tuple[str, ...]
    levels: np.ndarray
    Z: sp.csc_matrix = field(repr=False)
    correlated: bool = False
    encoding: object = field(default=None, repr=False)

    def __getstate__(self) -> dict:
        # formulae's term matrix holds modules; pickled without it, as Design.fixed_encoding
        state = dict(self.__dict__)
        if state.get("encoding") is not None:
            state["encoding"] = "not pickled"
        return state

    @property
    def p(self) -> int:
        """Number of coefficients per level (columns of the term's model matrix)."""
        return len(self.coef_names)

    @property
    def n_levels(self) -> int:
        """Number of levels of the grouping factor."""
        return len(self.levels)

    @property
    def q(self) -> int:
        """Number of columns of ``Z`` (``n_levels * p``)."""
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
        """Mean number of observations with a nonzero z value per level."""
        return self.Z.nnz / self.p / max(self.n_levels, 1)

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters: ``p (p + 1) / 2`` if correlated, else ``p``."""
        p = self.p
        return p * (p + 1) // 2 if self.correlated and p > 1 else p

    @cached_property
    def codes(self) -> np.ndarray | None:
        """Level index per observation when every row belongs to one level, else ``None``."""
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
        """True when Z'Z is block diagonal with one p x p block per level."""
        return self.codes is not None

    @property
    def scalar(self) -> bool:
        """One coefficient per level (a variance component such as ``(1|g)``)."""
        return self.p == 1


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
    fixed_encoding : object
        formulae's fixed-effects matrix, which rebuilds ``X`` on new data with the fit's encodings
        (``None`` for arrays); read by :mod:`bayesvc.design.newdata`.
    weights : ndarray (n,) or None
        Prior weights (residual variance ``sigma^2 / w_i``, as lme4's ``weights=``); ``None``
        for unit weights. For binomial responses, the number of trials.
    family : {'gaussian', 'binomial', 'poisson'}
        The response distribution (binomial: ``y`` holds proportions; logit and log links).
    offset : ndarray (n,) or None
        Added to the linear predictor of a GLMM.
    residual_codes, residual_levels, residual_name :
        ``residual_by``: the level of every observation, the level labels (sorted; the first is
        the reference) and the factor's name; one residual SD per level (nlme's ``varIdent``).

    Examples
    --------
    >>> d = slopes.design
    >>> d.nobs, d.k_fe, d.fe_names, d.component_names
    (12, 2, ('Intercept', 'x'), ['g', 'x|g'])
    >>> d.X.shape, d.Z.shape, d.Z.format, d.group_sizes(), d.scalar
    ((12, 2), (12, 6), 'csc', array([4, 4, 4]), False)
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
    fixed_encoding: object = field(default=None, repr=False)
    weights: np.ndarray | None = None
    family: str = "gaussian"
    offset: np.ndarray | None = None
    residual_codes: np.ndarray | None = None
    residual_levels: tuple[str, ...] | None = None
    residual_name: str | None = None

    def __getstate__(self) -> dict:
        # formulae's design matrix holds its evaluation environment (modules), which pickle cannot
        # carry: a design sent to a worker process (process or dask sweeps, bootstrap) or saved
        # travels without it, and new-data prediction says so (bayesvc.design.newdata)
        state = dict(self.__dict__)
        if state.get("fixed_encoding") is not None:
            state["fixed_encoding"] = "not pickled"
        return state

    @property
    def nobs(self) -> int:
        """Number of observations."""
        return len(self.y)

    @property
    def k_fe(self) -> int:
        """Number of fixed effects (columns of ``X``)."""
        return self.X.shape[1]

    @property
    def component_names(self) -> list[str]:
        """Names of the variance components (one per coefficient of each term), in term order."""
        return [c for t in self.terms for c in t.component_names]

    @property
    def scalar(self) -> bool:
        """Every term is a scalar variance component (no random slopes in one term): the designs
        with an analytic gradient and the full collapse."""
        return all(t.scalar for t in self.terms)

    @cached_property
    def Z(self) -> sp.csc_matrix:
        """All random-effect columns, terms in order (sparse)."""
        return sp.hstack([t.Z for t in self.terms], format="csc")

    def group_sizes(self) -> np.ndarray:
        """Number of observations per level of ``groups`` (one group when there are none)."""
        g = self.groups if self.groups is not None else np.zeros(self.nobs)
        return pd.Series(g).value_counts().to_numpy()
