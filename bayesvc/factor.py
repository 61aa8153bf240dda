"""The factorization of ``A(theta) = Lambda'Z'Z Lambda + I`` augmented with ``[X y]``, as the
kernel returns it: block factors, the dense Schur complement's Cholesky factor, and what follows
from them (``log|A|``, ``log|R_X|^2``, the penalized residual sum of squares, ``S^{-1}``)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp


class NotPositiveDefinite(np.linalg.LinAlgError):
    pass


@dataclass
class Factor:
    """The factorization of ``A(theta)`` augmented with ``[X y]``."""

    theta: np.ndarray
    D: np.ndarray | None  # (L1, p1, p1) blocks of Lambda1'A11 Lambda1 + I
    Dchol: np.ndarray | None  # their lower Cholesky factors
    Dinv: np.ndarray | None
    lam1: np.ndarray | None  # (p1, p1)
    Lam_rest: sp.csr_matrix  # rz x rz
    L: np.ndarray  # lower Cholesky of the augmented Schur complement (m x m)
    logdet_A: float
    rz: int
    p: int

    @property
    def Sinv(self) -> np.ndarray:
        """``S_zz^{-1}`` (cached): the lower-right block of ``A^{-1}``."""
        if getattr(self, "_Sinv", None) is None:
            if getattr(self, "diag_S", False):
                self._Sinv = np.diag(1.0 / np.diag(self.Lzz) ** 2)
            else:
                inv, info = sla.lapack.dpotri(self.Lzz, lower=1)
                inv = np.tril(inv) + np.tril(inv, -1).T
                self._Sinv = inv
        return self._Sinv

    @property
    def Lzz(self) -> np.ndarray:
        return self.L[: self.rz, : self.rz]

    @property
    def Mxy(self) -> np.ndarray:
        """``[X y]' V*^{-1} [X y]`` with ``V* = I + Z Lambda Lambda' Z'``."""
        Lw = self.L[self.rz :, self.rz :]
        return Lw @ Lw.T

    @property
    def logdet_RX2(self) -> float:
        d = np.diag(self.L)[self.rz : self.rz + self.p]
        return float(2 * np.sum(np.log(d)))

    @property
    def pwrss(self) -> float:
        """Penalized weighted residual sum of squares at the conditional estimates of beta, u."""
        return float(self.L[-1, -1] ** 2)


class _DiagLam:
    """Diagonal Lambda of the rest terms (scalar designs), with the sparse-matrix interface used."""

    def __init__(self, d: np.ndarray):
        self.d = d

    @property
    def T(self):
        return self

    def __matmul__(self, x):
        return self.d[:, None] * x if x.ndim == 2 else self.d * x

    def diagonal(self):
        return self.d
