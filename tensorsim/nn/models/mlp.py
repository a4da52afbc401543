r"""The MLP of the adapter experiments: one input layer, ``depth`` equal hidden layers, a head.

:func:`build_mlp` makes ``input``, ``hidden1`` ... ``hidden{depth}`` and ``head`` (linear
layers with biases, ReLU between them). The hidden layers are all ``width x width``, so the
adapters of ``drivers.adapters`` target them with one pattern (``r"hidden\d+"``) and LoTR
shares its factors across all of them (one group, arXiv 2402.01376).
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch

__all__ = ["build_mlp"]

logger = logging.getLogger(__name__)


def build_mlp(
    *,
    in_features: int = 64,
    width: int = 128,
    depth: int = 6,
    classes: int = 10,
    generator: torch.Generator | None = None,
) -> torch.nn.Sequential:
    r"""The MLP: ``input``, ``hidden1`` ... ``hidden{depth}``, ``head``, ReLU between them.

    Parameters
    ----------
    in_features, width, classes
        Input size, hidden width and number of classes (positive integers).
    depth
        Number of hidden ``width x width`` layers (at least 1).
    generator
        Generator of the initial weights: every weight and then bias of each linear layer,
        in layer order, drawn from ``U(-1/sqrt(in), 1/sqrt(in))`` (None: torch's default
        initialization from its global generator).

    Returns
    -------
    torch.nn.Sequential

    Raises
    ------
    ValueError
        If a size is not a positive integer.
    """
    for label, value in (
        ("in_features", in_features),
        ("width", width),
        ("depth", depth),
        ("classes", classes),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label}: expected a positive integer, got {value!r}")
    layers: OrderedDict[str, torch.nn.Module] = OrderedDict()
    layers["input"] = torch.nn.Linear(in_features, width)
    layers["act0"] = torch.nn.ReLU()
    for i in range(1, depth + 1):
        layers[f"hidden{i}"] = torch.nn.Linear(width, width)
        layers[f"act{i}"] = torch.nn.ReLU()
    layers["head"] = torch.nn.Linear(width, classes)
    model = torch.nn.Sequential(layers)
    if generator is not None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    bound = 1.0 / m.in_features**0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)
    return model
