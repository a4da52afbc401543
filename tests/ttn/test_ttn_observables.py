"""expectation(state, operator) against the dense state vector and the dense operator."""

from __future__ import annotations

import numpy as np
import pytest

from tensorsim._array_api import to_numpy
from tensorsim.ttn import TTN, Tree, expectation, product_state, random_ttn, scale
from tensorsim.ttn.environment import down_environments
from tensorsim.ttn.operator import TTNO, SumOfProducts, to_ttno

TREES = {
    "binary4": Tree.balanced_binary(4, dims=(2, 3, 2, 2)),
    "caterpillar5": Tree.caterpillar(5, dims=2),
    "star3": Tree.star(3, dims=(3, 2, 4)),
    "mixed5": Tree.from_nested(((2, 0), (1, (3, 4))), dims=(2, 3, 2, 3, 2)),
    "matrix": Tree.from_nested((0, 1), dims=(5, 4)),
}


def random_operator(rng, dims, *, hermitian: bool, n_terms: int = 5) -> SumOfProducts:
    """A random sum of products; Hermitian by adding its adjoint."""
    terms = []
    for _ in range(n_terms):
        k = int(rng.integers(1, len(dims) + 1))
        sites = rng.choice(len(dims), size=k, replace=False)
        factors = {
            int(s): rng.standard_normal((dims[s], dims[s]))
            + 1j * rng.standard_normal((dims[s], dims[s]))
            for s in sites
        }
        terms.append((complex(rng.standard_normal(), rng.standard_normal()), factors))
    op = SumOfProducts(terms, dims)
    return op + op.adjoint() if hermitian else op


def dense_expectation(y: TTN, op: SumOfProducts) -> complex:
    psi = np.asarray(to_numpy(y.to_dense())).reshape(-1)
    h = op.to_sparse().toarray()
    return complex(psi.conj() @ (h @ psi) / (psi.conj() @ psi))


@pytest.mark.parametrize("name", sorted(TREES))
@pytest.mark.parametrize("hermitian", [True, False], ids=["hermitian", "general"])
def test_matches_the_dense_reference(rng, name, hermitian):
    tree = TREES[name]
    op = random_operator(rng, tree.dims, hermitian=hermitian)
    # not normalized, not orthonormal beyond the root: <Y|Y> = |2.5 - 1j|^2
    y = scale(random_ttn(tree, 3, rng=rng, dtype=np.complex128), 2.5 - 1j)
    ref = dense_expectation(y, op)
    ttno = to_ttno(op, tree)
    assert ttno.hermitian is hermitian
    for operator in (op, ttno):
        value = expectation(y, operator)
        assert type(value) is complex
        assert value == pytest.approx(ref, rel=1e-11, abs=1e-12)
    if hermitian:
        assert abs(expectation(y, op).imag) < 1e-12 * abs(ref)
    else:
        assert abs(ref.imag) > 1e-2 * abs(ref)  # the check above is a real test of it


def test_real_state_and_real_operator():
    tree = TREES["binary4"]
    z = np.diag([1.0, -1.0])
    x3 = np.diag([1.0, 0.0, -2.0])
    op = SumOfProducts([(0.5, {0: z}), (1.0, {1: x3, 3: z}), (-0.25, {})], tree.dims)
    vectors = [np.array([1.0, 0.0]), np.array([0.0, 0.0, 1.0]), np.array([1.0, 1.0]), [0.0, 1.0]]
    y = product_state(tree, vectors, rank=2)
    value = expectation(y, op)
    # <Z_0> = 1, <X3_1> = -2, <Z_3> = -1, <Z_2> does not enter
    assert value.imag == 0.0
    assert value.real == pytest.approx(0.5 * 1 + 1.0 * (-2) * (-1) - 0.25, abs=1e-14)


def test_real_part_is_bitwise_the_spin_chain_energy(rng):
    """``.real`` reproduces the former driver's ``Re <Y|H|Y>[root] / norm(Y)**2`` exactly."""
    tree = Tree.balanced_binary(6, dims=2)
    op = random_operator(rng, tree.dims, hermitian=True, n_terms=8)
    ttno = to_ttno(op, tree)
    for seed in range(5):
        y = scale(random_ttn(tree, 4, rng=seed, dtype=np.complex128), 1.0 + 1e-3 * seed)
        env = down_environments(y, ttno)[tree.root]
        energy = float(np.real(to_numpy(env)[0, 0, 0])) / (y.norm() ** 2)
        assert expectation(y, ttno).real == energy


def test_other_backends(xp, rng):
    tree = TREES["mixed5"]
    op = random_operator(rng, tree.dims, hermitian=False)
    y_np = random_ttn(tree, 2, rng=7, dtype=np.complex128)
    y = random_ttn(tree, 2, rng=7, dtype=xp.complex128, xp=xp)
    ref = expectation(y_np, op)
    assert expectation(y, op) == pytest.approx(ref, rel=1e-12)
    assert expectation(y, to_ttno(op, tree, xp=xp)) == pytest.approx(ref, rel=1e-12)


def test_bad_input(rng):
    tree = TREES["binary4"]
    op = random_operator(rng, tree.dims, hermitian=True)
    y = random_ttn(tree, 2, rng=rng)
    with pytest.raises(TypeError, match="state: expected a TTN, got ndarray"):
        expectation(to_numpy(y.to_dense()), op)
    with pytest.raises(TypeError, match="operator: expected a TTNO or a SumOfProducts, got"):
        expectation(y, op.to_sparse())
    other = Tree.caterpillar(4, dims=(2, 3, 2, 2))
    with pytest.raises(ValueError, match="operator: expected a TTNO on the state's tree"):
        expectation(y, to_ttno(op, other))
    with pytest.raises(ValueError, match=r"operator: site dimensions \(2, 2\) differ"):
        expectation(y, SumOfProducts([(1.0, {0: np.eye(2)})], (2, 2)))
    zero = TTN(tree, tuple(t * 0 for t in y.tensors))
    with pytest.raises(ValueError, match="state: the zero state"):
        expectation(zero, op)
    assert isinstance(to_ttno(op, tree), TTNO)
