"""SoKA: the principal Kronecker components of a pretrained weight become the adapter.

With the Kronecker-product SVD (KPSVD) of a pretrained weight ``W`` ``(out, in)``,
``W = sum_k sigma_k a_k ⊗ b_k`` (``a_k`` ``(m1, n1)``, ``b_k`` ``(m2, n2)``, ``out = m1 m2``,
``in = n1 n2``), the leading ``r`` terms go into trainable factors
``A_k = sqrt(sigma_k / s) a_k``, ``B_k = sqrt(sigma_k / s) b_k`` (``s = alpha / r``) and the
frozen base keeps the residual ``W - sum_{k<=r} sigma_k a_k ⊗ b_k``, so the output is
unchanged at step 0 (up to rounding). The update ``s sum_k A_k ⊗ B_k`` is applied by the
Kronecker mat-vec; it is formed densely only by :meth:`SoKALinear.merge`.

Choices the paper leaves open, settled here (see ``docs/adapters.md``):

- the KPSVD is taken of the pretrained weight (PiSSA style), not of a zero update;
- ``sigma_k`` is split evenly between the two factors (square root, as PiSSA);
- factor shapes: ``(m1, m2)`` = :func:`~tensorsim.kron.near_square_shape` of ``out``
  (``m1 >= m2``) and ``(n2, n1)`` that of ``in`` (``n1 <= n2``), which balances
  ``m1 n1`` against ``m2 n2`` and so maximizes the Kronecker rank ``min(m1 n1, m2 n2)``;
- per-layer rank: ``rank`` is a cap; ``select`` keeps it (``"fixed"``) or cuts it by the
  energy rule, the elbow rule, or the smaller of the two (``"energy_elbow"``).

References
----------
C. Chong, Y. Qu, "SoKA: SVD on Kronecker Adaptation", arXiv 2506.15251.
C. F. Van Loan, N. Pitsianis, in Linear Algebra for Large Scale and Real-Time Applications,
Kluwer (1993) 293.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from tensorsim.kron import KronSVD, kpsvd, kpsvd_to_dense, kron_matvec, near_square_shape
from tensorsim.nn.adapters.layer import AdapterLinear, check_alpha, svd_dtype

__all__ = [
    "SoKAConfig",
    "SoKALinear",
    "build_soka",
    "check_soka_rank",
    "elbow_rank",
    "energy_rank",
    "kronecker_shapes",
    "select_rank",
]

logger = logging.getLogger(__name__)

SOKA_SELECT = ("fixed", "energy", "elbow", "energy_elbow")

#: Smallest second difference of ``log sigma`` (nats) that counts as an elbow.
ELBOW_MIN_CURVATURE = 0.1


@dataclass(frozen=True)
class SoKAConfig:
    """Options of :func:`~tensorsim.nn.adapt` with ``method="soka"``.

    Parameters
    ----------
    alpha
        Scale numerator: the update is ``(alpha / r) sum_k A_k ⊗ B_k`` with ``r`` the
        layer's selected rank. ``None`` means ``alpha = r`` (scale 1).
    select
        Per-layer rank rule, capped by ``rank``: ``"fixed"`` (``rank``), ``"energy"``
        (:func:`energy_rank`), ``"elbow"`` (:func:`elbow_rank`) or ``"energy_elbow"`` (the
        smaller of the two).
    energy
        Fraction of ``sum sigma_k^2`` the energy rule keeps, in ``(0, 1]``.
    """

    alpha: float | None = None
    select: str = "fixed"
    energy: float = 0.9

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.select not in SOKA_SELECT:
            raise ValueError(f"select: expected one of {SOKA_SELECT}, got {self.select!r}")
        if (
            isinstance(self.energy, bool)
            or not isinstance(self.energy, int | float)
            or not 0 < self.energy <= 1
        ):
            raise ValueError(f"energy: expected a number in (0, 1], got {self.energy!r}")


def kronecker_shapes(out_features: int, in_features: int) -> tuple[tuple[int, int], ...]:
    """Factor shapes ``((m1, n1), (m2, n2))`` with ``m1 m2 = out`` and ``n1 n2 = in``.

    ``(m1, m2)`` is :func:`~tensorsim.kron.near_square_shape` of ``out`` and ``(n2, n1)``
    that of ``in``, so the larger part of ``out`` meets the smaller part of ``in`` and the
    Kronecker rank ``min(m1 n1, m2 n2)`` is as large as near-square splits allow.

    Examples
    --------
    >>> kronecker_shapes(24, 24)
    ((6, 4), (4, 6))
    """
    m1, m2 = near_square_shape(out_features)
    n2, n1 = near_square_shape(in_features)
    return (m1, n1), (m2, n2)


def check_soka_rank(name: str, layer: torch.nn.Linear, rank: int) -> None:
    """Raise ``ValueError`` naming the layer if ``rank`` exceeds its Kronecker rank.

    Parameters
    ----------
    name
        Qualified name of the layer in its model (for the message).
    layer
        The linear layer to adapt.
    rank
        Requested number of Kronecker terms.
    """
    (m1, n1), (m2, n2) = kronecker_shapes(layer.out_features, layer.in_features)
    limit = min(m1 * n1, m2 * n2)
    if rank > limit:
        raise ValueError(
            f"rank={rank} exceeds what layer '{name}' allows: its weight is "
            f"{layer.out_features} x {layer.in_features} = ({m1} x {n1}) ⊗ ({m2} x {n2}), "
            f"so the Kronecker rank is <= {limit}"
        )


def energy_rank(s: torch.Tensor, threshold: float) -> int:
    """Smallest ``r`` with ``sum_{k<=r} s_k^2 >= threshold * sum_k s_k^2``.

    Parameters
    ----------
    s
        Singular values, descending, shape ``(n,)``, ``n >= 1``.
    threshold
        Energy fraction in ``(0, 1]``.

    Returns
    -------
    int
        ``1 <= r <= n`` (``1`` for an all-zero spectrum).

    References
    ----------
    arXiv 2506.15251 (SoKA).
    """
    energy = torch.cumsum(s.double() ** 2, 0)
    if energy[-1] == 0:
        return 1
    below = int(torch.count_nonzero(energy / energy[-1] < threshold))
    return min(below + 1, int(s.shape[0]))


def elbow_rank(s: torch.Tensor) -> int:
    """Number of values before the sharpest convex corner of ``log s``.

    The elbow is the index ``j`` that maximizes the second difference
    ``log s_{j-1} - 2 log s_j + log s_{j+1}``; the values before it are kept, so ``r = j``.
    Values below ``s_0`` times the dtype's machine epsilon are raised to that floor (exact
    zeros then form a corner at the numerical rank). A spectrum without a corner of at least
    :data:`ELBOW_MIN_CURVATURE` (flat or geometric) has no negligible part: ``r = n``.

    Parameters
    ----------
    s
        Singular values, descending, shape ``(n,)``, ``n >= 1``.

    Returns
    -------
    int
        ``1 <= r <= n``.

    References
    ----------
    arXiv 2506.15251 (SoKA).
    """
    n = int(s.shape[0])
    if n < 3 or s[0] == 0:
        return n
    floor = float(s[0]) * torch.finfo(s.dtype).eps
    log = torch.log(torch.clamp(s.double(), min=floor))
    curvature = log[:-2] - 2 * log[1:-1] + log[2:]
    j = int(torch.argmax(curvature))
    return j + 1 if float(curvature[j]) >= ELBOW_MIN_CURVATURE else n


def select_rank(s: torch.Tensor, rank: int, config: SoKAConfig) -> int:
    """The number of Kronecker terms to keep from spectrum ``s`` under ``config.select``.

    Parameters
    ----------
    s
        All Kronecker singular values of the weight, descending.
    rank
        Cap on the result.
    config
        The rule (:class:`SoKAConfig`).

    Returns
    -------
    int
        ``1 <= r <= rank``.
    """
    rules = {
        "fixed": lambda: rank,
        "energy": lambda: energy_rank(s, config.energy),
        "elbow": lambda: elbow_rank(s),
        "energy_elbow": lambda: min(energy_rank(s, config.energy), elbow_rank(s)),
    }
    return min(rank, rules[config.select]())


class SoKALinear(AdapterLinear):
    """``y = W_res x + b + s sum_k (A_k ⊗ B_k) x`` with ``A_k``, ``B_k`` trained.

    Parameters
    ----------
    base_layer
        The pretrained linear layer; its weight is replaced by the KPSVD residual.
    rank
        Cap on the number of Kronecker terms (at most the layer's Kronecker rank).
    config
        Scale and rank rule (:class:`SoKAConfig`).

    Attributes
    ----------
    soka_A
        ``(r, m1, n1)`` parameter, the left Kronecker factors.
    soka_B
        ``(r, m2, n2)`` parameter, the right Kronecker factors.
    spectrum
        All Kronecker singular values of the pretrained weight (a buffer, not saved).

    References
    ----------
    arXiv 2506.15251 (SoKA).
    """

    @torch.no_grad()
    def __init__(self, base_layer: torch.nn.Linear, rank: int, config: SoKAConfig) -> None:
        w = base_layer.weight
        shape_a, shape_b = kronecker_shapes(*w.shape)
        k = kpsvd(w.detach().to(svd_dtype(w)), shape_a, shape_b)
        r = select_rank(k.s, rank, config)
        alpha = r if config.alpha is None else config.alpha
        super().__init__(base_layer, alpha / r)
        root = torch.sqrt(k.s[:r] / self.scaling)
        a, b = root[:, None, None] * k.a[:r], root[:, None, None] * k.b[:r]
        w.copy_(w.to(a.dtype) - self.scaling * _dense(a, b))
        self.soka_A = torch.nn.Parameter(a.to(w.dtype))
        self.soka_B = torch.nn.Parameter(b.to(w.dtype))
        self.register_buffer("spectrum", k.s.to(w.dtype), persistent=False)

    @property
    def rank(self) -> int:
        """Number of Kronecker terms kept."""
        return int(self.soka_A.shape[0])

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``s sum_k (A_k ⊗ B_k) x``, by the cheaper of two exact routes.

        Applying the factors (:func:`~tensorsim.kron.kron_matvec`, term by term) costs
        ``r (n1 n2 m2 + m1 n1 m2)`` per input vector; forming the dense update once costs
        ``r m n`` per call, whatever the batch. Few vectors (decoding, small batches) take the
        first route, large batches the second.
        """
        (m1, n1), (m2, n2) = self.soka_A.shape[1:], self.soka_B.shape[1:]
        vectors = x.numel() // max(1, x.shape[-1])
        if vectors * (n1 * n2 * m2 + m1 * n1 * m2) >= self.out_features * self.in_features:
            return torch.nn.functional.linear(x, self.delta_weight())
        terms = (kron_matvec([a, b], x) for a, b in zip(self.soka_A, self.soka_B, strict=True))
        return self.scaling * sum(terms)

    def delta_weight(self) -> torch.Tensor:
        """Return ``s sum_k A_k ⊗ B_k`` of shape ``(out, in)``."""
        return self.scaling * _dense(self.soka_A, self.soka_B)

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """``[soka_A, soka_B]``."""
        return [self.soka_A, self.soka_B]

    def extra_repr(self) -> str:
        """Rank and factor shapes, shown in the module's repr."""
        return (
            f"rank={self.rank}, a={tuple(self.soka_A.shape[1:])}, b={tuple(self.soka_B.shape[1:])}"
        )


def _dense(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``sum_k a_k ⊗ b_k`` by :func:`~tensorsim.kron.kpsvd_to_dense` with unit weights."""
    ones = torch.ones(a.shape[0], dtype=a.dtype, device=a.device)
    return kpsvd_to_dense(KronSVD(ones, a, b))


def build_soka(
    groups: dict[str, dict[str, torch.nn.Linear]],
    rank: int,
    config: SoKAConfig,
    generator: torch.Generator | None = None,
) -> dict[str, AdapterLinear]:
    """Wrap every layer of every target group in its own :class:`SoKALinear`.

    Parameters
    ----------
    groups
        Target pattern -> {qualified layer name: layer}.
    rank, config
        As in :class:`SoKALinear`.
    generator
        Unused (the initialization is deterministic); accepted for a uniform builder API.

    Returns
    -------
    dict
        Qualified layer name -> adapter layer.
    """
    adapters: dict[str, AdapterLinear] = {}
    for layers in groups.values():
        for name, layer in layers.items():
            adapters[name] = SoKALinear(layer, rank, config)
            logger.debug("soka: layer %s keeps %d Kronecker terms", name, adapters[name].rank)
    return adapters
