"""Elementary multilinear operations: unfoldings, mode products, MTTKRP.

Conventions (shared by every decomposition): the mode-``n`` unfolding of a tensor of shape
``(I_0, ..., I_{d-1})`` is the ``I_n x prod(I_m, m != n)`` matrix whose columns run over the
remaining modes in their order, last index fastest (C order), as in TensorLy.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

from tensorsim._array_api import Array, array_namespace

__all__ = ["fold", "mode_dot", "multi_mode_dot", "mttkrp", "unfold"]

logger = logging.getLogger(__name__)


def _check_mode(x: Array, mode: int) -> int:
    if not -x.ndim <= mode < x.ndim:
        raise ValueError(f"mode: expected an axis of a {x.ndim}-way tensor, got {mode}")
    return mode % x.ndim


def unfold(x: Array, mode: int) -> Array:
    """Mode-``mode`` unfolding (matricization) of tensor ``x``."""
    xp = array_namespace(x)
    mode = _check_mode(x, mode)
    return xp.reshape(xp.moveaxis(x, mode, 0), (x.shape[mode], -1))


def fold(m: Array, mode: int, shape: Sequence[int]) -> Array:
    """Inverse of :func:`unfold`: refold matrix ``m`` into a tensor of ``shape``."""
    xp = array_namespace(m)
    shape = tuple(int(s) for s in shape)
    if not -len(shape) <= mode < len(shape):
        raise ValueError(f"mode: expected an axis of a {len(shape)}-way tensor, got {mode}")
    mode %= len(shape)
    moved = (shape[mode], *shape[:mode], *shape[mode + 1 :])
    if tuple(m.shape) != (shape[mode], math.prod(shape) // max(shape[mode], 1)):
        raise ValueError(f"m: shape {tuple(m.shape)} does not unfold a tensor of shape {shape}")
    return xp.moveaxis(xp.reshape(m, moved), 0, mode)


def mode_dot(x: Array, matrix: Array, mode: int) -> Array:
    """Mode-``n`` product ``x ×_n matrix``: contract ``matrix``'s columns with axis ``mode``.

    ``matrix`` has shape ``(J, I_mode)``; the result has ``J`` in place of ``I_mode``.
    """
    xp = array_namespace(x, matrix)
    mode = _check_mode(x, mode)
    if matrix.ndim != 2 or matrix.shape[1] != x.shape[mode]:
        raise ValueError(
            f"matrix: expected shape (J, {x.shape[mode]}) for mode {mode}, "
            f"got {tuple(matrix.shape)}"
        )
    return xp.moveaxis(xp.tensordot(matrix, x, axes=([1], [mode])), 0, mode)


def multi_mode_dot(
    x: Array,
    matrices: Sequence[Array],
    modes: Sequence[int] | None = None,
    *,
    adjoint: bool = False,
) -> Array:
    """Apply several mode products; with ``adjoint=True`` use each matrix's conjugate transpose.

    Modes are applied from the one that shrinks the tensor most to the one that shrinks it
    least, which keeps the intermediates small.
    """
    xp = array_namespace(x, *matrices)
    modes = list(range(len(matrices))) if modes is None else [int(m) for m in modes]
    if len(modes) != len(matrices):
        raise ValueError(f"modes: expected {len(matrices)} modes, got {len(modes)}")
    mats = [xp.conj(m).mT if adjoint else m for m in matrices]
    order = sorted(range(len(mats)), key=lambda i: mats[i].shape[0] / max(mats[i].shape[1], 1))
    for i in order:
        x = mode_dot(x, mats[i], modes[i])
    return x


def mttkrp(x: Array, factors: Sequence[Array], mode: int) -> Array:
    """Matricized tensor times Khatri-Rao product for CP updates, without forming the latter.

    Returns ``M[i, r] = sum over the other indices of x[..., i, ...] * prod_m A_m[i_m, r]``
    (``factors[mode]`` is ignored), shape ``(I_mode, R)``. The largest other mode is
    contracted first by ``tensordot`` (one BLAS call on all the data); the remaining modes,
    now with ``R`` as a batch axis, are contracted one after another by ``vecdot``.
    """
    xp = array_namespace(x, *factors)
    mode = _check_mode(x, mode)
    if len(factors) != x.ndim:
        raise ValueError(f"factors: expected {x.ndim} factor matrices, got {len(factors)}")
    others = [m for m in range(x.ndim) if m != mode]
    if not others:
        raise ValueError("x: mttkrp needs a tensor with at least two modes")
    # Contract the largest mode first, preferring the last axis and then the first: those
    # contract against a contiguous view, with no transposed copy of x.
    first = max(others, key=lambda m: (x.shape[m], m == x.ndim - 1, m == 0))
    t = xp.tensordot(x, factors[first], axes=([first], [0]))  # remaining modes..., R
    axes = [m for m in range(x.ndim) if m != first]
    for m in others:
        if m == first:
            continue
        pos = axes.index(m)
        shape = [1] * t.ndim
        shape[pos] = x.shape[m]
        shape[-1] = factors[m].shape[1]
        t = xp.vecdot(t, xp.reshape(factors[m], tuple(shape)), axis=pos - t.ndim)
        axes.pop(pos)
    return t
