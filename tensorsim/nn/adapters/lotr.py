"""LoTR: layers of one group share two factors, each layer trains only a small core.

For a group of ``L`` same-shaped weights (e.g. all query projections of a transformer) the
update of layer ``l`` is ``delta W_l = s A G_l B^T`` with ``A`` ``(out, r)`` and ``B``
``(in, r)`` shared by the group, a per-layer core ``G_l`` ``(r, r)`` and ``s = alpha / r``.
Stacked over the layers the updates form a Tucker2 tensor (identity factor on the layer
mode). A group costs ``r (out + in) + L r^2`` trainable parameters, against
``L r (out + in)`` for LoRA of the same rank.

Two initializations:

- ``"zero"``: ``A`` and ``B`` with random orthonormal columns, ``G_l = 0``; the output is
  exactly unchanged at step 0. (The reference code draws ``A``, ``B`` from ``N(0, 1)``;
  orthonormal columns keep the scale of the core's gradient independent of the layer size.)
- ``"tucker"``: ``A``, ``B`` are the leading ``r`` left singular vectors of the out- and
  in-mode unfoldings of the stacked weights ``[W_1, ..., W_L]`` (HOSVD of the two weight
  modes), ``G_l = A^T W_l B / s``; the frozen bases keep the residuals ``W_l - A A^T W_l B
  B^T``, so the output is unchanged up to rounding (as PiSSA does for LoRA).

References
----------
D. Bershatsky, D. Cherniuk, T. Daulbaev, A. Mikhalev, I. Oseledets, "LoTR: Low Tensor Rank
Weight Adaptation", arXiv 2402.01376.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from tensorsim.linalg import Truncation, orth, truncated_svd
from tensorsim.nn.adapters.layer import AdapterLinear, check_alpha, svd_dtype
from tensorsim.tensor_ops import multi_mode_dot, unfold

__all__ = ["LoTRConfig", "LoTRFactors", "LoTRLinear", "build_lotr", "tucker2"]

logger = logging.getLogger(__name__)

LOTR_INITS = ("zero", "tucker")


@dataclass(frozen=True)
class LoTRConfig:
    """Options of :func:`~tensorsim.nn.adapt` with ``method="lotr"``.

    Parameters
    ----------
    alpha
        Scale numerator: the update is ``(alpha / rank) A G_l B^T``. ``None`` means
        ``alpha = rank`` (scale 1).
    init
        ``"zero"`` (orthonormal random ``A``, ``B``, zero cores) or ``"tucker"`` (Tucker2 of
        the stacked pretrained weights moved into the adapter, residuals frozen).
    """

    alpha: float | None = None
    init: str = "zero"

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.init not in LOTR_INITS:
            raise ValueError(f"init: expected one of {LOTR_INITS} for LoTR, got {self.init!r}")


class LoTRFactors(torch.nn.Module):
    """The factors ``A`` ``(out, r)`` and ``B`` ``(in, r)`` shared by one group of layers.

    Parameters
    ----------
    a, b
        Initial values of ``A`` and ``B``.
    group
        Name of the group (target pattern and weight shape), used in reports.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor, group: str) -> None:
        super().__init__()
        self.lotr_A = torch.nn.Parameter(a)
        self.lotr_B = torch.nn.Parameter(b)
        self.group = group

    def extra_repr(self) -> str:
        """Group name and rank, shown in the module's repr."""
        return f"group={self.group!r}, rank={self.lotr_A.shape[1]}"


class LoTRLinear(AdapterLinear):
    """``y = W_l x + b_l + s A G_l B^T x``; ``A``, ``B`` shared in a group, ``G_l`` per layer.

    Parameters
    ----------
    base_layer
        The pretrained linear layer ``W_l`` ``(out, in)``.
    factors
        The group's shared :class:`LoTRFactors`.
    core
        Initial core ``G_l`` ``(r, r)``.
    scaling
        ``s = alpha / r``.

    References
    ----------
    arXiv 2402.01376 (LoTR).
    """

    def __init__(
        self,
        base_layer: torch.nn.Linear,
        factors: LoTRFactors,
        core: torch.Tensor,
        scaling: float,
    ) -> None:
        super().__init__(base_layer, scaling)
        self.factors = factors
        self.lotr_core = torch.nn.Parameter(core)

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``s A G_l B^T x`` as three thin products."""
        linear = torch.nn.functional.linear
        xb = x @ self.factors.lotr_B
        return self.scaling * linear(linear(xb, self.lotr_core), self.factors.lotr_A)

    def delta_weight(self) -> torch.Tensor:
        """Return ``s A G_l B^T`` of shape ``(out, in)``."""
        f = self.factors
        return self.scaling * (f.lotr_A @ self.lotr_core @ f.lotr_B.mT)

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """``[lotr_core]``."""
        return [self.lotr_core]

    def shared_modules(self) -> list[torch.nn.Module]:
        """``[factors]``: the group's shared ``A`` and ``B``."""
        return [self.factors]


def tucker2(stack: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Tucker2 of stacked matrices ``(L, out, in)`` with an identity factor on mode 0.

    ``A`` and ``B`` are the leading ``rank`` left singular vectors of the mode-1 and mode-2
    unfoldings (the HOSVD factors of the two matrix modes, by :func:`truncated_svd`); the
    cores are ``G_l = A^T X_l B``. With ``rank`` at least the multilinear ranks of the
    matrix modes, ``A G_l B^T`` reproduces ``X_l``.

    Parameters
    ----------
    stack
        Tensor ``(L, out, in)``.
    rank
        Rank kept in the two matrix modes, ``<= min(out, in)``.

    Returns
    -------
    tuple
        ``(a, cores, b)`` of shapes ``(out, r)``, ``(L, r, r)``, ``(in, r)``.

    References
    ----------
    arXiv 2402.01376 (LoTR).
    """
    if stack.ndim != 3:
        raise ValueError(f"stack: expected a tensor (L, out, in), got shape {tuple(stack.shape)}")
    trunc = Truncation(max_rank=rank)
    a = truncated_svd(unfold(stack, 1), trunc).u
    b = truncated_svd(unfold(stack, 2), trunc).u
    cores = multi_mode_dot(stack, [a, b], modes=[1, 2], adjoint=True)
    return a, cores, b


def _random_orthonormal(rows: int, rank: int, like: torch.Tensor, generator) -> torch.Tensor:
    kw = {"dtype": svd_dtype(like), "device": like.device}
    return orth(torch.randn(rows, rank, generator=generator, **kw)).to(like.dtype)


@torch.no_grad()
def _build_group(
    group: str,
    layers: dict[str, torch.nn.Linear],
    rank: int,
    config: LoTRConfig,
    generator: torch.Generator | None,
) -> dict[str, AdapterLinear]:
    alpha = rank if config.alpha is None else config.alpha
    scaling = alpha / rank
    first = next(iter(layers.values())).weight
    kw = {"dtype": first.dtype, "device": first.device}
    out_features, in_features = first.shape
    if config.init == "tucker":
        stack = torch.stack([layer.weight.to(svd_dtype(first)) for layer in layers.values()])
        a, cores, b = tucker2(stack, rank)
        for layer, core in zip(layers.values(), cores, strict=True):
            w = layer.weight
            w.copy_(w.to(a.dtype) - a @ core @ b.mT)
        cores = (cores / scaling).to(**kw)
        a, b = a.to(**kw), b.to(**kw)
    else:
        a = _random_orthonormal(out_features, rank, first, generator)
        b = _random_orthonormal(in_features, rank, first, generator)
        cores = torch.zeros(len(layers), rank, rank, **kw)
    factors = LoTRFactors(a, b, group)
    return {
        name: LoTRLinear(layer, factors, core.clone(), scaling)
        for (name, layer), core in zip(layers.items(), cores, strict=True)
    }


def build_lotr(
    groups: dict[str, dict[str, torch.nn.Linear]],
    rank: int,
    config: LoTRConfig,
    generator: torch.Generator | None = None,
) -> dict[str, AdapterLinear]:
    """Wrap the layers of each target group, split by weight shape, in :class:`LoTRLinear`.

    Layers matched by one target pattern and with the same weight shape, dtype and device
    form one group sharing ``A`` and ``B``.

    Parameters
    ----------
    groups
        Target pattern -> {qualified layer name: layer}.
    rank
        Rank ``r`` of the shared factors and of the ``r x r`` cores.
    config
        Scale and initialization (:class:`LoTRConfig`).
    generator
        Random generator for the ``"zero"`` init's factors.

    Returns
    -------
    dict
        Qualified layer name -> adapter layer.
    """
    adapters: dict[str, AdapterLinear] = {}
    for pattern, layers in groups.items():
        by_kind: dict[tuple, dict[str, torch.nn.Linear]] = {}
        for name, layer in layers.items():
            w = layer.weight
            by_kind.setdefault((tuple(w.shape), w.dtype, w.device), {})[name] = layer
        for (shape, _, _), members in by_kind.items():
            group = f"{pattern} ({shape[0]}x{shape[1]})"
            adapters.update(_build_group(group, members, rank, config, generator))
    return adapters
