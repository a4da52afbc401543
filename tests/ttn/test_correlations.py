"""Two-point correlations, Schmidt values and entanglement entropies against the dense vector."""

from __future__ import annotations

import math

import numpy as np
import pytest

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian
from tensorsim.ttn import (
    TTN,
    Tree,
    energy_variance,
    fidelity,
    product_state,
    random_ttn,
    scale,
)
from tensorsim.ttn.correlations import correlation_matrix
from tensorsim.ttn.entanglement import entanglement_entropies, schmidt_values
from tensorsim.ttn.operator import to_ttno

TREES = {
    "binary8": Tree.balanced_binary(8),
    "caterpillar7": Tree.caterpillar(7),
    "three children": Tree.from_nested(((2, 0), (1, (3, 4), 6), 5)),
}
X = np.array([[0.0, 1.0], [1.0, 0.0]])
Z = np.diag([1.0, -1.0])


def _state(tree, rng):
    """A random complex TTN, not normalized, not orthonormal (scaled after the build)."""
    return scale(random_ttn(tree, 3, rng=rng, dtype=np.complex128), 0.7 - 0.2j)


def _dense_correlations(v: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = v.ndim
    out = np.empty((n, n), dtype=complex)
    for i in range(n):
        for j in range(n):
            w = np.moveaxis(np.tensordot(b, v, axes=(1, j)), 0, j)
            w = np.moveaxis(np.tensordot(a, w, axes=(1, i)), 0, i)
            out[i, j] = np.vdot(v, w)
    return out / np.vdot(v, v)


@pytest.mark.parametrize("name", TREES)
def test_correlation_matrix_equals_the_dense_one(rng, name):
    y = _state(TREES[name], rng)
    v = np.asarray(y.to_dense())
    zz = correlation_matrix(y, Z)
    np.testing.assert_allclose(zz, _dense_correlations(v, Z, Z).real, atol=1e-12)
    assert zz.dtype == np.float64
    # two operators that do not commute: the diagonal is <(XZ)_i>, complex
    xz = correlation_matrix(y, X, Z, hermitian=False)
    np.testing.assert_allclose(xz, _dense_correlations(v, X, Z), atol=1e-12)
    assert not np.allclose(np.diag(xz).imag, 0.0)


@pytest.mark.parametrize("name", TREES)
def test_schmidt_values_and_entropies_equal_the_dense_cuts(rng, name):
    tree = TREES[name]
    y = _state(tree, rng)
    v = np.asarray(y.to_dense())
    v = v / np.linalg.norm(v)
    values = schmidt_values(y)
    entropies = entanglement_entropies(y)
    bits = entanglement_entropies(y, base=2)
    assert set(values) == set(entropies) == set(tree.edges)
    for edge in tree.edges:
        below = list(tree.sites_below[edge])
        rest = [k for k in range(tree.n_sites) if k not in below]
        m = np.transpose(v, below + rest).reshape(2 ** len(below), -1)
        exact = np.linalg.svd(m, compute_uv=False)
        got = np.asarray(values[edge])
        assert np.all(exact[got.size :] < 1e-10)  # the edge rank holds the Schmidt rank
        # from the Gram eigenvalues: the squares are exact to round-off (the values to
        # sqrt(eps) where they vanish, an edge rank above the Schmidt rank)
        k = min(got.size, exact.size)
        np.testing.assert_allclose(got[:k] ** 2, exact[:k] ** 2, atol=1e-14)
        assert np.all(got[k:] ** 2 < 1e-14)
        p = exact**2
        p = p[p > 1e-300]
        assert entropies[edge] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-10)
        assert bits[edge] == pytest.approx(entropies[edge] / math.log(2), abs=1e-12)


def test_product_and_bell_pair_entropies():
    tree = Tree.balanced_binary(2)
    up = product_state(tree, [np.array([1.0, 0.0])] * 2, rank=2)  # zero-padded rank 2
    assert all(abs(s) < 1e-14 for s in entanglement_entropies(up).values())
    bell = np.array([[1.0, 0.0], [0.0, 1.0]]) / math.sqrt(2)
    state = TTN(tree, (np.eye(2), np.eye(2), bell[None, :, :]))
    assert entanglement_entropies(state)[0] == pytest.approx(math.log(2), abs=1e-14)
    np.testing.assert_allclose(correlation_matrix(state, Z), np.ones((2, 2)), atol=1e-14)
    np.testing.assert_allclose(correlation_matrix(state, X), np.ones((2, 2)), atol=1e-14)


def test_refusals(rng):
    y = _state(TREES["binary8"], rng)
    with pytest.raises(ValueError, match=r"a: expected a one-site operator of shape \(n, n\)"):
        correlation_matrix(y, np.eye(3))
    with pytest.raises(ValueError, match="b: expected a one-site operator"):
        correlation_matrix(y, Z, np.ones(2))
    with pytest.raises(TypeError, match="state: expected a TTN"):
        correlation_matrix(np.ones(4), Z)
    with pytest.raises(ValueError, match="base: expected a positive number other than 1"):
        entanglement_entropies(y, base=1)
    with pytest.raises(ValueError, match="state: the zero vector"):
        schmidt_values(scale(y, 0.0))


def test_fidelity_and_energy_variance_against_dense(rng):
    params = SpinChainParams(model="xxz", sites=6, tree="balanced_binary", jz=0.5, hz=0.2)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    h = np.asarray(op.to_dense())
    a, b = _state(tree, rng), _state(tree, rng)
    va, vb = (np.asarray(y.to_dense()).reshape(-1) for y in (a, b))
    exact = abs(np.vdot(va, vb)) ** 2 / (np.vdot(va, va).real * np.vdot(vb, vb).real)
    assert fidelity(a, b) == pytest.approx(exact, rel=1e-12)
    assert fidelity(a, scale(a, 2.0 - 1.0j)) == pytest.approx(1.0, abs=1e-14)
    hv = h @ va
    mean = np.vdot(va, hv) / np.vdot(va, va)
    variance = (np.vdot(hv, hv) / np.vdot(va, va) - abs(mean) ** 2).real
    assert energy_variance(a, op) == pytest.approx(variance, rel=1e-10)
    # all spins up: alone in its magnetization sector, an eigenstate of the XXZ chain
    up = product_state(tree, [np.array([1.0, 0.0])] * 6, rank=2)
    assert energy_variance(up, op) < 1e-12
    with pytest.raises(ValueError, match="b: expected a TTN on the same tree"):
        fidelity(a, _state(Tree.caterpillar(6), rng))
    with pytest.raises(ValueError, match="a: the zero state"):
        fidelity(scale(a, 0.0), b)
    with pytest.raises(TypeError, match="hamiltonian: expected a TTNO"):
        energy_variance(a, h)
