"""The factorization of ``A(theta) = Lambda'Z'Z Lambda + I`` augmented with ``[X y]``, as
:meth:`~bayesvc.kernel.Kernel.factorize` returns it: block factors of the first term, the dense
Schur complement's Cholesky factor, and what follows from them (``log|A|``, ``log|R_X|^2``, the
penalized residual sum of squares, ``S_zz^{-1}``)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp


class NotPositiveDefinite(np.linalg.LinAlgError):
    """``A(theta)`` (or the augmented system) could not be factored."""


class DiagonalLambda:
    """Diagonal ``Lambda`` of the rest terms (scalar designs), with the sparse-matrix interface
    the kernel uses (``.T``, ``@``, ``.diagonal()``)."""

    def __init__(self, d: np.ndarray):
        self.d = d

    @property
    def T(self):
        return self

    def __matmul__(self, x):
        return self.d[:, None] * x if x.ndim == 2 else self.d * x

    def diagonal(self):
        return self.d


@dataclass(frozen=True, eq=False)
class Factorization:
    """The factorization of ``A(theta)`` augmented with ``[X y]``.

    Attributes
    ----------
    theta : ndarray
        Where it was computed (design term order).
    D, Dchol, Dinv : ndarray (L1, p1, p1) or None
        First (block-diagonal) term: blocks of ``Lambda1'A11 Lambda1 + I``, their lower Cholesky
        factors and inverses; ``None`` without a first term.
    lam1 : ndarray (p1, p1) or None
        The first term's ``Lambda_t``.
    lam_rest : DiagonalLambda or scipy.sparse matrix
        ``Lambda`` of the rest terms (rz x rz).
    L : ndarray (m, m)
        Lower Cholesky factor of the augmented Schur complement.
    logdet_A : float
        ``log|A(theta)|``.
    rz, p : int
        Rest random-effect columns and fixed effects.
    SmI : ndarray (rz, rz)
        The rest block of the Schur complement minus the identity (``S_zz - I``).
    diag_S : bool
        Whether ``S_zz`` is diagonal (nested designs).
    """

    theta: np.ndarray
    D: np.ndarray | None
    Dchol: np.ndarray | None
    Dinv: np.ndarray | None
    lam1: np.ndarray | None
    lam_rest: object
    L: np.ndarray
    logdet_A: float
    rz: int
    p: int
    SmI: np.ndarray
    diag_S: bool

    @cached_property
    def Sinv(self) -> np.ndarray:
        """``S_zz^{-1}``: the lower-right block of ``A^{-1}``."""
        if self.diag_S:
            return np.diag(1.0 / np.diag(self.Lzz) ** 2)
        inv, _ = sla.lapack.dpotri(self.Lzz, lower=1)
        return np.tril(inv) + np.tril(inv, -1).T

    @property
    def Lzz(self) -> np.ndarray:
        """The rest block of :attr:`L`."""
        return self.L[: self.rz, : self.rz]

    @property
    def Mxy(self) -> np.ndarray:
        """``[X y]' V*^{-1} [X y]`` with ``V* = I + Z Lambda Lambda' Z'``."""
        Lw = self.L[self.rz :, self.rz :]
        return Lw @ Lw.T

    @property
    def logdet_RX2(self) -> float:
        """``log|X' V*^{-1} X|`` (the REML correction)."""
        d = np.diag(self.L)[self.rz : self.rz + self.p]
        return float(2 * np.sum(np.log(d)))

    @property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares at the conditional estimates of beta, u."""
        return float(self.L[-1, -1] ** 2)

    @property
    def beta(self) -> np.ndarray:
        """The fixed effects that minimise the penalized residual sum of squares (GLS)."""
        M = self.Mxy
        return np.linalg.solve(M[: self.p, : self.p], M[: self.p, self.p])


def lambda_rest_sparse(blocks) -> sp.csr_matrix:
    """Block-diagonal ``Lambda`` of the rest terms from per-term (levels, Lambda_t) pairs."""
    mats = [sp.kron(sp.identity(n), sp.csr_matrix(L)) for n, L in blocks]
    return sp.block_diag(mats, format="csr") if mats else sp.csr_matrix((0, 0))
