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


def pair_products(C1: sp.csc_matrix, m: int, rz: int) -> PairProducts:
    """Build :class:`PairProducts` for ``C1`` (m x q1, CSC)."""
    q1 = C1.shape[1]
    # every pair (k, k') of nonzeros k <= k' within one column, without a Python loop
    nnz = C1.nnz
    col_of = np.repeat(np.arange(q1), np.diff(C1.indptr))
    cnt = C1.indptr[col_of + 1] - np.arange(nnz)
    a = np.repeat(np.arange(nnz), cnt)
    b = a + (np.arange(a.size) - np.repeat(np.cumsum(cnt) - cnt, cnt))
    ii, jj = C1.indices[a], C1.indices[b]
    vv, ll = C1.data[a] * C1.data[b], col_of[a]
    # dense products win when C1 is small and dense (crossed designs); pairs when sparse (nested)
    dense = C1.toarray() if (m * q1 <= 4_000_000 and m * m * q1 <= 30 * len(ii)) else None
    lo, hi = np.minimum(ii, jj), np.maximum(ii, jj)
    key = lo.astype(np.int64) * m + hi
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
    return PairProducts(dense, P, pair_i, pair_j, P[zz], pz_i, pz_j, np.where(pz_i == pz_j, 1.0, 2.0),
                        bool(np.any(pz_i != pz_j)))
