"""Radiative transfer: P_N + finite volumes against exact characteristics, mass, DLRA."""

from __future__ import annotations

import math

import numpy as np
import pytest

from problems.pn_moments import slab_moments
from problems.radiative_transfer import (
    TransportParams,
    density,
    full_rank_solve,
    grid,
    initial_moments,
    mass,
    mass_weights,
    time_step,
    transport_operator,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.config import ConfigError
from tensorsim.ttn import Tree, inner, product_state
from tensorsim.ttn.conservation import functional_network, include_functional
from tensorsim.ttn.operator import to_ttno


def _exact_pn_density(params: TransportParams, t: float) -> np.ndarray:
    """Pure transport: each characteristic variable of the P_N system moves at its speed."""
    speeds, vecs = np.linalg.eigh(slab_moments(params.degree + 1))
    x = grid(params).centres
    w = params.width
    gauss = lambda z: np.exp(-(z**2) / (2 * w * w)) / math.sqrt(2 * math.pi * w * w)  # noqa: E731
    return sum(vecs[0, k] ** 2 * gauss(x - speeds[k] * t) for k in range(speeds.size))


def test_pure_transport_converges_to_characteristics():
    errs = []
    for cells in (101, 201, 401):
        params = TransportParams(cells=cells, degree=7, sigma_s=0.0, t_end=0.5, width=0.2)
        rho = density(params, full_rank_solve(params)[-1])
        exact = _exact_pn_density(params, 0.5)
        errs.append(np.linalg.norm(rho - exact) / np.linalg.norm(exact))
    rates = np.log2(np.asarray(errs[:-1]) / np.asarray(errs[1:]))
    assert errs[-1] < 2e-2 and np.all(rates > 0.8), (errs, rates)


def test_mass_conservation_and_absorption_decay():
    params = TransportParams(cells=64, degree=9, t_end=0.6, boundary="periodic")
    u = full_rank_solve(params, np.array([0.0, 0.3, 0.6]))
    masses = [mass(params, v) for v in u]
    assert np.allclose(masses, masses[0], rtol=1e-13, atol=0)
    absorbing = TransportParams(
        cells=64, degree=9, t_end=0.6, boundary="periodic", sigma_a=2.0, sigma_s=0.5
    )
    u = full_rank_solve(absorbing, np.array([0.0, 0.6]))
    assert mass(absorbing, u[1]) / mass(absorbing, u[0]) == pytest.approx(math.exp(-1.2), rel=1e-9)


def test_line_source_symmetry_and_mass():
    params = TransportParams.line_source(cells=24, degree=3, t_end=0.3, boundary="periodic")
    u = full_rank_solve(params, np.array([0.0, 0.3]))
    rho = density(params, u[1])
    assert np.max(np.abs(rho - rho.T)) < 1e-12 * np.max(rho)
    assert np.max(np.abs(rho - rho[::-1, :])) < 1e-12 * np.max(rho)
    assert mass(params, u[1]) == pytest.approx(mass(params, u[0]), rel=1e-13)


def test_operator_terms_apply_like_sparse_matrix(rng):
    params = TransportParams(cells=9, degree=3, sigma_a=0.3)
    op = transport_operator(params)
    x = rng.standard_normal(op.dims)
    dense = (op.to_sparse() @ x.reshape(-1)).reshape(op.dims)
    assert np.allclose(op.apply(x), dense, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize(("name", "rtol"), [("augmented_bug", 1e-3), ("parallel_bug", 1e-4)])
def test_dlra_matches_full_rank_and_conserves_mass(name, rtol):
    params = TransportParams(cells=101, degree=29, t_end=1.0, boundary="periodic")
    reference = density(params, full_rank_solve(params)[-1])
    op = transport_operator(params)
    tree = Tree.from_nested((0, 1), op.dims)
    rhs = LinearTreeRHS(to_ttno(op, tree), factor=1.0)
    y = product_state(tree, initial_moments(params), rank=10)
    weights = mass_weights(params)
    y = include_functional(y, weights)
    w = functional_network(y, weights)
    m0 = float(inner(w, y))
    h, steps = time_step(params)
    trunc = Truncation(rtol=rtol, max_rank=50, min_rank=2)
    for k in range(steps):
        y, info = INTEGRATORS[name](
            y, k * h, h, rhs=rhs, trunc=trunc, substep="rk4", conserve=weights
        )
        assert max(info.ranks.values()) <= 50
    rho = density(params, y.to_dense())
    assert np.linalg.norm(rho - reference) / np.linalg.norm(reference) < 1e-2
    assert abs(float(inner(w, y)) - m0) / m0 < 1e-12


def test_bad_input():
    with pytest.raises(ValueError, match="cfl"):
        grid(TransportParams(cfl=1.5))
    with pytest.raises(ValueError, match="cfl"):
        grid(TransportParams.line_source(cfl=0.6))
    with pytest.raises(ConfigError, match="sigma_s"):
        TransportParams(sigma_s=-1.0)
    with pytest.raises(ConfigError, match="case"):
        TransportParams(case="plane")
    with pytest.raises(ValueError, match="times"):
        full_rank_solve(TransportParams(cells=9, degree=1), np.array([0.5, 0.1]))
