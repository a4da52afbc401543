"""Tree tensor networks: topology (:class:`Tree`), data (:class:`TTN`), builders, models."""

from tensorsim.ttn.build import product_state, random_ttn
from tensorsim.ttn.correlations import correlation_matrix
from tensorsim.ttn.entanglement import entanglement_entropies, schmidt_values
from tensorsim.ttn.models import (
    HARDCORE_BOSON,
    SITE_TYPES,
    SPIN_HALF,
    SPIN_ONE,
    ModelBuilder,
    SiteType,
    build_operator,
    spin_site,
)
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
from tensorsim.ttn.observables import energy_variance, expectation, fidelity
from tensorsim.ttn.tree import Tree

__all__ = [
    "HARDCORE_BOSON",
    "SITE_TYPES",
    "SPIN_HALF",
    "SPIN_ONE",
    "TTN",
    "ModelBuilder",
    "SiteType",
    "Tree",
    "add",
    "build_operator",
    "correlation_matrix",
    "energy_variance",
    "entanglement_entropies",
    "expectation",
    "fidelity",
    "inner",
    "local_expectations",
    "norm",
    "orthonormalize",
    "product_state",
    "random_ttn",
    "scale",
    "schmidt_values",
    "spin_site",
    "subtree_tensor",
    "to_dense",
    "truncate",
    "validate",
]
