"""The one-site TDVP integrator on trees: exactness, invariants, order, configuration.

Per-site accuracy on the XXZ Néel quench (and the 12-site acceptance set) is checked with
the other rank-adaptive integrators in ``test_bug_quench.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse.linalg as sla

from problems.spin_chain import SpinChainParams, build_tree, hamiltonian, initial_vectors
from solvers.bug import INTEGRATORS, BUGParams, LinearTreeRHS, make_stepper
from solvers.bug.tdvp import expanded_gauge
from tensorsim.config import ConfigError
from tensorsim.linalg import Truncation
from tensorsim.ttn import expectation, product_state, validate
from tensorsim.ttn.environment import edge_gauge
from tensorsim.ttn.operator import to_ttno
from tests.solvers.test_bug import _robustness, long_range_ising

XXZ = {"model": "xxz", "j": 1.0, "jz": 0.5, "hz": 0.2}


def _xxz(sites: int, tree: str) -> tuple[SpinChainParams, LinearTreeRHS]:
    params = SpinChainParams(sites=sites, tree=tree, initial="neel", **XXZ)
    return params, LinearTreeRHS(to_ttno(hamiltonian(params), build_tree(params)), factor=-1j)


def test_full_rank_sweep_is_exact():
    """With every edge at full rank the tangent space is the whole space and every sub-flow
    is the exact flow in other coordinates: the step has no splitting error, whatever h.
    Checks the bookkeeping of gauges and environments against the full vector."""
    params, rhs = _xxz(6, "balanced_binary")
    y = product_state(build_tree(params), initial_vectors(params), rank=8, dtype=np.complex128)
    psi = y.to_dense().reshape(-1)
    hs = hamiltonian(params).to_sparse()
    h = 0.25
    for k in range(4):
        y, info = INTEGRATORS["tdvp"](y, k * h, h, rhs=rhs, trunc=Truncation(), enrich=0)
        psi = sla.expm_multiply(-1j * h * hs, psi)
        assert np.linalg.norm(y.to_dense().reshape(-1) - psi) < 1e-10
    validate(y, orthonormal=True)
    assert info.enrich == 0 and np.isnan(info.normal)


def test_fixed_rank_step_conserves_norm_and_energy():
    """Each sub-flow is unitary and keeps <H> (projections of a Hermitian H): the one-site
    sweep at fixed rank conserves both to the Krylov tolerance, far from the exact state."""
    tree = build_tree(SpinChainParams(sites=8, tree="caterpillar"))
    op = to_ttno(long_range_ising(8), tree)
    rhs = LinearTreeRHS(op, factor=-1j)
    y = product_state(tree, [np.array([1.0, 0.0])] * 8, rank=3, dtype=np.complex128)
    e0 = expectation(y, op).real
    for k in range(10):
        y, info = INTEGRATORS["tdvp"](y, k * 0.1, 0.1, rhs=rhs, trunc=Truncation(), enrich=0)
    assert max(info.ranks.values()) <= 3
    assert abs(y.norm() - 1.0) < 1e-11
    assert abs(expectation(y, op).real - e0) < 1e-10


def test_second_order_on_the_matrix_test(record_property):
    """Fitted slope over h = 0.1, 0.05, 0.025 (measured 1.92: errors 3.0e-7, 7.4e-8,
    2.1e-8; the truncation at 1e-10 per step sets a plateau near 1e-8 below that)."""
    hs = [0.1, 0.05, 0.025]
    errs = _robustness("tdvp", hs, tolerance=lambda h: 1e-10)
    slope = float(np.polyfit(np.log(hs), np.log(errs), 1)[0])
    record_property("slope", slope)
    assert slope >= 1.8 and errs[-1] < 1e-7, (errs, slope)


def test_enrichment_grows_the_ranks_and_recovers_the_hopping():
    """Without enrichment the one-site sweep keeps the product state's rank; with it the
    ranks grow from rank 1 (no padding at all)."""
    params, rhs = _xxz(6, "balanced_binary")
    y0 = product_state(build_tree(params), initial_vectors(params), rank=1, dtype=np.complex128)
    trunc = Truncation(atol=1e-8, max_rank=16)
    fixed, _ = INTEGRATORS["tdvp"](y0, 0.0, 0.05, rhs=rhs, trunc=trunc, enrich=0)
    grown, info = INTEGRATORS["tdvp"](y0, 0.0, 0.05, rhs=rhs, trunc=trunc)
    assert max(fixed.ranks().values()) == 1
    assert max(grown.ranks().values()) > 1 and info.enrich == 8


def test_refuses_a_source_and_options_it_does_not_take():
    params, rhs = _xxz(4, "balanced_binary")
    y = product_state(build_tree(params), initial_vectors(params), rank=2, dtype=np.complex128)
    with pytest.raises(ValueError, match="rhs: the TDVP integrator takes dY/dt"):
        INTEGRATORS["tdvp"](
            y, 0.0, 0.1, rhs=LinearTreeRHS(None, source=y), trunc=Truncation(atol=1e-8)
        )
    with pytest.raises(ValueError, match="h: expected a positive step size"):
        INTEGRATORS["tdvp"](y, 0.0, -0.1, rhs=rhs, trunc=Truncation(atol=1e-8))
    for option in ({"normal_rtol": 0.1}, {"rejection": "paper"}, {"conserve": True}):
        with pytest.raises(ConfigError, match="not to integrator 'tdvp'"):
            BUGParams(integrator="tdvp", **option)
    step = make_stepper(BUGParams(integrator="tdvp", enrich=4), rhs)
    assert step.keywords["enrich"] == 4 and "normal_rtol" not in step.keywords


def test_one_step_on_a_deep_binary_tree_keeps_distant_two_site_processes():
    """The regression of the plain QR gauge: on the 12-site binary tree the first TFIM
    Néel step lost the second-order processes between leaves of different subtrees
    (error 1e-2 at h = 0.02); with the expanded gauge it is at round-off level."""
    params = SpinChainParams(model="tfim", sites=12, tree="balanced_binary", initial="neel")
    tree = build_tree(params)
    rhs = LinearTreeRHS(to_ttno(hamiltonian(params), tree), factor=-1j)
    y0 = product_state(tree, initial_vectors(params), rank=2, dtype=np.complex128)
    h = 0.02
    y, _ = INTEGRATORS["tdvp"](y0, 0.0, h, rhs=rhs, trunc=Truncation(atol=1e-12, max_rank=64))
    exact = sla.expm_multiply(-1j * h * hamiltonian(params).to_sparse(), y0.to_dense().ravel())
    assert np.linalg.norm(y.to_dense().ravel() - exact) < 1e-8


def test_expanded_gauge_reproduces_the_tensor_and_adds_the_operator_directions():
    rng = np.random.default_rng(3)
    # rank one in mode 1: the plain QR would complete the range arbitrarily
    x = np.einsum("a,bc->bac", rng.standard_normal(4), rng.standard_normal((5, 6)))
    hx = rng.standard_normal(x.shape)
    q, r = expanded_gauge(x, lambda: hx, 1, grow=3)
    assert q.shape == (5, 4, 6)  # rank 1 + 3 new directions
    qm = np.moveaxis(q, 1, 0).reshape(4, -1).T
    np.testing.assert_allclose(qm.conj().T @ qm, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(np.einsum("bac,ad->bdc", q, r), x, atol=1e-12)
    # the new columns span the leading part of H x orthogonal to the range of x
    hm = np.moveaxis(hx, 1, 0).reshape(4, -1).T
    rest = hm - qm[:, :1] @ (qm[:, :1].conj().T @ hm)
    top = np.linalg.svd(rest, full_matrices=False)[0][:, :3]
    np.testing.assert_allclose(np.linalg.svd(top.conj().T @ qm[:, 1:])[1], 1.0, atol=1e-10)
    # widening beyond the edge's size, within max_rank
    q, r = expanded_gauge(x, lambda: hx, 1, grow=8, max_rank=7)
    assert q.shape == (5, 7, 6) and r.shape == (7, 4)
    np.testing.assert_allclose(np.einsum("bac,ad->bdc", q, r), x, atol=1e-12)
    # full rank and no growth: the QR of edge_gauge, bit for bit
    full = rng.standard_normal((5, 4, 6))
    for a, b in zip(expanded_gauge(full, lambda: hx, 1), edge_gauge(full, 1), strict=True):
        np.testing.assert_array_equal(a, b)
