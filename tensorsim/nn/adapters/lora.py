"""LoRA: a frozen linear layer plus a trainable rank-``r`` update ``(alpha / r) B A``.

Two initializations:

- ``"zero"`` (as peft's default): ``A`` Kaiming-uniform (``a = sqrt(5)``, the bound of
  ``torch.nn.Linear``), ``B = 0``, so the layer's output is exactly unchanged at step 0;
- ``"pissa"``: the leading ``r`` singular triplets of the pretrained weight ``W = U S V^T``
  go into the adapter (``B = U_r sqrt(S_r / s)``, ``A = sqrt(S_r / s) V_r^T`` with
  ``s = alpha / r``) and the frozen base keeps the residual ``W - s B A``, so the output is
  unchanged up to rounding while the trainable part starts on the principal directions.

References
----------
E. J. Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685.
F. Meng, Z. Wang, M. Zhang, "PiSSA: Principal Singular Values and Singular Vectors
Adaptation of Large Language Models", arXiv 2404.02948.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from tensorsim.nn.adapters.layer import AdapterLinear, check_alpha, leading_svd

__all__ = ["LoRAConfig", "LoRALinear", "build_lora"]

logger = logging.getLogger(__name__)

LORA_INITS = ("zero", "pissa")


@dataclass(frozen=True)
class LoRAConfig:
    """Options of :func:`~tensorsim.nn.adapt` with ``method="lora"``.

    Parameters
    ----------
    alpha
        Scale numerator: the update is ``(alpha / rank) B A``. ``None`` means
        ``alpha = rank`` (scale 1).
    init
        ``"zero"`` (Kaiming-uniform ``A``, zero ``B``) or ``"pissa"`` (principal SVD part of
        the weight moved into the adapter, residual frozen).
    """

    alpha: float | None = None
    init: str = "zero"

    def __post_init__(self) -> None:
        check_alpha(self.alpha)
        if self.init not in LORA_INITS:
            raise ValueError(f"init: expected one of {LORA_INITS} for LoRA, got {self.init!r}")


class LoRALinear(AdapterLinear):
    """``y = W x + b + (alpha / r) B A x`` with ``W``, ``b`` frozen and ``A``, ``B`` trained.

    Parameters
    ----------
    base_layer
        The pretrained linear layer (``W`` of shape ``(out, in)``).
    rank
        Rank ``r`` of the update, ``1 <= r <= min(out, in)``.
    config
        Scale and initialization (:class:`LoRAConfig`).
    generator
        Random generator for the Kaiming-uniform ``A`` (``None``: torch's global one).

    Attributes
    ----------
    lora_A
        ``(r, in)`` parameter.
    lora_B
        ``(out, r)`` parameter.

    References
    ----------
    arXiv 2106.09685 (LoRA), arXiv 2404.02948 (PiSSA).
    """

    def __init__(
        self,
        base_layer: torch.nn.Linear,
        rank: int,
        config: LoRAConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        alpha = rank if config.alpha is None else config.alpha
        super().__init__(base_layer, alpha / rank)
        w = base_layer.weight
        kw = {"dtype": w.dtype, "device": w.device}
        self.lora_A = torch.nn.Parameter(torch.empty(rank, self.in_features, **kw))
        self.lora_B = torch.nn.Parameter(torch.zeros(self.out_features, rank, **kw))
        if config.init == "pissa":
            self._init_pissa(rank)
        else:
            torch.nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5), generator=generator)

    @torch.no_grad()
    def _init_pissa(self, rank: int) -> None:
        w = self.base_layer.weight
        u, s, vh = leading_svd(w, rank)
        root = torch.sqrt(s / self.scaling)
        a, b = root[:, None] * vh, u * root
        self.lora_A.copy_(a)
        self.lora_B.copy_(b)
        w.copy_(w.to(a.dtype) - self.scaling * (b @ a))

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``scaling * B A x`` (two thin products, ``B A`` is never formed)."""
        return self.scaling * torch.nn.functional.linear(
            torch.nn.functional.linear(x, self.lora_A), self.lora_B
        )

    def delta_weight(self) -> torch.Tensor:
        """Return ``scaling * B A`` of shape ``(out, in)``."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """``[lora_A, lora_B]``."""
        return [self.lora_A, self.lora_B]


def build_lora(
    groups: dict[str, dict[str, torch.nn.Linear]],
    rank: int,
    config: LoRAConfig,
    generator: torch.Generator | None = None,
) -> dict[str, AdapterLinear]:
    """Wrap every layer of every target group in its own :class:`LoRALinear`.

    Parameters
    ----------
    groups
        Target pattern -> {qualified layer name: layer}.
    rank, config, generator
        As in :class:`LoRALinear`.

    Returns
    -------
    dict
        Qualified layer name -> adapter layer.
    """
    return {
        name: LoRALinear(layer, rank, config, generator)
        for layers in groups.values()
        for name, layer in layers.items()
    }
