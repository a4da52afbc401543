"""Tree tensor networks: one array per node of a :class:`~tensorsim.ttn.tree.Tree`.

A leaf (site) holds its basis ``U`` of shape ``(n, r)``; an inner node holds its connecting
tensor of shape ``(r_parent, r_child_1, ..., r_child_m)``, with ``r_parent = 1`` at the root.
The represented tensor is

    Y[i_0, ..., i_{d-1}] = contraction of all node tensors over the edges,

with no complex conjugation anywhere in the network (conjugation only in projections and
inner products). "Orthonormal" means every non-root node has orthonormal columns towards
its parent (``U^H U = I`` for leaves, ``Mat_0(C) Mat_0(C)^H = I`` for inner nodes); the root
then carries the norm.

All functions are written against the array API (NumPy, CuPy, torch, array_api_strict).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tensorsim._array_api import Array, array_namespace, device, to_float
from tensorsim.einsum import einsum
from tensorsim.linalg import Truncation
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn.tree import Tree

__all__ = [
    "TTN",
    "add",
    "inner",
    "local_expectations",
    "norm",
    "orthonormalize",
    "scale",
    "subtree_tensor",
    "to_dense",
    "truncate",
]

logger = logging.getLogger(__name__)

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, eq=False)
class TTN:
    """A tree tensor network: a tree and one tensor per node.

    Attributes
    ----------
    tree
        The topology.
    tensors
        ``tensors[node]``: ``(n, r)`` for a leaf, ``(r_parent, r_1, ..., r_m)`` for an inner
        node (``r_parent = 1`` at the root).
    """

    tree: Tree
    tensors: tuple[Array, ...]

    def __post_init__(self) -> None:
        validate(self)

    # thin method forms of the module functions
    def ranks(self) -> dict[int, int]:
        """Rank of every edge, keyed by the edge's child node."""
        return ranks(self)

    def to_dense(self, max_size: int = 2**26) -> Array:
        """Full tensor with axes in site order (see :func:`to_dense`)."""
        return to_dense(self, max_size=max_size)

    def norm(self) -> float:
        """Frobenius norm (see :func:`norm`)."""
        return norm(self)

    def orthonormalize(self) -> TTN:
        """Orthonormal form with the norm at the root (see :func:`orthonormalize`)."""
        return orthonormalize(self)

    def truncate(self, trunc: Truncation) -> tuple[TTN, dict[int, float]]:
        """Truncate every edge (see :func:`truncate`)."""
        return truncate(self, trunc)

    @property
    def dtype(self) -> Any:
        """Dtype of the node tensors."""
        return self.tensors[0].dtype

    @property
    def size(self) -> int:
        """Number of stored entries."""
        return sum(math.prod(t.shape) for t in self.tensors)


def _parent_rank(tree: Tree, node: int, tensor: Array) -> int:
    return tensor.shape[1] if tree.is_leaf(node) else tensor.shape[0]


def validate(ttn: TTN, *, orthonormal: bool = False, atol: float = 1e-10) -> None:
    """Check that the node tensors fit the tree (and, optionally, are orthonormal).

    Raises
    ------
    ValueError
        Naming the node whose tensor is inconsistent.
    """
    tree, tensors = ttn.tree, ttn.tensors
    if not isinstance(tree, Tree):
        raise TypeError(f"tree: expected a Tree, got {type(tree).__name__}")
    if len(tensors) != tree.n_nodes:
        raise ValueError(
            f"tensors: expected {tree.n_nodes} tensors (one per node), got {len(tensors)}"
        )
    array_namespace(*tensors)
    for node, t in enumerate(tensors):
        if tree.is_leaf(node):
            if t.ndim != 2 or t.shape[0] != tree.dims[node]:
                raise ValueError(
                    f"tensors[{node}]: leaf of dimension {tree.dims[node]} needs shape "
                    f"({tree.dims[node]}, r), got {tuple(t.shape)}"
                )
            continue
        kids = tree.children[node]
        if t.ndim != len(kids) + 1:
            raise ValueError(
                f"tensors[{node}]: inner node with {len(kids)} children needs "
                f"{len(kids) + 1} modes, got shape {tuple(t.shape)}"
            )
        for i, c in enumerate(kids):
            rc = _parent_rank(tree, c, tensors[c])
            if t.shape[i + 1] != rc:
                raise ValueError(
                    f"tensors[{node}]: mode {i + 1} has size {t.shape[i + 1]} but child "
                    f"{c} has parent rank {rc}"
                )
    if tensors[tree.root].shape[0] != 1:
        raise ValueError(f"tensors[{tree.root}]: the root's mode 0 must have size 1")
    if orthonormal:
        xp = array_namespace(*tensors)
        for node in tree.edges:
            m = _parent_matrix(tree, node, tensors[node])
            gram = xp.conj(m).mT @ m
            eye = xp.eye(gram.shape[0], dtype=gram.dtype, device=device(gram))
            err = to_float(xp.max(xp.abs(gram - eye)))
            if err > atol:
                raise ValueError(
                    f"tensors[{node}]: not orthonormal towards its parent ({err:.1e})"
                )


def _parent_matrix(tree: Tree, node: int, t: Array) -> Array:
    """The node's tensor as a matrix whose columns are indexed by the parent bond."""
    xp = array_namespace(t)
    if tree.is_leaf(node):
        return t
    return xp.reshape(t, (t.shape[0], -1)).mT


def _from_parent_matrix(tree: Tree, node: int, m: Array, shape: tuple[int, ...]) -> Array:
    """Inverse of :func:`_parent_matrix` (the parent rank may have changed)."""
    xp = array_namespace(m)
    if tree.is_leaf(node):
        return m
    return xp.reshape(m.mT, (m.shape[1], *shape[1:]))


def ranks(ttn: TTN) -> dict[int, int]:
    """Rank of every edge, keyed by the edge's child node."""
    return {n: _parent_rank(ttn.tree, n, ttn.tensors[n]) for n in ttn.tree.edges}


def to_dense(ttn: TTN, *, max_size: int = 2**26) -> Array:
    """Contract the network into the full tensor, axes in site order (small cases only).

    Raises
    ------
    ValueError
        If the full tensor would have more than ``max_size`` entries.
    """
    tree = ttn.tree
    total = math.prod(tree.dims)
    if total > max_size:
        raise ValueError(f"to_dense: {total} entries exceed max_size={max_size}")
    xp = array_namespace(*ttn.tensors)
    full, order = subtree_tensor(ttn, tree.root)
    return xp.permute_dims(full[..., 0], tuple(order.index(s) for s in range(tree.n_sites)))


def subtree_tensor(
    ttn: TTN, node: int, contract: Mapping[int, Array] | None = None
) -> tuple[Array, list[int]]:
    """The basis of a subtree as one tensor, some sites contracted with vectors.

    Parameters
    ----------
    ttn
        The network.
    node
        Root of the subtree.
    contract
        ``{site: v}``: site ``site`` (below ``node``) is summed against ``v`` (no
        conjugation), e.g. to take a moment or a quadrature average.

    Returns
    -------
    (tensor, sites)
        ``tensor`` has one axis per remaining site below ``node`` (in the order ``sites``)
        and a last axis for the edge to the parent (size 1 at the root).
    """
    tree = ttn.tree
    contract = dict(contract or {})
    below = set(tree.sites_below[node])
    for site in contract:
        if site not in below:
            raise ValueError(f"contract: site {site} is not below node {node}")
    values: dict[int, Array] = {}  # node -> (free sites below ..., r_parent)
    free: dict[int, list[int]] = {}
    for n in tree.postorder:
        if not set(tree.sites_below[n]) <= below:
            continue  # not in the subtree
        t = ttn.tensors[n]
        if tree.is_leaf(n):
            if n in contract:
                values[n], free[n] = einsum("i,ia->a", contract[n], t), []
            else:
                values[n], free[n] = t, [n]
            continue
        kids = tree.children[n]
        bonds = _LETTERS[: len(kids) + 1]
        letters = iter(_LETTERS[len(kids) + 1 :])
        terms, out_sites, sites = [bonds], "", []
        for i, c in enumerate(kids):
            letters_c = "".join(next(letters) for _ in free[c])
            terms.append(letters_c + bonds[i + 1])
            out_sites += letters_c
            sites += free.pop(c)
        values[n] = einsum(
            ",".join(terms) + "->" + out_sites + bonds[0], t, *(values.pop(c) for c in kids)
        )
        free[n] = sites
        if n == node:
            break
    return values[node], free[node]


def _sandwich(bra: Array, envs: Sequence[Array | None], ket: Array) -> Array:
    """``out[a, b] = sum conj(bra)[a, i...] prod_c E_c[i_c, j_c] ket[b, j...]``.

    ``envs[c]`` multiplies mode ``c + 1``; ``None`` means the identity.
    """
    xp = array_namespace(bra, ket)
    t = ket
    for c, e in enumerate(envs):
        if e is not None:
            t = mode_dot(t, e, c + 1)
    return xp.reshape(xp.conj(bra), (bra.shape[0], -1)) @ xp.reshape(t, (t.shape[0], -1)).mT


def inner(a: TTN, b: TTN) -> Array:
    """``<a, b> = sum conj(a) * b`` as a 0-d array (no dense tensor is formed)."""
    if a.tree != b.tree:
        raise ValueError("b: expected a TTN on the same tree as a")
    tree = a.tree
    xp = array_namespace(*a.tensors, *b.tensors)
    envs: dict[int, Array] = {}
    for node in tree.postorder:
        ta, tb = a.tensors[node], b.tensors[node]
        if tree.is_leaf(node):
            envs[node] = xp.conj(ta).mT @ tb
        else:
            envs[node] = _sandwich(ta, [envs.pop(c) for c in tree.children[node]], tb)
    return envs[tree.root][0, 0]


def norm(ttn: TTN) -> float:
    """Frobenius norm of the represented tensor."""
    xp = array_namespace(*ttn.tensors)
    return math.sqrt(max(to_float(xp.real(inner(ttn, ttn))), 0.0))


def scale(ttn: TTN, factor: complex | float) -> TTN:
    """The network times a scalar (applied to the root tensor)."""
    tensors = list(ttn.tensors)
    tensors[ttn.tree.root] = tensors[ttn.tree.root] * factor
    return TTN(ttn.tree, tuple(tensors))


def add(a: TTN, b: TTN) -> TTN:
    """Sum ``a + b`` as a direct sum of the node tensors (ranks add up; truncate after)."""
    if a.tree != b.tree:
        raise ValueError("b: expected a TTN on the same tree as a")
    tree = a.tree
    xp = array_namespace(*a.tensors, *b.tensors)
    dtype = xp.result_type(a.dtype, b.dtype)
    out = []
    for node in range(tree.n_nodes):
        ta, tb = xp.astype(a.tensors[node], dtype), xp.astype(b.tensors[node], dtype)
        if tree.is_leaf(node):
            out.append(xp.concat([ta, tb], axis=1))
            continue
        root = node == tree.root
        shape = tuple(
            sa if (k == 0 and root) else sa + sb
            for k, (sa, sb) in enumerate(zip(ta.shape, tb.shape, strict=True))
        )
        block = xp.zeros(shape, dtype=dtype, device=device(ta))
        block[tuple(slice(0, s) for s in ta.shape)] = ta
        start = [0 if (k == 0 and root) else sa for k, sa in enumerate(ta.shape)]
        block[tuple(slice(s, s + n) for s, n in zip(start, tb.shape, strict=True))] = tb
        out.append(block)
    return TTN(tree, tuple(out))


def _move_weight_up(tensors: list[Array], tree: Tree, node: int) -> None:
    """QR the node towards its parent and multiply R into the parent (in place in the list)."""
    xp = array_namespace(tensors[node])
    t = tensors[node]
    q, r = xp.linalg.qr(_parent_matrix(tree, node, t))
    tensors[node] = _from_parent_matrix(tree, node, q, t.shape)
    p = tree.parent[node]
    tensors[p] = mode_dot(tensors[p], r, tree.position[node])


def orthonormalize(ttn: TTN) -> TTN:
    """Orthonormal form: QR from the leaves up, so that only the root carries weight.

    Ranks larger than what the subtree can hold shrink to the subtree's dimension.
    """
    tensors = list(ttn.tensors)
    for node in ttn.tree.postorder[:-1]:
        _move_weight_up(tensors, ttn.tree, node)
    return TTN(ttn.tree, tuple(tensors))


def truncate(ttn: TTN, trunc: Truncation) -> tuple[TTN, dict[int, float]]:
    """Truncate every edge by its singular values, root to leaves.

    The state is first orthonormalized; then the orthogonality centre walks down the tree,
    so every edge is cut at its true Schmidt values (gauge-aware, unlike truncating the
    orthonormal connecting tensors in place). ``trunc`` applies per edge; its ``rtol``
    refers to the norm of the state.

    Returns
    -------
    (TTN, dict)
        The truncated network (orthonormal, norm at the root) and the 2-norm of the
        discarded singular values of each edge.
    """
    from tensorsim.linalg import truncated_svd
    from tensorsim.tensor_ops import fold, unfold

    tree = ttn.tree
    xp = array_namespace(*ttn.tensors)
    tensors = list(orthonormalize(ttn).tensors)
    discarded: dict[int, float] = {}

    def cut_children(node: int) -> None:
        for i, c in enumerate(tree.children[node]):
            mode = i + 1
            centre = tensors[node]
            res = truncated_svd(unfold(centre, mode), trunc)
            shape = list(centre.shape)
            shape[mode] = res.s.shape[0]
            tensors[node] = fold(res.s[:, None] * res.vh, mode, shape)
            discarded[c] = res.discarded
            if tree.is_leaf(c):
                tensors[c] = tensors[c] @ res.u
            else:
                tensors[c] = mode_dot(tensors[c], res.u.mT, 0)

    def visit(node: int) -> None:
        cut_children(node)
        for i, c in enumerate(tree.children[node]):
            if tree.is_leaf(c):
                continue
            mode = i + 1
            centre = tensors[node]
            q, r = xp.linalg.qr(unfold(centre, mode).mT)
            shape = list(centre.shape)
            shape[mode] = q.shape[1]
            tensors[node] = fold(q.mT, mode, shape)
            tensors[c] = mode_dot(tensors[c], r, 0)
            visit(c)
            _move_weight_up(tensors, tree, c)

    visit(tree.root)
    return TTN(tree, tuple(tensors)), discarded


def local_expectations(
    ttn: TTN, matrix: Any, sites: Sequence[int] | None = None, *, hermitian: bool = True
) -> Array:
    """``<Y|O_k|Y> / <Y|Y>`` of a one-site operator on each site ``k``.

    Cost per site: one pass along the path from the site to the root (the rest of the
    orthonormal network contracts to the identity).

    Parameters
    ----------
    matrix
        The one-site operator ``(n, n)`` (same for every site).
    sites
        Sites to evaluate (default: all).
    hermitian
        Return the real part (the values of a Hermitian operator are real).
    """
    tree = ttn.tree
    y = orthonormalize(ttn)
    xp = array_namespace(*y.tensors)
    op = xp.asarray(matrix, dtype=y.dtype, device=device(y.tensors[0]))
    root = y.tensors[tree.root]
    norm2 = xp.sum(xp.abs(root) ** 2)
    sites = range(tree.n_sites) if sites is None else sites
    values = []
    for k in sites:
        u = y.tensors[k]
        env = xp.conj(u).mT @ (op @ u)
        node = k
        while tree.parent[node] >= 0:
            p = tree.parent[node]
            envs: list[Array | None] = [None] * len(tree.children[p])
            envs[tree.position[node] - 1] = env
            env = _sandwich(y.tensors[p], envs, y.tensors[p])
            node = p
        values.append(env[0, 0] / norm2)
    out = xp.stack(values)
    return xp.real(out) if hermitian else out
