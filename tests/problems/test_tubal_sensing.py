"""Tubal sensing problem (arXiv 2410.16247): truth, sensing tensors, measurement map, adjoint."""

from __future__ import annotations

import numpy as np
import pytest

from problems.tubal_sensing import (
    TubalSensingParams,
    adjoint,
    ground_truth,
    initial_factor,
    make_problem,
    measure,
    measurement_count,
    sensing_matrix,
    symmetric_dof,
)
from tensorsim import t_fft, t_transpose, tubal_rank
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError
from tensorsim.testing import bcirc, unfold_slices


@pytest.mark.parametrize("symmetric", [False, True])
def test_adjoint_identity(xp, rng, symmetric):
    n, k, m = 4, 5, 30
    a = xp.asarray(sensing_matrix(m, n, k, symmetric=symmetric, rng=rng))
    x = xp.asarray(rng.standard_normal((n, n, k)))
    z = xp.asarray(rng.standard_normal(m))
    lhs = float(xp.vecdot(measure(a, x), z))
    rhs = float(xp.sum(x * adjoint(a, z, (n, n, k))))
    assert lhs == pytest.approx(rhs, rel=1e-12)


@pytest.mark.parametrize("symmetric", [False, True])
def test_measurement_map_matches_a_loop_over_the_sensing_tensors(rng, symmetric):
    n, k, m = 5, 4, 25
    a = sensing_matrix(m, n, k, symmetric=symmetric, rng=rng)
    x = rng.standard_normal((n, n, k))
    tensors = a.reshape(m, n, n, k)
    loop = np.array([np.sum(x * tensors[i]) for i in range(m)])
    np.testing.assert_allclose(measure(a, x), loop, rtol=1e-12, atol=1e-12)
    r = rng.standard_normal(m)
    np.testing.assert_allclose(
        adjoint(a, r, (n, n, k)), sum(r[i] * tensors[i] for i in range(m)), atol=1e-12
    )


@pytest.mark.parametrize("k", [1, 4, 5])
def test_symmetrized_sensing_tensors_are_g_plus_g_transpose(k):
    n, m = 3, 6
    raw = sensing_matrix(m, n, k, rng=7).reshape(m, n, n, k)
    sym = sensing_matrix(m, n, k, symmetric=True, rng=7).reshape(m, n, n, k)
    for g, a in zip(raw, sym, strict=True):
        np.testing.assert_array_equal(a, g + t_transpose(g))
        np.testing.assert_array_equal(a, t_transpose(a))


def test_raw_sensing_tensors_are_standard_gaussian():
    a = sensing_matrix(200, 5, 4, rng=3)
    assert a.shape == (200, 100)
    assert abs(a.mean()) < 0.02 and a.std() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("normalized", [True, False])
def test_ground_truth_is_u_times_u_transpose(rng, normalized):
    n, r, k = 6, 2, 4
    factor, x = ground_truth(n, r, k, normalized=normalized, rng=rng)
    assert factor.shape == (n, r, k) and x.shape == (n, n, k)
    # the t-product by its definition: unfold(U * U^T) = bcirc(U) unfold(U^T)
    ut = factor.transpose(1, 0, 2)[:, :, (-np.arange(k)) % k]
    np.testing.assert_allclose(unfold_slices(x), bcirc(factor) @ unfold_slices(ut), atol=1e-12)
    np.testing.assert_allclose(x, t_transpose(x), atol=1e-13)
    eig = np.linalg.eigvalsh(t_fft(x))
    assert eig.min() > -1e-12 * eig.max()
    assert tubal_rank(x) == r
    if normalized:  # a tubal projection: every Fourier slice has r eigenvalues 1, the rest 0
        np.testing.assert_allclose(np.sort(eig, axis=1)[:, -r:], 1.0, atol=1e-12)
        np.testing.assert_allclose(eig[:, :-r], 0.0, atol=1e-12)
    else:
        assert not np.allclose(np.sort(eig, axis=1)[:, -r:], 1.0, atol=0.1)


@pytest.mark.parametrize(("n", "k"), [(10, 4), (3, 1), (3, 2), (4, 5), (2, 6)])
def test_symmetric_dof_is_the_dimension_of_the_symmetric_tensors(n, k):
    # the dimension of {X = X^T} is the rank of the projection X -> (X + X^T) / 2
    size = n * n * k
    basis = np.eye(size).reshape(size, n, n, k)
    projections = np.stack([(e + t_transpose(e)).ravel() / 2 for e in basis])
    assert symmetric_dof(n, k) == np.linalg.matrix_rank(projections)


def test_measurement_counts_of_the_paper():
    assert measurement_count(10, 2, 4, 1.2) == 254
    assert measurement_count(10, 3, 4, 0.9) == 285
    assert symmetric_dof(10, 4) == 210


def test_draws_are_seeded():
    params = TubalSensingParams(n=5, k=3, rank=2, m=20, symmetric=True)
    a, b = make_problem(params, 11), make_problem(params, np.random.default_rng(11))
    c = make_problem(params, 12)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    np.testing.assert_array_equal(a.truth.tensor, b.truth.tensor)
    assert not np.allclose(a.matrix, c.matrix)
    np.testing.assert_allclose(a.y, measure(a.matrix, a.truth.tensor))
    np.testing.assert_array_equal(
        initial_factor(5, 7, 3, alpha=1e-3, rng=1), initial_factor(5, 7, 3, alpha=1e-3, rng=1)
    )


def test_initial_factor_scale():
    u0 = initial_factor(10, 400, 4, alpha=1e-3, rng=0)
    assert u0.shape == (10, 400, 4)
    assert u0.std() * np.sqrt(400) == pytest.approx(1e-3, rel=0.02)


def test_measure_and_adjoint_on_torch_keep_the_backend(rng):
    torch = pytest.importorskip("torch")
    a = sensing_matrix(8, 3, 2, rng=rng)
    x = rng.standard_normal((3, 3, 2))
    y = measure(torch.from_numpy(a), torch.from_numpy(x))
    assert isinstance(y, torch.Tensor)
    np.testing.assert_allclose(to_numpy(y), measure(a, x), rtol=1e-13)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: sensing_matrix(0, 3, 2), "m: expected a positive integer"),
        (lambda: sensing_matrix(5, 3, 0), "k: expected a positive integer"),
        (lambda: ground_truth(3, 4, 2), r"rank: expected r\* <= n = 3"),
        (lambda: ground_truth(3, 0, 2), "rank: expected a positive integer"),
        (lambda: initial_factor(3, 4, 2, alpha=0.0), "alpha: expected a positive"),
        (lambda: initial_factor(3, 4, 2, alpha=float("nan")), "alpha: expected a positive"),
        (lambda: initial_factor(3, 0, 2, alpha=1.0), "width: expected a positive integer"),
        (lambda: measurement_count(10, 2, 4, 0.0), "factor: expected a positive"),
        (lambda: measure(np.zeros((4, 18)), np.zeros((3, 3, 3))), "x: expected a tensor of 18"),
        (lambda: adjoint(np.zeros((4, 18)), np.zeros(5), (3, 3, 2)), r"r: expected shape \(4,\)"),
        (lambda: adjoint(np.zeros((4, 18)), np.zeros(4), (3, 3, 3)), "shape: expected"),
        (lambda: TubalSensingParams(m=0), "'m': expected an int >= 1"),
        (lambda: TubalSensingParams(n=3, rank=4), r"rank: expected r\* <= n = 3"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_params_type():
    with pytest.raises(TypeError, match="params: expected TubalSensingParams"):
        make_problem({"n": 3})
    with pytest.raises(ConfigError):
        TubalSensingParams(symmetric="yes")
