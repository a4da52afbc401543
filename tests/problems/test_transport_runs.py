"""The run helpers of the transport problems (trees, density from a tree, references)."""

from __future__ import annotations

import numpy as np
import pytest

from problems.radiative_transfer import (
    TransportParams,
    build_tree,
    check_problem,
    density,
    full_rank_reference,
    full_rank_solve,
    initial_moments,
    mass,
    mass_weights,
    site_dims,
    space_names,
    transport_operator,
    tree_density,
)
from problems.uq import UQParams, collocation_reference, reference_statistics
from tensorsim.config import ConfigError
from tensorsim.ttn import random_ttn

PLANE = TransportParams(cells=11, degree=3, t_end=0.1)
LINE = TransportParams.line_source(cells=6, degree=2, t_end=0.1)


def test_trees_of_the_slab_and_the_plane():
    assert build_tree(site_dims(PLANE)).nested() == (0, 1)
    assert build_tree(site_dims(PLANE), "nested").nested() == (0, 1)  # the same in the slab
    dims = site_dims(LINE)
    assert build_tree(dims).nested() == (0, 1, 2)
    assert build_tree(dims, "nested").nested() == ((0, 1), 2)
    assert build_tree(dims).dims == tuple(dims)
    assert space_names(PLANE) == ("x",) and space_names(LINE) == ("x", "y")


@pytest.mark.parametrize("params", [PLANE, LINE], ids=["slab", "plane"])
@pytest.mark.parametrize("shape", ["star", "nested"])
def test_tree_density_is_the_density_of_the_full_tensor(params, shape):
    tree = build_tree(site_dims(params), shape)
    y = random_ttn(tree, 3, rng=5)
    expected = density(params, y.to_dense())
    np.testing.assert_allclose(tree_density(y, mass_weights(params)[-1]), expected, atol=1e-13)


def test_full_rank_reference_in_chunks_is_the_full_rank_solution():
    times = np.array([0.0, 0.03, 0.05, 0.1])
    moments = full_rank_solve(PLANE, times)
    one_per_chunk = full_rank_reference(PLANE, times, max_bytes=1)
    assert len(one_per_chunk) == 4
    # chunks restart from t = 0: the same steps up to each time, so bitwise the same
    for (rho, m), u in zip(full_rank_reference(PLANE, times), moments, strict=True):
        np.testing.assert_array_equal(rho, density(PLANE, u))
        assert m == mass(PLANE, u)
    # one time per chunk: each solved from t = 0 on its own
    for (rho, m), t in zip(one_per_chunk, times, strict=True):
        u = full_rank_solve(PLANE, [t])[-1]
        np.testing.assert_array_equal(rho, density(PLANE, u))
        assert m == mass(PLANE, u)
    assert full_rank_reference(PLANE, []) == []
    # the reference starts from the initial moments
    u0 = np.multiply.outer(*initial_moments(PLANE))
    np.testing.assert_array_equal(full_rank_reference(PLANE, [0.0])[0][0], density(PLANE, u0))
    assert transport_operator(PLANE).dims == tuple(site_dims(PLANE))


def test_check_problem_names_the_key():
    check_problem(PLANE)
    with pytest.raises(ConfigError, match=r"'problem\.transport': cfl: 1.5 is above"):
        check_problem(TransportParams(cfl=1.5), "problem.transport")


def test_reference_statistics_chooses_direct_or_interpolated_solves():
    params = UQParams.section_5_3(
        transport={"cells": 6, "degree": 2, "t_end": 0.1}, nodes_xi=2, nodes_eta=2
    )
    direct = collocation_reference(params, lambda p: full_rank_solve(p)[-1])
    for nodes in (0, 4, 9):  # 0, or not fewer than the 4 points: one solve per point
        for got, want in zip(reference_statistics(params, nodes), direct, strict=True):
            np.testing.assert_array_equal(got, want)
    interpolated = collocation_reference(params, lambda p: full_rank_solve(p)[-1], sigma_s_nodes=3)
    for got, want in zip(reference_statistics(params, 3), interpolated, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not np.array_equal(interpolated[0], direct[0])  # a real choice
