"""CP (canonical polyadic) format and alternating least squares."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensorsim._array_api import Array, array_namespace, device, to_float
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.decomp._cpkernels import (
    SweepMTTKRP,
    cp_norm2,
    hadamard,
    relative_error_from_inner,
)
from tensorsim.linalg import truncated_svd
from tensorsim.tensor_ops import unfold

__all__ = ["CP", "cp_als", "cp_to_dense"]

logger = logging.getLogger(__name__)

#: Below this relative error the fast Gram-based error loses digits to cancellation, so the
#: residual is formed explicitly.
_EXACT_ERROR_BELOW = 1e-4


@dataclass(frozen=True)
class CP:
    """A tensor in CP format ``sum_r weights[r] * A_0[:, r] ∘ ... ∘ A_{d-1}[:, r]``.

    Attributes
    ----------
    weights
        Weights of the rank-one terms, shape ``(R,)``.
    factors
        Factor matrices ``A_n`` of shape ``(I_n, R)``.
    errors
        Error after each iteration, for a fitted decomposition (else empty): the relative
        Frobenius error (``nonneg_cp`` with ``loss="kl"``: the divergence, see there).
    """

    weights: Array
    factors: tuple[Array, ...]
    errors: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        r = self.weights.shape[0] if self.weights.ndim == 1 else -1
        if r < 0:
            raise ValueError(f"weights: expected a vector, got shape {tuple(self.weights.shape)}")
        for n, a in enumerate(self.factors):
            if a.ndim != 2 or a.shape[1] != r:
                raise ValueError(f"factors[{n}]: expected shape (I, {r}), got {tuple(a.shape)}")

    @property
    def rank(self) -> int:
        """Number of rank-one terms."""
        return int(self.weights.shape[0])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the full tensor."""
        return tuple(int(a.shape[0]) for a in self.factors)

    @property
    def size(self) -> int:
        """Number of stored entries (weights plus factors)."""
        return self.rank * (1 + sum(self.shape))

    def to_dense(self) -> Array:
        """Return the full tensor (see :func:`cp_to_dense`)."""
        return cp_to_dense(self)


def cp_to_dense(cp: CP) -> Array:
    """Multiply out a :class:`CP` tensor (Khatri-Rao rows built once, then one matmul)."""
    xp = array_namespace(cp.weights, *cp.factors)
    r = cp.rank
    if len(cp.factors) == 1:
        return xp.sum(cp.factors[0] * cp.weights, axis=1)
    rows = cp.factors[0] * cp.weights
    for a in cp.factors[1:-1]:
        rows = xp.reshape(rows[:, None, :] * a[None, :, :], (-1, r))
    return xp.reshape(rows @ cp.factors[-1].mT, cp.shape)


def _initial_factors(x: Array, rank: int, init: str | CP, rng: np.random.Generator) -> list[Array]:
    xp = array_namespace(x)
    if isinstance(init, CP):
        if init.shape != tuple(x.shape) or init.rank != rank:
            raise ValueError(
                f"init: expected a CP of shape {tuple(x.shape)} and rank {rank}, "
                f"got shape {init.shape} and rank {init.rank}"
            )
        check_finite("init.weights", init.weights)
        for n, a in enumerate(init.factors):
            check_finite(f"init.factors[{n}]", a)
        first = init.factors[0] * init.weights
        return [first, *init.factors[1:]]
    factors = []
    for n, size in enumerate(x.shape):
        if init == "svd":
            u = truncated_svd(unfold(x, n), check_finite=False).u[:, :rank]
            if u.shape[1] < rank:
                extra = rng.standard_normal((size, rank - u.shape[1]))
                u = xp.concat([u, xp.asarray(extra, dtype=x.dtype, device=device(x))], axis=1)
        elif init == "random":
            u = xp.asarray(rng.standard_normal((size, rank)), dtype=x.dtype, device=device(x))
        else:
            raise ValueError(f"init: expected 'svd', 'random' or a CP, got {init!r}")
        factors.append(u)
    return factors


def cp_als(
    x: Array,
    rank: int,
    *,
    init: str | CP = "svd",
    tol: float = 1e-8,
    max_iter: int = 100,
    rng: np.random.Generator | int | None = None,
    callback: Callable[[int, float], Any] | None = None,
) -> CP:
    """Fit a rank-``rank`` CP decomposition by alternating least squares.

    Each sweep solves, mode after mode, the linear least-squares problem for one factor
    with the others fixed: ``A_n = MTTKRP_n(x) (⊛_{m != n} A_m^T A_m)^{-1}`` (Kolda & Bader
    2009). The relative error is computed from Gram matrices (no reconstruction) until it
    falls below 1e-4, where that formula loses digits to cancellation; from then on the
    residual is formed explicitly.

    Parameters
    ----------
    x
        Real tensor with at least two modes, finite, no mode of length 0, not all zero.
    rank
        Number of rank-one terms.
    init
        ``"svd"`` (leading left singular vectors of each unfolding, padded with Gaussian
        columns if ``rank`` exceeds a dimension), ``"random"`` (Gaussian), or a :class:`CP`.
    tol
        Stop when the relative error changes by less than ``tol`` between sweeps
        (the rule of TensorLy's ``parafac``), or falls below ``tol``.
    max_iter
        Largest number of sweeps.
    rng
        Generator or seed for the random parts of the initialization.
    callback
        Called as ``callback(iteration, relative_error)`` after every sweep.

    Returns
    -------
    CP
        Factors with unit-norm columns, the weights, and the error history.

    Raises
    ------
    ValueError
        If ``x`` has fewer than two modes, a mode of length 0, a NaN or an Inf, or is all
        zero (nothing to fit); if ``init`` does not fit ``x`` or is not finite; if the
        other arguments are out of range.
    TypeError
        If ``x`` is complex.
    FloatingPointError
        If a sweep produces a NaN or an Inf from finite input (the error is tested on the
        host after every sweep, where it is computed anyway).

    References
    ----------
    T. G. Kolda, B. W. Bader, SIAM Review 51 (2009) 455.
    """
    xp = array_namespace(x)
    if x.ndim < 2:
        raise ValueError(f"x: expected a tensor with at least 2 modes, got shape {x.shape}")
    if xp.isdtype(x.dtype, "complex floating"):
        raise TypeError("x: cp_als supports real tensors only")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank: expected an integer >= 1, got {rank!r}")
    if not tol >= 0:
        raise ValueError(f"tol: expected a float >= 0, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter: expected an integer >= 1, got {max_iter!r}")
    check_nonempty("x", x)
    check_finite("x", x)
    rng = np.random.default_rng(rng)
    d = x.ndim
    norm_x = to_float(xp.linalg.vector_norm(x))
    if norm_x == 0.0:
        raise ValueError("x: the tensor is zero; nothing to fit")
    factors = _initial_factors(x, rank, init, rng)
    grams = [a.mT @ a for a in factors]
    weights = xp.ones(rank, dtype=x.dtype, device=device(x))
    errors: list[float] = []
    sweep = SweepMTTKRP(x, range(d), rank)
    for it in range(max_iter):
        sweep.start(factors)
        for n in range(d):
            v = hadamard([grams[m] for m in range(d) if m != n])
            m_n = sweep(factors, n)
            a = xp.linalg.solve(v, m_n.mT).mT
            weights = xp.linalg.vector_norm(a, axis=0)
            safe = xp.where(weights == 0, xp.ones_like(weights), weights)
            factors[n] = a / safe
            grams[n] = factors[n].mT @ factors[n]
        # the last mode's MTTKRP gives <x, x_hat> for free
        inner = to_float(xp.sum(xp.sum(m_n * factors[d - 1], axis=0) * weights))
        err = relative_error_from_inner(norm_x, inner, cp_norm2(grams, weights))
        if err < _EXACT_ERROR_BELOW:
            fit = CP(weights, tuple(factors))
            err = to_float(xp.linalg.vector_norm(x - cp_to_dense(fit))) / norm_x
        if not math.isfinite(err):
            raise FloatingPointError(
                f"cp_als: sweep {it} produced NaN/Inf from finite x (rank {rank} too high for "
                "the data, or x badly scaled); lower the rank or rescale x"
            )
        errors.append(err)
        if callback is not None:
            callback(it, err)
        if err <= tol or (it > 0 and abs(errors[-2] - err) < tol):
            break
    return CP(weights, tuple(factors), tuple(errors))
