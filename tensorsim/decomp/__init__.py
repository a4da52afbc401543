"""Tensor decompositions: Tucker/HOSVD, CP-ALS and TT-SVD (pure functions, small results)."""

from tensorsim.decomp.cp import CP, cp_als, cp_to_dense
from tensorsim.decomp.tt import TT, tt_svd, tt_to_dense
from tensorsim.decomp.tucker import Tucker, hosvd, sthosvd, tucker_to_dense

__all__ = [
    "CP",
    "TT",
    "Tucker",
    "cp_als",
    "cp_to_dense",
    "hosvd",
    "sthosvd",
    "tt_svd",
    "tt_to_dense",
    "tucker_to_dense",
]
