"""Wrap a model's linear layers in adapters, peft style: adapt, merge, save, load, count.

:func:`adapt` freezes every parameter of a model and replaces the targeted
``torch.nn.Linear`` layers by adapter layers in place; :func:`merge` folds the adapters back
into plain linear layers; :func:`adapter_state_dict` and :func:`load_adapter` save and load
the adapter tensors alone; :func:`trainable_parameters` reports what is trained.

References
----------
E. J. Hu et al., "LoRA: Low-Rank Adaptation of Large Language Models", arXiv 2106.09685.
D. Bershatsky et al., "LoTR: Low Tensor Rank Weight Adaptation", arXiv 2402.01376.
C. Chong, Y. Qu, "SoKA: SVD on Kronecker Adaptation", arXiv 2506.15251.
S. Loeschcke et al., "LoQT: Low-Rank Adapters for Quantized Pretraining", arXiv 2405.16528.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tensorsim.nn.adapters.layer import AdapterLinear, check_rank
from tensorsim.nn.adapters.loqt import LoQTConfig, build_loqt
from tensorsim.nn.adapters.lora import LoRAConfig, build_lora
from tensorsim.nn.adapters.lotr import LoTRConfig, build_lotr
from tensorsim.nn.adapters.soka import SoKAConfig, build_soka, check_soka_rank

__all__ = [
    "METHODS",
    "TrainableParameters",
    "adapt",
    "adapter_state_dict",
    "find_targets",
    "load_adapter",
    "merge",
    "trainable_parameters",
]

logger = logging.getLogger(__name__)

#: Method name -> (options dataclass, builder of the adapter layers, rank check per layer).
METHODS: dict[
    str,
    tuple[
        type, Callable[..., dict[str, AdapterLinear]], Callable[[str, torch.nn.Linear, int], None]
    ],
] = {
    "lora": (LoRAConfig, build_lora, check_rank),
    "lotr": (LoTRConfig, build_lotr, check_rank),
    "soka": (SoKAConfig, build_soka, check_soka_rank),
    "loqt": (LoQTConfig, build_loqt, check_rank),
}


@dataclass(frozen=True)
class TrainableParameters:
    """What :func:`adapt` left trainable in a model (peft's ``print_trainable_parameters``).

    Attributes
    ----------
    per_layer
        Adapted layer name -> number of adapter parameters owned by that layer alone.
    shared
        Group name -> number of parameters shared by the layers of the group (LoTR's ``A``
        and ``B``; empty for LoRA).
    trainable
        Parameters with ``requires_grad`` in the whole model, each counted once.
    total
        All parameters of the model, each counted once.
    """

    per_layer: dict[str, int]
    shared: dict[str, int]
    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        """``trainable / total`` (0 for an empty model)."""
        return self.trainable / self.total if self.total else 0.0


def _patterns(target: str | Sequence[str]) -> list[str]:
    patterns = [target] if isinstance(target, str) else list(target)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError(
            f"target: expected a layer name suffix or regex, or a non-empty list of them, "
            f"got {target!r}"
        )
    for p in patterns:
        try:
            re.compile(p)
        except re.error as err:
            raise ValueError(f"target: pattern {p!r} is not a valid regex ({err})") from err
    return patterns


def _matches(pattern: str, name: str) -> bool:
    suffix = name == pattern or name.endswith("." + pattern)
    return suffix or re.fullmatch(pattern, name) is not None


def find_targets(
    model: torch.nn.Module, target: str | Sequence[str]
) -> dict[str, dict[str, torch.nn.Linear]]:
    r"""The ``torch.nn.Linear`` layers of ``model`` that each target pattern selects.

    A pattern selects a layer if it equals the layer's qualified name, is a dotted suffix of
    it (``"q_proj"`` selects ``"layers.0.attn.q_proj"``), or matches the whole name as a
    regular expression (``r"layers\.[0-3]\..*_proj"``). A layer selected by several
    patterns belongs to the first.

    Parameters
    ----------
    model
        The model to search.
    target
        One pattern or a sequence of patterns.

    Returns
    -------
    dict
        Pattern -> {qualified layer name: layer}, in the model's module order.

    Raises
    ------
    ValueError
        If a pattern selects no linear layer (the message names the pattern and lists
        linear layers that exist).
    """
    patterns = _patterns(target)
    linears = {
        name: m
        for name, m in model.named_modules()
        if name and type(m) is torch.nn.Linear and not _inside_adapter(model, name)
    }
    found: dict[str, dict[str, torch.nn.Linear]] = {p: {} for p in patterns}
    for name, layer in linears.items():
        for p in patterns:
            if _matches(p, name):
                found[p][name] = layer
                break
    for p, layers in found.items():
        if not layers:
            names = ", ".join(list(linears)[:8]) or "none"
            raise ValueError(
                f"target: pattern {p!r} matches no torch.nn.Linear layer of the model "
                f"(linear layers: {names}{', ...' if len(linears) > 8 else ''})"
            )
    return found


def _inside_adapter(model: torch.nn.Module, name: str) -> bool:
    parts = name.split(".")
    return any(
        isinstance(model.get_submodule(".".join(parts[:k])), AdapterLinear)
        for k in range(1, len(parts))
    )


def _adapters(model: torch.nn.Module) -> dict[str, AdapterLinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, AdapterLinear)}


def _replace(model: torch.nn.Module, name: str, module: torch.nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, module)


def adapt(
    model: torch.nn.Module,
    method: str,
    target: str | Sequence[str],
    rank: int,
    *,
    generator: torch.Generator | None = None,
    **options: Any,
) -> torch.nn.Module:
    """Freeze ``model`` and put adapters on the targeted linear layers, in place.

    Parameters
    ----------
    model
        The pretrained model; every parameter is frozen (``requires_grad=False``).
    method
        ``"lora"``, ``"lotr"``, ``"soka"`` or ``"loqt"`` (keys of :data:`METHODS`).
    target
        Layer name suffix or regex, or a sequence of them (see :func:`find_targets`).
        For LoTR, the layers of one pattern with one weight shape share ``A`` and ``B``.
    rank
        Adapter rank, ``1 <= rank <= min(out, in)`` for every targeted layer; for SoKA the
        cap on the number of Kronecker terms, at most the layer's Kronecker rank.
    generator
        Random generator for random initial factors (``None``: torch's global one).
    **options
        Method options, the fields of :class:`~tensorsim.nn.adapters.lora.LoRAConfig`,
        :class:`~tensorsim.nn.adapters.lotr.LoTRConfig` (``alpha``, ``init``) or
        :class:`~tensorsim.nn.adapters.soka.SoKAConfig` (``alpha``, ``select``, ``energy``)
        or :class:`~tensorsim.nn.adapters.loqt.LoQTConfig` (``alpha``, ``quantize``,
        ``compensation``, ``block_size``).

    Returns
    -------
    torch.nn.Module
        ``model`` itself, with adapter layers in place of the targets.

    Raises
    ------
    ValueError
        Unknown method, a pattern that matches no linear layer, a rank too large for a
        layer (naming it), or a model that already has adapters.
    TypeError
        An option the method does not have; for LoQT, a weight that is not floating point
        (naming the layer).

    References
    ----------
    arXiv 2106.09685 (LoRA), arXiv 2404.02948 (PiSSA), arXiv 2402.01376 (LoTR),
    arXiv 2506.15251 (SoKA), arXiv 2405.16528 (LoQT).

    Examples
    --------
    >>> import torch
    >>> model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    >>> model = adapt(model, "lora", target="0", rank=2)
    >>> trainable_parameters(model).trainable
    32
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank: expected an integer >= 1, got {rank!r}")
    config_type, build, check = METHODS[method]
    fields = [f.name for f in dataclasses.fields(config_type)]
    unknown = sorted(set(options) - set(fields))
    if unknown:
        raise TypeError(f"{method}: unknown option(s) {unknown}; expected some of {fields}")
    config = config_type(**options)
    if _adapters(model):
        raise ValueError("model: already has adapters; merge(model) before adapting again")
    groups = find_targets(model, target)
    for layers in groups.values():
        for name, layer in layers.items():
            check(name, layer, rank)
    for p in model.parameters():
        p.requires_grad_(False)
    for name, module in build(groups, rank, config, generator).items():
        _replace(model, name, module)
    logger.debug("adapt: %s rank %d on %d layers", method, rank, sum(map(len, groups.values())))
    return model


def merge(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every adapter into its base weight and put the plain linear layer back, in place.

    The merged layer computes what the adapter layer computed (up to rounding); its
    parameters stay frozen.

    Raises
    ------
    ValueError
        If the model has no adapters.
    """
    adapters = _adapters(model)
    if not adapters:
        raise ValueError("model: has no adapters to merge")
    for name, layer in adapters.items():
        _replace(model, name, layer.merge())
    return model


def _adapter_named_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    ids = {id(p) for layer in _adapters(model).values() for p in layer.adapter_parameters()}
    return {n: p for n, p in model.named_parameters() if id(p) in ids}


def adapter_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter tensors of ``model`` (copies), by qualified parameter name.

    Shared tensors (LoTR's ``A`` and ``B``) appear once, under the first layer of their
    group. A PiSSA or Tucker2 initialization also changed the frozen base weights; those
    are recomputed by :func:`adapt` with the same options, so the state loads into any copy
    of the pretrained model adapted the same way.

    Raises
    ------
    ValueError
        If the model has no adapters.
    """
    params = _adapter_named_parameters(model)
    if not params:
        raise ValueError("model: has no adapters")
    return {n: p.detach().clone() for n, p in params.items()}


def load_adapter(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Copy the tensors of :func:`adapter_state_dict` into an adapted ``model``, in place.

    Parameters
    ----------
    model
        A model adapted with the same method, targets and rank as the saved one.
    state
        Parameter name -> tensor.

    Returns
    -------
    torch.nn.Module
        ``model``.

    Raises
    ------
    ValueError
        Missing or unexpected names, or a shape that differs (naming the layer); nothing is
        copied then.
    TypeError
        A value that is not a tensor.
    """
    params = _adapter_named_parameters(model)
    if not params:
        raise ValueError("model: has no adapters; adapt(model, ...) before load_adapter")
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"state: does not fit the model's adapters (missing: {missing}, "
            f"unexpected: {unexpected})"
        )
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state[{name!r}]: expected a torch.Tensor, got {type(value)}")
        if value.shape != params[name].shape:
            layer, _, tensor = name.rpartition(".")
            raise ValueError(
                f"state[{name!r}]: layer '{layer}' expects {tensor} of shape "
                f"{tuple(params[name].shape)}, got {tuple(value.shape)}"
            )
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
    return model


def trainable_parameters(model: torch.nn.Module) -> TrainableParameters:
    """Count trainable parameters per adapted layer, per shared group and in total.

    Returns
    -------
    TrainableParameters
        The counts; ``trainable`` and ``total`` are what peft's
        ``get_nb_trainable_parameters`` returns for the same model.
    """
    per_layer: dict[str, int] = {}
    shared: dict[str, int] = {}
    for name, layer in _adapters(model).items():
        per_layer[name] = sum(p.numel() for p in layer.own_parameters() if p.requires_grad)
        for m in layer.shared_modules():
            shared[getattr(m, "group", name)] = sum(
                p.numel() for p in m.parameters() if p.requires_grad
            )
    params = list(model.parameters())
    return TrainableParameters(
        per_layer=per_layer,
        shared=shared,
        trainable=sum(p.numel() for p in params if p.requires_grad),
        total=sum(p.numel() for p in params),
    )
