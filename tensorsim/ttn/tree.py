"""Tree topology of a tree tensor network: immutable, hashable, no arrays.

Node ids: the leaves are the sites ``0 .. n_sites - 1`` (leaf id = site index); the inner
nodes follow in post-order (children before parents), so the root is the last node.
An inner node's tensor has mode 0 towards its parent and modes ``1 .. m`` towards its
children in the order of :attr:`Tree.children`.
"""

from __future__ import annotations

import functools
import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Tree"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tree:
    """Topology of a tree tensor network.

    Use the builders :meth:`from_nested`, :meth:`balanced_binary`, :meth:`caterpillar`,
    :meth:`star` rather than the constructor.

    Attributes
    ----------
    children
        ``children[node]``: the child node ids of each node (empty for a leaf).
    dims
        Physical dimension of each site (leaf).
    """

    children: tuple[tuple[int, ...], ...]
    dims: tuple[int, ...]

    def __post_init__(self) -> None:
        d = len(self.dims)
        n = len(self.children)
        if d < 2:
            raise ValueError(f"dims: a tree tensor network needs at least 2 sites, got {d}")
        if n <= d:
            raise ValueError(
                f"children: {d} sites need at least one inner node, got {n} nodes in all"
            )
        if any(not isinstance(k, int) or k < 1 for k in self.dims):
            raise ValueError(f"dims: expected positive integers, got {self.dims}")
        if any(self.children[s] for s in range(min(d, n))):
            raise ValueError("children: nodes 0 .. n_sites-1 are the leaves and have no children")
        seen: dict[int, int] = {}
        for node in range(d, n):
            kids = self.children[node]
            if not kids:
                raise ValueError(f"children: inner node {node} has no children")
            for c in kids:
                if not 0 <= c < node:
                    raise ValueError(
                        f"children: node {node} lists child {c}; children must have smaller ids"
                    )
                if c in seen:
                    raise ValueError(f"children: node {c} has two parents ({seen[c]} and {node})")
                seen[c] = node
        if len(seen) != n - 1:
            orphans = sorted(set(range(n - 1)) - set(seen))
            raise ValueError(f"children: nodes {orphans} are not connected to the root")

    # ------------------------------------------------------------------ builders

    @classmethod
    def from_nested(cls, nested: Any, dims: int | Sequence[int] = 2) -> Tree:
        """Build a tree from nested tuples of site indices.

        Parameters
        ----------
        nested
            E.g. ``((0, 1), (2, 3))``; every site ``0 .. d-1`` must appear once. An inner
            node may have any number of children (a flat tuple is a star: Tucker).
        dims
            Physical dimension of every site, or one per site.

        Examples
        --------
        >>> Tree.from_nested(((0, 1), (2, 3))).children
        ((), (), (), (), (0, 1), (2, 3), (4, 5))
        """
        sites: list[int] = []

        def collect(item: Any) -> None:
            if isinstance(item, bool):
                raise TypeError(f"nested: expected site integers and tuples, got {item!r}")
            if isinstance(item, numbers.Integral):
                sites.append(int(item))
            elif isinstance(item, tuple | list) and item:
                for sub in item:
                    collect(sub)
            else:
                raise TypeError(
                    f"nested: expected site integers and non-empty tuples, got {item!r}"
                )

        collect(nested)
        d = len(sites)
        if sorted(sites) != list(range(d)):
            raise ValueError(f"nested: expected each of the sites 0..{d - 1} once, got {sites}")
        dims_t = (int(dims),) * d if isinstance(dims, int) else tuple(int(k) for k in dims)
        if len(dims_t) != d:
            raise ValueError(f"dims: expected {d} dimensions, got {len(dims_t)}")
        children: list[tuple[int, ...]] = [()] * d

        def build(item: Any) -> int:
            if isinstance(item, numbers.Integral):
                return int(item)
            kids = tuple(build(sub) for sub in item)
            children.append(kids)
            return len(children) - 1

        build(nested)
        return cls(tuple(children), dims_t)

    @classmethod
    def balanced_binary(cls, n_sites: int, dims: int | Sequence[int] = 2) -> Tree:
        """Balanced binary tree over sites ``0 .. n_sites-1`` (left half, right half)."""
        _check_sites(n_sites)

        def split(lo: int, hi: int) -> Any:
            if hi - lo == 1:
                return lo
            mid = (lo + hi + 1) // 2
            return (split(lo, mid), split(mid, hi))

        return cls.from_nested(split(0, n_sites), dims)

    @classmethod
    def caterpillar(cls, n_sites: int, dims: int | Sequence[int] = 2) -> Tree:
        """Caterpillar (MPS-like) tree ``(((0, 1), 2), 3) ...``."""
        _check_sites(n_sites)
        nested: Any = 0
        for s in range(1, n_sites):
            nested = (nested, s)
        return cls.from_nested(nested, dims)

    @classmethod
    def star(cls, n_sites: int, dims: int | Sequence[int] = 2) -> Tree:
        """Star tree: one root with every site as a child (the Tucker format)."""
        _check_sites(n_sites)
        return cls.from_nested(tuple(range(n_sites)), dims)

    # ------------------------------------------------------------------ structure

    @property
    def n_sites(self) -> int:
        """Number of sites (leaves)."""
        return len(self.dims)

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.children)

    @property
    def root(self) -> int:
        """Id of the root (the last node)."""
        return len(self.children) - 1

    @property
    def inner_nodes(self) -> tuple[int, ...]:
        """Inner node ids in post-order (children first, root last)."""
        return tuple(range(self.n_sites, self.n_nodes))

    @property
    def edges(self) -> tuple[int, ...]:
        """Every edge, named by its child node (all nodes but the root)."""
        return tuple(range(self.n_nodes - 1))

    @functools.cached_property
    def parent(self) -> tuple[int, ...]:
        """``parent[node]``; ``-1`` for the root."""
        out = [-1] * self.n_nodes
        for node, kids in enumerate(self.children):
            for c in kids:
                out[c] = node
        return tuple(out)

    @functools.cached_property
    def position(self) -> tuple[int, ...]:
        """Mode of each node in its parent's tensor (``1 .. m``); 0 for the root."""
        out = [0] * self.n_nodes
        for kids in self.children:
            for i, c in enumerate(kids):
                out[c] = i + 1
        return tuple(out)

    def is_leaf(self, node: int) -> bool:
        """Whether ``node`` is a leaf (a site)."""
        return node < self.n_sites

    @functools.cached_property
    def preorder(self) -> tuple[int, ...]:
        """Nodes with every parent before its children (root first)."""
        return self._preorder_from(self.root)

    @functools.cached_property
    def postorder(self) -> tuple[int, ...]:
        """Nodes with every child before its parent (root last)."""
        return tuple(reversed(self.preorder))

    def subtree_postorder(self, node: int) -> tuple[int, ...]:
        """The nodes of the subtree of ``node`` in :attr:`postorder` order (``node`` last)."""
        return tuple(reversed(self._preorder_from(node)))

    def _preorder_from(self, node: int) -> tuple[int, ...]:
        order, stack = [], [node]
        while stack:
            node = stack.pop()
            order.append(node)
            stack.extend(reversed(self.children[node]))
        return tuple(order)

    @functools.cached_property
    def sites_below(self) -> tuple[tuple[int, ...], ...]:
        """Sites of the subtree of each node, in left-to-right order."""
        out: list[tuple[int, ...]] = [()] * self.n_nodes
        for node in self.postorder:
            out[node] = (
                (node,) if self.is_leaf(node) else sum((out[c] for c in self.children[node]), ())
            )
        return tuple(out)

    def depth(self, node: int) -> int:
        """Number of edges from ``node`` up to the root."""
        k = 0
        while self.parent[node] >= 0:
            node = self.parent[node]
            k += 1
        return k

    def path_to_root(self, node: int) -> tuple[int, ...]:
        """Nodes from ``node`` (included) up to the root (included)."""
        path = [node]
        while self.parent[path[-1]] >= 0:
            path.append(self.parent[path[-1]])
        return tuple(path)

    def nested(self, node: int | None = None) -> Any:
        """The nested-tuple form of the (sub)tree, inverse of :meth:`from_nested`."""
        node = self.root if node is None else node
        if self.is_leaf(node):
            return node
        return tuple(self.nested(c) for c in self.children[node])

    def __repr__(self) -> str:
        return f"Tree({self.nested()!r}, dims={self.dims})"


def _check_sites(n_sites: int) -> None:
    if isinstance(n_sites, bool) or not isinstance(n_sites, int) or n_sites < 2:
        raise ValueError(f"n_sites: expected an integer >= 2, got {n_sites!r}")
