"""apply_operator, adjoint, compose, gram_operator against dense matrices; basis enrichment."""

from __future__ import annotations

import numpy as np
import pytest

from solvers.bug.enrichment import enrich_bases
from tensorsim._array_api import to_numpy
from tensorsim.ttn import Tree, random_ttn, validate
from tensorsim.ttn.apply import adjoint, apply_operator, compose, gram_operator
from tensorsim.ttn.operator import SumOfProducts, to_ttno

TREES = {
    "binary4": Tree.balanced_binary(4, dims=(2, 3, 2, 2)),
    "caterpillar5": Tree.caterpillar(5, dims=2),
    "star3": Tree.star(3, dims=(3, 2, 4)),
    "mixed5": Tree.from_nested(((2, 0), (1, (3, 4))), dims=(2, 3, 2, 3, 2)),
}


def random_operator(rng, dims, n_terms: int = 4) -> SumOfProducts:
    """A random non-Hermitian sum of products of one- and two-site complex factors."""
    terms = []
    for _ in range(n_terms):
        sites = rng.choice(len(dims), size=int(rng.integers(1, 3)), replace=False)
        factors = {
            int(s): rng.standard_normal((dims[s], dims[s]))
            + 1j * rng.standard_normal((dims[s], dims[s]))
            for s in sites
        }
        terms.append((complex(rng.standard_normal(), rng.standard_normal()), factors))
    return SumOfProducts(terms, dims)


def dense(y) -> np.ndarray:
    return np.asarray(to_numpy(y.to_dense())).reshape(-1)


@pytest.mark.parametrize("name", sorted(TREES))
def test_apply_operator_is_the_matrix_vector_product(xp, rng, name):
    tree = TREES[name]
    op = random_operator(rng, tree.dims)
    y = random_ttn(tree, 3, rng=rng, dtype=xp.complex128, xp=xp)
    z = apply_operator(to_ttno(op, tree, xp=xp, check_hermitian=False), y)
    ranks = {e: y.ranks()[e] * to_ttno(op, tree).bond_dims[e] for e in tree.edges}
    assert z.ranks() == ranks
    expected = op.to_sparse().toarray() @ dense(y)
    np.testing.assert_allclose(dense(z), expected, rtol=1e-12, atol=1e-12 * abs(expected).max())


@pytest.mark.parametrize("name", sorted(TREES))
def test_adjoint_compose_and_gram(rng, name):
    tree = TREES[name]
    a, b = random_operator(rng, tree.dims), random_operator(rng, tree.dims)
    ta, tb = (to_ttno(o, tree, check_hermitian=False) for o in (a, b))
    da, db = a.to_sparse().toarray(), b.to_sparse().toarray()
    np.testing.assert_allclose(adjoint(ta).to_dense(), da.conj().T, atol=1e-12 * abs(da).max())
    product = compose(ta, tb)
    scale = abs(da @ db).max()
    np.testing.assert_allclose(product.to_dense(), da @ db, atol=1e-11 * scale)
    assert not product.hermitian
    gram = gram_operator(ta)
    assert gram.hermitian
    np.testing.assert_allclose(gram.to_dense(), da.conj().T @ da, atol=1e-11 * scale)


def test_compose_refuses_other_trees(rng):
    t1, t2 = Tree.balanced_binary(4, 2), Tree.caterpillar(4, 2)
    op = random_operator(rng, t1.dims)
    with pytest.raises(ValueError, match="b: expected an operator on the same tree"):
        compose(to_ttno(op, t1, check_hermitian=False), to_ttno(op, t2, check_hermitian=False))
    with pytest.raises(TypeError, match="state: expected a TTN"):
        apply_operator(to_ttno(op, t1, check_hermitian=False), np.zeros(3))


@pytest.mark.parametrize("name", sorted(TREES))
def test_enrichment_keeps_the_state_and_adds_the_directions_of_h_y(xp, rng, name):
    """Y0 is the same vector, old bases come first bit for bit, and with room for every
    direction the enriched bases hold H Y0 (its projection on them is all of it)."""
    tree = TREES[name]
    op = to_ttno(random_operator(rng, tree.dims), tree, xp=xp, check_hermitian=False)
    y = random_ttn(tree, 2, rng=rng, dtype=xp.complex128, xp=xp)
    y = type(y)(tree, (*y.tensors[:-1], y.tensors[-1] / y.norm()))
    out = enrich_bases(y, op, 64)
    validate(out, orthonormal=True, atol=1e-12)
    np.testing.assert_allclose(dense(out), dense(y), atol=1e-13)
    for node in tree.edges:
        old, new = to_numpy(y.tensors[node]), to_numpy(out.tensors[node])
        if tree.is_leaf(node):
            assert np.array_equal(new[:, : old.shape[1]], old)
        else:
            top = new[: old.shape[0]]  # the old directions, padded in the children's modes
            assert np.array_equal(top[tuple(slice(0, s) for s in old.shape)], old)
            assert np.linalg.norm(top) == pytest.approx(np.linalg.norm(old), rel=1e-14)
    # every edge basis of the result spans H Y0's subtree space: projecting H Y0 on the
    # Galerkin space of the enriched bases loses nothing
    hy = dense(apply_operator(op, y))
    basis = _galerkin_basis(out)
    np.testing.assert_allclose(basis @ (basis.conj().T @ hy), hy, atol=1e-10 * abs(hy).max())
    # a cap limits the growth
    capped = enrich_bases(y, op, 1, max_rank=3)
    assert all(capped.ranks()[e] <= max(3, y.ranks()[e]) for e in tree.edges)
    assert enrich_bases(y, op, 0) is y


def _galerkin_basis(y) -> np.ndarray:
    """Columns: the dense vectors of the networks with y's bases and a unit root entry."""
    root = y.tree.root
    shape = tuple(y.tensors[root].shape)
    columns = []
    for index in np.ndindex(*shape):
        unit = np.zeros(shape, dtype=complex)
        unit[index] = 1.0
        tensors = [np.asarray(to_numpy(t)) for t in y.tensors]
        tensors[root] = unit
        columns.append(dense(type(y)(y.tree, tuple(tensors))))
    return np.stack(columns, axis=1)
