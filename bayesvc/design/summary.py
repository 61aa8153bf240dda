"""A design known only through its cross-products (data beyond memory, :mod:`.outofcore`).

:class:`SummaryDesign` and :class:`SummaryTerm` answer what the kernel, the estimators and the
results ask of a :class:`~bayesvc.design.Design` (sizes, names, levels, and the
:class:`~bayesvc.design.SufficientStats` the kernel works on), and refuse in one line what needs
the rows (``y``, ``X``, ``Z``: fitted values, residuals, pointwise log-likelihoods, bootstrap).
:func:`assemble` builds one from merged partition statistics, with the in-memory checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp

from ..errors import RankDeficiencyWarning, fail, warn
from ..spec import ModelSpec
from . import checks
from .build import _component_names, label
from .crossprod import SufficientStats

ROWS_NEEDED = ("needs the rows, which a model fitted from out-of-core data (dask) does not hold; "
               "it has the design's cross-products only")


def needs_rows(what: str):
    """Fail with the one line saying that ``what`` needs the rows."""
    fail(f"{what} {ROWS_NEEDED}")


@dataclass(frozen=True, eq=False)
class SummaryTerm:
    """A random-effect term of a :class:`SummaryDesign`: levels and sizes, no ``Z``.

    Every row belongs to one level, so ``Z'Z`` is block diagonal; ``codes`` is ``None`` because
    the rows are not held (so no sampler plan integrates a term out row by row).
    """

    name: str
    factor: str
    coef_names: tuple[str, ...]
    component_names: tuple[str, ...]
    levels: np.ndarray
    counts: np.ndarray = field(repr=False)
    correlated: bool = False

    p = property(lambda self: len(self.coef_names), doc="Coefficients per level.")
    n_levels = property(lambda self: len(self.levels), doc="Number of levels.")
    q = property(lambda self: self.n_levels * self.p, doc="Random-effect columns.")
    scalar = property(lambda self: self.p == 1, doc="One coefficient per level.")
    block_diagonal = property(lambda self: True, doc="Z'Z is block diagonal (one level per row).")
    codes = property(lambda self: None, doc="Not held: the rows are not in memory.")
    nobs_per_level = property(lambda self: float(np.mean(self.counts)), doc="Mean rows per level.")

    @property
    def n_theta(self) -> int:
        """Covariance parameters: ``p (p + 1) / 2`` if correlated, else ``p``."""
        return self.p * (self.p + 1) // 2 if self.correlated and self.p > 1 else self.p

    @property
    def Z(self):
        needs_rows(f"the random-effect matrix of term {self.name!r}")

    @property
    def zvals(self):
        needs_rows(f"the model-matrix values of term {self.name!r}")


@dataclass(frozen=True, eq=False)
class SummaryDesign:
    """A design held as its sufficient statistics (see the module docstring).

    Examples
    --------
    >>> import dask.dataframe as dd
    >>> d = bvc.VCModel.from_formula("y ~ 1 + (1|g)", data=dd.from_pandas(df, npartitions=3)).design
    >>> d.nobs, d.fe_names, d.has_rows, d.stats.Arr.shape
    (48, ('Intercept',), False, (2, 2))
    >>> d.y
    Traceback (most recent call last):
    ...
    bayesvc.errors.SpecificationError: the response vector needs the rows, which a model fitted from out-of-core data (dask) does not hold; it has the design's cross-products only
    """

    stats: SufficientStats = field(repr=False)
    fe_names: tuple[str, ...]
    terms: tuple[SummaryTerm, ...]
    response_name: str
    group_counts: np.ndarray = field(repr=False)
    y_moments: tuple[float, float] = (0.0, 1.0)  # mean, root mean square
    x_rms: np.ndarray = field(default=None, repr=False)
    dropped_fe: tuple[str, ...] = ()
    n_dropped_missing: int = 0
    spec: ModelSpec | None = None
    M: sp.csr_matrix = field(default=None, repr=False)  # W'W of every column (outofcore.py)
    term_cols: tuple = field(default=(), repr=False)  # each term's columns of M, level-major
    xcols: np.ndarray = field(default=None, repr=False)  # X's columns of M
    groups = None
    has_rows = False
    # what an in-memory Design may carry and a summary design does not (Gaussian, unit weights)
    fixed_encoding = weights = offset = residual_codes = residual_levels = residual_name = None
    family = "gaussian"

    nobs = property(lambda self: self.stats.n, doc="Number of observations.")
    k_fe = property(lambda self: self.stats.p, doc="Number of fixed effects.")
    scalar = property(lambda self: all(t.scalar for t in self.terms), doc="Every term scalar.")

    @property
    def component_names(self) -> list[str]:
        """Variance-component names, in term order."""
        return [c for t in self.terms for c in t.component_names]

    def group_sizes(self) -> np.ndarray:
        """Rows per level of the first term's grouping factor."""
        return self.group_counts

    @property
    def y_sd(self) -> float:
        """Standard deviation of the response (ddof 0)."""
        mean, rms = self.y_moments
        return float(np.sqrt(max(rms**2 - mean**2, 0.0)))

    def drop_coefficient(self, i: int, j: int) -> "SummaryDesign":
        """The design without coefficient ``j`` of term ``i`` (the whole term when it has one):
        the null model of a test that the component is zero, cut out of the same ``W'W``."""
        t, cols = self.terms[i], list(self.term_cols)
        terms = list(self.terms)
        if t.p == 1:
            del terms[i], cols[i]
        else:
            keep = [k for k in range(t.p) if k != j]
            cols[i] = cols[i].reshape(t.n_levels, t.p)[:, keep].ravel()
            terms[i] = replace(t, coef_names=tuple(t.coef_names[k] for k in keep), correlated=False,
                               component_names=tuple(t.component_names[k] for k in keep))
        if not terms:
            needs_rows("a model without random effects")
        stats = _stats(terms, self.M, cols, list(self.xcols), self.nobs)
        return replace(self, stats=stats, terms=tuple(terms), term_cols=tuple(cols), spec=None)

    @property
    def y(self):
        needs_rows("the response vector")

    @property
    def X(self):
        needs_rows("the fixed-effects matrix")

    @property
    def Z(self):
        needs_rows("the random-effect matrix")


def _check_rows(part, plan, response: str) -> None:
    if part.na and plan.missing == "error":
        detail = ", ".join(f"{c!r} ({part.na[c]})" for c in plan.columns if c in part.na)
        fail(f"missing values (NaN or infinite) in column {detail}; pass missing='drop' to drop "
             f"{part.na_rows} incomplete rows")
    if part.na_rows:
        warn(f"dropped {part.na_rows} rows with missing values (NaN or infinite) in the model's columns")
    if part.n == 0:
        fail("data is empty: it has no rows")
    if part.nonfinite:
        fail(f"response {response!r} has {part.nonfinite} non-finite values")


def _offsets(plan, levels) -> np.ndarray:
    widths, fi = [], 0
    for kind, p in plan.blocks:
        widths.append(len(levels[fi]) * p if kind == "f" else 1)
        fi += kind == "f"
    return np.concatenate([[0], np.cumsum(widths)]).astype(int)


def _labels(ix) -> np.ndarray:
    if getattr(ix, "nlevels", 1) > 1:
        return np.asarray([":".join(label(v) for v in u) for u in ix], dtype=object)
    return np.asarray([label(v) for v in ix], dtype=object)


def _fixed_columns(plan, levels, offs) -> tuple[list[int], list[str]]:
    """Columns of ``W`` forming X (formulae's names and treatment coding)."""
    K = len(plan.terms)
    idx, names = ([int(offs[K])], ["Intercept"]) if plan.intercept else ([], [])
    full_done = plan.intercept
    for kind, j in plan.fixed_order:
        if kind == "c":
            idx.append(int(offs[K + 1 + j]))
            names.append(plan.covariates[j])
            continue
        lev = _labels(levels[K + j])
        if len(lev) < 2:
            fail(f"factor {plan.factors[j]!r} in the fixed part has {len(lev)} level; a factor needs at least 2")
        start = 0 if not full_done else 1  # the first factor without an intercept is coded in full
        full_done = True
        b = K + 1 + len(plan.covariates) + j
        idx += [int(offs[b]) + i for i in range(start, len(lev))]
        names += [f"{plan.factor_labels[j]}[{v}]" for v in lev[start:]]
    return idx, names


def drop_rank_deficient_gram(G: np.ndarray, names: list[str], tol: float = 1e-7) -> list[int]:
    """The columns :func:`~bayesvc.design.checks.drop_rank_deficient` keeps, from ``X'X`` alone:
    column ``j`` stays when its residual after projecting on the kept earlier columns is not
    negligible (the residual's squared norm is a Schur complement of ``X'X``)."""
    keep: list[int] = []
    for j in range(G.shape[0]):
        g0 = G[j, j]
        res = g0 - (G[j, keep] @ np.linalg.solve(G[np.ix_(keep, keep)], G[keep, j]) if keep else 0.0)
        if g0 > 0 and res > (tol**2) * g0:
            keep.append(j)
    if len(keep) < G.shape[0]:
        dropped = [names[j] for j in range(G.shape[0]) if j not in keep]
        warn(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
             f"column(s): {', '.join(dropped)}", RankDeficiencyWarning)
    return keep


def _terms(spec: ModelSpec, plan, part, offs) -> list[SummaryTerm]:
    out = []
    diag = part.M.diagonal()
    for k, (t, (_, icpt, zcols)) in enumerate(zip(spec.re_terms, plan.terms)):
        lev = _labels(part.levels[k])
        checks.check_levels(t.factor_name, len(lev), part.n)
        coefs = (["Intercept"] if icpt else []) + list(zcols)
        p = len(coefs)
        counts = (diag[offs[k]:offs[k + 1]:p] if icpt else np.full(len(lev), part.n / len(lev)))
        name = t.name or t.factor_name
        out.append(SummaryTerm(name, t.factor_name, tuple(coefs), _component_names(name, coefs), lev,
                               np.asarray(counts), correlated=t.correlated and p > 1))
    return out


def _stats(terms, M: sp.csr_matrix, term_cols, xcols: list[int], n: int) -> SufficientStats:
    """The blocks :func:`~bayesvc.design.sufficient_statistics` computes, cut out of ``W'W``
    (``term_cols``: each term's columns, level-major; y is the last column)."""
    first = max(range(len(terms)), key=lambda i: terms[i].q)
    rest = sorted((i for i in range(len(terms)) if i != first), key=lambda i: -terms[i].q)
    ix = np.concatenate([term_cols[i] for i in rest] + [np.asarray(xcols, int), [M.shape[0] - 1]]).astype(int)
    z1 = term_cols[first]
    Arr = M[ix][:, ix].toarray()
    C1 = M[ix][:, z1].tocsr()
    C1.eliminate_zeros()
    t = terms[first]
    p1 = t.p
    lv = np.arange(t.n_levels)
    A11 = np.zeros((t.n_levels, p1, p1))
    Z11 = M[z1][:, z1].tocsr()
    for a in range(p1):
        for b in range(p1):
            A11[:, a, b] = np.asarray(Z11[lv * p1 + a, lv * p1 + b]).ravel()
    q_rest = sum(terms[i].q for i in rest)
    return SufficientStats((first, *rest), first, A11, C1, Arr, q_rest, len(xcols), n)


def assemble(spec: ModelSpec, plan, part) -> SummaryDesign:
    """Merged partition statistics -> :class:`SummaryDesign`, with the in-memory checks
    (missing values, non-finite or constant response, one-level factors, rank deficiency)."""
    _check_rows(part, plan, spec.response)
    offs = _offsets(plan, part.levels)
    M, n = part.M.tocsr(), part.n
    yy = offs[-1] - 1
    one = offs[len(plan.terms)]
    mean, syy = M[one, yy] / n, M[yy, yy]
    if syy - n * mean**2 <= 1e-12 * syy:
        fail(f"response {spec.response!r} is constant: there is no variance to decompose")
    xcols, names = _fixed_columns(plan, part.levels, offs)
    keep = drop_rank_deficient_gram(M[xcols][:, xcols].toarray(), names)
    dropped = tuple(names[j] for j in range(len(names)) if j not in keep)
    xcols, names = [xcols[j] for j in keep], [names[j] for j in keep]
    terms = _terms(spec, plan, part, offs)
    term_cols = tuple(np.arange(offs[i], offs[i + 1]) for i in range(len(terms)))
    stats = _stats(terms, M, term_cols, xcols, n)
    x_rms = np.sqrt(M.diagonal()[xcols] / n)
    return SummaryDesign(stats, tuple(names), tuple(terms), spec.response, terms[0].counts,
                         (float(mean), float(np.sqrt(syy / n))), x_rms, dropped, part.na_rows, spec,
                         M, term_cols, np.asarray(xcols))


def summary_design(spec: ModelSpec, data, missing: str = "error", split_every: int | None = None) -> SummaryDesign:
    """Spec + a dask DataFrame or Parquet path/glob -> :class:`SummaryDesign`, in one dask pass."""
    from . import outofcore

    ddf = outofcore.as_dask_frame(data)
    plan = outofcore.make_plan(spec, ddf.dtypes, missing)
    part = outofcore.compute_stats(ddf, plan, split_every or outofcore.SPLIT_EVERY)
    return assemble(spec, plan, part)
