"""The common shape of an adapter layer: a frozen ``torch.nn.Linear`` plus a trainable update.

:class:`AdapterLinear` computes ``base_layer(x) + adapter_output(x)``, where the adapter
output is ``delta_weight() @ x`` evaluated without forming ``delta_weight``. Subclasses
(:class:`~tensorsim.nn.adapters.lora.LoRALinear`,
:class:`~tensorsim.nn.adapters.lotr.LoTRLinear`) define the update; merging, rank checks and
the SVD of a pretrained weight are shared here.
"""

from __future__ import annotations

import logging
import math

import torch

from tensorsim.linalg import Truncation, truncated_svd

__all__ = ["AdapterLinear", "check_alpha", "check_rank", "leading_svd", "svd_dtype"]

logger = logging.getLogger(__name__)


def check_alpha(alpha: object, *, optional: bool = True) -> None:
    """Raise ``ValueError`` unless ``alpha`` is a finite number > 0 (or None if ``optional``)."""
    if optional and alpha is None:
        return
    if (
        isinstance(alpha, bool)
        or not isinstance(alpha, int | float)
        or not math.isfinite(alpha)
        or alpha <= 0
    ):
        expected = "a finite number > 0" + (" or None" if optional else "")
        raise ValueError(f"alpha: expected {expected}, got {alpha!r}")


def check_rank(name: str, layer: torch.nn.Linear, rank: int) -> None:
    """Raise ``ValueError`` naming the layer if ``rank`` exceeds ``min(out, in)`` of ``layer``.

    Parameters
    ----------
    name
        Qualified name of the layer in its model (for the message).
    layer
        The linear layer to adapt.
    rank
        Requested adapter rank.
    """
    limit = min(layer.out_features, layer.in_features)
    if rank > limit:
        raise ValueError(
            f"rank={rank} exceeds what layer '{name}' allows: its weight is "
            f"{layer.out_features} x {layer.in_features}, so rank <= {limit}"
        )


def svd_dtype(w: torch.Tensor) -> torch.dtype:
    """Float32 for half-precision weights (no CPU SVD for them), else the weight's dtype."""
    return torch.float32 if w.dtype in (torch.float16, torch.bfloat16) else w.dtype


def leading_svd(w: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Leading ``rank`` singular triplets ``(u, s, vh)`` of ``w`` by :func:`truncated_svd`.

    Half-precision weights are decomposed in float32; the factors keep that dtype.
    """
    res = truncated_svd(w.detach().to(svd_dtype(w)), Truncation(max_rank=rank))
    return res.u, res.s, res.vh


class AdapterLinear(torch.nn.Module):
    """A frozen linear layer ``base_layer`` plus a trainable low-rank update.

    Parameters
    ----------
    base_layer
        The pretrained layer; its parameters are frozen by :func:`~tensorsim.nn.adapt`.
    scaling
        Factor ``alpha / rank`` applied to the update.
    """

    def __init__(self, base_layer: torch.nn.Linear, scaling: float) -> None:
        super().__init__()
        self.base_layer = base_layer
        self.scaling = float(scaling)

    @property
    def in_features(self) -> int:
        """Input size of the base layer."""
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        """Output size of the base layer."""
        return self.base_layer.out_features

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``scaling * delta @ x`` along the last axis of ``x`` (subclasses)."""
        raise NotImplementedError

    def delta_weight(self) -> torch.Tensor:
        """Return the dense update ``(out, in)`` that :meth:`merge` adds (subclasses)."""
        raise NotImplementedError

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """Adapter parameters that belong to this layer alone (subclasses)."""
        raise NotImplementedError

    def shared_modules(self) -> list[torch.nn.Module]:
        """Modules whose parameters this layer shares with other layers (none by default)."""
        return []

    def adapter_parameters(self) -> list[torch.nn.Parameter]:
        """All adapter parameters this layer uses: its own, then the shared ones."""
        shared = [p for m in self.shared_modules() for p in m.parameters()]
        return self.own_parameters() + shared

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``base_layer(x) + adapter_output(x)``."""
        return self.base_layer(x) + self.adapter_output(x)

    @torch.no_grad()
    def merge(self) -> torch.nn.Linear:
        """Add :meth:`delta_weight` to the base weight in place and return the base layer."""
        weight = self.base_layer.weight
        weight.add_(self.delta_weight().to(weight.dtype))
        return self.base_layer
