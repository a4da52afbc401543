"""Time-dependent Hamiltonians: the Rydberg detuning ramp against the exact time-ordered
evolution, order 2 in h with the exponential midpoint rule."""

from __future__ import annotations

import numpy as np
import pytest

from problems.spin_chain import (
    SpinChainParams,
    build_tree,
    exact_dynamics,
    hamiltonian_terms,
    initial_vectors,
    magnetization_operator,
)
from solvers.bug import BUGParams, LinearTreeRHS, make_stepper
from solvers.bug.time_dependent import TimeDependentHamiltonian, midpoint_stepper
from tensorsim.ttn import local_expectations, product_state
from tensorsim.ttn.apply import linear_combination
from tensorsim.ttn.operator import to_ttno

#: A Rydberg sweep: the detuning ramps from -2 to +2 over T = 1 (long-range interaction).
RAMP = {"delta": -2.0, "delta_rate": 4.0}


def _ramp_errors(integrator: str, tree: str, steps: tuple[float, ...], sites: int = 8) -> list:
    params = SpinChainParams(sites=sites, tree=tree, **RAMP)
    ttn_tree = build_tree(params)
    driven = TimeDependentHamiltonian(
        tuple((f, to_ttno(op, ttn_tree)) for f, op in hamiltonian_terms(params))
    )
    solver = BUGParams(integrator=integrator, atol=1e-11, max_rank=64)
    base = make_stepper(solver, LinearTreeRHS(driven.at(0.0), factor=-1j))
    step = midpoint_stepper(base, driven)
    errors = []
    for h in steps:
        n = round(0.5 / h)
        exact = exact_dynamics(params, h * np.arange(n + 1))
        y = product_state(ttn_tree, initial_vectors(params), rank=2, dtype=np.complex128)
        worst = 0.0
        for k in range(n):
            y, _ = step(y, k * h, h)
            mz = np.asarray(local_expectations(y, magnetization_operator()))
            worst = max(worst, float(np.max(np.abs(mz - exact.mz[k + 1]))))
        errors.append(worst)
    return errors


@pytest.mark.parametrize(
    ("integrator", "tree", "sites"),
    [
        ("tdvp2", "caterpillar", 8),
        pytest.param("midpoint_bug", "balanced_binary", 8, marks=pytest.mark.slow),
        pytest.param("tdvp", "balanced_binary", 8, marks=pytest.mark.slow),
        pytest.param("midpoint_bug", "balanced_binary", 12, marks=pytest.mark.slow),
        pytest.param("tdvp2", "caterpillar", 12, marks=pytest.mark.slow),
    ],
)
def test_detuning_ramp_is_second_order_against_the_time_ordered_evolution(
    integrator, tree, sites, record_property
):
    steps = (0.1, 0.05, 0.025)
    errors = _ramp_errors(integrator, tree, steps, sites)
    record_property("errors", errors)
    assert max(errors) < 1e-3, errors
    slope = float(np.polyfit(np.log(steps), np.log(errors), 1)[0])
    record_property("slope", slope)
    assert slope >= 1.8, (errors, slope)


def test_the_ramp_moves_the_magnetization_and_the_pieces_add_up():
    params = SpinChainParams(sites=6, **RAMP)
    tree = build_tree(params)
    pieces = hamiltonian_terms(params)
    assert len(pieces) == 2
    driven = TimeDependentHamiltonian(tuple((f, to_ttno(op, tree)) for f, op in pieces))
    # H(t) is the model with the detuning of time t
    for t in (0.0, 0.3):
        frozen = SpinChainParams(sites=6, delta=-2.0 + 4.0 * t)
        want = to_ttno(hamiltonian_terms(frozen)[0][1], tree).to_dense()
        np.testing.assert_allclose(driven.at(t).to_dense(), want, atol=1e-12)
    exact = exact_dynamics(params, np.array([0.0, 0.5, 1.0]))
    assert float(np.max(np.abs(exact.mz[-1] - exact.mz[0]))) > 0.05
    assert len(hamiltonian_terms(SpinChainParams(sites=6))) == 1  # no ramp: one piece


def test_linear_combination_against_dense(rng):
    params = SpinChainParams(model="xxz", sites=5, jz=0.3, hz=0.1)
    tree = build_tree(params)
    a = to_ttno(hamiltonian_terms(params)[0][1], tree)
    b = to_ttno(hamiltonian_terms(SpinChainParams(sites=5))[0][1], tree)
    c = linear_combination([(0.7, a), (-1.3, b)])
    np.testing.assert_allclose(c.to_dense(), 0.7 * a.to_dense() - 1.3 * b.to_dense(), atol=1e-12)
    assert c.hermitian and not linear_combination([(1j, a)]).hermitian
    assert c.bond_dims[tree.n_sites] == a.bond_dims[tree.n_sites] + b.bond_dims[tree.n_sites]
    with pytest.raises(ValueError, match="terms: expected at least one"):
        linear_combination([])
    with pytest.raises(ValueError, match="terms: expected at least one"):
        TimeDependentHamiltonian(())
