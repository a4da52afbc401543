"""Tree tensor networks: topology (:class:`Tree`), data (:class:`TTN`), builders."""

from tensorsim.ttn.build import product_state, random_ttn
from tensorsim.ttn.network import (
    TTN,
    add,
    inner,
    local_expectations,
    norm,
    orthonormalize,
    scale,
    subtree_tensor,
    to_dense,
    truncate,
    validate,
)
from tensorsim.ttn.observables import expectation
from tensorsim.ttn.tree import Tree

__all__ = [
    "TTN",
    "Tree",
    "add",
    "expectation",
    "inner",
    "local_expectations",
    "norm",
    "orthonormalize",
    "product_state",
    "random_ttn",
    "scale",
    "subtree_tensor",
    "to_dense",
    "truncate",
    "validate",
]
