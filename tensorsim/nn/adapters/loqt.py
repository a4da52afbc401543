"""LoQT: a frozen (NF4-quantized) weight plus a trainable low-rank factor on a gradient projector.

Each targeted linear layer computes ``y = deq(Q(W)) x + b + alpha P B x``: the base weight is
stored blockwise NF4 (:mod:`tensorsim.nn.quant`; or in full precision, the LoQT-nq variant),
``P`` ``(out, r)`` is a fixed projector with orthonormal columns and only ``B`` ``(r, in)``
trains. At refresh steps (:func:`refresh_steps`) :meth:`LoQTLinear.refresh`

1. merges the update into the weight, ``W_full = deq(Q(W)) + alpha P B``;
2. takes the new ``P`` as the top-``r`` left singular vectors of the gradient of the loss with
   respect to the full weight (:func:`~tensorsim.linalg.truncated_svd`);
3. re-quantizes ``W_full`` and resets ``B = 0``, or, with ``compensation`` iterations, picks
   ``Q`` and ``B`` that lower ``||W_full - (deq(Q) + alpha P B)||_F`` (below),

so the layer's function is unchanged across a refresh up to the quantization error (exactly,
up to rounding, for LoQT-nq). :func:`refresh_loqt` gets the full-weight gradients of every
LoQT layer of a model from one forward/backward pass and refreshes them all.

Quantization-error compensation: starting from ``W_cur = W_full``, each iteration sets
``Q = quant(W_cur)``, ``B = P^T (W_full - deq(Q)) / alpha`` (``P^T`` is the pseudo-inverse of
``P``) and ``W_cur = W_full - alpha P B``; the pair with the smallest error, counting the plain
``Q = quant(W_full)``, ``B = 0``, is kept.

Choices made here: ``alpha`` scales the update directly (not ``alpha / r``), as the reference
code does; the projector always sits on the output side (``P`` ``(out, r)``, ``B`` ``(r, in)``,
``r in`` trainable parameters); before the first refresh ``P`` holds the top-``r`` left
singular vectors of the weight itself (refresh at step 0 to start from the gradient, as
LoQT does).

References
----------
S. Loeschcke, M. Toftrup, M. Kastoryano, S. Belongie, V. Snæbjarnarson, "LoQT: Low-Rank
Adapters for Quantized Pretraining", arXiv 2405.16528.
T. Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs", arXiv 2305.14314 (NF4).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tensorsim.nn.adapters.layer import AdapterLinear, check_alpha, leading_svd
from tensorsim.nn.quant import NF4Tensor, quantize_nf4

__all__ = ["LoQTConfig", "LoQTLinear", "build_loqt", "refresh_loqt", "refresh_steps"]

logger = logging.getLogger(__name__)

SCHEDULES = ("static", "linear", "exponential")


@dataclass(frozen=True)
class LoQTConfig:
    """Options of :func:`~tensorsim.nn.adapt` with ``method="loqt"``.

    Parameters
    ----------
    alpha
        Scale of the update ``alpha P B`` (used as is, not divided by the rank).
    quantize
        Store the frozen weight blockwise NF4 (``True``, LoQT) or in full precision
        (``False``, LoQT-nq).
    compensation
        Quantization-error compensation iterations at each refresh (0: ``B = 0`` after a
        refresh). Ignored without quantization.
    block_size
        NF4 block size (values per absmax scale).
    """

    alpha: float = 1.0
    quantize: bool = True
    compensation: int = 0
    block_size: int = 64

    def __post_init__(self) -> None:
        check_alpha(self.alpha, optional=False)
        if not isinstance(self.quantize, bool):
            raise ValueError(f"quantize: expected True or False, got {self.quantize!r}")
        for field in ("compensation", "block_size"):
            value = getattr(self, field)
            low = 0 if field == "compensation" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{field}: expected an integer >= {low}, got {value!r}")


class LoQTLinear(AdapterLinear):
    """``y = W x + b + alpha P B x`` with ``W`` frozen (NF4 or full precision), ``P`` fixed.

    Parameters
    ----------
    base_layer
        The linear layer (``W`` of shape ``(out, in)``). With quantization its ``weight``
        parameter is removed and kept as NF4 buffers until :meth:`merge`.
    rank
        Rank ``r`` of the update, ``1 <= r <= min(out, in)``.
    config
        Scale, quantization and compensation (:class:`LoQTConfig`).
    name
        Qualified name of the layer (for error messages).
    quantized
        The NF4 form of ``base_layer.weight`` if already computed (:func:`build_loqt`
        quantizes every layer before changing any).

    Attributes
    ----------
    loqt_B
        ``(r, in)`` parameter, zero at construction.
    projector
        ``(out, r)`` buffer ``P`` with orthonormal columns.
    weight_packed, weight_scales
        The NF4 indices and block scales of ``W`` (with quantization only).

    References
    ----------
    arXiv 2405.16528 (LoQT).
    """

    @torch.no_grad()
    def __init__(
        self,
        base_layer: torch.nn.Linear,
        rank: int,
        config: LoQTConfig,
        name: str = "weight",
        quantized: NF4Tensor | None = None,
    ) -> None:
        super().__init__(base_layer, config.alpha)
        w = base_layer.weight
        self.name = name
        self.quantize = config.quantize
        self.compensation = config.compensation
        self.block_size = config.block_size
        self.register_buffer("projector", leading_svd(w, rank)[0].to(w.dtype))
        self.loqt_B = torch.nn.Parameter(
            torch.zeros(rank, w.shape[1], dtype=w.dtype, device=w.device)
        )
        self._probe: torch.Tensor | None = None
        if self.quantize:
            if quantized is None:
                quantized = quantize_nf4(w, self.block_size, name=name)
            self.register_buffer("weight_packed", quantized.packed)
            self.register_buffer("weight_scales", quantized.scales)
            base_layer.register_parameter("weight", None)

    @property
    def rank(self) -> int:
        """Rank ``r`` of the update."""
        return int(self.loqt_B.shape[0])

    def base_weight(self) -> torch.Tensor:
        """The frozen weight ``W``: dequantized NF4, or the base layer's weight (LoQT-nq)."""
        if not self.quantize:
            return self.base_layer.weight
        shape = (self.out_features, self.in_features)
        dtype = self.loqt_B.dtype  # follows model.to(dtype)
        q = NF4Tensor(self.weight_packed, self.weight_scales, shape, dtype, self.block_size)
        return q.dequantize()

    def adapter_output(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``alpha P B x`` (two thin products, ``P B`` is never formed)."""
        return self.scaling * torch.nn.functional.linear(
            torch.nn.functional.linear(x, self.loqt_B), self.projector
        )

    def delta_weight(self) -> torch.Tensor:
        """Return ``alpha P B`` of shape ``(out, in)``."""
        return self.scaling * (self.projector @ self.loqt_B)

    def own_parameters(self) -> list[torch.nn.Parameter]:
        """``[loqt_B]``."""
        return [self.loqt_B]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``W x + b + alpha P B x``.

        Inside :func:`refresh_loqt` the weight is a leaf tensor that requires grad, so the
        backward pass leaves the full-weight gradient on it.
        """
        if self._probe is not None:
            w = self._probe
        elif self.quantize:
            w = self.base_weight()
        else:
            return self.base_layer(x) + self.adapter_output(x)
        return torch.nn.functional.linear(x, w, self.base_layer.bias) + self.adapter_output(x)

    def start_gradient_probe(self) -> None:
        """Let the next forward/backward record the gradient of the full weight ``W``.

        The gradient of the loss with respect to ``W`` equals that with respect to the
        effective weight ``W + alpha P B``.
        """
        self._probe = self.base_weight().detach().clone().requires_grad_(True)

    def stop_gradient_probe(self) -> torch.Tensor | None:
        """End the probe and return the recorded gradient (``None`` if none arrived)."""
        probe, self._probe = self._probe, None
        return None if probe is None else probe.grad

    @torch.no_grad()
    def refresh(self, grad: torch.Tensor) -> float:
        """Merge ``alpha P B`` into ``W``, set ``P`` from ``grad``, re-quantize, reset ``B``.

        Parameters
        ----------
        grad
            Gradient of the loss with respect to the full weight, shape ``(out, in)``.

        Returns
        -------
        float
            ``||W_full - (W_new + alpha P_new B_new)||_F``, the change of the effective
            weight (0 up to rounding for LoQT-nq).

        Raises
        ------
        ValueError
            If ``grad`` does not have the weight's shape (naming the layer).

        References
        ----------
        arXiv 2405.16528 (LoQT).
        """
        shape = (self.out_features, self.in_features)
        if tuple(grad.shape) != shape:
            raise ValueError(
                f"grad: layer '{self.name}' expects a gradient of shape {shape}, "
                f"got {tuple(grad.shape)}"
            )
        w_full = self.base_weight() + self.delta_weight()
        p = leading_svd(grad, self.rank)[0].to(self.projector.dtype)
        self.projector.copy_(p)
        if not self.quantize:
            self.base_layer.weight.copy_(w_full)
            self.loqt_B.zero_()
            return 0.0
        q, b, error = self._compensate(w_full, p)
        self.weight_packed = q.packed
        self.weight_scales = q.scales
        self.loqt_B.copy_(b)
        logger.debug("loqt: refreshed %s, weight change %.3g", self.name, error)
        return error

    def _compensate(
        self, w_full: torch.Tensor, p: torch.Tensor
    ) -> tuple[NF4Tensor, torch.Tensor, float]:
        """The NF4 weight and ``B`` of least error after ``compensation`` iterations."""
        q = quantize_nf4(w_full, self.block_size, name=self.name)
        b = torch.zeros_like(self.loqt_B)
        best = (q, b, float(torch.linalg.norm(w_full - q.dequantize())))
        w_cur = w_full
        for _ in range(self.compensation):
            q = quantize_nf4(w_cur, self.block_size, name=self.name)
            b = p.T @ (w_full - q.dequantize()) / self.scaling
            w_cur = w_full - self.scaling * (p @ b)
            error = float(torch.linalg.norm(w_cur - q.dequantize()))
            if error < best[2]:
                best = (q, b, error)
        return best

    @torch.no_grad()
    def merge(self) -> torch.nn.Linear:
        """Return the base layer with the full-precision weight ``W + alpha P B``.

        With quantization the merged weight is the dequantized ``W`` plus the update, so the
        merged layer computes what this layer computes (up to rounding).
        """
        w = self.base_weight() + self.delta_weight()
        self.base_layer.weight = torch.nn.Parameter(w, requires_grad=False)
        return self.base_layer

    def extra_repr(self) -> str:
        """Rank, scale and storage, shown in the module's repr."""
        storage = f"nf4 (block {self.block_size})" if self.quantize else "full precision"
        return f"rank={self.rank}, alpha={self.scaling}, weight={storage}"


def build_loqt(
    groups: dict[str, dict[str, torch.nn.Linear]],
    rank: int,
    config: LoQTConfig,
    generator: torch.Generator | None = None,
) -> dict[str, AdapterLinear]:
    """Wrap every layer of every target group in its own :class:`LoQTLinear`.

    With quantization every weight is quantized first, so a weight NF4 cannot hold (not
    floating point) raises :func:`~tensorsim.nn.quant.quantize_nf4`'s ``TypeError`` naming
    the layer before any layer is changed; without, such a weight raises ``TypeError`` too.

    Parameters
    ----------
    groups
        Target pattern -> {qualified layer name: layer}.
    rank, config
        As in :class:`LoQTLinear`.
    generator
        Unused (the initialization is deterministic); accepted for a uniform builder API.

    Returns
    -------
    dict
        Qualified layer name -> adapter layer.
    """
    layers = {name: layer for named in groups.values() for name, layer in named.items()}
    quantized: dict[str, NF4Tensor | None] = {}
    for name, layer in layers.items():
        if config.quantize:
            quantized[name] = quantize_nf4(layer.weight, config.block_size, name=name)
        elif not layer.weight.dtype.is_floating_point:
            raise TypeError(
                f"{name}: LoQT needs a floating-point weight, got {layer.weight.dtype}"
            )
        else:
            quantized[name] = None
    return {
        name: LoQTLinear(layer, rank, config, name, quantized[name])
        for name, layer in layers.items()
    }


def refresh_loqt(model: torch.nn.Module, closure: Callable[[], torch.Tensor]) -> float:
    """Refresh every :class:`LoQTLinear` of ``model`` from one forward/backward pass.

    The full weights of the LoQT layers are made to require grad, ``closure()`` computes the
    loss, its backward pass gives each layer's full-weight gradient, and each layer is
    refreshed with it (:meth:`LoQTLinear.refresh`). The gradients this pass left on the
    model's parameters are then cleared (set to ``None``), so an optimizer step right after
    changes nothing, as in LoQT; optimizer state (e.g. Adam moments of ``B``) is left as is.

    Parameters
    ----------
    model
        A model adapted with ``method="loqt"``.
    closure
        Computes the loss (a scalar tensor) on a batch; it must not call ``backward``.

    Returns
    -------
    float
        The loss of that pass.

    Raises
    ------
    ValueError
        If the model has no LoQT layers, or a LoQT layer got no gradient (naming it).

    References
    ----------
    arXiv 2405.16528 (LoQT).
    """
    layers = [m for m in model.modules() if isinstance(m, LoQTLinear)]
    if not layers:
        raise ValueError("model: has no LoQT layers; adapt(model, 'loqt', ...) first")
    for layer in layers:
        layer.start_gradient_probe()
    try:
        loss = closure()
        loss.backward()
    finally:
        grads = [layer.stop_gradient_probe() for layer in layers]
    for layer, grad in zip(layers, grads, strict=True):
        if grad is None:
            raise ValueError(f"layer '{layer.name}': the loss does not depend on its weight")
        layer.refresh(grad)
    for p in model.parameters():
        p.grad = None
    return float(loss.detach())


def refresh_steps(
    schedule: str,
    first: int,
    total: int,
    *,
    increment: float = 1.2,
    max_gap: int | None = None,
) -> list[int]:
    """The training steps at which LoQT refreshes its projectors: ``0`` and later steps.

    The gap before the ``(i + 1)``-th refresh after step 0 is, for ``i = 0, 1, ...``:
    ``"static"``: ``first``; ``"linear"``: ``floor(first + i * increment)``;
    ``"exponential"``: ``first`` for ``i = 0``, then ``first + floor(increment ** i)``;
    each capped at ``max_gap``. Steps beyond ``total`` are dropped.

    Parameters
    ----------
    schedule
        ``"static"``, ``"linear"`` or ``"exponential"``.
    first
        First gap ``tau`` (steps), ``>= 1``.
    total
        Number of training steps; refreshes are at steps ``<= total``.
    increment
        Growth of the gap: added per refresh (linear) or base of the power (exponential,
        ``psi``; 1.2 by default as in LoQT). Must be ``>= 0`` (linear) or ``>= 1``
        (exponential).
    max_gap
        Largest gap (``None``: no cap), ``>= first``.

    Returns
    -------
    list of int
        Ascending steps, starting with 0. Multiply by the gradient-accumulation count to
        count micro-batches.

    References
    ----------
    arXiv 2405.16528 (LoQT).

    Examples
    --------
    >>> refresh_steps("static", 50, 200)
    [0, 50, 100, 150, 200]
    >>> refresh_steps("linear", 10, 60, increment=5)
    [0, 10, 25, 45]
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule: expected one of {SCHEDULES}, got {schedule!r}")
    for label, value in (("first", first), ("total", total)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (label == "first"):
            raise ValueError(
                f"{label}: expected an integer >= {int(label == 'first')}, got {value!r}"
            )
    low = 1.0 if schedule == "exponential" else 0.0
    if (
        isinstance(increment, bool)
        or not isinstance(increment, int | float)
        or not (math.isfinite(increment) and increment >= low)
    ):
        raise ValueError(f"increment: expected a finite number >= {low:g}, got {increment!r}")
    if max_gap is not None and (
        isinstance(max_gap, bool) or not isinstance(max_gap, int) or max_gap < first
    ):
        raise ValueError(f"max_gap: expected None or an integer >= first={first}, got {max_gap!r}")
    gaps = {
        "static": lambda i: first,
        "linear": lambda i: math.floor(first + i * increment),
        "exponential": lambda i: first + math.floor(increment**i) if i else first,
    }[schedule]
    steps = [0]
    i = 0
    while True:
        gap = gaps(i) if max_gap is None else min(gaps(i), max_gap)
        if steps[-1] + gap > total:
            return steps
        steps.append(steps[-1] + gap)
        i += 1
