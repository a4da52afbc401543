"""Optimizer-state memory: what an optimizer holds, and what SMMF should hold.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from tensorsim.optim._bits import packed_size
from tensorsim.optim.smmf import smmf_matrix_shape

__all__ = ["smmf_state_bytes", "state_bytes"]

logger = logging.getLogger(__name__)


def _tensor_bytes(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.nbytes
    if isinstance(value, dict):
        return sum(_tensor_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of optimizer state actually held: the sum of ``nbytes`` of its state tensors.

    Every tensor in ``optimizer.state`` counts, also inside nested dicts, lists and tuples
    (as some optimizers keep their factors); Python numbers (e.g. SMMF's step counter) and
    the parameter groups do not. Works for any ``torch.optim.Optimizer``.

    Parameters
    ----------
    optimizer
        The optimizer (after at least one step, else its state is usually empty).

    Returns
    -------
    int
        Total bytes.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    return sum(_tensor_bytes(s) for s in optimizer.state.values())


def smmf_state_bytes(
    shape: Iterable[int],
    *,
    first_moment: bool = True,
    vector_reshape: bool = True,
    float_bytes: int = 4,
) -> int:
    """SMMF's state bytes for one parameter of ``shape`` (arXiv 2412.08894).

    For the ``n x m`` matricization (:func:`tensorsim.optim.smmf.smmf_matrix_shape`):
    ``2 (n + m)`` floats and ``n m`` sign bits (packed, ``ceil(n m / 8)`` bytes); without a
    first moment ``n + m`` floats. A 0-d or 1-d parameter with ``vector_reshape=False``
    keeps dense moments instead: ``2 N`` floats (``N`` without a first moment). An empty
    parameter has no state.

    Parameters
    ----------
    shape
        Shape of the parameter.
    first_moment
        Whether the optimizer keeps a first moment (``beta1`` not ``None``).
    vector_reshape
        As the :class:`~tensorsim.optim.SMMF` option.
    float_bytes
        Bytes per stored float: 4 for float32, bfloat16 and float16 parameters (their
        factors are float32), 8 for float64.

    Returns
    -------
    int
        Bytes, as :func:`state_bytes` reports them after a step.
    """
    dims = tuple(int(d) for d in shape)
    if float_bytes not in (2, 4, 8):
        raise ValueError(f"float_bytes: expected 2, 4 or 8, got {float_bytes!r}")
    moments = 2 if first_moment else 1
    if 0 in dims:
        return 0  # never stepped, no state
    if len(dims) < 2 and not vector_reshape:
        size = 1
        for d in dims:
            size *= d
        return moments * size * float_bytes
    n, m = smmf_matrix_shape(dims)
    total = moments * (n + m) * float_bytes
    if first_moment:
        total += packed_size(n * m)
    return total
