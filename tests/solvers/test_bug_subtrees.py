"""Whole-subtree distribution of leaves-to-root recursions (``reduce_up``) and its use for
the normal-component estimate: the same values for any cut, and the exact ``||H Y||^2``."""

from __future__ import annotations

import numpy as np
import pytest

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian
from solvers.bug import LinearTreeRHS
from solvers.bug.common import reduce_up, subtree_split, tree_levels
from solvers.bug.enrichment import normal_component
from tensorsim.parallel import Executor, SerialComm
from tensorsim.ttn import Tree, random_ttn
from tensorsim.ttn.operator import to_ttno

TREES = {
    "binary 64": Tree.balanced_binary(64),
    "caterpillar 12": Tree.caterpillar(12),
    "irregular": Tree.from_nested(((2, 0), (1, (3, 4)), 5)),
}


class CountingExecutor:
    """A serial executor that records the tasks of every map."""

    def __init__(self) -> None:
        self.maps: list[list[int]] = []

    def map(self, func, tasks, *, costs=None):
        self.maps.append(list(tasks))
        return [func(t) for t in tasks]


@pytest.mark.parametrize("name", TREES)
@pytest.mark.parametrize("pieces", [1, 2, 5, 16])
def test_subtree_split_covers_every_node_once(name, pieces):
    tree = TREES[name]
    roots, top = subtree_split(tree, pieces)
    inside = [n for r in roots for n in tree.subtree_postorder(r)]
    above = [n for level in top for n in level]
    assert sorted(inside + above) == list(range(tree.n_nodes))
    assert len(roots) >= min(pieces, tree.n_sites)
    # a top node's children are subtree roots or top nodes of a lower level
    height = {n: k for k, level in enumerate(top) for n in level}
    for node in above:
        for c in tree.children[node]:
            assert c in roots or height[c] < height[node]
    # the top levels are tree levels restricted to the top part
    levels = [[n for n in lv if n in set(above)] for lv in tree_levels(tree)]
    assert top == [lv for lv in levels if lv]


@pytest.mark.parametrize("name", TREES)
def test_reduce_up_gives_the_recursion_of_the_whole_tree(name):
    tree = TREES[name]
    ex = CountingExecutor()
    sites = reduce_up(ex, tree, lambda n, kids: (n,) if tree.is_leaf(n) else sum(kids, ()))
    assert sites == tree.sites_below[tree.root]
    roots, top = subtree_split(tree, 16)
    # one task per subtree, then a level at a time (a single node is computed in place)
    assert ex.maps == [level for level in [roots, *top] if len(level) > 1]
    size = reduce_up(None, tree, lambda n, kids: 1 + sum(kids), pieces=3)
    assert size == tree.n_nodes


def test_normal_component_through_an_executor_is_the_dense_value(rng):
    """``||H Y||^2`` and ``<Y|H|Y>`` from subtree environments against the dense vector."""
    params = SpinChainParams(sites=8, tree="balanced_binary", model="xxz", jz=0.5, hz=0.2)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    rhs = LinearTreeRHS(op, factor=-1j)
    y = random_ttn(tree, 3, rng=rng, dtype=np.complex128)
    v = y.to_dense().reshape(-1)
    hv = op.to_dense() @ v
    projected = np.zeros((1, 3, 3), dtype=np.complex128)  # P F(Y) = 0: nu = h ||H Y||
    h = 0.1
    serial = normal_component(y, rhs, projected, h)
    spread = np.linalg.norm(hv - (np.vdot(v, hv) / np.vdot(v, v)) * v)
    np.testing.assert_allclose(serial, (h * np.linalg.norm(hv), h * spread), rtol=1e-10)
    distributed = normal_component(y, rhs, projected, h, executor=Executor(SerialComm()))
    assert distributed == serial
