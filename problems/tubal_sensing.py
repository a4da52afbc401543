"""Tubal tensor sensing: a low-tubal-rank symmetric PSD tensor seen through Gaussian measurements.

The problem of arXiv 2410.16247 (Karnik, Veselovska, Iwen, Krahmer): recover the ground truth
``X* = U* * U*^T`` (``U*`` of shape ``(n, r*, k)``, ``*`` the t-product) from the ``m``
measurements ``y_i = <X*, A_i>`` with Gaussian sensing tensors ``A_i`` of shape ``(n, n, k)``.

- **Ground truth** (:func:`ground_truth`): "normalized" takes ``U*`` as the orthonormal left
  t-SVD factor of a Gaussian tensor, so ``X*`` is a tubal projection (all nonzero Fourier
  singular values 1, condition number 1); "non-normalized" takes the Gaussian ``U*`` itself.
- **Sensing** (:func:`sensing_matrix`): the ``A_i`` have i.i.d. N(0, 1) entries ("raw", the
  paper's Fig. 2) or are symmetrized, ``A_i = G_i + G_i^T`` (Figs. 3 and 4). They are stored
  as the rows of one ``m x (n n k)`` matrix, so the measurement map (:func:`measure`) and its
  adjoint (:func:`adjoint`) are one matrix product each.
- **Initial factor** (:func:`initial_factor`): ``U_0 = (alpha / sqrt(R)) G``.

A symmetric ``n x n x k`` tubal tensor has :func:`symmetric_dof` real degrees of freedom
(210 for ``n = 10, k = 4``); with fewer measurements than that, only the low-rank bias of
gradient descent from a small initialization can single out ``X*``.

Problems are declarative: this module builds NumPy data from a seed or a
``numpy.random.Generator`` and imports neither MPI, HDF5 nor solvers. :func:`measure` and
:func:`adjoint` take arrays of any backend.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tensorsim import t_product, t_svd, t_transpose
from tensorsim._array_api import Array, array_namespace
from tensorsim.config import Params, param

__all__ = [
    "GroundTruth",
    "SensingProblem",
    "TubalSensingParams",
    "adjoint",
    "ground_truth",
    "initial_factor",
    "make_problem",
    "measure",
    "measurement_count",
    "sensing_matrix",
    "symmetric_dof",
]

Seed = np.random.Generator | int | None


@dataclass(frozen=True)
class TubalSensingParams(Params):
    """A tubal sensing problem (defaults: the paper's Fig. 2 setting).

    Attributes
    ----------
    n
        Size of the square frontal slices of ``X*``.
    k
        Tube length.
    rank
        Tubal rank ``r*`` of ``X*``.
    m
        Number of measurements; the paper uses ``measurement_count(n, rank, k, c)`` with
        ``c = 1.2`` (Fig. 2: 254) and ``c = 0.9`` (Figs. 3, 4 with ``r* = 3``: 285).
    normalized
        ``U*`` orthonormal (``X*`` a tubal projection) or Gaussian.
    symmetric
        Symmetrize the sensing tensors, ``A_i = G_i + G_i^T``.
    """

    n: int = param(10, "size of the square frontal slices", ge=1)
    k: int = param(4, "tube length", ge=1)
    rank: int = param(2, "tubal rank r* of the ground truth", ge=1)
    m: int = param(254, "number of measurements", ge=1)
    normalized: bool = param(True, "orthonormal U* (X* a tubal projection), else Gaussian U*")
    symmetric: bool = param(False, "symmetrized sensing tensors A_i = G_i + G_i^T")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank > self.n:
            raise ValueError(f"rank: expected r* <= n = {self.n}, got {self.rank}")


class GroundTruth(NamedTuple):
    """The ground truth ``tensor = factor * factor^T``.

    Attributes
    ----------
    factor
        ``U*``, shape ``(n, r*, k)``.
    tensor
        ``X*``, shape ``(n, n, k)``, symmetric positive semidefinite.
    """

    factor: np.ndarray
    tensor: np.ndarray


@dataclass(frozen=True)
class SensingProblem:
    """One drawn instance: ground truth, sensing matrix and measurements.

    Attributes
    ----------
    params
        What was drawn.
    truth
        ``U*`` and ``X*``.
    matrix
        The sensing matrix, ``(m, n n k)``: row ``i`` is ``A_i`` flattened in C order.
    y
        The measurements ``matrix @ X*.ravel()``, shape ``(m,)``.
    """

    params: TubalSensingParams
    truth: GroundTruth
    matrix: np.ndarray
    y: np.ndarray


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def measurement_count(n: int, rank: int, k: int, factor: float) -> int:
    """The paper's number of measurements, ``ceil(factor (n + 1) r* k ln(n + 1))``.

    Parameters
    ----------
    n, rank, k
        Slice size, tubal rank ``r*`` and tube length.
    factor
        Oversampling constant (1.2 in Fig. 2, 0.9 in Figs. 3 and 4).

    Returns
    -------
    int
        254 for ``(10, 2, 4, 1.2)``, 285 for ``(10, 3, 4, 0.9)``.
    """
    n, rank, k = _positive("n", n), _positive("rank", rank), _positive("k", k)
    if not factor > 0:
        raise ValueError(f"factor: expected a positive number, got {factor!r}")
    return math.ceil(factor * (n + 1) * rank * k * math.log(n + 1))


def symmetric_dof(n: int, k: int) -> int:
    """Real degrees of freedom of a symmetric ``n x n x k`` tubal tensor (``X = X^T``).

    The Fourier slices are Hermitian and come in conjugate pairs: slice 0 (and slice
    ``k / 2`` for even ``k``) is real symmetric, ``n (n + 1) / 2`` each, and each other pair
    holds one Hermitian slice, ``n^2``.

    Returns
    -------
    int
        210 for ``n = 10, k = 4``.
    """
    n, k = _positive("n", n), _positive("k", k)
    real_slices = 1 if k % 2 else 2
    pairs = (k - real_slices) // 2
    return real_slices * n * (n + 1) // 2 + pairs * n * n


def ground_truth(
    n: int, rank: int, k: int, *, normalized: bool = True, rng: Seed = None
) -> GroundTruth:
    """Draw ``X* = U* * U*^T`` of tubal rank ``rank``.

    Parameters
    ----------
    n, rank, k
        Slice size, tubal rank ``r* <= n`` and tube length.
    normalized
        If true, ``U*`` is the left t-SVD factor of a Gaussian ``(n, r*, k)`` tensor (orthonormal
        tubes, so ``X*`` is a tubal projection); else ``U*`` is the Gaussian tensor.
    rng
        Generator or seed.

    Returns
    -------
    GroundTruth
        ``U*`` and ``X*`` (float64).

    References
    ----------
    S. Karnik, A. Veselovska, M. Iwen, F. Krahmer, arXiv 2410.16247 (ICML 2025), Sec. 5.
    """
    n, rank, k = _positive("n", n), _positive("rank", rank), _positive("k", k)
    if rank > n:
        raise ValueError(f"rank: expected r* <= n = {n}, got {rank}")
    g = np.random.default_rng(rng).standard_normal((n, rank, k))
    factor = t_svd(g).u if normalized else g
    return GroundTruth(factor, t_product(factor, t_transpose(factor)))


def sensing_matrix(
    m: int, n: int, k: int, *, symmetric: bool = False, rng: Seed = None
) -> np.ndarray:
    """Draw ``m`` Gaussian sensing tensors ``(n, n, k)`` as the rows of one matrix.

    Parameters
    ----------
    m, n, k
        Number of measurements, slice size and tube length.
    symmetric
        If true, each ``A_i = G_i + G_i^T`` (t-transpose) of a Gaussian ``G_i``; else ``A_i``
        is Gaussian.
    rng
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        Shape ``(m, n n k)``, float64; row ``i`` is ``A_i.ravel()`` (C order).
    """
    m, n, k = _positive("m", m), _positive("n", n), _positive("k", k)
    g = np.random.default_rng(rng).standard_normal((m, n, n, k))
    if symmetric:
        # t-transpose of every G_i: swap the slice axes, reverse the slices 1 .. k-1
        g = g + g.transpose(0, 2, 1, 3)[..., (-np.arange(k)) % k]
    return g.reshape(m, n * n * k)


def measure(matrix: Array, x: Array) -> Array:
    """The measurement map ``A(X)_i = <X, A_i>``: one matrix-vector product.

    Parameters
    ----------
    matrix
        Sensing matrix ``(m, n n k)`` (any backend).
    x
        Tensor ``(n, n, k)`` of the same backend.

    Returns
    -------
    Array
        Shape ``(m,)``.
    """
    xp = array_namespace(matrix, x)
    if matrix.ndim != 2 or x.ndim != 3 or matrix.shape[1] != math.prod(x.shape):
        raise ValueError(
            f"x: expected a tensor of {matrix.shape[-1]} entries to match the sensing matrix "
            f"{tuple(matrix.shape)}, got shape {tuple(x.shape)}"
        )
    return matrix @ xp.reshape(x, (-1,))


def adjoint(matrix: Array, r: Array, shape: tuple[int, int, int]) -> Array:
    """The adjoint map ``A*(r) = sum_i r_i A_i``: one transposed matrix-vector product.

    Parameters
    ----------
    matrix
        Sensing matrix ``(m, n n k)`` (any backend).
    r
        Vector ``(m,)`` of the same backend.
    shape
        ``(n, n, k)``.

    Returns
    -------
    Array
        Tensor of ``shape``.
    """
    xp = array_namespace(matrix, r)
    if matrix.ndim != 2 or tuple(r.shape) != (matrix.shape[0],):
        raise ValueError(
            f"r: expected shape ({matrix.shape[0]},) to match the sensing matrix "
            f"{tuple(matrix.shape)}, got {tuple(r.shape)}"
        )
    if len(shape) != 3 or math.prod(shape) != matrix.shape[1]:
        raise ValueError(f"shape: expected (n, n, k) with {matrix.shape[1]} entries, got {shape}")
    return xp.reshape(matrix.mT @ r, tuple(shape))


def initial_factor(n: int, width: int, k: int, *, alpha: float, rng: Seed = None) -> np.ndarray:
    """The small random initialization ``U_0 = (alpha / sqrt(R)) G``, ``G`` Gaussian ``(n, R, k)``.

    Parameters
    ----------
    n, width, k
        Slice size, width ``R`` of the factor and tube length.
    alpha
        Initialization scale, positive.
    rng
        Generator or seed.

    Returns
    -------
    numpy.ndarray
        Float64, shape ``(n, width, k)``.
    """
    n, width, k = _positive("n", n), _positive("width", width), _positive("k", k)
    if not (math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha: expected a positive initialization scale, got {alpha!r}")
    g = np.random.default_rng(rng).standard_normal((n, width, k))
    return (alpha / math.sqrt(width)) * g


def make_problem(params: TubalSensingParams, rng: Seed = None) -> SensingProblem:
    """Draw the ground truth, then the sensing matrix, and measure.

    Parameters
    ----------
    params
        The problem.
    rng
        Generator or seed (both draws come from it, in that order).

    Returns
    -------
    SensingProblem
        The instance.
    """
    if not isinstance(params, TubalSensingParams):
        raise TypeError(f"params: expected TubalSensingParams, got {type(params).__name__}")
    gen = np.random.default_rng(rng)
    p = params
    truth = ground_truth(p.n, p.rank, p.k, normalized=p.normalized, rng=gen)
    matrix = sensing_matrix(p.m, p.n, p.k, symmetric=p.symmetric, rng=gen)
    return SensingProblem(p, truth, matrix, measure(matrix, truth.tensor))
