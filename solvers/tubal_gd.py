"""Gradient descent on an overparametrized tubal factorization ``X = U * U^T`` (arXiv 2410.16247).

Fits ``U`` of shape ``(n, R, k)`` (``R >= r*``, possibly ``R > n``) to the measurements
``y_i = <X*, A_i>`` of a symmetric PSD tubal tensor by plain gradient descent on

``f(U) = 1/2 sum_i (<U * U^T, A_i> - y_i)^2``,  ``grad f(U) = [A*(r) + A*(r)^T] * U``

with ``r = A(U * U^T) - y`` and ``*`` the t-product, from the small random initialization
``U_0 = (alpha / sqrt(R)) G``. The update is linear in ``U``, so the iterate stays in the
Fourier domain (the half spectrum of :func:`tensorsim.t_fft`) from start to end: both
t-products of an iteration are one batched matrix product each, and only the ``n x n x k``
tensors ``U * U^T`` and ``A*(r)`` cross between the domains. The measurement map and its
adjoint are one matrix-vector product each; since ``U * U^T`` is symmetric, they act on the
``~n^2 k / 2`` independent entries of a symmetric tensor only (the sensing matrix is folded
once, see :class:`SymmetricSensing`), which halves the dominant cost.

The gradient is explicit (no autograd), and the same code runs on NumPy, PyTorch and CuPy
arrays. Every ``log_every`` iterations (and at the last one) :func:`tubal_gd` records a
:class:`GDMonitor`: loss, train and test errors, the error of the ``r*``-th singular tube,
the tubal principal angles of the top-``r*`` subspace of ``U_t`` to the power-method
subspace and to the truth, the numerical tubal rank and the norms of all singular tubes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from tensorsim import t_fft, t_ifft
from tensorsim._array_api import Array, array_namespace, device, real_dtype, to_float
from tensorsim.config import Params, param

__all__ = [
    "DIVERGENCE_FACTOR",
    "GDMonitor",
    "GDParams",
    "MONITORS",
    "GDResult",
    "SymmetricSensing",
    "loss_and_gradient",
    "tubal_gd",
]

logger = logging.getLogger(__name__)

#: Gradient descent stops with an error when the loss exceeds its initial value (or
#: ``||y||^2 / 2``, if larger) this many times.
DIVERGENCE_FACTOR = 1e3

#: Monitored scalars stored per (setting, trial, iteration): name -> long name.
MONITORS = {
    "loss": "f(U_t) = ||A(X_t) - y||^2 / 2",
    "train_error": "||A(X_t) - y|| / ||y||",
    "test_error": "||X_t - X*||_F / ||X*||_F",
    "tube_error": "relative error of the r*-th singular tube of U_t",
    "angle_power": "sine of the largest tubal principal angle to the top-r* subspace of A*(y)",
    "angle_truth": "sine of the largest tubal principal angle to the subspace of X*",
    "tubal_rank": "number of singular tubes of U_t above rank_rtol times the largest",
}


@dataclass(frozen=True)
class GDParams(Params):
    """The factorization and its gradient descent (the options of :func:`tubal_gd`).

    Attributes
    ----------
    width
        Width ``R`` of the factor ``U`` (``n x R x k``), at least ``r*``.
    alpha
        Initialization scale: ``U_0 = alpha / sqrt(R) G``.
    step
        Step size ``mu``.
    iterations
        Number of gradient steps.
    log_every
        Record the monitors every this many iterations (and at the last).
    rank_rtol
        Relative threshold of the numerical tubal rank.
    """

    width: int = param(100, "width R of the factor U (n x R x k)", ge=1)
    alpha: float = param(1e-7, "initialization scale: U_0 = alpha / sqrt(R) G", gt=0.0)
    step: float = param(1e-5, "step size mu", gt=0.0)
    iterations: int = param(10000, "number of gradient steps", ge=0)
    log_every: int = param(10, "record the monitors every this many iterations", ge=1)
    rank_rtol: float = param(1e-2, "relative threshold of the tubal rank", gt=0.0, lt=1.0)


@dataclass(frozen=True)
class GDMonitor:
    """What :func:`tubal_gd` records at one iteration ``t`` (about the iterate ``U_t``).

    The quantities that need the ground truth are NaN when it is not given.

    Attributes
    ----------
    iteration
        ``t``.
    loss
        ``f(U_t) = ||A(X_t) - y||^2 / 2`` with ``X_t = U_t * U_t^T``.
    train_error
        ``||A(X_t) - y|| / ||y||``.
    test_error
        ``||X_t - X*||_F / ||X*||_F``.
    tube_error
        ``||s_r*(U_t) - s_r*(U*)||_2 / ||s_r*(U*)||_2``: the ``r*``-th singular tube of the
        factor against that of the truth's factor (``s(U*) = sqrt`` of ``X*``'s spectrum).
    angle_power
        Sine of the largest tubal principal angle between the top-``r*`` subspace of ``U_t``
        and the span of the eigenvectors of the ``r*`` largest eigenvalues of every Fourier
        slice of ``A*(y) + A*(y)^T`` (the subspace that the early, power-method-like phase
        ``U_t ~ (I + 2 mu sym(A*(y)))^t * U_0`` aligns with). The authors' scripts take the
        top singular vectors instead; the two agree unless a negative eigenvalue is among
        the ``r*`` largest in magnitude.
    angle_truth
        The same against the subspace of ``X*``.
    tubal_rank
        Number of singular tubes of ``U_t`` whose norm exceeds ``rank_rtol`` times the
        largest.
    tube_norms
        Frobenius norms of all ``min(n, R)`` singular tubes of ``U_t``, descending (an array
        of the input's backend).
    """

    iteration: int
    loss: float
    train_error: float
    test_error: float
    tube_error: float
    angle_power: float
    angle_truth: float
    tubal_rank: int
    tube_norms: Array


@dataclass(frozen=True)
class GDResult:
    """Result of :func:`tubal_gd`.

    Attributes
    ----------
    u
        The last iterate ``U_T``, shape ``(n, R, k)``.
    history
        The monitors, by iteration.
    """

    u: Array
    history: tuple[GDMonitor, ...]


class SymmetricSensing:
    """A sensing matrix folded onto the independent entries of symmetric tubal tensors.

    For ``X = X^T`` (t-transpose), entry ``(a, b, l)`` equals entry ``(b, a, -l mod k)``, so
    ``<X, A_i>`` needs one column per pair of such entries (the sum of the pair's two
    columns): about ``n^2 k / 2`` columns instead of ``n^2 k``. The same folded matrix gives
    the symmetrized adjoint ``A*(r) + A*(r)^T`` that the gradient needs.

    Parameters
    ----------
    matrix
        Sensing matrix ``(m, n n k)``, row ``i`` the flattened (C order) ``A_i``.
    n, k
        Slice size and tube length.

    Attributes
    ----------
    folded
        The folded matrix ``(m, p)``: ``p = (n^2 k + number of self-transposed entries) / 2``,
        the dimension of the symmetric tensors.
    shape
        ``(n, n, k)``.

    Raises
    ------
    ValueError
        If ``matrix`` is not ``(m, n n k)`` with ``m >= 1``.
    """

    def __init__(self, matrix: Array, n: int, k: int):
        if matrix is None or isinstance(matrix, int | float | complex):
            raise ValueError(f"matrix: expected a sensing matrix (m, n*n*k), got {matrix!r}")
        xp = array_namespace(matrix)
        size = n * n * k
        if matrix.ndim != 2 or matrix.shape[1] != size or matrix.shape[0] < 1:
            raise ValueError(
                f"matrix: expected shape (m, n*n*k) = (m, {size}) with m >= 1 for n={n}, "
                f"k={k}, got {tuple(matrix.shape)}"
            )
        flat = xp.arange(size, device=device(matrix))
        a, b, lag = flat // (n * k), (flat // k) % n, flat % k
        partner = (b * n + a) * k + (k - lag) % k
        (rep,) = xp.nonzero(flat <= partner)  # one representative per pair, ascending
        mate = xp.take(partner, rep)
        single = xp.astype(rep == mate, matrix.dtype)
        self._xp = xp
        self.shape = (n, n, k)
        self._rep = rep
        self.folded = xp.take(matrix, rep, axis=1) + xp.take(matrix, mate, axis=1) * (1.0 - single)
        # column of the pair of every entry; the diagonal pairs count twice in A* + A*^T
        self._pair = xp.searchsorted(rep, xp.minimum(flat, partner))
        self._weight = 1.0 + single

    @property
    def m(self) -> int:
        """Number of measurements."""
        return self.folded.shape[0]

    def measure(self, x: Array) -> Array:
        """``A(X)`` for a symmetric ``X`` of shape ``(n, n, k)``."""
        return self.folded @ self._xp.take(self._xp.reshape(x, (-1,)), self._rep)

    def adjoint_sym(self, r: Array) -> Array:
        """``A*(r) + A*(r)^T`` for ``r`` of shape ``(m,)``; shape ``(n, n, k)``."""
        xp = self._xp
        c = (self.folded.mT @ r) * self._weight
        return xp.reshape(xp.take(c, self._pair), self.shape)


def _residual(u_hat: Array, sensing: SymmetricSensing, y: Array) -> tuple[Array, Array]:
    """``(X, r)``: ``X = U * U^T`` from the half spectrum ``U_hat``, and ``r = A(X) - y``."""
    xp = array_namespace(u_hat)
    x = t_ifft(u_hat @ xp.conj(u_hat).mT, sensing.shape[2])
    return x, sensing.measure(x) - y


def _gradient_hat(u_hat: Array, r: Array, sensing: SymmetricSensing) -> Array:
    """Half spectrum of the gradient ``[A*(r) + A*(r)^T] * U``."""
    return t_fft(sensing.adjoint_sym(r)) @ u_hat


def _check_u(u: Array, name: str) -> tuple[int, int, int]:
    xp = array_namespace(u)
    if u.ndim != 3 or min(u.shape) < 1:
        raise ValueError(f"{name}: expected a factor of shape (n, R, k), got {tuple(u.shape)}")
    if not xp.isdtype(u.dtype, "real floating"):
        raise ValueError(f"{name}: expected a real floating dtype, got {u.dtype}")
    return tuple(u.shape)


def _check_y(y: Array, m: int) -> None:
    if y.ndim != 1 or y.shape[0] != m:
        raise ValueError(
            f"y: expected {m} measurements (one per row of the sensing matrix), got shape "
            f"{tuple(y.shape)}"
        )


def _sensing(matrix: Array | SymmetricSensing, n: int, k: int) -> SymmetricSensing:
    if not isinstance(matrix, SymmetricSensing):
        return SymmetricSensing(matrix, n, k)
    if matrix.shape != (n, n, k):
        raise ValueError(
            f"matrix: a SymmetricSensing for tensors of shape {matrix.shape} does not fit a "
            f"factor with n={n}, k={k}"
        )
    return matrix


def loss_and_gradient(u: Array, matrix: Array | SymmetricSensing, y: Array) -> tuple[float, Array]:
    """Loss ``f(U) = ||A(U * U^T) - y||^2 / 2`` and its explicit gradient.

    Parameters
    ----------
    u
        Factor ``(n, R, k)``.
    matrix
        Sensing matrix ``(m, n n k)``, row ``i`` the flattened ``A_i`` (C order), or a
        :class:`SymmetricSensing` built from it.
    y
        Measurements ``(m,)``.

    Returns
    -------
    tuple[float, Array]
        ``f(U)`` and ``grad f(U) = [A*(r) + A*(r)^T] * U`` (shape of ``u``).

    References
    ----------
    S. Karnik, A. Veselovska, M. Iwen, F. Krahmer, arXiv 2410.16247 (ICML 2025).
    """
    n, _, k = _check_u(u, "u")
    sensing = _sensing(matrix, n, k)
    _check_y(y, sensing.m)
    xp = array_namespace(u, y, sensing.folded)
    u_hat = t_fft(u)
    _, r = _residual(u_hat, sensing, y)
    return 0.5 * to_float(xp.vecdot(r, r)), t_ifft(_gradient_hat(u_hat, r, sensing), k)


@dataclass(frozen=True)
class _Reference:
    """What the monitors compare with: norms, the truth and the two top-r* subspaces."""

    rank: int
    y_norm: float
    truth: Array | None
    truth_norm: float
    truth_basis: Array | None
    truth_tube: Array | None
    power_basis: Array


def _top_basis(xp: ModuleType, spec: Array, rank: int) -> tuple[Array, Array]:
    """Top-``rank`` left singular vectors ``(f, n, rank)`` and all singular values ``(f, p)``."""
    vecs, s, _ = xp.linalg.svd(spec, full_matrices=False)
    return vecs[..., :rank], s


def _tubes(xp: ModuleType, s: Array, k: int) -> Array:
    """Singular tubes ``(p, k)`` from the half-spectrum singular values ``(f, p)``."""
    complex_dtype = xp.complex128 if s.dtype == xp.float64 else xp.complex64
    return t_ifft(xp.astype(s, complex_dtype)[:, None, :], k)[0, ...]


def _check_truth(truth: Array, shape: tuple[int, int, int]) -> None:
    xp = array_namespace(truth)
    if tuple(truth.shape) != shape:
        raise ValueError(f"truth: expected shape {shape} (n, n, k), got {tuple(truth.shape)}")
    spec = t_fft(truth)
    scale = to_float(xp.max(xp.abs(spec))) or 1.0
    tol = 100.0 * shape[0] * to_float(xp.finfo(real_dtype(truth)).eps) * scale
    asym = to_float(xp.max(xp.abs(spec - xp.conj(spec).mT)))
    low = to_float(xp.min(xp.linalg.eigvalsh((spec + xp.conj(spec).mT) / 2)))
    if asym > tol or low < -tol:
        raise ValueError(
            "truth: expected a symmetric positive semidefinite tubal tensor (X* = U* * U*^T: "
            f"Hermitian PSD Fourier slices), got asymmetry {asym:.2e} and smallest eigenvalue "
            f"{low:.2e} (tolerance {tol:.1e})"
        )


def _reference(sensing: SymmetricSensing, y: Array, truth: Array | None, rank: int) -> _Reference:
    xp = array_namespace(y)
    k = sensing.shape[2]
    # the power-method phase amplifies the largest (not the largest-magnitude) eigenvalues
    _, vecs = xp.linalg.eigh(t_fft(sensing.adjoint_sym(y)))
    power_basis = vecs[..., -rank:]
    truth_basis = truth_tube = None
    truth_norm = math.nan
    if truth is not None:
        _check_truth(truth, sensing.shape)
        truth_basis, s = _top_basis(xp, t_fft(truth), rank)
        truth_tube = _tubes(xp, xp.sqrt(s), k)[rank - 1, ...]
        truth_norm = to_float(xp.linalg.vector_norm(truth))
    return _Reference(
        rank=rank,
        y_norm=to_float(xp.linalg.vector_norm(y)),
        truth=truth,
        truth_norm=truth_norm,
        truth_basis=truth_basis,
        truth_tube=truth_tube,
        power_basis=power_basis,
    )


def _sin_largest_angle(xp: ModuleType, v: Array, w: Array) -> float:
    """Largest over the Fourier slices of ``||(I - V V^H) W||_2`` (orthonormal ``V, W``)."""
    return to_float(xp.max(xp.linalg.matrix_norm(w - v @ (xp.conj(v).mT @ w), ord=2)))


def _monitor(
    t: int, loss: float, u_hat: Array, x: Array, r: Array, ref: _Reference, rank_rtol: float
) -> GDMonitor:
    xp = array_namespace(u_hat)
    basis, s = _top_basis(xp, u_hat, ref.rank)
    tubes = _tubes(xp, s, x.shape[2])
    norms = xp.linalg.vector_norm(tubes, axis=1)
    test_error = tube_error = angle_truth = math.nan
    if ref.truth is not None:
        test_error = to_float(xp.linalg.vector_norm(x - ref.truth)) / ref.truth_norm
        tube = tubes[ref.rank - 1, ...]
        tube_error = to_float(
            xp.linalg.vector_norm(tube - ref.truth_tube) / xp.linalg.vector_norm(ref.truth_tube)
        )
        angle_truth = _sin_largest_angle(xp, basis, ref.truth_basis)
    return GDMonitor(
        iteration=t,
        loss=loss,
        train_error=to_float(xp.linalg.vector_norm(r)) / ref.y_norm,
        test_error=test_error,
        tube_error=tube_error,
        angle_power=_sin_largest_angle(xp, basis, ref.power_basis),
        angle_truth=angle_truth,
        tubal_rank=int(xp.sum(xp.astype(norms > rank_rtol * xp.max(norms), xp.int64))),
        tube_norms=norms,
    )


def _check_options(step: float, iterations: int, log_every: int, rank_rtol: float) -> None:
    if isinstance(step, bool) or not isinstance(step, int | float) or not 0 < step < math.inf:
        raise ValueError(f"step: expected a positive finite step size, got {step!r}")
    for name, value, low in (("iterations", iterations, 0), ("log_every", log_every, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    if not 0 < rank_rtol < 1:
        raise ValueError(f"rank_rtol: expected a threshold in (0, 1), got {rank_rtol!r}")


def _check_divergence(loss: float, first: float, t: int, step: float) -> None:
    if math.isfinite(loss) and loss <= DIVERGENCE_FACTOR * first:
        return
    raise FloatingPointError(
        f"tubal_gd diverged: the loss grew from {first:.3e} to {loss:.3e} by iteration {t} "
        f"(more than {DIVERGENCE_FACTOR:g} times); the step {step:g} is too large, try a "
        f"smaller one (e.g. step={step / 10:g})"
    )


def tubal_gd(
    u0: Array,
    matrix: Array,
    y: Array,
    *,
    rank: int,
    step: float,
    iterations: int,
    truth: Array | None = None,
    log_every: int = 10,
    rank_rtol: float = 1e-2,
    callback: Callable[[GDMonitor], None] | None = None,
) -> GDResult:
    """Gradient descent ``U_{t+1} = U_t - step * grad f(U_t)`` on the tubal factorization.

    Parameters
    ----------
    u0
        Initial factor ``(n, R, k)``, real; the paper's is ``(alpha / sqrt(R)) G`` with
        Gaussian ``G`` (:func:`problems.tubal_sensing.initial_factor`).
    matrix
        Sensing matrix ``(m, n n k)`` of the same backend, row ``i`` the flattened ``A_i``
        (C order), or a :class:`SymmetricSensing` built from it (to fold it once for
        several runs).
    y
        Measurements ``(m,)``.
    rank
        Target tubal rank ``r*`` (at most ``R``): the size of the subspaces whose angles are
        monitored and the index of the monitored singular tube.
    step
        Step size ``mu > 0``.
    iterations
        Number of gradient steps ``T``.
    truth
        Ground truth ``X*`` ``(n, n, k)``, symmetric PSD, for the test error, the tube error
        and the angle to the truth (NaN without it).
    log_every
        Record a :class:`GDMonitor` at every ``log_every``-th iteration and at ``T``.
    rank_rtol
        Relative threshold of the numerical tubal rank, in ``(0, 1)``.
    callback
        Called with each monitor as it is recorded (e.g. to log progress).

    Returns
    -------
    GDResult
        ``U_T`` and the monitors.

    Raises
    ------
    ValueError
        On a bad argument: shapes that do not fit together, ``R < r*``, a truth that is not
        symmetric PSD, a step that is not positive, ...
    FloatingPointError
        If the loss becomes non-finite or exceeds :data:`DIVERGENCE_FACTOR` times its initial
        value (or ``||y||^2 / 2`` if that is larger), checked at every iteration: the step
        is too large.

    Notes
    -----
    Per iteration: the batched products ``U_hat U_hat^H`` and ``G_hat U_hat`` on the half
    spectrum (``(k // 2 + 1) n^2 R`` complex multiply-adds each), an inverse FFT of ``X_t``
    and an FFT of ``G = A*(r) + A*(r)^T`` (``n x n x k`` each), and two products with the
    folded ``m x ~n^2 k / 2`` sensing matrix, which dominate for large ``n^2 k m``. The
    monitors add an SVD of every Fourier slice of ``U_t``.

    References
    ----------
    S. Karnik, A. Veselovska, M. Iwen, F. Krahmer, "Implicit Regularization for Tubal Tensor
    Factorizations via Gradient Descent", arXiv 2410.16247 (ICML 2025).
    """
    n, width, k = _check_u(u0, "u0")
    _check_options(step, iterations, log_every, rank_rtol)
    if isinstance(rank, bool) or not isinstance(rank, int) or not 1 <= rank <= min(n, width):
        raise ValueError(
            f"rank: expected an integer r* with 1 <= r* <= min(n, R) = {min(n, width)} "
            f"(the width R of u0 must be at least r*), got {rank!r}"
        )
    sensing = _sensing(matrix, n, k)
    xp = array_namespace(u0, y, truth, sensing.folded)
    _check_y(y, sensing.m)
    ref = _reference(sensing, y, truth, rank)
    # the update is linear in U, so the iterate stays in the Fourier domain throughout
    u_hat, history, first = t_fft(u0), [], math.inf
    for t in range(iterations + 1):
        x, r = _residual(u_hat, sensing, y)
        loss = 0.5 * to_float(xp.vecdot(r, r))
        if t == 0:  # the loss of U = 0 is ||y||^2 / 2: a floor for an exact start
            first = max(loss, 0.5 * ref.y_norm**2)
        _check_divergence(loss, first, t, step)
        if t % log_every == 0 or t == iterations:
            history.append(_monitor(t, loss, u_hat, x, r, ref, rank_rtol))
            if callback is not None:
                callback(history[-1])
        if t < iterations:
            u_hat = u_hat - step * _gradient_hat(u_hat, r, sensing)
    return GDResult(u=t_ifft(u_hat, k), history=tuple(history))
