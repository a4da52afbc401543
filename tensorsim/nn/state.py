"""Torch state dicts as flat arrays plus a JSON layout, for pickle-free checkpoints.

``model.state_dict()``, ``optimizer.state_dict()`` and scheduler state dicts are nested
dicts and lists of tensors and plain values (numbers, strings, booleans, ``None``).
:func:`state_to_arrays` takes the tensors out (named ``t0``, ``t1``, ... in order of
appearance) and describes everything else in a JSON string; :func:`state_from_arrays`
builds the same nested object back, bit for bit, from the arrays (torch tensors or NumPy
arrays, e.g. as read by :func:`tensorsim.io.read_checkpoint`) and the layout. The arrays
and the layout fit a :meth:`tensorsim.io.Writer.checkpoint` (a group of arrays plus one
string attribute), so no Python object is ever pickled into a file. Integer dict keys (the
parameter ids of an optimizer state) keep their type; tuples come back as lists.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["state_from_arrays", "state_to_arrays"]

logger = logging.getLogger(__name__)

_PLAIN = (bool, int, float, str, type(None))


def state_to_arrays(state: Any) -> tuple[dict[str, torch.Tensor], str]:
    """Split a nested state into its tensors and a JSON layout of the rest.

    Parameters
    ----------
    state
        Nested ``dict`` (str or int keys), ``list``/``tuple``, tensors and plain values.

    Returns
    -------
    arrays : dict of str to torch.Tensor
        Detached CPU copies of the tensors, named ``t0``, ``t1``, ...
    layout : str
        JSON text describing the structure.

    Raises
    ------
    TypeError
        If the state holds anything else (e.g. a key that is neither str nor int).
    """
    arrays: dict[str, torch.Tensor] = {}

    def encode(obj: Any, where: str) -> Any:
        if isinstance(obj, torch.Tensor):
            name = f"t{len(arrays)}"
            arrays[name] = obj.detach().cpu().clone()
            return {"tensor": name}
        if isinstance(obj, Mapping):
            items = []
            for key, value in obj.items():
                if isinstance(key, bool) or not isinstance(key, str | int):
                    raise TypeError(f"state{where}: key {key!r} is neither str nor int")
                items.append([key, encode(value, f"{where}[{key!r}]")])
            return {"dict": items}
        if isinstance(obj, list | tuple):
            return {"list": [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, _PLAIN):
            return {"value": obj}
        raise TypeError(f"state{where}: cannot store a {type(obj).__name__}")

    layout = encode(state, "")
    return arrays, json.dumps(layout)


def state_from_arrays(arrays: Mapping[str, Any], layout: str) -> Any:
    """Rebuild the nested state written by :func:`state_to_arrays`.

    Parameters
    ----------
    arrays
        The arrays by name (torch tensors or NumPy arrays).
    layout
        The JSON layout.

    Returns
    -------
    Any
        The nested state with torch tensors (on the CPU).

    Raises
    ------
    ValueError
        If the layout is malformed or names a missing array.
    """
    try:
        tree = json.loads(layout)
    except (TypeError, json.JSONDecodeError) as err:
        raise ValueError(f"layout: not a JSON state layout ({err})") from err

    def decode(node: Any) -> Any:
        if not isinstance(node, dict) or len(node) != 1:
            raise ValueError(f"layout: malformed node {node!r}")
        ((kind, value),) = node.items()
        if kind == "tensor":
            if value not in arrays:
                raise ValueError(f"layout: array {value!r} is missing")
            array = arrays[value]
            return array.clone() if isinstance(array, torch.Tensor) else torch.tensor(array)
        if kind == "dict":
            return {key: decode(child) for key, child in value}
        if kind == "list":
            return [decode(child) for child in value]
        if kind == "value":
            return value
        raise ValueError(f"layout: unknown node kind {kind!r}")

    return decode(tree)
