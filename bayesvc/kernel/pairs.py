"""``C1 diag(w) C1'`` for a scalar first term, precomputed once as a sparse mat-vec ``P w``.

``C1 = [Z_rest X y]' Z1`` (m x q1). Eliminating the first term level by level leaves, for every
theta, the m x m update ``C1 diag(w) C1'`` with ``w_l = lambda1^2 / D_l``. Row ``r`` of ``P`` holds,
for one position (i, j) of that matrix (i <= j), the products ``C1[i, l] C1[j, l]`` over the first
term's levels ``l``; each evaluation then costs one mat-vec instead of a sparse-sparse product.
When ``C1`` is small and dense (crossed designs) a dense product is cheaper and is kept instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class PairProducts:
    """The precomputed pair products of ``C1`` (module docstring).

    Attributes
    ----------
    dense : ndarray (m, q1) or None
        ``C1`` as a dense array when the dense product is cheaper; ``None`` otherwise.
    P : scipy.sparse.csr_matrix (pairs, q1)
        Pair products; ``P @ w`` gives the upper triangle of ``C1 diag(w) C1'`` at
        ``(pair_i, pair_j)``.
    pair_i, pair_j : ndarray
        Row and column of each pair (``pair_i <= pair_j``).
    Pz, pz_i, pz_j, pz_w : sparse matrix and arrays
        The pairs inside the rest random-effect block (both indices ``< rz``), with weight 2 off
        the diagonal (for sums over the symmetric matrix).
    offdiag_z : bool
        Whether any pair lies off the diagonal of the rest random-effect block.
    """

    dense: np.ndarray | None
    P: sp.csr_matrix
    pair_i: np.ndarray
    pair_j: np.ndarray
    Pz: sp.csr_matrix
    pz_i: np.ndarray
    pz_j: np.ndarray
    pz_w: np.ndarray
    offdiag_z: bool

    def inner(self, w: np.ndarray, m: int) -> np.ndarray:
        """``C1 diag(w) C1'`` (m x m)."""
        if self.dense is not None:
            return (self.dense * w) @ self.dense.T
        return scatter_symmetric(self.P @ w, self.pair_i, self.pair_j, m)

    def inner_z(self, w: np.ndarray, rz: int) -> np.ndarray:
        """The rest random-effect block of :meth:`inner` (rz x rz)."""
        if self.dense is not None:
            Cz = self.dense[:rz]
            return (Cz * w) @ Cz.T
        return scatter_symmetric(self.Pz @ w, self.pz_i, self.pz_j, rz)

    def weighted_trace_z(self, w: np.ndarray, M: np.ndarray, lv: np.ndarray) -> float:
        """``sum(M * (diag(lv) C1z diag(w) C1z' diag(lv)))`` for a symmetric rz x rz ``M``."""
        rz = M.shape[0]
        if self.dense is not None:
            Cz = self.dense[:rz]
            return float(np.sum(M * (((Cz * w) @ Cz.T) * np.outer(lv, lv))))
        vals = (self.Pz @ w) * lv[self.pz_i] * lv[self.pz_j]
        return float(np.sum(self.pz_w * vals * M[self.pz_i, self.pz_j]))

    def column_quadratic_z(self, M: np.ndarray, lv: np.ndarray) -> np.ndarray:
        """Per first-term level ``l``: ``c_l' diag(lv) M diag(lv) c_l`` with ``c_l`` column ``l`` of
        ``C1z`` (the diagonal of ``C1z' diag(lv) M diag(lv) C1z``, without forming it)."""
        rz = M.shape[0]
        if self.dense is not None:
            Cz = self.dense[:rz]
            return np.sum(((M * np.outer(lv, lv)) @ Cz) * Cz, axis=0)
        return self.Pz.T @ (self.pz_w * lv[self.pz_i] * lv[self.pz_j] * M[self.pz_i, self.pz_j])


def scatter_symmetric(vals, i, j, size) -> np.ndarray:
    """The symmetric ``size x size`` matrix with ``vals`` at ``(i, j)`` and ``(j, i)``."""
    out = np.zeros((size, size))
    out[i, j] = vals
    out[j, i] = vals
    return out


def count_pairs(C1: sp.csc_matrix) -> int:
    """Number of pairs ``k <= k'`` of nonzeros within one column of ``C1``, counted without listing
    them (``c (c + 1) / 2`` per column with ``c`` nonzeros)."""
    cnt = np.diff(C1.indptr).astype(np.int64)
    return int(np.sum(cnt * (cnt + 1) // 2))


#: most pairs listed (beyond this ``C1`` is kept dense: ~12 bytes a pair kept, far more while built)
MAX_PAIRS = 20_000_000
#: pairs listed at a time while building (bounds the temporaries)
CHUNK_PAIRS = 2_000_000


def use_dense(m: int, q1: int, n_pairs: int) -> bool:
    """Whether ``C1`` is kept dense: the dense product is cheaper (small, dense ``C1``: crossed
    designs), or there are more than :data:`MAX_PAIRS` pairs to list."""
    cheaper = m * q1 <= 4_000_000 and m * m * q1 <= 30 * n_pairs
    return cheaper or n_pairs > MAX_PAIRS


def _dense_products(C1: sp.csc_matrix, rz: int) -> PairProducts:
    """:class:`PairProducts` holding ``C1`` dense; the pair arrays are empty (never used)."""
    q1 = C1.shape[1]
    empty = np.zeros(0, dtype=np.int64)
    Pe = sp.csr_matrix((0, q1))
    # a rest-block pair off the diagonal: some first-term level meets two rest columns
    offdiag = bool(np.any(np.diff(C1[:rz].tocsc().indptr) > 1)) if rz else False
    return PairProducts(C1.toarray(), Pe, empty, empty, Pe, empty, empty, np.zeros(0), offdiag)


def _column_chunks(C1: sp.csc_matrix):
    """Ranges of columns with at most :data:`CHUNK_PAIRS` pairs each (one column at least)."""
    cnt = np.diff(C1.indptr).astype(np.int64)
    cum = np.cumsum(cnt * (cnt + 1) // 2)
    lo, done = 0, 0
    while lo < C1.shape[1]:
        hi = max(lo + 1, int(np.searchsorted(cum, done + CHUNK_PAIRS, side="right")))
        yield lo, hi
        done = int(cum[hi - 1])
        lo = hi


def _chunk_pairs(C1: sp.csc_matrix, lo: int, hi: int, m: int):
    """Keys ``i * m + j`` (``i <= j``), products and columns of the pairs in columns ``lo:hi``."""
    start, stop = C1.indptr[lo], C1.indptr[hi]
    col_of = np.repeat(np.arange(lo, hi), np.diff(C1.indptr[lo:hi + 1]))
    pos = np.arange(start, stop)
    cnt = C1.indptr[col_of + 1] - pos
    a = np.repeat(pos, cnt)
    b = a + (np.arange(a.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    ii, jj = C1.indices[a], C1.indices[b]
    key = np.minimum(ii, jj).astype(np.int64) * m + np.maximum(ii, jj)
    return key, C1.data[a] * C1.data[b], col_of[a - start] if a.size else col_of[:0]


def pair_products(C1: sp.csc_matrix, m: int, rz: int) -> PairProducts:
    """Build :class:`PairProducts` for ``C1`` (m x q1, CSC). The pairs are counted first, and
    listed (a chunk of columns at a time) only when they are kept: peak memory
    O(nnz(C1) + pairs kept + dense block), never all pairs of a dense crossed block."""
    q1 = C1.shape[1]
    C1 = C1.tocsc()
    C1.sort_indices()
    if use_dense(m, q1, count_pairs(C1)):
        return _dense_products(C1, rz)
    chunks = [_chunk_pairs(C1, lo, hi, m) for lo, hi in _column_chunks(C1)]
    key = np.concatenate([c[0] for c in chunks])
    vv = np.concatenate([c[1] for c in chunks])
    ll = np.concatenate([c[2] for c in chunks])
    del chunks
    if m * m <= 50_000_000:
        present = np.zeros(m * m, dtype=bool)
        present[key] = True
        uniq = np.flatnonzero(present)
        idx = (np.cumsum(present) - 1)[key]
    else:
        uniq, idx = np.unique(key, return_inverse=True)
    pair_i, pair_j = uniq // m, uniq % m
    P = sp.csr_matrix((vv, (idx, ll)), shape=(len(uniq), q1))
    zz = (pair_i < rz) & (pair_j < rz)
    pz_i, pz_j = pair_i[zz], pair_j[zz]
    return PairProducts(None, P, pair_i, pair_j, P[zz], pz_i, pz_j, np.where(pz_i == pz_j, 1.0, 2.0),
                        bool(np.any(pz_i != pz_j)))
