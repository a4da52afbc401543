"""Uncertain radiative transfer: tree statistics, DLRA against full-rank collocation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from problems.radiative_transfer import (
    TransportParams,
    density,
    full_rank_solve,
    time_step,
    transport_operator,
)
from problems.uq import (
    UQParams,
    collocation_points,
    collocation_reference,
    density_statistics,
    initial_vectors,
    interpolated_density,
    quadrature,
    uq_mass_weights,
    uq_operator,
    uq_tree,
)
from solvers.bug import INTEGRATORS, LinearTreeRHS
from tensorsim import Truncation
from tensorsim.config import ConfigError
from tensorsim.ttn import product_state, random_ttn
from tensorsim.ttn.conservation import include_functional
from tensorsim.ttn.operator import to_ttno


def _solve(p: TransportParams) -> np.ndarray:
    return full_rank_solve(p)[-1]


def _small(**transport) -> UQParams:
    values = dict(cells=51, degree=15, sigma_s=5.0, cfl=0.1, t_end=0.5)
    values.update(transport)
    return UQParams(transport=TransportParams(**values), nodes_xi=8, nodes_eta=8)


def test_statistics_from_the_tree_match_the_full_tensor(rng):
    params = _small(cells=9, degree=3)
    y = random_ttn(uq_tree(params), 3, rng=rng)
    mean, var = density_statistics(params, y)
    rho = density(params.transport, np.moveaxis(y.to_dense(), 1, -1))  # (x, xi, eta)
    _, p_xi, _, p_eta = quadrature(params)
    p = np.outer(p_xi, p_eta)
    exact_mean = np.einsum("xij,ij->x", rho, p)
    exact_var = np.einsum("xij,ij->x", (rho - exact_mean[:, None, None]) ** 2, p)
    assert np.allclose(mean, exact_mean, rtol=1e-12, atol=1e-14)
    assert np.allclose(var, exact_var, rtol=1e-10, atol=1e-14)


def test_operator_at_a_collocation_point_is_the_deterministic_one(rng):
    params = _small(cells=7, degree=2)
    op = uq_operator(params)
    x = rng.standard_normal(op.dims)
    applied = op.apply(x)
    xi, _, eta, _ = quadrature(params)
    i, j = 3, 5
    point = TransportParams(
        cells=7, degree=2, sigma_s=5.0 + 4.0 * xi[i] + eta[j], cfl=0.1, t_end=0.5
    )
    expected = transport_operator(point).apply(x[..., i, j])
    assert np.allclose(applied[..., i, j], expected, rtol=1e-13, atol=1e-12)


def _dlra(params: UQParams, name: str, rtol: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Final E[rho], Var[rho] and the largest rank after every step (paper's settings)."""
    tree = uq_tree(params)
    rhs = LinearTreeRHS(to_ttno(uq_operator(params), tree), factor=1.0)
    y = product_state(tree, initial_vectors(params), rank=10)
    weights = uq_mass_weights(params)
    y = include_functional(y, weights)
    h, steps = time_step(params.transport)
    trunc = Truncation(rtol=rtol, max_rank=50, min_rank=2)
    history = []
    for k in range(steps):
        y, info = INTEGRATORS[name](
            y, k * h, h, rhs=rhs, trunc=trunc, substep="rk4", conserve=weights
        )
        history.append(max(info.ranks.values()))
    mean, var = density_statistics(params, y)
    return mean, var, history


def _relative(a: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(a - ref) / np.linalg.norm(ref))


@pytest.mark.parametrize(("name", "rtol"), [("augmented_bug", 1e-4), ("parallel_bug", 1e-5)])
def test_dlra_statistics_against_collocation(name, rtol):
    params = _small()
    ref_mean, ref_var = collocation_reference(params, _solve)
    mean, var, history = _dlra(params, name, rtol)
    assert _relative(mean, ref_mean) < 1e-2
    assert _relative(var, ref_var) < 5e-2
    # ranks grow from the product state, then level off below r_max
    assert history[0] < history[-1] < 50
    assert max(history[-10:]) - min(history[-10:]) <= 2


@pytest.mark.slow
def test_section_5_2_against_the_100x100_collocation_reference(rng):
    """The full Sec. 5.2 grid (201 x 100 x 100 x 100, T = 2); a few minutes."""
    params = UQParams()
    t = params.transport
    rho = interpolated_density(params, 32, _solve)
    sigmas = [p.sigma_s for _, _, p in collocation_points(params)]
    for sigma_s in rng.uniform(min(sigmas), max(sigmas), 2):
        direct = density(t, _solve(dataclasses.replace(t, sigma_s=sigma_s)))
        assert np.abs(rho(np.array([sigma_s]), np.zeros(1))[0] - direct).max() < 1e-10
    ref_mean, ref_var = collocation_reference(params, _solve, sigma_s_nodes=32)
    for name, rtol in (("augmented_bug", 1e-4), ("parallel_bug", 1e-5)):
        mean, var, history = _dlra(params, name, rtol)
        assert _relative(mean, ref_mean) < 1e-2, name
        assert _relative(var, ref_var) < 5e-2, name
        assert history[0] < history[-1] < 50, name
        # growth slows down: the last quarter adds far fewer ranks than the first
        quarter = len(history) // 4
        assert history[-1] - history[-quarter] < history[quarter] - history[0], name


def test_interpolated_density_matches_direct_solves(rng):
    params = _small(cells=31, degree=7)
    t = params.transport
    rho = interpolated_density(params, 24, _solve)
    sigmas = [p.sigma_s for _, _, p in collocation_points(params)]
    sigma_s = rng.uniform(min(sigmas), max(sigmas), 3)
    direct = np.stack([density(t, _solve(dataclasses.replace(t, sigma_s=s))) for s in sigma_s])
    assert np.abs(rho(sigma_s, np.zeros(3)) - direct).max() < 1e-11 * np.abs(direct).max()
    # absorption factors out of the flow exactly, out of the RK4 steps to their accuracy
    sigma_a = rng.uniform(0.0, 2.0, 3)
    direct = np.stack(
        [
            density(t, _solve(dataclasses.replace(t, sigma_s=s, sigma_a=a)))
            for s, a in zip(sigma_s, sigma_a, strict=True)
        ]
    )
    assert np.abs(rho(sigma_s, sigma_a) - direct).max() < 1e-7 * np.abs(direct).max()


def test_interpolated_reference_equals_the_direct_one():
    params = UQParams(
        transport=TransportParams(
            cells=31, degree=7, sigma_s=1.0, sigma_a=1.0, cfl=0.1, t_end=1.0
        ),
        sigma_s_xi=1.0,
        sigma_s_eta=0.0,
        sigma_a_xi=0.0,
        sigma_a_eta=1.0,
        nodes_xi=5,
        nodes_eta=5,
    )
    direct = collocation_reference(params, _solve)
    interpolated = collocation_reference(params, _solve, sigma_s_nodes=12)
    for a, b in zip(direct, interpolated, strict=True):
        assert np.linalg.norm(a - b) < 1e-6 * np.linalg.norm(a)  # RK4 error: 1e-7


def test_bad_input():
    with pytest.raises(ValueError, match="sigma_s"):
        UQParams(transport=TransportParams(sigma_s=1.0), sigma_s_xi=1.0, sigma_s_eta=0.5)
    with pytest.raises(ValueError, match="sigma_a"):
        UQParams(sigma_a_xi=0.1)
    params = _small(cells=9, degree=1)
    with pytest.raises(ValueError, match="nodes"):
        interpolated_density(params, 0, _solve)
    rho = interpolated_density(params, 3, _solve)
    with pytest.raises(ValueError, match="sigma_s"):
        rho(np.array([20.0]), np.array([0.0]))
    with pytest.raises(ConfigError, match="nodes_xi"):
        UQParams(nodes_xi=0)
    params = _small(cells=9, degree=3)
    other = random_ttn(uq_tree(_small(cells=11, degree=3)), 2, rng=0)
    with pytest.raises(ValueError, match="uq_tree"):
        density_statistics(params, other)
