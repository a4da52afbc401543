"""Tensor decompositions: Tucker/HOSVD, CP-ALS, nonnegative CP and TT-SVD (pure functions)."""

from tensorsim.decomp._cpkernels import SparseCOO
from tensorsim.decomp.cp import CP, cp_als, cp_to_dense
from tensorsim.decomp.diagnostics import core_consistency, fms
from tensorsim.decomp.nonneg import nonneg_cp
from tensorsim.decomp.tt import TT, tt_svd, tt_to_dense
from tensorsim.decomp.tucker import Tucker, hosvd, sthosvd, tucker_to_dense

__all__ = [
    "CP",
    "SparseCOO",
    "TT",
    "Tucker",
    "core_consistency",
    "cp_als",
    "cp_to_dense",
    "fms",
    "hosvd",
    "nonneg_cp",
    "sthosvd",
    "tt_svd",
    "tt_to_dense",
    "tucker_to_dense",
]
