"""Entanglement of a tree tensor network state across its edges.

Every edge of a tree cuts the sites in two: those below the edge's child node and the rest.
With the state orthonormal (every subtree basis orthonormal, the norm at the root), the
state at edge ``e`` is ``Y = sum_a |sub_a> (x) |comp_a>`` with ``|sub_a>`` orthonormal; the
Gram matrix of the complement states ``G_e[a, b] = <comp_a|comp_b>`` is then the reduced
density matrix of the subtree (up to ``||Y||^2`` and a transpose), and its eigenvalues are
the squared Schmidt values of the cut. The Gram matrices follow from the root down, one
small contraction per edge (:func:`complement_grams`).
"""

from __future__ import annotations

import logging
import math

from tensorsim._array_api import Array, array_namespace, device, to_float
from tensorsim.einsum import einsum
from tensorsim.ttn.network import TTN, orthonormalize

__all__ = ["complement_grams", "entanglement_entropies", "schmidt_values"]

logger = logging.getLogger(__name__)


def complement_grams(y: TTN) -> list[Array]:
    """``G_e[a, b] = <comp_a|comp_b>`` for every node's parent edge (root: ``[[1]]``).

    Parameters
    ----------
    y
        An orthonormal TTN (norm at the root), e.g. from
        :func:`~tensorsim.ttn.orthonormalize`; the result is meaningless otherwise.

    Returns
    -------
    list of arrays
        Indexed by node: the ``(r, r)`` Gram matrix of the states that complement the
        node's subtree basis (``r`` the node's parent rank); Hermitian, positive
        semi-definite, trace ``||Y||^2``. For the root, ones of shape ``(1, 1)``.
        ``<Y|O_sub (x) 1|Y> = sum(<sub_a|O|sub_b> * G[a, b])`` for an operator on the
        subtree's sites.
    """
    tree = y.tree
    xp = array_namespace(*y.tensors)
    root = y.tensors[tree.root]
    grams: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    grams[tree.root] = xp.ones((1, 1), dtype=root.dtype, device=device(root))
    for node in reversed(tree.postorder):
        if tree.is_leaf(node):
            continue
        c = y.tensors[node]
        for mode, child in enumerate(tree.children[node], start=1):
            a = xp.reshape(xp.moveaxis(c, mode, 0), (c.shape[mode], c.shape[0], -1))
            grams[child] = einsum("ipz,pq,jqz->ij", xp.conj(a), grams[node], a)
    return grams


def schmidt_values(state: TTN) -> dict[int, Array]:
    """Schmidt values of every edge cut, normalized (their squares sum to one), descending.

    Parameters
    ----------
    state
        Any TTN (orthonormalized here), not zero.

    Returns
    -------
    dict
        Edge (its child node) -> 1-D real array of length the edge rank. They come from the
        eigenvalues of :func:`complement_grams`: their squares are exact to round-off, so
        a value that vanishes (an edge rank above the Schmidt rank) reads about
        ``sqrt(eps) ~ 1e-8``.
    """
    y = _orthonormal(state)
    xp = array_namespace(*y.tensors)
    out = {}
    grams = complement_grams(y)
    for edge in y.tree.edges:
        g = grams[edge]
        values = xp.linalg.eigvalsh((g + xp.conj(g).mT) / 2)
        weights = xp.clip(values, 0.0, None) / xp.sum(xp.clip(values, 0.0, None))
        out[edge] = xp.flip(xp.sqrt(weights))
    return out


def entanglement_entropies(state: TTN, *, base: float = math.e) -> dict[int, float]:
    """Von Neumann entropy ``-sum p log p`` of every edge cut (``p`` squared Schmidt values).

    Parameters
    ----------
    state
        Any TTN (orthonormalized here), not zero.
    base
        Base of the logarithm (``math.e``: nats, as TeNPy and quimb report; 2: bits).

    Returns
    -------
    dict
        Edge (its child node) -> entropy as a Python float.
    """
    if not (isinstance(base, int | float) and base > 0 and base != 1):
        raise ValueError(f"base: expected a positive number other than 1, got {base!r}")
    out = {}
    for edge, s in schmidt_values(state).items():
        xp = array_namespace(s)
        p = s**2
        safe = xp.where(p > 0, p, xp.ones_like(p))  # 0 log 0 = 0
        out[edge] = to_float(-xp.sum(p * xp.log(safe))) / math.log(base)
    return out


def _orthonormal(state: TTN) -> TTN:
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    y = orthonormalize(state)
    xp = array_namespace(*y.tensors)
    if to_float(xp.linalg.vector_norm(y.tensors[y.tree.root])) == 0.0:
        raise ValueError("state: the zero vector has no Schmidt decomposition")
    return y
