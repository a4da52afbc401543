"""Environments of a TTNO on an orthonormal TTN against dense projections built here.

The dense reference of a local problem at ``node``: the prolongation ``P`` maps a node
tensor ``X`` to the full state of the network in which ``node`` holds ``X``, every ancestor
on the path to the root holds its tensor gauged towards that path (:func:`edge_gauge`), and
every other node keeps its (orthonormal) tensor. The restricted operator is ``P^H H P``
with ``H`` the dense Kronecker sum; with two bases it is ``P_bra^H H P_ket``.
"""

import functools
import string

import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn import TTN, Tree, random_ttn
from tensorsim.ttn.environment import (
    apply_leaf,
    apply_node,
    down_environments,
    edge_gauge,
    leaf_environment,
    node_environment,
    root_up_environment,
    up_environment,
)
from tensorsim.ttn.operator import SumOfProducts, to_ttno

MIXED = ((2, 0), (1, (3, 4)))

SETUPS = {
    # tree, Y ranks per edge
    "mixed5": (
        Tree.from_nested(MIXED, dims=(2, 3, 2, 3, 2)),
        {0: 2, 1: 2, 2: 2, 3: 3, 4: 2, 5: 3, 6: 2, 7: 3},
    ),
    "binary4": (Tree.balanced_binary(4, dims=(3, 2, 2, 3)), {0: 2, 1: 2, 2: 2, 3: 3, 4: 3, 5: 2}),
    "star4": (Tree.star(4, dims=(2, 3, 3, 2)), {0: 2, 1: 3, 2: 2, 3: 2}),
}


# ---------------------------------------------------------------- NumPy references


def dense_ref(tree: Tree, tensors) -> np.ndarray:
    """Contract the network in one np.einsum: sites in order, root's size-1 mode dropped."""
    letters = iter(string.ascii_letters)
    bond = [next(letters) for _ in range(tree.n_nodes)]
    site = [next(letters) for _ in range(tree.n_sites)]
    terms = []
    for node in range(tree.n_nodes):
        if node < tree.n_sites:
            terms.append(site[node] + bond[node])
        else:
            terms.append(bond[node] + "".join(bond[c] for c in tree.children[node]))
    spec = ",".join(terms) + "->" + "".join(site) + bond[tree.root]
    return np.einsum(spec, *tensors, optimize="greedy")[..., 0]


def dense_operator(terms, dims) -> np.ndarray:
    size = int(np.prod(dims))
    out = np.zeros((size, size), dtype=complex)
    for coef, factors in terms:
        mats = [np.asarray(factors.get(s, np.eye(n))) for s, n in enumerate(dims)]
        out += coef * functools.reduce(np.kron, mats)
    return out


def prolongation(tree: Tree, tensors, node: int, shape) -> np.ndarray:
    """Dense matrix of ``X -> state with X at node`` (columns: entries of X, C order)."""
    size = int(np.prod(shape))
    cols = []
    for k in range(size):
        unit = np.zeros(size, dtype=complex)
        unit[k] = 1.0
        ts = list(tensors)
        ts[node] = unit.reshape(shape)
        cols.append(dense_ref(tree, ts).ravel())
    return np.stack(cols, axis=1)


def random_operator_terms(rng, dims, n_terms=7):
    """A random complex, non-Hermitian, non-symmetric sum of products (with identity)."""
    d = len(dims)
    terms = [(0.7 - 0.3j, {})]
    for _ in range(n_terms):
        k = int(rng.integers(1, min(3, d) + 1))
        sites = rng.choice(d, size=k, replace=False)
        factors = {
            int(s): rng.standard_normal((dims[s], dims[s]))
            + 1j * rng.standard_normal((dims[s], dims[s]))
            for s in sites
        }
        terms.append((complex(rng.standard_normal(), rng.standard_normal()), factors))
    return terms


def np_tensors(ttn):
    return [np.asarray(to_numpy(t)) for t in ttn.tensors]


def ancestors(tree, node):
    """Pairs ``(ancestor, mode of the path child)`` from the parent up to the root."""
    out = []
    while tree.parent[node] >= 0:
        out.append((tree.parent[node], tree.position[node]))
        node = tree.parent[node]
    return out


class Problem:
    """State, operator and every library environment (computed once per test)."""

    def __init__(self, xp, name, seed=5):
        tree, ranks = SETUPS[name]
        rng = np.random.default_rng(seed)
        self.xp, self.tree = xp, tree
        self.terms = random_operator_terms(rng, tree.dims)
        self.h = dense_operator(self.terms, tree.dims)
        self.op = to_ttno(SumOfProducts(self.terms, tree.dims), tree, xp=xp)
        self.y = random_ttn(tree, ranks, rng=rng, dtype=xp.complex128, xp=xp)
        assert self.y.ranks() == ranks
        self.ynp = np_tensors(self.y)
        self.down = down_environments(self.y, self.op)
        # BUG recursion (spec 1.1, 7.4): gauge the root in the mode of a child,
        # K0_child = child ×_0 R (U R^T for a leaf), and gauge K0_child for the grandchildren.
        self.q = {}  # (node, mode) -> edge-gauged tensor (backend array)
        self.k0 = {tree.root: self.y.tensors[tree.root]}  # node tensor in gauged coordinates
        self.up = {tree.root: root_up_environment(self.op, self.y.tensors[0])}
        for p in tree.preorder:
            if tree.is_leaf(p):
                continue
            kids = tree.children[p]
            for pos, c in enumerate(kids, start=1):
                q, r = edge_gauge(self.k0[p], pos)
                self.q[p, pos] = q
                t = self.y.tensors[c]
                self.k0[c] = t @ r.T if tree.is_leaf(c) else mode_dot(t, r, 0)
                self.up[c] = up_environment(
                    q, self.op.tensors[p], self.up[p], [self.down[k] for k in kids], pos
                )

    def local_shape(self, node):
        """Shape of the local problem at ``node`` (that of the gauged tensor ``K0``).

        The parent bond is smaller than the state's rank where that rank exceeds what the
        rest of the parent tensor can hold (``edge_gauge`` shrinks the mode).
        """
        return tuple(self.k0[node].shape)

    def gauged(self, tensors, node):
        """NumPy tensors with every ancestor of ``node`` gauged towards it."""
        ts = list(tensors)
        for a, pos in ancestors(self.tree, node):
            ts[a] = np.asarray(to_numpy(self.q[a, pos]))
        return ts

    def restricted(self, node, shape, bra=None, ket=None, ket_shape=None):
        """Dense ``P_bra^H H P_ket`` at ``node``."""
        bra = self.ynp if bra is None else bra
        ket = bra if ket is None else ket
        pb = prolongation(self.tree, self.gauged(bra, node), node, shape)
        pk = prolongation(self.tree, self.gauged(ket, node), node, ket_shape or shape)
        return pb, pk, pb.conj().T @ self.h @ pk


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---------------------------------------------------------------- edge_gauge and conventions


@pytest.mark.parametrize("shape", [(3, 2, 4), (1, 5, 2), (2, 3, 3, 2)])
def test_edge_gauge_factorization(xp, rng, shape):
    c = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    for mode in range(len(shape)):
        q, r = edge_gauge(xp.asarray(c), mode)
        qn, rn = np.asarray(to_numpy(q)), np.asarray(to_numpy(r))
        others = int(np.prod(shape)) // shape[mode]
        k = min(shape[mode], others)
        assert qn.shape == (*shape[:mode], k, *shape[mode + 1 :])
        assert rn.shape == (k, shape[mode])
        mat_q = np.moveaxis(qn, mode, 0).reshape(k, -1)
        mat_c = np.moveaxis(c, mode, 0).reshape(shape[mode], -1)
        # orthonormal in ``mode`` and Mat(C) = R^T Mat(Q) (transpose, no conjugate)
        np.testing.assert_allclose(mat_q @ mat_q.conj().T, np.eye(k), atol=1e-12)
        np.testing.assert_allclose(rn.T @ mat_q, mat_c, atol=1e-12)


def test_gauge_moves_r_transpose_into_the_child(rng):
    """Spec 7.4: with Mat_i(C)^T = Q R, K0 = U R^T reproduces the state (complex data)."""
    tree, ranks = SETUPS["mixed5"]
    y = random_ttn(tree, ranks, rng=rng, dtype=np.complex128)
    ref = y.to_dense()
    for node in tree.edges:
        p, pos = tree.parent[node], tree.position[node]
        q, r = edge_gauge(y.tensors[p], pos)
        ts = list(y.tensors)
        ts[p] = q
        if tree.is_leaf(node):
            ts[node] = ts[node] @ r.T
        else:
            ts[node] = mode_dot(ts[node], r, 0)  # the same R^T, on the child's mode 0
        np.testing.assert_allclose(
            TTN(tree, tuple(ts)).to_dense(), ref, atol=1e-13 * np.abs(ref).max()
        )


# ---------------------------------------------------------------- square environments


@pytest.mark.parametrize("name", list(SETUPS))
def test_root_down_environment_is_expectation(xp, name):
    pb = Problem(xp, name)
    y = dense_ref(pb.tree, pb.ynp).ravel()
    root = np.asarray(to_numpy(pb.down[pb.tree.root]))
    assert root.shape == (1, 1, 1)
    ref = np.vdot(y, pb.h @ y)
    assert abs(ref.imag) > 1e-3 * abs(ref)  # non-Hermitian: a complex value
    assert abs(root[0, 0, 0] - ref) <= 1e-11 * abs(ref)
    # every down environment has shape (chi, r, r)
    for node in range(pb.tree.n_nodes):
        chi = pb.op.bond_dims.get(node, 1)
        r = pb.y.ranks().get(node, 1)
        assert tuple(pb.down[node].shape) == (chi, r, r)


@pytest.mark.parametrize("name", list(SETUPS))
def test_apply_leaf_equals_dense_restricted_operator(xp, name):
    pb = Problem(xp, name)
    rng = np.random.default_rng(11)
    for leaf in range(pb.tree.n_sites):
        shape = pb.local_shape(leaf)
        p_mat, _, ref = pb.restricted(leaf, shape)
        # the complement basis is orthonormal: P is an isometry
        np.testing.assert_allclose(p_mat.conj().T @ p_mat, np.eye(p_mat.shape[1]), atol=1e-12)
        k = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        got = to_numpy(apply_leaf(xp.asarray(k), pb.op.tensors[leaf], pb.up[leaf]))
        assert got.shape == shape
        assert rel(np.asarray(got).ravel(), ref @ k.ravel()) < 1e-11, f"leaf {leaf}"


@pytest.mark.parametrize("name", list(SETUPS))
def test_apply_node_equals_dense_restricted_operator(xp, name):
    pb = Problem(xp, name)
    rng = np.random.default_rng(12)
    tree = pb.tree
    if name == "binary4":  # rank 3 on edge 4 exceeds the root's other mode (2): shrinks
        assert pb.y.ranks()[4] == 3 and pb.local_shape(4) == (2, 2, 2)
    for node in tree.inner_nodes:
        shape = pb.local_shape(node)
        p_mat, _, ref = pb.restricted(node, shape)
        np.testing.assert_allclose(p_mat.conj().T @ p_mat, np.eye(p_mat.shape[1]), atol=1e-12)
        x = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        kids = [pb.down[c] for c in tree.children[node]]
        got = to_numpy(apply_node(xp.asarray(x), pb.op.tensors[node], pb.up[node], kids))
        assert got.shape == shape
        assert rel(np.asarray(got).ravel(), ref @ x.ravel()) < 1e-11, f"node {node}"


@pytest.mark.parametrize("name", list(SETUPS))
def test_local_problems_applied_to_the_state_give_projected_h_y(xp, name):
    """``P K0 = y`` and ``L(K0) = P^H H y`` with K0 the gauged state at the node (spec 7.4)."""
    pb = Problem(xp, name)
    tree = pb.tree
    y = dense_ref(tree, pb.ynp).ravel()
    for node in tree.edges:
        k0 = np.asarray(to_numpy(pb.k0[node]))
        p_mat, _, _ = pb.restricted(node, k0.shape)
        assert rel(p_mat @ k0.ravel(), y) < 1e-12, f"node {node}"
        if tree.is_leaf(node):
            got = apply_leaf(xp.asarray(k0), pb.op.tensors[node], pb.up[node])
        else:
            kids = [pb.down[c] for c in tree.children[node]]
            got = apply_node(xp.asarray(k0), pb.op.tensors[node], pb.up[node], kids)
        ref = p_mat.conj().T @ (pb.h @ y)
        assert rel(np.asarray(to_numpy(got)).ravel(), ref) < 1e-11, f"node {node}"


# ---------------------------------------------------------------- rectangular environments


def _mixed_down_envs(tree, op, bra: TTN, ket_tensors, nodes):
    """Library down environments between ``bra`` and ``ket`` for ``nodes`` (post-order)."""
    envs = {}
    for node in nodes:
        b, k = bra.tensors[node], ket_tensors[node]
        if tree.is_leaf(node):
            envs[node] = leaf_environment(b, op.tensors[node], k)
        else:
            kids = [envs[c] for c in tree.children[node]]
            envs[node] = node_environment(b, op.tensors[node], kids, k)
    return envs


def test_rectangular_root_problem_two_bases(xp):
    """Root problem between two different orthonormal networks with different ranks."""
    pb = Problem(xp, "mixed5")
    tree = pb.tree
    z = random_ttn(
        tree, {0: 1, 1: 3, 2: 2, 3: 2, 4: 2, 5: 2, 6: 3, 7: 2}, rng=99, dtype=xp.complex128, xp=xp
    )
    envs = _mixed_down_envs(tree, pb.op, pb.y, z.tensors, tree.postorder)
    # <Y|H|Z> from the root's mixed down environment
    yv = dense_ref(tree, pb.ynp).ravel()
    zd = dense_ref(tree, np_tensors(z)).ravel()
    ref_val = np.vdot(yv, pb.h @ zd)
    got_val = np.asarray(to_numpy(envs[tree.root]))[0, 0, 0]
    assert abs(got_val - ref_val) <= 1e-11 * abs(ref_val)
    # the restricted root operator maps Z's root space to Y's
    shape_y, shape_z = pb.ynp[tree.root].shape, tuple(z.tensors[tree.root].shape)
    assert shape_y != shape_z
    _, _, ref = pb.restricted(tree.root, shape_y, ket=np_tensors(z), ket_shape=shape_z)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape_z) + 1j * rng.standard_normal(shape_z)
    kids = [envs[c] for c in tree.children[tree.root]]
    up = root_up_environment(pb.op, pb.y.tensors[0])
    got = np.asarray(to_numpy(apply_node(xp.asarray(x), pb.op.tensors[tree.root], up, kids)))
    assert got.shape == shape_y
    assert rel(got.ravel(), ref @ x.ravel()) < 1e-11


def test_rectangular_inner_node_new_subtrees(xp):
    """Inner node 7 = (1, 6): shared complement (from Y), children's subtrees from Z."""
    pb = Problem(xp, "mixed5")
    tree = pb.tree
    node = 7
    below = [1, 3, 4, 6]  # nodes strictly below node 7
    z = random_ttn(
        tree, {0: 2, 1: 3, 2: 2, 3: 2, 4: 1, 5: 3, 6: 1, 7: 3}, rng=98, dtype=xp.complex128, xp=xp
    )
    ket = list(pb.y.tensors)
    for b in below:
        ket[b] = z.tensors[b]
    envs = _mixed_down_envs(tree, pb.op, pb.y, ket, (3, 4, 6, 1))
    kids = [envs[c] for c in tree.children[node]]
    assert tuple(kids[0].shape)[1:] == (2, 3) and tuple(kids[1].shape)[1:] == (2, 1)
    shape_y = pb.local_shape(node)  # (3, 2, 2)
    shape_k = (shape_y[0], 3, 1)
    ket_np = list(pb.ynp)
    for b in below:
        ket_np[b] = np.asarray(to_numpy(z.tensors[b]))
    _, _, ref = pb.restricted(node, shape_y, ket=ket_np, ket_shape=shape_k)
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape_k) + 1j * rng.standard_normal(shape_k)
    got = np.asarray(to_numpy(apply_node(xp.asarray(x), pb.op.tensors[node], pb.up[node], kids)))
    assert got.shape == shape_y
    assert rel(got.ravel(), ref @ x.ravel()) < 1e-11


def test_rectangular_up_environment_of_a_leaf(xp):
    """Leaf 1 (parent 7): its sibling subtree (3, 4) differs between bra and ket."""
    pb = Problem(xp, "mixed5")
    tree = pb.tree
    leaf, parent, pos = 1, 7, 1
    z = random_ttn(tree, pb.y.ranks(), rng=97, dtype=xp.complex128, xp=xp)
    ket = list(pb.y.tensors)
    for b in (3, 4, 6):
        ket[b] = z.tensors[b]
    envs = _mixed_down_envs(tree, pb.op, pb.y, ket, (3, 4, 6))
    siblings = [None, envs[6]]  # the entry at pos - 1 is ignored
    up = up_environment(pb.q[parent, pos], pb.op.tensors[parent], pb.up[parent], siblings, pos)
    ket_np = list(pb.ynp)
    for b in (3, 4, 6):
        ket_np[b] = np.asarray(to_numpy(z.tensors[b]))
    shape = pb.local_shape(leaf)
    _, _, ref = pb.restricted(leaf, shape, ket=ket_np)
    # bra and ket bases of the complement differ: the square reference would not match
    _, _, square = pb.restricted(leaf, shape)
    assert rel(ref, square) > 1e-3
    rng = np.random.default_rng(6)
    k = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
    got = np.asarray(to_numpy(apply_leaf(xp.asarray(k), pb.op.tensors[leaf], up)))
    assert rel(got.ravel(), ref @ k.ravel()) < 1e-11
