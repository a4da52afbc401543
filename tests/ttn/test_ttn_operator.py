"""Sums of products and their TTNO form against dense Kronecker references built here."""

import functools

import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.ttn import Tree
from tensorsim.ttn.operator import SumOfProducts, to_ttno

X = np.array([[0.0, 1.0], [1.0, 0.0]])
N_OCC = np.diag([1.0, 0.0])


def dense_kron(terms, dims) -> np.ndarray:
    """``sum_k c_k kron_s (M_{k,s} or I)`` with site 0 the most significant factor."""
    size = int(np.prod(dims))
    out = np.zeros((size, size), dtype=complex)
    for coef, factors in terms:
        mats = [np.asarray(factors.get(s, np.eye(n))) for s, n in enumerate(dims)]
        out += coef * functools.reduce(np.kron, mats)
    return out


def random_terms(rng, dims, n_terms, *, complex_coef, complex_mats):
    d = len(dims)
    terms = [((1.5 - 0.5j) if complex_coef else 1.5, {})]  # identity term
    for _ in range(n_terms):
        k = int(rng.integers(1, min(3, d) + 1))
        sites = sorted(rng.choice(d, size=k, replace=False).tolist())
        factors = {}
        for s in sites:
            m = rng.standard_normal((dims[s], dims[s]))
            if complex_mats:
                m = m + 1j * rng.standard_normal((dims[s], dims[s]))
            factors[int(s)] = m
        c = rng.standard_normal()
        if complex_coef:
            c = c + 1j * rng.standard_normal()
        terms.append((c, factors))
    return terms


def trees_for(dims):
    d = len(dims)
    trees = [Tree.balanced_binary(d, dims), Tree.caterpillar(d, dims), Tree.star(d, dims)]
    mixed = {2: (1, 0), 3: ((2, 0), 1), 4: ((2, 0), (3, 1))}[d]
    trees.append(Tree.from_nested(mixed, dims))
    return trees


CASES = [
    ((2, 3), False, False),
    ((3, 2), True, False),
    ((2, 3, 2), False, True),
    ((3, 3, 2), True, True),
    ((2, 2, 3, 2), False, False),
    ((2, 3, 2, 3), True, True),
    ((3, 2, 2, 2), False, True),
    ((2, 2, 2, 2), True, False),
]


@pytest.mark.parametrize(("seed", "case"), list(enumerate(CASES)))
def test_ttno_and_sparse_match_dense_kron(seed, case):
    dims, complex_coef, complex_mats = case
    rng = np.random.default_rng(100 + seed)
    terms = random_terms(rng, dims, 6, complex_coef=complex_coef, complex_mats=complex_mats)
    op = SumOfProducts(terms, dims)
    ref = dense_kron(terms, dims)
    assert op.is_complex == (complex_coef or complex_mats)
    sparse = op.to_sparse().toarray()
    assert sparse.dtype == (np.complex128 if op.is_complex else np.float64)
    scale_ = np.abs(ref).max()
    np.testing.assert_allclose(sparse, ref, atol=1e-13 * scale_)
    for tree in trees_for(dims):
        w = to_ttno(op, tree)
        dense = np.asarray(to_numpy(w.to_dense()))
        assert dense.shape == ref.shape
        np.testing.assert_allclose(dense, ref, atol=1e-11 * scale_)
        assert w.hermitian is False  # random terms are not Hermitian
        # layout: (chi, n, n) per leaf, (chi_parent, chi_children...) per inner node
        for node in range(tree.n_nodes):
            t = w.tensors[node]
            if node < tree.n_sites:
                assert tuple(t.shape[1:]) == (dims[node], dims[node])
            else:
                chis = tuple(w.tensors[c].shape[0] for c in tree.children[node])
                top = 1 if node == tree.root else w.bond_dims[node]
                assert tuple(t.shape) == (top, *chis)


@pytest.mark.parametrize("batch", [1, 3, 100])
def test_ttno_batch_size_does_not_change_the_operator(rng, batch):
    dims = (2, 3, 2, 2)
    terms = random_terms(rng, dims, 10, complex_coef=True, complex_mats=False)
    op = SumOfProducts(terms, dims)
    w = to_ttno(op, Tree.from_nested(((2, 0), (3, 1)), dims), batch=batch)
    np.testing.assert_allclose(w.to_dense(), dense_kron(terms, dims), atol=1e-11)


def test_ttno_on_other_backends(xp, rng):
    dims = (2, 3, 2)
    terms = random_terms(rng, dims, 5, complex_coef=True, complex_mats=True)
    w = to_ttno(SumOfProducts(terms, dims), Tree.balanced_binary(3, dims), xp=xp)
    assert all(type(t) is type(xp.asarray([1.0])) for t in w.tensors)
    np.testing.assert_allclose(to_numpy(w.to_dense()), dense_kron(terms, dims), atol=1e-11)


def test_hermitian_flag(rng):
    dims = (2, 3, 2)
    terms = random_terms(rng, dims, 5, complex_coef=True, complex_mats=True)
    op = SumOfProducts(terms, dims)
    herm = op + op.adjoint()
    ref = dense_kron(terms, dims)
    np.testing.assert_allclose(op.adjoint().to_sparse().toarray(), ref.conj().T, atol=1e-12)
    np.testing.assert_allclose(herm.to_sparse().toarray(), ref + ref.conj().T, atol=1e-12)
    tree = Tree.from_nested(((2, 0), 1), dims)
    assert to_ttno(herm, tree).hermitian is True
    assert to_ttno(op, tree).hermitian is False
    # anti-Hermitian and complex-symmetric (not Hermitian) cases
    anti = op + SumOfProducts([(-c, f) for c, f in op.adjoint().terms], dims)
    assert to_ttno(anti, tree).hermitian is False
    sym = SumOfProducts([(1j, {0: X, 1: np.eye(3)})], dims)  # i X is symmetric, not Hermitian
    assert to_ttno(sym, tree).hermitian is False
    real_sym = SumOfProducts([(0.5, {0: X}), (2.0, {0: N_OCC, 2: N_OCC})], dims)
    assert to_ttno(real_sym, tree).hermitian is True
    # Hermitian through a complex coefficient: i * [[0, -1], [1, 0]] = Pauli Y
    asym = np.array([[0.0, -1.0], [1.0, 0.0]])
    pauli_y = SumOfProducts([(1j, {0: asym, 2: X}), (0.3, {1: np.diag([1.0, 2.0, 3.0])})], dims)
    assert to_ttno(pauli_y, tree).hermitian is True
    # a tiny anti-Hermitian part is detected
    tiny = herm + SumOfProducts([(1e-5j, {1: np.eye(3)})], dims)
    assert to_ttno(tiny, tree).hermitian is False
    assert to_ttno(herm, tree, check_hermitian=False).hermitian is False


def long_range_ising(d):
    terms = [(1.0, {k: X}) for k in range(d)] + [(1.0, {k: N_OCC}) for k in range(d)]
    terms += [(2.0 / (j - i), {i: N_OCC, j: N_OCC}) for i in range(d) for j in range(i + 1, d)]
    return terms


def test_long_range_ising_ttno_bond_dims_16_sites():
    d = 16
    tree = Tree.balanced_binary(d)
    w = to_ttno(SumOfProducts(long_range_ising(d), (2,) * d), tree)
    assert max(w.bond_dims.values()) <= 12
    assert w.hermitian is True
    # a leaf needs only {I, n, X + n}-like channels
    assert all(w.bond_dims[s] <= 3 for s in range(d))


def test_long_range_ising_ttno_exact_8_sites():
    d = 8
    terms = long_range_ising(d)
    ref = dense_kron(terms, (2,) * d).real
    # an independent check of the reference itself on a few entries: diagonal = energies
    bits = np.array([[(i >> (d - 1 - k)) & 1 for k in range(d)] for i in range(2**d)])
    occ = 1 - bits  # n = diag(1, 0): occupied for bit 0
    energy = occ.sum(1) + sum(
        2.0 / (j - i) * occ[:, i] * occ[:, j] for i in range(d) for j in range(i + 1, d)
    )
    np.testing.assert_allclose(np.diag(ref), energy, atol=1e-12)
    op = SumOfProducts(terms, (2,) * d)
    for tree in (Tree.balanced_binary(d), Tree.caterpillar(d)):
        w = to_ttno(op, tree)
        assert max(w.bond_dims.values()) <= 12
        dense = np.asarray(w.to_dense())
        assert np.linalg.norm(dense - ref) <= 1e-10 * np.linalg.norm(ref)


def test_sum_of_products_bad_input():
    with pytest.raises(ValueError, match=r"terms\[0\]: matrix on site 1 has shape"):
        SumOfProducts([(1.0, {1: np.eye(2)})], dims=(2, 3))
    with pytest.raises(ValueError, match=r"terms\[1\]: matrix on site 0 has shape"):
        SumOfProducts([(1.0, {}), (1.0, {0: np.ones((2, 3))})], dims=(2, 3))
    with pytest.raises(ValueError, match=r"terms\[0\]: site 2 is not in 0..1"):
        SumOfProducts([(1.0, {2: np.eye(2)})], dims=(2, 2))
    with pytest.raises(ValueError, match=r"terms\[0\]: site -1"):
        SumOfProducts([(1.0, {-1: np.eye(2)})], dims=(2, 2))
    with pytest.raises(ValueError, match="not finite"):
        SumOfProducts([(1.0, {0: np.array([[np.nan, 0], [0, 1]])})], dims=(2, 2))
    with pytest.raises(ValueError, match="not finite"):
        SumOfProducts([(np.inf, {0: X})], dims=(2, 2))
    with pytest.raises(TypeError, match="mapping"):
        SumOfProducts([(1.0, [X])], dims=(2, 2))
    with pytest.raises(TypeError, match=r"terms\[0\]"):
        SumOfProducts([1.0], dims=(2, 2))
    with pytest.raises(ValueError, match="dims"):
        SumOfProducts([(1.0, {})], dims=(2, 0))
    with pytest.raises(ValueError, match="dims"):
        SumOfProducts([(1.0, {})], dims=())


def test_to_ttno_bad_input():
    op = SumOfProducts([(1.0, {0: X}), (1.0, {1: np.eye(3)})], dims=(2, 3))
    with pytest.raises(ValueError, match="tree.dims"):
        to_ttno(op, Tree.balanced_binary(2, dims=(3, 2)))
    with pytest.raises(ValueError, match="tree.dims"):
        to_ttno(op, Tree.balanced_binary(3, dims=(2, 3, 2)))
    with pytest.raises(ValueError, match="no terms"):
        to_ttno(SumOfProducts([], dims=(2, 3)), Tree.balanced_binary(2, dims=(2, 3)))
    with pytest.raises(ValueError, match="batch"):
        to_ttno(op, Tree.balanced_binary(2, dims=(2, 3)), batch=0)


def test_numpy_integer_sites_are_accepted():
    op = SumOfProducts([(1.0, {np.int64(1): X})], dims=(2, 2))
    tree = Tree.from_nested((np.int64(0), 1), dims=2)
    np.testing.assert_allclose(
        np.asarray(to_ttno(op, tree).to_dense()), np.kron(np.eye(2), X), atol=1e-12
    )
