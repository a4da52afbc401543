"""Builders of tree tensor networks: random networks and (padded) product states.

NumPy-only by design: the tensors are made on the host with NumPy's generators and linear
algebra, then moved once to the requested namespace and device (``xp``, ``device``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from tensorsim._array_api import Array, default_namespace
from tensorsim.ttn.network import TTN, orthonormalize
from tensorsim.ttn.tree import Tree

__all__ = ["product_state", "random_ttn"]

logger = logging.getLogger(__name__)


def random_ttn(
    tree: Tree,
    ranks: int | Mapping[int, int],
    *,
    rng: np.random.Generator | int | None = None,
    dtype: Any = None,
    xp: ModuleType | None = None,
    device: Any = None,
) -> TTN:
    """A random orthonormal TTN (Gaussian entries, then :func:`orthonormalize`).

    ``ranks`` is one rank for every edge or one per edge (keyed by child node); ranks
    above what a subtree can hold shrink. Complex ``dtype`` gives complex entries.
    """
    xp = default_namespace() if xp is None else xp
    dtype = xp.float64 if dtype is None else dtype
    gen = np.random.default_rng(rng)
    r = {e: (ranks if isinstance(ranks, int) else int(ranks[e])) for e in tree.edges}
    if any(v < 1 for v in r.values()):
        raise ValueError(f"ranks: expected positive ranks, got {ranks}")
    tensors = []
    for node in range(tree.n_nodes):
        if tree.is_leaf(node):
            shape = (tree.dims[node], r[node] if node in r else 1)
        else:
            top = 1 if node == tree.root else r[node]
            shape = (top, *(r[c] for c in tree.children[node]))
        data = gen.standard_normal(shape)
        if xp.isdtype(dtype, "complex floating"):
            data = data + 1j * gen.standard_normal(shape)
        tensors.append(xp.asarray(data, dtype=dtype, device=device))
    return orthonormalize(TTN(tree, tuple(tensors)))


def product_state(
    tree: Tree,
    vectors: Sequence[Any] | Any,
    *,
    rank: int = 1,
    dtype: Any = None,
    xp: ModuleType | None = None,
    device: Any = None,
) -> TTN:
    """The product state ``v_0 ⊗ v_1 ⊗ ...`` as an orthonormal TTN, optionally zero-padded.

    With ``rank > 1`` every edge gets ``rank`` columns (as far as the subtree allows): the
    first carries the state, the others are orthonormal directions of zero weight, which
    rank-adaptive integrators can turn on.

    Parameters
    ----------
    vectors
        One vector per site, or one vector for every site.
    rank
        Edge rank, at least 1.
    """
    xp = default_namespace() if xp is None else xp
    dtype = xp.float64 if dtype is None else dtype
    d = tree.n_sites
    vecs = list(vectors) if np.ndim(vectors[0]) == 1 else [vectors] * d
    if len(vecs) != d:
        raise ValueError(f"vectors: expected {d} vectors or one, got {len(vecs)}")
    if rank < 1:
        raise ValueError(f"rank: expected >= 1, got {rank}")
    r: dict[int, int] = {}
    tensors: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    weight = 1.0
    for node in tree.postorder:
        if tree.is_leaf(node):
            v = np.asarray(vecs[node], dtype=np.complex128).reshape(-1)
            if v.shape[0] != tree.dims[node]:
                raise ValueError(
                    f"vectors[{node}]: expected length {tree.dims[node]}, got {v.shape[0]}"
                )
            nv = float(np.linalg.norm(v))
            if nv == 0:
                raise ValueError(f"vectors[{node}]: the zero vector is not a state")
            weight *= nv
            r[node] = min(rank, tree.dims[node])
            basis = np.linalg.qr(np.column_stack([v / nv, np.eye(v.shape[0])]))[0]
            basis[:, 0] = v / nv
            if not xp.isdtype(dtype, "complex floating"):
                if np.abs(basis.imag).max() > 0:
                    raise ValueError(f"vectors[{node}]: complex vector for a real dtype")
                basis = basis.real
            tensors[node] = xp.asarray(basis[:, : r[node]], dtype=dtype, device=device)
            continue
        kids = tree.children[node]
        inner_shape = tuple(r[c] for c in kids)
        top = 1 if node == tree.root else min(rank, math.prod(inner_shape))
        r[node] = top
        c = np.zeros((top, *inner_shape))
        for a, index in zip(range(top), np.ndindex(*inner_shape), strict=False):
            c[(a, *index)] = 1.0
        tensors[node] = xp.asarray(c, dtype=dtype, device=device)
    tensors[tree.root] = tensors[tree.root] * weight
    return TTN(tree, tuple(tensors))
