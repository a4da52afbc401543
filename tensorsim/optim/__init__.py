"""Memory-light optimizers on the tensorsim factorization kernels.

Importing this package imports torch (``import tensorsim`` does not).

- :class:`SMMF`: square-matricized momentum factorization (arXiv 2412.08894), Adam-like
  steps with both moments stored as rank-1 factors and the first moment's signs as bits;
- :func:`state_bytes`: optimizer-state bytes held by any ``torch.optim.Optimizer``;
- :func:`smmf_state_bytes`: SMMF's predicted state bytes for one parameter shape;
- :func:`smmf_matrix_shape`, :func:`rank1_nnmf`, :func:`pack_bits`, :func:`unpack_bits`:
  the square-matricization, the rank-1 nonnegative factorization and the 1-bit sign packing
  SMMF is built from.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from tensorsim.optim._bits import pack_bits, unpack_bits
from tensorsim.optim.smmf import SMMF, rank1_nnmf, smmf_matrix_shape
from tensorsim.optim.state import smmf_state_bytes, state_bytes

__all__ = [
    "SMMF",
    "pack_bits",
    "rank1_nnmf",
    "smmf_matrix_shape",
    "smmf_state_bytes",
    "state_bytes",
    "unpack_bits",
]
