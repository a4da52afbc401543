"""tensorsim: low-rank tensor methods for scientific simulation and machine learning.

The kernels are written once against the Python array API: pass NumPy, CuPy, PyTorch or
``array_api_strict`` arrays and get the same kind back. Importing tensorsim needs only NumPy
and SciPy; MPI, HDF5, torch and plotting are imported where they are used.

Examples
--------
>>> import numpy as np
>>> from tensorsim import Truncation, sthosvd
>>> x = np.random.default_rng(0).standard_normal((20, 20, 20))
>>> sthosvd(x, Truncation(max_rank=5)).ranks
(5, 5, 5)
"""

from tensorsim.decomp import (
    CP,
    TT,
    Tucker,
    cp_als,
    cp_to_dense,
    hosvd,
    sthosvd,
    tt_svd,
    tt_to_dense,
    tucker_to_dense,
)
from tensorsim.kron import KronSVD, kpsvd, kpsvd_to_dense, kron_matvec, near_square_shape
from tensorsim.linalg import (
    SVDResult,
    Truncation,
    augment_basis,
    expm,
    expm_multiply,
    orth,
    rk4_step,
    truncated_svd,
)
from tensorsim.tubal import (
    TSVD,
    f_diagonal,
    t_fft,
    t_identity,
    t_ifft,
    t_norm,
    t_product,
    t_svd,
    t_transpose,
    tubal_rank,
)

__version__ = "0.1.0"

__all__ = [
    "CP",
    "TSVD",
    "TT",
    "KronSVD",
    "SVDResult",
    "Truncation",
    "Tucker",
    "augment_basis",
    "cp_als",
    "cp_to_dense",
    "expm",
    "expm_multiply",
    "f_diagonal",
    "hosvd",
    "kpsvd",
    "kpsvd_to_dense",
    "kron_matvec",
    "near_square_shape",
    "orth",
    "rk4_step",
    "sthosvd",
    "t_fft",
    "t_identity",
    "t_ifft",
    "t_norm",
    "t_product",
    "t_svd",
    "t_transpose",
    "truncated_svd",
    "tt_svd",
    "tt_to_dense",
    "tubal_rank",
    "tucker_to_dense",
]
