"""Data beyond memory: the design's cross-products computed by dask, one pass over the rows.

The collapsed likelihood needs the data only through the blocks of ``W'W`` with
``W = [Z_1 ... Z_K 1 x_1 ... D_1 ... y]`` (random-effect blocks, a constant, numeric covariates,
full dummy blocks of the fixed factors, the response). Each partition computes its own ``W'W``
with *local* level encodings (the levels it sees, sorted); partials are merged pairwise in a dask
tree (``split_every`` at a time) by taking the sorted union of the levels of every factor and
re-indexing the sparse sums, so level discovery and aggregation are one pass and every encoding
is consistent across partitions. Only the merged statistics reach the client: O(levels + pairs
of levels + dense block), never the rows. :mod:`bayesvc.design.summary` turns them into the
design the kernel consumes.

The merge is hand-written because dask's groupby aggregations would need one pass per pair of
factors and cannot return a sparse matrix; the tree itself is dask's (``dask.delayed``).

>>> plan = make_plan(bvc.parse_lme4("y ~ 1 + (1|g)"), df.dtypes, "error")
>>> part = partition_stats(df, plan)
>>> part.n, [len(ix) for ix in part.levels], part.M.shape   # 8 levels, then [1 y]
(48, [8], (10, 10))
>>> merged = merge([partition_stats(df.iloc[:20], plan), partition_stats(df.iloc[20:], plan)], plan.blocks)
>>> bool(np.allclose(merged.M.toarray(), part.M.toarray()))
True
"""

from __future__ import annotations

import contextlib
import glob
import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import fail
from ..spec import ModelSpec, _split_top
from .build import block_matrix

SPLIT_EVERY = 8  # partials merged per tree node


@dataclass(frozen=True)
class Plan:
    """What each partition computes (picklable: it travels to the workers).

    ``terms``: per random-effect term, the factor columns and the numeric columns of its model
    matrix (``intercept`` first when present); ``covariates`` and ``factors``: the fixed part's
    numeric columns and factor columns, in formula order (``fixed_order`` keeps the interleaving).
    """

    response: str
    columns: tuple[str, ...]
    terms: tuple[tuple[tuple[str, ...], bool, tuple[str, ...]], ...]
    intercept: bool
    covariates: tuple[str, ...]
    factors: tuple[str, ...]
    factor_labels: tuple[str, ...]
    fixed_order: tuple[tuple[str, int], ...]
    missing: str

    @property
    def term_p(self) -> list[int]:
        return [int(icpt) + len(cols) for _, icpt, cols in self.terms]

    @property
    def blocks(self) -> list[tuple[str, int]]:
        """Column blocks of ``W``: ``("f", p)`` one group of ``p`` columns per level of a factor,
        ``("s", 1)`` a single column; order: terms, constant, covariates, fixed factors, y."""
        return ([("f", p) for p in self.term_p] + [("s", 1)] * (1 + len(self.covariates))
                + [("f", 1)] * len(self.factors) + [("s", 1)])


@dataclass(frozen=True, eq=False)
class Partial:
    """The statistics of some rows: level indexes per factor block, ``W'W`` (sparse), row and
    missing-value counts."""

    levels: list
    M: sp.csr_matrix
    n: int
    na: dict
    na_rows: int
    nonfinite: int


def _is_numeric(dtype) -> bool:
    return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)


def _fixed_plan(spec: ModelSpec, dtypes):
    intercept, covs, facs, labels, order = True, [], [], [], []
    for part in _split_top(spec.fixed):
        tok = part.replace(" ", "")
        if tok in ("0", "-1"):
            intercept = False
        elif tok == "1" or not tok:
            continue
        elif tok.startswith("C(") and tok.endswith(")") and tok[2:-1] in dtypes.index:
            facs.append(tok[2:-1])
            labels.append(tok)
            order.append(("f", len(facs) - 1))
        elif tok in dtypes.index and _is_numeric(dtypes[tok]):
            covs.append(tok)
            order.append(("c", len(covs) - 1))
        elif tok in dtypes.index:
            facs.append(tok)
            labels.append(tok)
            order.append(("f", len(facs) - 1))
        else:
            fail(f"fixed-effect term {part.strip()!r}: out-of-core data (dask) takes numeric columns "
                 "and factors (column or C(column)) in the fixed part, not expressions")
    return intercept, covs, facs, labels, order


def _term_plan(t, dtypes):
    if t.within:
        fail("out-of-core data (dask) takes lme4-style formulas such as 'y ~ x + (1|g)', not "
             "statsmodels' vc_formula")
    icpt, cols = False, []
    for part in _split_top(t.expr):
        tok = part.replace(" ", "")
        if tok == "1":
            icpt = True
        elif tok in ("0", "-1", ""):
            continue
        elif tok in dtypes.index and _is_numeric(dtypes[tok]):
            cols.append(tok)
        else:
            fail(f"random-effect expression {t.expr!r}: out-of-core data (dask) takes an intercept "
                 f"and numeric columns, not {part.strip()!r}")
    return (tuple(t.factor), icpt, tuple(cols))


def make_plan(spec: ModelSpec, dtypes: pd.Series, missing: str) -> Plan:
    """Check ``spec`` against the column types (no rows read) and say what each partition computes."""
    if missing not in ("error", "drop"):
        fail(f"missing must be 'error' or 'drop', not {missing!r}")
    cols = spec.columns
    unknown = [c for c in cols if c not in dtypes.index]
    if unknown:
        fail(f"unknown column {unknown[0]!r} in formula {spec.formula!r}; data has columns "
             f"{list(map(str, dtypes.index))}")
    if not _is_numeric(dtypes[spec.response]):
        fail(f"response {spec.response!r} must be numeric, got dtype {dtypes[spec.response]}")
    intercept, covs, facs, labels, order = _fixed_plan(spec, dtypes)
    terms = tuple(_term_plan(t, dtypes) for t in spec.re_terms)
    return Plan(spec.response, tuple(cols), terms, intercept, tuple(covs), tuple(facs), tuple(labels),
                tuple(order), missing)


def _factorize(df: pd.DataFrame, cols: tuple[str, ...]):
    """Sorted level codes; an interaction's levels as a MultiIndex in lexicographic order (each
    column factorized alone, then their mixed-radix key: much faster than a MultiIndex's)."""
    parts = [pd.factorize(df[c], sort=True) for c in cols]
    if len(cols) == 1:
        return parts[0][0], pd.Index(parts[0][1])
    key = np.zeros(len(df), dtype=np.int64)
    for codes, uniq in parts:
        key = key * len(uniq) + codes
    codes, ukey = pd.factorize(key, sort=True)
    arrays = []
    for _, uniq in reversed(parts):
        arrays.append(pd.Index(uniq).take(ukey % len(uniq)))
        ukey = ukey // len(uniq)
    return codes, pd.MultiIndex.from_arrays(arrays[::-1], names=list(cols))


def partition_stats(df: pd.DataFrame, plan: Plan) -> Partial:
    """``W'W`` of one partition, with its own (sorted) level encodings."""
    df = df[list(plan.columns)]
    na = df.isna()
    num = df.select_dtypes(include="number").columns  # inf is missing too, as in memory (checks.py)
    if len(num):
        na[num] |= ~np.isfinite(df[num].to_numpy(dtype=float))
    counts = {c: int(v) for c, v in na.sum().items() if v}
    bad = na.any(axis=1).to_numpy()
    na_rows = int(bad.sum())
    if na_rows:
        df = df.loc[~bad]
    n = len(df)
    y = df[plan.response].to_numpy(dtype=float)
    nonfinite = int((~np.isfinite(y)).sum())
    one = np.ones((n, 1))
    levels, cols = [], []
    for fac, icpt, zcols in plan.terms:
        codes, uniq = _factorize(df, fac)
        E = np.column_stack(([one[:, 0]] if icpt else []) + [df[c].to_numpy(dtype=float) for c in zcols])
        levels.append(uniq)
        cols.append(block_matrix(codes, E.reshape(n, -1), len(uniq)))
    cols.append(sp.csc_matrix(one))
    cols += [sp.csc_matrix(df[c].to_numpy(dtype=float)[:, None]) for c in plan.covariates]
    for f in plan.factors:
        codes, uniq = _factorize(df, (f,))
        levels.append(uniq)
        cols.append(block_matrix(codes, one, len(uniq)))
    cols.append(sp.csc_matrix(np.where(np.isfinite(y), y, 0.0)[:, None]))
    W = sp.hstack(cols, format="csc")
    return Partial(levels, (W.T @ W).tocsr(), n, counts, na_rows, nonfinite)


def _colmap(blocks, positions, sizes) -> tuple[np.ndarray, int]:
    """Position in the merged ``W`` of every column of a partial's ``W`` (``positions``: each
    factor's local levels in the merged levels; ``sizes``: the merged level counts)."""
    widths, fi = [], 0
    for kind, p in blocks:
        widths.append(sizes[fi] * p if kind == "f" else 1)
        fi += kind == "f"
    offs = np.concatenate([[0], np.cumsum(widths)])
    out, fi = [], 0
    for b, (kind, p) in enumerate(blocks):
        if kind == "s":
            out.append(np.array([offs[b]]))
            continue
        out.append((offs[b] + positions[fi][:, None] * p + np.arange(p)[None, :]).ravel())
        fi += 1
    return np.concatenate(out).astype(np.int64), int(offs[-1])


def _union(indexes: list) -> tuple[pd.Index, list[np.ndarray]]:
    """Sorted union of level indexes and each one's positions in it (by :func:`_factorize` of
    their concatenated values: far faster than pairwise ``Index.union`` for interactions)."""
    frame = pd.concat([ix.to_frame(index=False) for ix in indexes], ignore_index=True)
    frame.columns = [str(c) for c in range(frame.shape[1])]
    codes, union = _factorize(frame, tuple(frame.columns))
    if union.nlevels > 1:
        union = union.set_names(indexes[0].names)
    ends = np.cumsum([len(ix) for ix in indexes])
    return union, np.split(codes, ends[:-1])


def merge(parts: list[Partial], blocks) -> Partial:
    """Sum partials (``blocks``: the plan's column blocks): sorted union of every factor's
    levels, sparse sums re-indexed to it."""
    parts = [p for p in parts if p is not None]
    if len(parts) == 1:
        return parts[0]
    unions = [_union([p.levels[j] for p in parts]) for j in range(len(parts[0].levels))]
    sizes = [len(u) for u, _ in unions]
    rows, colsl, vals = [], [], []
    size = 0
    for k, p in enumerate(parts):
        cmap, size = _colmap(blocks, [pos[k] for _, pos in unions], sizes)
        coo = p.M.tocoo()
        rows.append(cmap[coo.row])
        colsl.append(cmap[coo.col])
        vals.append(coo.data)
    M = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(colsl))), shape=(size, size))
    new_levels = [u for u, _ in unions]
    na: dict = {}
    for p in parts:
        for c, v in p.na.items():
            na[c] = na.get(c, 0) + v
    return Partial(new_levels, M, sum(p.n for p in parts), na, sum(p.na_rows for p in parts),
                   sum(p.nonfinite for p in parts))


def merge_with(blocks):
    """``merge`` bound to a plan's column blocks (a top-level callable, so dask can pickle it)."""
    return _Merger(tuple(blocks))


@dataclass(frozen=True)
class _Merger:
    blocks: tuple

    def __call__(self, *parts: Partial) -> Partial:
        return merge(list(parts), self.blocks)


def is_out_of_core(data) -> bool:
    """Whether ``data`` is a dask DataFrame or a path / glob / list of paths of Parquet files.

    >>> is_out_of_core("data/*.parquet"), is_out_of_core(df)
    (True, False)
    """
    if isinstance(data, (str, os.PathLike)):
        return True
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return True
    return type(data).__module__.split(".")[0] == "dask" and hasattr(data, "to_delayed")


def as_dask_frame(data):
    """A dask DataFrame from ``data`` (itself, or Parquet files read with dask)."""
    import dask.dataframe as dd

    if isinstance(data, (str, os.PathLike, list, tuple)):
        try:
            data_ = dd.read_parquet(data if not isinstance(data, os.PathLike) else os.fspath(data))
        except (OSError, ValueError) as err:
            fail(f"data: cannot read Parquet from {data!r}: {str(err).splitlines()[0]}")
        if len(data_.columns) == 0:
            fail(f"data: no Parquet files with columns at {data!r}")
        return data_
    return data


def compute_stats(ddf, plan: Plan, split_every: int = SPLIT_EVERY) -> Partial:
    """One dask pass: a :class:`Partial` per partition, merged in a tree on the workers; only the
    final merge comes back (dask's current scheduler: a distributed Client if one is active)."""
    import dask

    parts = ddf[list(plan.columns)].to_delayed()
    level = [dask.delayed(partition_stats)(p, plan) for p in parts]
    merger = merge_with(plan.blocks)
    while len(level) > 1:
        level = [dask.delayed(merger)(*level[i:i + split_every]) for i in range(0, len(level), split_every)]
    return level[0].compute()


def is_parquet_path(path: str) -> bool:
    """A Parquet file, a glob, or a directory of Parquet files (a path for the out-of-core path).

    >>> is_parquet_path("data/*.parquet"), is_parquet_path("data.csv")
    (True, False)
    """
    if any(ch in path for ch in "*?["):
        return True
    if os.path.isdir(path):
        return bool(glob.glob(os.path.join(path, "*.parquet")) or glob.glob(os.path.join(path, "*.pq")))
    return path.endswith((".parquet", ".pq"))


@contextlib.contextmanager
def dask_scheduler(address: str | None):
    """Run dask passes on the dask.distributed scheduler at ``address`` (dask's default if None)."""
    if address is None:
        yield
        return
    try:
        import dask
        from distributed import Client
    except ImportError:
        fail("a scheduler address needs dask.distributed: pip install 'bayesvc[dask]'")
    try:
        client = Client(address, timeout="10s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as err:
        fail(f"cannot connect to the dask scheduler at {address}: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    try:
        with dask.config.set(scheduler=client):
            yield
    finally:
        client.close()
