"""Two-site and one-site DMRG on trees against exact diagonalization (sparse Lanczos of SciPy)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as spla

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, pauli_correlations
from solvers.bug import dmrg, imaginary_time
from tensorsim import Truncation
from tensorsim.linalg import lowest_eigenpair
from tensorsim.ttn import correlation_matrix, product_state, random_ttn
from tensorsim.ttn.operator import to_ttno

TRUNC = Truncation(atol=1e-10, max_rank=64)


def _exact_ground(params: SpinChainParams) -> tuple[float, np.ndarray]:
    values, vectors = spla.eigsh(hamiltonian(params).to_sparse().tocsr(), k=1, which="SA")
    return float(values[0]), vectors[:, 0]


@pytest.mark.parametrize(("tree", "enrich"), [("caterpillar", 0), ("balanced_binary", 4)])
def test_heisenberg_ground_state_against_exact_diagonalization(tree, enrich):
    """Open Heisenberg chain (XXZ, jz = 1, Pauli convention), 12 sites."""
    params = SpinChainParams(model="xxz", sites=12, tree=tree, j=1.0, jz=1.0, hz=0.0)
    op = to_ttno(hamiltonian(params), build_tree(params))
    start = random_ttn(build_tree(params), 4, rng=3)
    result = dmrg(op, start, TRUNC, enrich=enrich)
    energy, vector = _exact_ground(params)
    assert result.converged
    assert abs(result.energies[-1] - energy) <= 1e-10 * abs(energy)
    assert result.variances[-1] < 1e-8
    # the energy never rises by more than round-off from one sweep to the next
    assert np.all(np.diff(result.energies) < 1e-10)
    zz = correlation_matrix(result.state, np.diag([1.0, -1.0]))
    np.testing.assert_allclose(zz, pauli_correlations(vector, "z"), atol=1e-6)
    assert zz[0, 1] < -0.5  # antiferromagnetic: the check is not on a product state


@pytest.mark.parametrize("tree", ["caterpillar", "balanced_binary"])
def test_one_site_dmrg_with_bond_expansion(tree):
    """One-site DMRG, no enrichment: the bond expansion at every move of the centre alone
    reaches the exact ground state on both trees (12-site Heisenberg chain)."""
    params = SpinChainParams(model="xxz", sites=12, tree=tree, j=1.0, jz=1.0, hz=0.0)
    op = to_ttno(hamiltonian(params), build_tree(params))
    start = random_ttn(build_tree(params), 2, rng=3)
    result = dmrg(op, start, TRUNC, sites=1, expand=4)
    energy, vector = _exact_ground(params)
    assert result.converged
    assert abs(result.energies[-1] - energy) <= 1e-10 * abs(energy)
    assert np.all(np.diff(result.energies) < 1e-10)
    assert len(result.wall_times) == len(result.energies)
    zz = correlation_matrix(result.state, np.diag([1.0, -1.0]))
    np.testing.assert_allclose(zz, pauli_correlations(vector, "z"), atol=1e-6)
    # without expansion one-site DMRG keeps the start's ranks and stays above the ground state
    fixed = dmrg(op, start, TRUNC, sites=1, expand=0, sweeps=4)
    assert max(fixed.max_ranks) == 2 and fixed.energies[-1] - energy > 1e-2


def test_without_enrichment_the_binary_tree_stalls():
    """A pair update cannot couple leaves under different parents that the third edge's
    basis does not already link: enrichment from H Y is what reaches them."""
    params = SpinChainParams(model="xxz", sites=12, j=1.0, jz=1.0, hz=0.0)
    op = to_ttno(hamiltonian(params), build_tree(params))
    stalled = dmrg(op, random_ttn(build_tree(params), 4, rng=3), TRUNC, enrich=0)
    energy, _ = _exact_ground(params)
    assert stalled.energies[-1] - energy > 1e-5 and stalled.variances[-1] > 1e-4


@pytest.mark.parametrize("g", [1.0, 0.5])
def test_tfim_at_and_away_from_the_critical_field(g):
    params = SpinChainParams(model="tfim", sites=10, tree="caterpillar", j=1.0, g=g)
    op = to_ttno(hamiltonian(params), build_tree(params))
    result = dmrg(op, random_ttn(build_tree(params), 3, rng=5), TRUNC)
    energy, vector = _exact_ground(params)
    assert abs(result.energies[-1] - energy) <= 1e-10 * abs(energy)
    xx = correlation_matrix(result.state, np.array([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(xx, pauli_correlations(vector, "x"), atol=1e-6)


def test_two_sites_the_root_alone_and_the_history():
    params = SpinChainParams(model="xxz", sites=2, j=1.0, jz=1.0, hz=0.0)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    up = product_state(tree, [np.array([0.6, 0.8]), np.array([0.8, -0.6])])
    result = dmrg(op, up, TRUNC, sweeps=1)
    assert result.energies[-1] == pytest.approx(-3.0, abs=1e-12)  # the singlet
    assert len(result.energies) == 1 and not result.converged  # one sweep cannot tell
    assert len(result.variances) == len(result.discarded) == len(result.max_ranks) == 1
    assert dmrg(op, up, TRUNC).converged


def test_lowest_eigenpair_against_dense(rng):
    a = rng.standard_normal((60, 60)) + 1j * rng.standard_normal((60, 60))
    a = a + a.conj().T
    value, vector = lowest_eigenpair(lambda v: a @ v, rng.standard_normal(60) + 0j)
    assert value == pytest.approx(np.linalg.eigvalsh(a)[0], abs=1e-10)
    assert np.linalg.norm(a @ vector - value * vector) < 1e-7
    with pytest.raises(ValueError, match="v0: expected a nonzero finite start vector"):
        lowest_eigenpair(lambda v: a @ v, np.zeros(60))
    with pytest.raises(ValueError, match="krylov_dim: expected an integer >= 2"):
        lowest_eigenpair(lambda v: a @ v, np.ones(60), krylov_dim=1)


def test_refusals():
    params = SpinChainParams(model="xxz", sites=4, j=1.0, jz=1.0, hz=0.0)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    y = random_ttn(tree, 2, rng=1)
    with pytest.raises(TypeError, match="op: expected a TTNO"):
        dmrg(hamiltonian(params), y, TRUNC)
    with pytest.raises(ValueError, match="sweeps: expected an integer >= 1"):
        dmrg(op, y, TRUNC, sweeps=0)
    with pytest.raises(ValueError, match="enrich: expected an integer >= 0"):
        dmrg(op, y, TRUNC, enrich=-1)
    with pytest.raises(ValueError, match="sites: expected 1"):
        dmrg(op, y, TRUNC, sites=3)
    with pytest.raises(ValueError, match="expand: expected an integer >= 0"):
        dmrg(op, y, TRUNC, sites=1, expand=-2)
    other = random_ttn(build_tree(SpinChainParams(sites=4, tree="caterpillar")), 2, rng=1)
    with pytest.raises(ValueError, match="op: expected a TTNO on the state's tree"):
        dmrg(op, other, TRUNC)


@pytest.mark.parametrize(
    ("g", "tree"),
    [
        pytest.param(3.04, "balanced_binary", marks=pytest.mark.slow),
        pytest.param(1.5, "balanced_binary", marks=pytest.mark.slow),
        pytest.param(3.04, "caterpillar", marks=pytest.mark.slow),
    ],
)
def test_tfim_on_the_4x4_square_lattice(g, tree):
    """2-D TFIM, open 4 x 4 lattice, near the critical field (g_c ~ 3.04) and in the
    ordered phase, on the tree that bisects the lattice and on the snake."""
    params = SpinChainParams(
        model="tfim", lattice="square", lx=4, ly=4, sites=16, j=1.0, g=g, tree=tree
    )
    tree_ = build_tree(params)
    op = to_ttno(hamiltonian(params), tree_)
    enrich = 0 if tree == "caterpillar" else 4
    result = dmrg(
        op, random_ttn(tree_, 4, rng=2), Truncation(atol=1e-9, max_rank=128), enrich=enrich
    )
    energy, vector = _exact_ground(params)
    assert abs(result.energies[-1] - energy) <= 1e-8 * abs(energy)
    xx = correlation_matrix(result.state, np.array([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(xx[0], pauli_correlations(vector, "x")[0], atol=1e-6)
    assert xx[0, 15] > 1e-3  # corner to corner, far above the tolerance: not a trivial check


@pytest.mark.parametrize(
    ("integrator", "tree"),
    [
        ("tdvp2", "caterpillar"),
        pytest.param("augmented_bug", "balanced_binary", marks=pytest.mark.slow),
        pytest.param("tdvp", "balanced_binary", marks=pytest.mark.slow),
    ],
)
def test_imaginary_time_reaches_the_ground_state(integrator, tree):
    """The second route: exp(-tau H) by the time integrators, renormalized every step."""
    params = SpinChainParams(model="xxz", sites=8, tree=tree, j=1.0, jz=1.0, hz=0.0)
    op = to_ttno(hamiltonian(params), build_tree(params))
    start = random_ttn(build_tree(params), 3, rng=4)
    result = imaginary_time(op, start, TRUNC, integrator=integrator, tau=0.1)
    energy, vector = _exact_ground(params)
    assert result.converged
    assert abs(result.energies[-1] - energy) <= 1e-8 * abs(energy)
    assert result.energies[0] > result.energies[-1] + 0.1  # it did descend
    zz = correlation_matrix(result.state, np.diag([1.0, -1.0]))
    np.testing.assert_allclose(zz, pauli_correlations(vector, "z"), atol=1e-5)
    with pytest.raises(ValueError, match="integrator: expected one of"):
        imaginary_time(op, result.state, TRUNC, integrator="euler")
    with pytest.raises(ValueError, match="tau: expected a positive step"):
        imaginary_time(op, result.state, TRUNC, tau=-0.1)
    with pytest.raises(ValueError, match="max_steps: expected an integer >= 1"):
        imaginary_time(op, result.state, TRUNC, max_steps=0)


def test_tfim_on_a_3x3_square_lattice_by_the_bisection_tree():
    """The default-run version of the 4 x 4 check: 2-D TFIM, open 3 x 3, exact energy."""
    params = SpinChainParams(model="tfim", lattice="square", lx=3, ly=3, sites=9, g=3.04)
    tree = build_tree(params)
    op = to_ttno(hamiltonian(params), tree)
    result = dmrg(op, random_ttn(tree, 3, rng=2), TRUNC, enrich=4)
    energy, vector = _exact_ground(params)
    assert abs(result.energies[-1] - energy) <= 1e-10 * abs(energy)
    xx = correlation_matrix(result.state, np.array([[0.0, 1.0], [1.0, 0.0]]))
    np.testing.assert_allclose(xx, pauli_correlations(vector, "x"), atol=1e-6)
