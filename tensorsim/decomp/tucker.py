"""Tucker format and the (sequentially truncated) higher-order SVD."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tensorsim._array_api import Array, array_namespace, to_float
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.linalg import Truncation, truncated_svd
from tensorsim.tensor_ops import multi_mode_dot, unfold

__all__ = ["Tucker", "hosvd", "sthosvd", "tucker_to_dense"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tucker:
    """A tensor in Tucker format ``core ×_0 U_0 ×_1 U_1 ... ×_{d-1} U_{d-1}``.

    Attributes
    ----------
    core
        Core tensor of shape ``(r_0, ..., r_{d-1})``.
    factors
        Factor matrices ``U_n`` of shape ``(I_n, r_n)``.
    discarded
        For a truncated decomposition, the 2-norm of the singular values cut in each mode
        (empty otherwise). ``error_bound`` combines them.
    """

    core: Array
    factors: tuple[Array, ...]
    discarded: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if len(self.factors) != self.core.ndim:
            raise ValueError(
                f"factors: expected {self.core.ndim} factors for a {self.core.ndim}-way core, "
                f"got {len(self.factors)}"
            )
        for n, u in enumerate(self.factors):
            if u.ndim != 2 or u.shape[1] != self.core.shape[n]:
                raise ValueError(
                    f"factors[{n}]: expected shape (I, {self.core.shape[n]}), got {tuple(u.shape)}"
                )

    @property
    def ranks(self) -> tuple[int, ...]:
        """Multilinear ranks ``(r_0, ..., r_{d-1})``."""
        return tuple(int(r) for r in self.core.shape)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the full tensor."""
        return tuple(int(u.shape[0]) for u in self.factors)

    @property
    def size(self) -> int:
        """Number of stored entries (core plus factors)."""
        return math.prod(self.ranks) + sum(u.shape[0] * u.shape[1] for u in self.factors)

    @property
    def error_bound(self) -> float:
        """Upper bound of the Frobenius error: ``sqrt(sum of squared discarded values)``."""
        return math.sqrt(sum(d * d for d in self.discarded))

    def to_dense(self) -> Array:
        """Return the full tensor (see :func:`tucker_to_dense`)."""
        return tucker_to_dense(self)


def tucker_to_dense(tucker: Tucker) -> Array:
    """Multiply out a :class:`Tucker` tensor."""
    return multi_mode_dot(tucker.core, tucker.factors)


def _per_mode(x: Array, trunc: Truncation | Sequence[Truncation] | None) -> list:
    d = x.ndim
    if trunc is None:
        return [None] * d
    if isinstance(trunc, Truncation):
        norm = to_float(array_namespace(x).linalg.vector_norm(x)) if trunc.rtol else 0.0
        return [trunc.split(norm, d)] * d
    rules = list(trunc)
    if len(rules) != d or not all(isinstance(r, Truncation) for r in rules):
        raise ValueError(f"trunc: expected a Truncation or {d} Truncations, got {trunc!r}")
    return rules


def hosvd(x: Array, trunc: Truncation | Sequence[Truncation] | None = None) -> Tucker:
    """Truncated higher-order SVD (De Lathauwer, De Moor, Vandewalle 2000).

    Each factor holds the leading left singular vectors of the unfolding of ``x`` itself;
    the core is ``x`` projected on all factors.

    Parameters
    ----------
    x
        Tensor with at least two modes, finite, no mode of length 0. An all-zero ``x``
        gives a zero core, of ranks ``min_rank`` when ``trunc`` sets a tolerance.
    trunc
        One rule for all modes, whose tolerance (relative to ``||x||``) is split as
        ``tol / sqrt(d)`` over the ``d`` modes so that ``||x - result|| <= tol``; or a
        sequence of ``d`` rules applied as given; or ``None`` (no truncation).

    Returns
    -------
    Tucker
        With ``discarded`` per mode; ``||x - to_dense|| <= error_bound``.

    Raises
    ------
    ValueError
        If ``x`` has fewer than two modes, a mode of length 0, or a NaN or an Inf.

    References
    ----------
    L. De Lathauwer, B. De Moor, J. Vandewalle, SIAM J. Matrix Anal. Appl. 21 (2000) 1253.
    """
    _check_tensor(x)
    rules = _per_mode(x, trunc)
    factors, discarded = [], []
    for n in range(x.ndim):
        res = truncated_svd(unfold(x, n), rules[n], check_finite=False)
        factors.append(res.u)
        discarded.append(res.discarded)
    core = multi_mode_dot(x, factors, adjoint=True)
    return Tucker(core, tuple(factors), tuple(discarded))


def sthosvd(
    x: Array,
    trunc: Truncation | Sequence[Truncation] | None = None,
    *,
    order: Sequence[int] | None = None,
) -> Tucker:
    """Sequentially truncated HOSVD (Vannieuwenhoven, Vandebril, Meerbergen 2012).

    Modes are truncated one after another, each on the core already projected on the
    previous factors, which is cheaper than :func:`hosvd` and has the same error bound.

    Parameters
    ----------
    x
        Tensor with at least two modes.
    trunc
        As in :func:`hosvd`.
    order
        Order in which the modes are processed (default: largest dimension first).

    Returns
    -------
    Tucker
        With ``discarded`` per mode (in mode order); ``||x - to_dense|| <= error_bound``.

    Raises
    ------
    ValueError
        As :func:`hosvd`, or if ``order`` is not a permutation of the modes.

    References
    ----------
    N. Vannieuwenhoven, R. Vandebril, K. Meerbergen, SIAM J. Sci. Comput. 34 (2012) A1027.
    """
    xp = array_namespace(x)
    _check_tensor(x)
    d = x.ndim
    rules = _per_mode(x, trunc)
    if order is None:
        order = sorted(range(d), key=lambda n: -x.shape[n])
    order = [int(n) for n in order]
    if sorted(order) != list(range(d)):
        raise ValueError(f"order: expected a permutation of range({d}), got {order}")
    factors: list[Array | None] = [None] * d
    discarded = [0.0] * d
    core = x
    for n in order:
        res = truncated_svd(unfold(core, n), rules[n], check_finite=False)
        factors[n] = res.u
        discarded[n] = res.discarded
        # the new core along mode n is diag(s) vh, folded back
        core = xp.moveaxis(
            xp.reshape(
                res.s[:, None] * res.vh,
                (res.s.shape[0], *[core.shape[m] for m in range(d) if m != n]),
            ),
            0,
            n,
        )
    return Tucker(core, tuple(factors), tuple(discarded))


def _check_tensor(x: Array) -> None:
    """The entry check of :func:`hosvd` and :func:`sthosvd` (before any norm or SVD)."""
    array_namespace(x)  # a supported array type
    if x.ndim < 2:
        raise ValueError(f"x: expected a tensor with at least 2 modes, got shape {x.shape}")
    check_nonempty("x", x)
    check_finite("x", x)
