"""Ranks of factorized weights chosen as a fraction of the dense parameter count.

A factorized spectral weight of shape ``(I_0, ..., I_{d-1})`` is given a float ``rank``: the
fraction of the ``N = prod(I_k)`` entries of the dense tensor that the factorization should
keep. The integer ranks are chosen as tensorly's ``validate_tucker_rank``,
``validate_cp_rank`` and ``validate_tt_rank`` choose them for a float rank (the convention
that users of neuraloperator's TFNO know), so parameter counts can be compared one to one:

- **Tucker**: one scale ``c`` for every mode, ``r_k = round(c I_k)`` (at least 1), where
  ``c`` solves ``N c^d + (sum_k I_k^2) c = rank * N`` (core plus factors).
- **CP**: ``R = round(rank * N / sum_k I_k)`` (at least 1) rank-one terms.
- **TT**: bond ``k`` (between modes ``k`` and ``k + 1``) gets ``r_k = round(c a_k)`` (at
  least 1) with ``a_k = (I_k + I_{k+1}) / 2``, where ``c`` solves the quadratic
  ``c^2 sum_{k=1}^{d-2} a_{k-1} I_k a_k + c (I_0 a_0 + I_{d-1} a_{d-2}) = rank * N``.

Rounding is half-to-even (Python's ``round``, as NumPy's). The counts are in tensor entries;
a complex weight stored as real pairs has twice as many real parameters.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence

__all__ = [
    "FACTORIZATIONS",
    "check_factorization",
    "check_rank_fraction",
    "cp_rank",
    "factorized_size",
    "resolve_ranks",
    "tt_ranks",
    "tucker_ranks",
]

logger = logging.getLogger(__name__)

#: The weight formats of a spectral convolution.
FACTORIZATIONS: tuple[str, ...] = ("dense", "tucker", "cp", "tt")


def check_factorization(factorization: str) -> str:
    """Return ``factorization`` in lower case if it is one of :data:`FACTORIZATIONS`.

    ``None`` means ``"dense"``.

    Raises
    ------
    ValueError
        If it is not a known format.
    """
    if factorization is None:
        return "dense"
    if not isinstance(factorization, str) or factorization.lower() not in FACTORIZATIONS:
        raise ValueError(f"factorization: expected one of {FACTORIZATIONS}, got {factorization!r}")
    return factorization.lower()


def check_rank_fraction(rank: float) -> float:
    """Return ``rank`` as a float if it is a fraction in ``(0, 1]``.

    Raises
    ------
    ValueError
        If ``rank`` is not a real number in ``(0, 1]``.
    """
    if isinstance(rank, bool) or not isinstance(rank, numbers.Real):
        raise ValueError(f"rank: expected a fraction in (0, 1], got {rank!r}")
    value = float(rank)
    if not 0.0 < value <= 1.0:
        raise ValueError(
            f"rank: expected a fraction of the dense parameter count in (0, 1], got {rank!r}"
        )
    return value


def _check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    dims = tuple(int(s) for s in shape)
    if len(dims) < 2 or any(s < 1 for s in dims):
        raise ValueError(f"shape: expected at least 2 positive dimensions, got {tuple(shape)}")
    return dims


def _bisect(func, lo: float, hi: float) -> float:
    """Root of an increasing function with ``func(lo) < 0 < func(hi)`` (to double precision)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if func(mid) < 0.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def tucker_ranks(shape: Sequence[int], rank: float) -> tuple[int, ...]:
    """Tucker ranks keeping about ``rank`` times the entries of a dense tensor of ``shape``.

    Parameters
    ----------
    shape
        Shape ``(I_0, ..., I_{d-1})`` of the dense tensor.
    rank
        Fraction in ``(0, 1]``.

    Returns
    -------
    tuple of int
        ``(r_0, ..., r_{d-1})`` with ``r_k = max(round(c I_k), 1)`` (module docstring).
    """
    dims = _check_shape(shape)
    frac = check_rank_fraction(rank)
    n = math.prod(dims)
    squares = sum(s * s for s in dims)
    d = len(dims)
    c = _bisect(lambda x: n * x**d + squares * x - frac * n, 0.0, 1.0)
    return tuple(max(round(s * c), 1) for s in dims)


def cp_rank(shape: Sequence[int], rank: float) -> int:
    """CP rank keeping about ``rank`` times the entries of a dense tensor of ``shape``.

    Returns
    -------
    int
        ``max(round(rank * prod(shape) / sum(shape)), 1)``.
    """
    dims = _check_shape(shape)
    frac = check_rank_fraction(rank)
    return max(round(frac * math.prod(dims) / sum(dims)), 1)


def tt_ranks(shape: Sequence[int], rank: float) -> tuple[int, ...]:
    """TT bond ranks keeping about ``rank`` times the entries of a dense tensor of ``shape``.

    Parameters
    ----------
    shape
        Shape ``(I_0, ..., I_{d-1})`` with ``d >= 3``.
    rank
        Fraction in ``(0, 1]``.

    Returns
    -------
    tuple of int
        The ``d - 1`` inner bond ranks ``(r_1, ..., r_{d-1})`` (the border ranks are 1).
    """
    dims = _check_shape(shape)
    frac = check_rank_fraction(rank)
    if len(dims) < 3:
        raise ValueError(f"shape: a TT weight needs at least 3 modes, got {dims}")
    avg = [(dims[k] + dims[k + 1]) / 2 for k in range(len(dims) - 1)]
    a = sum(avg[k - 1] * dims[k] * avg[k] for k in range(1, len(dims) - 1))
    b = dims[0] * avg[0] + dims[-1] * avg[-1]
    c = (-b + math.sqrt(b * b + 4 * a * frac * math.prod(dims))) / (2 * a)
    return tuple(max(round(m * c), 1) for m in avg)


def resolve_ranks(
    shape: Sequence[int], factorization: str, rank: float | int | Sequence[int]
) -> tuple[int, ...]:
    """Integer ranks of a factorization from a fraction or from explicit ranks.

    Parameters
    ----------
    shape
        Shape of the dense tensor.
    factorization
        One of :data:`FACTORIZATIONS`.
    rank
        A float fraction in ``(0, 1]`` (the rules of the module docstring), or explicit
        ranks: ``d`` Tucker ranks, one CP rank (an int) or ``d - 1`` TT bond ranks. For
        ``"dense"`` only a fraction is accepted (and not used).

    Returns
    -------
    tuple of int
        Tucker: ``d`` ranks; CP: ``(R,)``; TT: ``d - 1`` bond ranks; dense: ``()``.

    Raises
    ------
    ValueError
        If the fraction is outside ``(0, 1]``, or explicit ranks have the wrong number or a
        value below 1 (or, for Tucker, above the dimension).
    """
    dims = _check_shape(shape)
    kind = check_factorization(factorization)
    if kind == "dense":
        check_rank_fraction(rank)
        return ()
    if isinstance(rank, float):
        if kind == "tucker":
            return tucker_ranks(dims, rank)
        if kind == "cp":
            return (cp_rank(dims, rank),)
        return tt_ranks(dims, rank)
    explicit = (rank,) if isinstance(rank, numbers.Integral) else tuple(rank)
    expected = {"tucker": len(dims), "cp": 1, "tt": len(dims) - 1}[kind]
    if len(explicit) != expected or any(
        isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1 for r in explicit
    ):
        raise ValueError(
            f"rank: expected a fraction in (0, 1] or {expected} integer rank(s) >= 1 for a "
            f"{kind} weight of shape {dims}, got {rank!r}"
        )
    if kind == "tucker" and any(r > s for r, s in zip(explicit, dims, strict=True)):
        raise ValueError(f"rank: Tucker ranks {explicit} exceed the dimensions {dims}")
    return tuple(int(r) for r in explicit)


def factorized_size(shape: Sequence[int], factorization: str, ranks: Sequence[int]) -> int:
    """Number of entries stored by a factorized tensor of ``shape``.

    Dense: ``prod(I_k)``; Tucker: ``prod(r_k) + sum_k I_k r_k``; CP: ``R (1 + sum_k I_k)``
    (weights and factors); TT: ``sum_k r_{k-1} I_k r_k`` with border ranks 1.
    """
    dims = _check_shape(shape)
    kind = check_factorization(factorization)
    if kind == "dense":
        return math.prod(dims)
    if kind == "tucker":
        return math.prod(ranks) + sum(s * r for s, r in zip(dims, ranks, strict=True))
    if kind == "cp":
        (r,) = ranks
        return r * (1 + sum(dims))
    bonds = (1, *ranks, 1)
    return sum(bonds[k] * dims[k] * bonds[k + 1] for k in range(len(dims)))
