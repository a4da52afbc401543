"""Tensor-train (TT / MPS) format and the TT-SVD."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tensorsim._array_api import Array, array_namespace, to_float
from tensorsim._checks import check_finite, check_nonempty
from tensorsim.linalg import Truncation, truncated_svd

__all__ = ["TT", "tt_svd", "tt_to_dense"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TT:
    """A tensor in tensor-train format.

    Attributes
    ----------
    cores
        Cores ``G_k`` of shape ``(r_{k-1}, I_k, r_k)`` with ``r_0 = r_d = 1``.
    discarded
        For a truncated decomposition, the 2-norm of the singular values cut at each of
        the ``d - 1`` steps (empty otherwise).
    """

    cores: tuple[Array, ...]
    discarded: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not self.cores:
            raise ValueError("cores: expected at least one core")
        left = 1
        for k, g in enumerate(self.cores):
            if g.ndim != 3 or g.shape[0] != left:
                raise ValueError(
                    f"cores[{k}]: expected shape ({left}, I, r), got {tuple(g.shape)}"
                )
            left = g.shape[2]
        if left != 1:
            raise ValueError(f"cores[-1]: expected last rank 1, got {left}")

    @property
    def ranks(self) -> tuple[int, ...]:
        """Bond ranks ``(r_1, ..., r_{d-1})``."""
        return tuple(int(g.shape[2]) for g in self.cores[:-1])

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the full tensor."""
        return tuple(int(g.shape[1]) for g in self.cores)

    @property
    def size(self) -> int:
        """Number of stored entries."""
        return sum(math.prod(g.shape) for g in self.cores)

    @property
    def error_bound(self) -> float:
        """Upper bound of the Frobenius error: ``sqrt(sum of squared discarded values)``."""
        return math.sqrt(sum(d * d for d in self.discarded))

    def to_dense(self) -> Array:
        """Return the full tensor (see :func:`tt_to_dense`)."""
        return tt_to_dense(self)


def tt_to_dense(tt: TT) -> Array:
    """Contract a :class:`TT` into the full tensor."""
    xp = array_namespace(*tt.cores)
    out = xp.reshape(tt.cores[0], (-1, tt.cores[0].shape[2]))
    for g in tt.cores[1:]:
        out = xp.reshape(out @ xp.reshape(g, (g.shape[0], -1)), (-1, g.shape[2]))
    return xp.reshape(out, tt.shape)


def tt_svd(x: Array, trunc: Truncation | Sequence[Truncation] | None = None) -> TT:
    """TT-SVD: left-to-right sweep of truncated SVDs (Oseledets 2011).

    Parameters
    ----------
    x
        Tensor with at least two modes, finite, no mode of length 0. An all-zero ``x``
        gives zero cores, of ranks ``min_rank`` when ``trunc`` sets a tolerance.
    trunc
        One rule whose tolerance (relative to ``||x||``) is split as ``tol / sqrt(d - 1)``
        over the ``d - 1`` SVDs, so that ``||x - result|| <= tol``; or ``d - 1`` rules,
        one per bond; or ``None`` (exact).

    Returns
    -------
    TT
        With ``discarded`` per bond; ``||x - to_dense|| <= error_bound``.

    Raises
    ------
    ValueError
        If ``x`` has fewer than two modes, a mode of length 0, or a NaN or an Inf.

    References
    ----------
    I. V. Oseledets, SIAM J. Sci. Comput. 33 (2011) 2295.
    """
    xp = array_namespace(x)
    if x.ndim < 2:
        raise ValueError(f"x: expected a tensor with at least 2 modes, got shape {x.shape}")
    check_nonempty("x", x)
    check_finite("x", x)
    d = x.ndim
    if trunc is None:
        rules = [None] * (d - 1)
    elif isinstance(trunc, Truncation):
        norm = to_float(xp.linalg.vector_norm(x)) if trunc.rtol else 0.0
        rules = [trunc.split(norm, d - 1)] * (d - 1)
    else:
        rules = list(trunc)
        if len(rules) != d - 1 or not all(isinstance(r, Truncation) for r in rules):
            raise ValueError(f"trunc: expected a Truncation or {d - 1} Truncations, got {trunc!r}")
    cores, discarded = [], []
    rest = x
    left = 1
    for k in range(d - 1):
        n = x.shape[k]
        res = truncated_svd(xp.reshape(rest, (left * n, -1)), rules[k], check_finite=False)
        r = res.s.shape[0]
        cores.append(xp.reshape(res.u, (left, n, r)))
        discarded.append(res.discarded)
        rest = res.s[:, None] * res.vh
        left = r
    cores.append(xp.reshape(rest, (left, x.shape[-1], 1)))
    return TT(tuple(cores), tuple(discarded))
