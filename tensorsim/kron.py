"""Kronecker products without forming them, the Kronecker-product SVD, near-square shapes."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tensorsim._array_api import Array, array_namespace
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.linalg import Truncation, truncated_svd

__all__ = ["KronSVD", "kpsvd", "kpsvd_to_dense", "kron_matvec", "near_square_shape"]

logger = logging.getLogger(__name__)


def kron_matvec(factors: Sequence[Array], x: Array) -> Array:
    """Apply ``A_1 ⊗ A_2 ⊗ ... ⊗ A_d`` to ``x`` without forming the Kronecker product.

    Parameters
    ----------
    factors
        Matrices ``A_i`` of shape ``(m_i, n_i)``.
    x
        Array of shape ``(..., n_1 * ... * n_d)`` (leading axes are a batch), in row-major
        (C) order, matching ``numpy.kron``.

    Returns
    -------
    Array
        Shape ``(..., m_1 * ... * m_d)``. Cost ``sum_i m_i * prod(...)`` instead of
        ``prod(m_i) * prod(n_i)``: with ``X`` the reshaped vector,
        ``(A ⊗ B) vec(X) = vec(A X B^T)``, applied one factor at a time.
    """
    xp = array_namespace(x, *factors)
    if not factors:
        raise ValueError("factors: expected at least one matrix")
    for i, a in enumerate(factors):
        if a.ndim != 2:
            raise ValueError(f"factors[{i}]: expected a matrix, got shape {tuple(a.shape)}")
    ns = [int(a.shape[1]) for a in factors]
    if x.ndim < 1 or x.shape[-1] != math.prod(ns):
        raise ValueError(
            f"x: expected last axis of length {math.prod(ns)} (= prod of factor columns {ns}), "
            f"got shape {tuple(x.shape)}"
        )
    batch = tuple(x.shape[:-1])
    b = len(batch)
    t = xp.reshape(x, (*batch, *ns))
    for a in factors:
        # contract the first remaining input axis; the output axis lands at the end
        t = xp.tensordot(t, a, axes=([b], [1]))
    return xp.reshape(t, (*batch, math.prod(int(a.shape[0]) for a in factors)))


@dataclass(frozen=True)
class KronSVD:
    """``W ~= sum_k s[k] * kron(a[k], b[k])`` with unit-Frobenius-norm ``a[k]``, ``b[k]``.

    Attributes
    ----------
    s
        Kronecker singular values, shape ``(r,)``, descending.
    a
        Left factors, shape ``(r, m1, n1)``.
    b
        Right factors, shape ``(r, m2, n2)``.
    discarded
        2-norm of the Kronecker singular values cut (the Frobenius error).
    """

    s: Array
    a: Array
    b: Array
    discarded: float = 0.0

    @property
    def rank(self) -> int:
        """Number of Kronecker terms."""
        return int(self.s.shape[0])

    def to_dense(self) -> Array:
        """Return the full matrix (see :func:`kpsvd_to_dense`)."""
        return kpsvd_to_dense(self)


def _rearrange(w: Array, m1: int, n1: int, m2: int, n2: int) -> Array:
    """Van Loan-Pitsianis rearrangement: ``R(kron(A, B)) = vec(A) vec(B)^T``."""
    xp = array_namespace(w)
    return xp.reshape(
        xp.permute_dims(xp.reshape(w, (m1, m2, n1, n2)), (0, 2, 1, 3)), (m1 * n1, m2 * n2)
    )


def kpsvd(
    w: Array,
    shape_a: tuple[int, int],
    shape_b: tuple[int, int] | None = None,
    trunc: Truncation | None = None,
) -> KronSVD:
    """Kronecker-product SVD (Van Loan & Pitsianis 1993).

    The SVD of the rearranged matrix ``R(W)`` (rows ``vec(A)``-indexed, columns
    ``vec(B)``-indexed) gives the best approximation of ``W`` by a sum of ``r`` Kronecker
    products, with Frobenius error ``sqrt(sum of the squared cut values)``.

    Parameters
    ----------
    w
        Matrix of shape ``(m1 * m2, n1 * n2)``, finite, not empty. An all-zero ``w`` gives
        zero Kronecker singular values (``trunc.min_rank`` of them when ``trunc`` sets a
        tolerance).
    shape_a
        ``(m1, n1)``, the shape of the left factors (positive integers).
    shape_b
        ``(m2, n2)``; derived from ``w`` and ``shape_a`` when omitted.
    trunc
        Truncation of the Kronecker rank (``None``: all ``min(m1 n1, m2 n2)`` terms).

    Returns
    -------
    KronSVD
        The terms and the Frobenius norm of what was cut.

    Raises
    ------
    ValueError
        If ``w`` is not a matrix, is empty or holds a NaN or an Inf, or the shapes are not
        pairs of positive integers whose products give the shape of ``w``.

    References
    ----------
    C. F. Van Loan, N. Pitsianis, in Linear Algebra for Large Scale and Real-Time
    Applications, Kluwer (1993) 293.
    """
    array_namespace(w)
    if w.ndim != 2:
        raise ValueError(f"w: expected a matrix, got shape {tuple(w.shape)}")
    check_nonempty("w", w)
    m1, n1 = _shape_pair("shape_a", shape_a)
    if shape_b is None:
        if w.shape[0] % m1 or w.shape[1] % n1:
            raise ValueError(f"shape_a: {shape_a} does not divide the shape {tuple(w.shape)} of w")
        shape_b = (w.shape[0] // m1, w.shape[1] // n1)
    m2, n2 = _shape_pair("shape_b", shape_b)
    if (m1 * m2, n1 * n2) != tuple(w.shape):
        raise ValueError(
            f"shape_a, shape_b: {shape_a} and {shape_b} give {(m1 * m2, n1 * n2)}, "
            f"but w has shape {tuple(w.shape)}"
        )
    check_finite("w", w)
    xp = array_namespace(w)
    res = truncated_svd(_rearrange(w, m1, n1, m2, n2), trunc, check_finite=False)
    r = res.s.shape[0]
    a = xp.reshape(res.u.mT, (r, m1, n1))
    b = xp.reshape(res.vh, (r, m2, n2))
    return KronSVD(res.s, a, b, res.discarded)


def _shape_pair(name: str, shape: Sequence[int]) -> tuple[int, int]:
    """``shape`` as two positive Python ints, or a ``ValueError`` naming ``name``."""
    try:
        m, n = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair of positive integers, got {shape!r}") from None
    if m < 1 or n < 1:
        raise ValueError(f"{name}: expected a pair of positive integers, got {shape!r}")
    return m, n


def kpsvd_to_dense(k: KronSVD) -> Array:
    """Sum of the Kronecker terms of a :class:`KronSVD` (inverse rearrangement)."""
    xp = array_namespace(k.s, k.a, k.b)
    r, m1, n1 = k.a.shape
    _, m2, n2 = k.b.shape
    rearranged = (xp.reshape(k.a, (r, m1 * n1)).mT * k.s) @ xp.reshape(k.b, (r, m2 * n2))
    return xp.reshape(
        xp.permute_dims(xp.reshape(rearranged, (m1, n1, m2, n2)), (0, 2, 1, 3)),
        (m1 * m2, n1 * n2),
    )


def near_square_shape(n: int) -> tuple[int, int]:
    """Factor ``n = rows * cols`` with ``cols`` the largest divisor of ``n`` not above ``sqrt(n)``.

    Used for square-matricization (SMMF, arXiv 2412.08894) and for Kronecker factor
    shapes. A prime ``n`` degenerates to ``(n, 1)``.

    Examples
    --------
    >>> near_square_shape(768 * 3072)
    (1536, 1536)
    >>> near_square_shape(3 * 3 * 64 * 128)
    (288, 256)
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n: expected a positive integer, got {n!r}")
    for cols in range(math.isqrt(n), 0, -1):
        if n % cols == 0:
            return n // cols, cols
    raise AssertionError("unreachable: 1 divides every integer")
