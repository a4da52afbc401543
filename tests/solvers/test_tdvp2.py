"""The two-site TDVP integrator on trees: exactness, rank growth, invariants, order, options.

Per-site accuracy on the XXZ Néel quench (and the 12-site acceptance set) is checked with
the other rank-adaptive integrators in ``test_bug_quench.py``; agreement with TeNPy's
two-site TDVP is in ``benchmarks/spin_chain.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, initial_vectors
from solvers.bug import INTEGRATORS, BUGParams, LinearTreeRHS, make_stepper
from tensorsim.config import ConfigError
from tensorsim.linalg import Truncation
from tensorsim.ttn import local_expectations, product_state, validate
from tensorsim.ttn.operator import to_ttno

XXZ = {"model": "xxz", "j": 1.0, "jz": 0.5, "hz": 0.2}
Z = np.diag([1.0, -1.0])


def _chain(sites: int, tree: str, **model) -> tuple[SpinChainParams, LinearTreeRHS]:
    params = SpinChainParams(sites=sites, tree=tree, initial="neel", **(model or XXZ))
    return params, LinearTreeRHS(to_ttno(hamiltonian(params), build_tree(params)), factor=-1j)


@pytest.mark.parametrize("tree", ["balanced_binary", "caterpillar"])
def test_full_rank_sweep_is_exact(tree):
    """At full rank every pair flow is the exact flow in other coordinates: no splitting
    error for any h. Checks the joins, splits and environments against the full vector."""
    params, rhs = _chain(6, tree)
    y = product_state(build_tree(params), initial_vectors(params), rank=8, dtype=np.complex128)
    psi = y.to_dense().reshape(-1)
    hs = hamiltonian(params).to_sparse()
    h = 0.25
    for k in range(4):
        y, info = INTEGRATORS["tdvp2"](y, k * h, h, rhs=rhs, trunc=Truncation(), enrich=0)
        psi = sla.expm_multiply(-1j * h * hs, psi)
        assert np.linalg.norm(y.to_dense().reshape(-1) - psi) < 1e-10
    validate(y, orthonormal=True)
    assert info.trunc_error == 0.0 and np.isnan(info.normal)


def test_ranks_grow_from_a_rank_one_product_state():
    """The leaf bases are completed first (``complete_leaves``), so the pairs hold the
    spins and the splits grow the ranks from rank 1 even without enrichment. Without it
    the first steps miss what the rank-1 blocks cannot hold (the projection error of
    two-site TDVP from a product state: 1.3e-4 after T = 0.4); with the default
    enrichment every site follows the exact dynamics."""
    params, rhs = _chain(8, "caterpillar")
    tree = build_tree(params)
    y0 = product_state(tree, initial_vectors(params), rank=1, dtype=np.complex128)
    psi = sla.expm_multiply(-1j * 0.4 * hamiltonian(params).to_sparse(), y0.to_dense().ravel())
    exact = [float(np.real(np.vdot(psi, _site_z(8, k) * psi))) for k in range(8)]
    trunc = Truncation(atol=1e-10, max_rank=16)
    for enrich in (0, 8):
        y = y0
        for k in range(8):
            y, _ = INTEGRATORS["tdvp2"](y, k * 0.05, 0.05, rhs=rhs, trunc=trunc, enrich=enrich)
        assert max(y.ranks().values()) > 1
    np.testing.assert_allclose(local_expectations(y, Z), exact, atol=1e-7)


def _site_z(sites: int, k: int) -> np.ndarray:
    """The diagonal of ``Z_k`` on the full space (site 0 is the most significant bit)."""
    bits = (np.arange(2**sites) >> (sites - 1 - k)) & 1
    return 1.0 - 2.0 * bits


def test_enrichment_is_what_a_branched_tree_needs():
    """On the balanced binary tree the hopping between sites 1 and 2 (leaves under
    different parents) is out of every pair's reach from a product state; the enrichment
    from H Y0 before the step brings it in (measured after T = 0.4: error 1.0 -> 2e-5)."""
    params, rhs = _chain(8, "balanced_binary")
    tree = build_tree(params)
    y0 = product_state(tree, initial_vectors(params), rank=2, dtype=np.complex128)
    psi = sla.expm_multiply(-1j * 0.4 * hamiltonian(params).to_sparse(), y0.to_dense().ravel())
    trunc = Truncation(atol=1e-10, max_rank=64)
    errors = {}
    for enrich in (0, 8):
        y = y0
        for k in range(20):
            y, _ = INTEGRATORS["tdvp2"](y, k * 0.02, 0.02, rhs=rhs, trunc=trunc, enrich=enrich)
        errors[enrich] = np.linalg.norm(y.to_dense().ravel() - psi)
    assert errors[0] > 0.1 and errors[8] < 1e-4, errors


def test_norm_loss_is_the_discarded_weight():
    """Every flow is unitary and every split keeps the singular values it does not
    discard, so with a binding rank cap ``1 - ||Y||^2`` is exactly the sum of the squared
    discarded singular values (``info.trunc_error`` per step)."""
    params, rhs = _chain(10, "caterpillar", model="tfim")
    tree = build_tree(params)
    y = product_state(tree, initial_vectors(params), rank=1, dtype=np.complex128)
    lost = 0.0
    for k in range(10):
        y, info = INTEGRATORS["tdvp2"](
            y, k * 0.1, 0.1, rhs=rhs, trunc=Truncation(max_rank=3), enrich=0
        )
        lost += info.trunc_error**2
    assert max(info.ranks.values()) == 3 and lost > 1e-4
    assert abs((1.0 - y.norm() ** 2) - lost) < 1e-10, (1.0 - y.norm() ** 2, lost)


def test_refuses_a_source_and_options_it_does_not_take():
    params, rhs = _chain(4, "balanced_binary")
    y = product_state(build_tree(params), initial_vectors(params), rank=2, dtype=np.complex128)
    with pytest.raises(ValueError, match="rhs: the TDVP integrator takes dY/dt"):
        INTEGRATORS["tdvp2"](
            y, 0.0, 0.1, rhs=LinearTreeRHS(None, source=y), trunc=Truncation(atol=1e-8)
        )
    for option in ({"normal_rtol": 0.1}, {"rejection": "paper"}, {"conserve": True}):
        with pytest.raises(ConfigError, match="not to integrator 'tdvp2'"):
            BUGParams(integrator="tdvp2", **option)
    step = make_stepper(BUGParams(integrator="tdvp2", enrich=0), rhs)
    assert step.keywords["enrich"] == 0 and "normal_rtol" not in step.keywords
