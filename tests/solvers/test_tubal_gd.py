"""Gradient descent on the tubal factorization (arXiv 2410.16247): gradient, dynamics, backends."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg

from problems.tubal_sensing import (
    TubalSensingParams,
    adjoint,
    initial_factor,
    make_problem,
    symmetric_dof,
)
from solvers.tubal_gd import (
    DIVERGENCE_FACTOR,
    SymmetricSensing,
    loss_and_gradient,
    tubal_gd,
)
from tensorsim import t_fft, t_product, t_svd, t_transpose
from tensorsim._array_api import to_numpy
from tensorsim.testing import bcirc, fold_slices, unfold_slices

SMALL = TubalSensingParams(n=5, k=4, rank=2, m=60, symmetric=True)
FIG2 = TubalSensingParams()  # n=10, k=4, r*=2, m=254 raw Gaussian


def _t_transpose(a):
    return a.transpose(1, 0, 2)[:, :, (-np.arange(a.shape[2])) % a.shape[2]]


def _reference_loss_and_gradient(u, a, y):
    """The loss and gradient by block-circulant t-products and a loop over the A_i."""
    n, _, k = u.shape
    x = fold_slices(bcirc(u) @ unfold_slices(_t_transpose(u)), k)
    tensors = a.reshape(-1, n, n, k)
    r = np.array([np.sum(x * a_i) for a_i in tensors]) - y
    g = sum(r_i * (a_i + _t_transpose(a_i)) for r_i, a_i in zip(r, tensors, strict=True))
    return 0.5 * r @ r, fold_slices(bcirc(g) @ unfold_slices(u), k)


@pytest.fixture
def small():
    problem = make_problem(SMALL, 5)
    u = initial_factor(SMALL.n, 7, SMALL.k, alpha=1.0, rng=6)
    return problem, u


def test_symmetric_sensing_equals_the_full_matrix(small, rng):
    problem, _ = small
    n, k = SMALL.n, SMALL.k
    sensing = SymmetricSensing(problem.matrix, n, k)
    assert sensing.folded.shape == (SMALL.m, symmetric_dof(n, k))  # one column per pair
    z = rng.standard_normal((n, n, k))
    x = z + t_transpose(z)
    np.testing.assert_allclose(sensing.measure(x), problem.matrix @ x.ravel(), rtol=1e-12)
    r = rng.standard_normal(SMALL.m)
    m_ = adjoint(problem.matrix, r, (n, n, k))
    np.testing.assert_allclose(sensing.adjoint_sym(r), m_ + t_transpose(m_), atol=1e-12)


def test_loss_and_gradient_match_the_block_circulant_reference(small):
    problem, u = small
    loss, grad = loss_and_gradient(u, problem.matrix, problem.y)
    ref_loss, ref_grad = _reference_loss_and_gradient(u, problem.matrix, problem.y)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-11, atol=1e-11 * np.abs(ref_grad).max())


def test_gradient_matches_torch_autograd(small):
    torch = pytest.importorskip("torch")
    problem, u = small
    k = SMALL.k
    ut = torch.tensor(u, requires_grad=True)
    a, y = torch.from_numpy(problem.matrix), torch.from_numpy(problem.y)
    # U * U^T from the definition (circular convolution of the frontal slices), no FFT
    transposed = torch.stack([ut[:, :, (-j) % k].T for j in range(k)], dim=2)
    x = torch.stack(
        [sum(ut[:, :, j] @ transposed[:, :, (lag - j) % k] for j in range(k)) for lag in range(k)],
        dim=2,
    )
    r = a @ x.reshape(-1) - y
    (0.5 * r @ r).backward()
    loss, grad = loss_and_gradient(u, problem.matrix, problem.y)
    assert loss == pytest.approx(float(0.5 * r.detach() @ r.detach()), rel=1e-12)
    np.testing.assert_allclose(grad, ut.grad.numpy(), rtol=1e-10, atol=1e-10 * grad.std())


def test_gradient_matches_finite_differences(small, rng):
    problem, u = small
    _, grad = loss_and_gradient(u, problem.matrix, problem.y)
    for _ in range(3):
        e = rng.standard_normal(u.shape)
        h = 1e-5
        plus, _ = loss_and_gradient(u + h * e, problem.matrix, problem.y)
        minus, _ = loss_and_gradient(u - h * e, problem.matrix, problem.y)
        assert (plus - minus) / (2 * h) == pytest.approx(np.sum(grad * e), rel=1e-7)


def test_one_step_and_monitors_against_independent_references(small):
    problem, u = small
    truth = problem.truth.tensor
    step, rank = 1e-4, SMALL.rank
    result = tubal_gd(
        u, problem.matrix, problem.y, rank=rank, step=step, iterations=1, truth=truth
    )
    _, grad = _reference_loss_and_gradient(u, problem.matrix, problem.y)
    np.testing.assert_allclose(result.u, u - step * grad, rtol=1e-12, atol=1e-13)
    final = result.history[-1]
    assert [m.iteration for m in result.history] == [0, 1]
    x = t_product(result.u, t_transpose(result.u))
    assert final.test_error == pytest.approx(
        np.linalg.norm(x - truth) / np.linalg.norm(truth), rel=1e-12
    )
    r = problem.matrix @ x.ravel() - problem.y
    assert final.loss == pytest.approx(0.5 * r @ r, rel=1e-10)
    assert final.train_error == pytest.approx(np.linalg.norm(r) / np.linalg.norm(problem.y))
    s_u, s_star = t_svd(result.u).s, t_svd(problem.truth.factor).s
    np.testing.assert_allclose(final.tube_norms, np.linalg.norm(s_u, axis=1), rtol=1e-12)
    expected = np.linalg.norm(s_u[rank - 1] - s_star[rank - 1]) / np.linalg.norm(s_star[rank - 1])
    assert final.tube_error == pytest.approx(expected, rel=1e-10)
    # principal angles, slice by slice, by SciPy
    top = [np.linalg.svd(s)[0][:, :rank] for s in t_fft(result.u)]
    truth_basis = [np.linalg.svd(s)[0][:, :rank] for s in t_fft(truth)]
    sym = adjoint(problem.matrix, problem.y, truth.shape)
    power = [np.linalg.eigh(s)[1][:, -rank:] for s in t_fft(sym + t_transpose(sym))]

    def largest_sine(bases, others):
        angles = [
            scipy.linalg.subspace_angles(v, w).max() for v, w in zip(bases, others, strict=True)
        ]
        return math.sin(max(angles))

    assert final.angle_truth == pytest.approx(largest_sine(top, truth_basis), rel=1e-8)
    assert final.angle_power == pytest.approx(largest_sine(top, power), rel=1e-8)
    norms = np.linalg.norm(s_u, axis=1)
    assert final.tubal_rank == np.sum(norms > 1e-2 * norms.max())


def test_same_trajectory_on_every_backend(xp, small):
    problem, _ = small
    u0 = initial_factor(SMALL.n, 12, SMALL.k, alpha=1e-3, rng=9)
    args = dict(rank=SMALL.rank, step=2e-4, iterations=200, log_every=50)
    ref = tubal_gd(u0, problem.matrix, problem.y, truth=problem.truth.tensor, **args)
    result = tubal_gd(
        xp.asarray(u0),
        xp.asarray(problem.matrix),
        xp.asarray(problem.y),
        truth=xp.asarray(problem.truth.tensor),
        **args,
    )
    assert ref.history[-1].test_error < 0.5 * ref.history[0].test_error  # it moved
    np.testing.assert_allclose(to_numpy(result.u), ref.u, rtol=1e-9, atol=1e-12)
    for mine, theirs in zip(result.history, ref.history, strict=True):
        assert mine.iteration == theirs.iteration and mine.tubal_rank == theirs.tubal_rank
        for name in ("loss", "train_error", "test_error", "tube_error", "angle_truth"):
            assert getattr(mine, name) == pytest.approx(getattr(theirs, name), rel=1e-8), name
        np.testing.assert_allclose(to_numpy(mine.tube_norms), to_numpy(theirs.tube_norms))


@pytest.mark.slow  # default run kept under 10 min on 2 cores
def test_fig2_setting_reaches_the_acceptance_thresholds():
    """The paper's Fig. 2 (n=10, k=4, r*=2, m=254, R=100, alpha=1e-7, step 1e-5, 10^4 steps).

    Five independent draws (the driver's seeds with a redrawn problem per trial). Measured:
    final test errors 1.2e-4, 4.3e-5, 1.8e-5, 4.6e-5, 2.0e-5 of the start; angles to X*
    below 1.1e-4; over 20 draws 18 end below 1e-4 (median 3.2e-5, worst 1.8e-4).
    """
    finals, angles = [], []
    for trial in range(5):
        problem = make_problem(FIG2, np.random.default_rng([0, 0, trial]))
        u0 = initial_factor(10, 100, 4, alpha=1e-7, rng=np.random.default_rng([0, 1, trial]))
        history = tubal_gd(
            u0,
            problem.matrix,
            problem.y,
            rank=2,
            step=1e-5,
            iterations=10_000,
            truth=problem.truth.tensor,
            log_every=50,
        ).history
        test = np.array([m.test_error for m in history])
        power = np.array([m.angle_power for m in history])
        finals.append(test[-1] / test[0])
        angles.append(history[-1].angle_truth)
        # the phases: alignment with the power-method subspace first, the error falls later
        assert np.argmax(power < 0.1) < np.argmax(test < 0.5)
        assert power.min() < 0.02
    assert np.median(finals) < 1e-4 and max(finals) < 2e-4
    assert max(angles) < 1e-3


def test_small_initialization_is_biased_to_low_tubal_rank():
    problem = make_problem(FIG2, 1)
    u0 = initial_factor(10, 100, 4, alpha=1e-7, rng=2)
    result = tubal_gd(
        u0, problem.matrix, problem.y, rank=2, step=1e-5, iterations=3000, log_every=1000
    )
    ranks = [m.tubal_rank for m in result.history]
    assert ranks[0] == 10 and ranks[-2:] == [2, 2] and sorted(ranks, reverse=True) == ranks
    assert all(math.isnan(m.test_error) and math.isnan(m.angle_truth) for m in result.history)


def test_exact_start_stays_put(small):
    problem, _ = small
    width = 4
    u0 = np.zeros((SMALL.n, width, SMALL.k))
    u0[:, : SMALL.rank] = problem.truth.factor
    calls = []
    result = tubal_gd(
        u0,
        problem.matrix,
        problem.y,
        rank=SMALL.rank,
        step=1e-4,
        iterations=20,
        truth=problem.truth.tensor,
        log_every=5,
        callback=calls.append,
    )
    assert [m.iteration for m in calls] == [0, 5, 10, 15, 20]
    assert list(result.history) == calls
    assert max(m.test_error for m in result.history) < 1e-13


def test_divergence_stops_with_a_hint(small):
    problem, u = small
    with pytest.raises(FloatingPointError, match=r"step 0.01 is too large.*step=0.001") as info:
        tubal_gd(u, problem.matrix, problem.y, rank=2, step=1e-2, iterations=1000)
    assert f"more than {DIVERGENCE_FACTOR:g} times" in str(info.value)


def _bad(problem, u, **changes):
    args = dict(
        u0=u, matrix=problem.matrix, y=problem.y, rank=2, step=1e-4, iterations=2,
        truth=problem.truth.tensor,
    )  # fmt: skip
    args.update(changes)
    return lambda: tubal_gd(**args)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        (dict(rank=8), r"rank: expected an integer r\* with 1 <= r\* <= min\(n, R\) = 5"),
        (dict(rank=0), "rank: expected"),
        (dict(u0=np.zeros((5, 1, 4))), r"width R of u0 must be at least r\*"),
        (dict(u0=np.zeros((5, 7))), r"u0: expected a factor of shape \(n, R, k\)"),
        (dict(u0=np.zeros((5, 7, 4), complex)), "u0: expected a real floating dtype"),
        (dict(u0=np.zeros((6, 7, 4))), r"matrix: expected shape \(m, n\*n\*k\) = \(m, 144\)"),
        (dict(matrix=np.zeros((0, 100))), r"with m >= 1"),
        (dict(y=np.zeros(59)), "y: expected 60 measurements"),
        (dict(truth=np.zeros((5, 5, 3))), r"truth: expected shape \(5, 5, 4\)"),
        (dict(step=0.0), "step: expected a positive finite step size"),
        (dict(step=-1e-3), "step: expected a positive finite step size"),
        (dict(step=math.inf), "step: expected a positive finite step size"),
        (dict(iterations=-1), "iterations: expected an integer >= 0"),
        (dict(log_every=0), "log_every: expected an integer >= 1"),
        (dict(rank_rtol=1.5), r"rank_rtol: expected a threshold in \(0, 1\)"),
    ],
)
def test_bad_input(small, changes, match):
    problem, u = small
    with pytest.raises(ValueError, match=match):
        _bad(problem, u, **changes)()


@pytest.mark.parametrize("flip", ["negative", "asymmetric"])
def test_truth_must_be_symmetric_psd(small, rng, flip):
    problem, u = small
    truth = problem.truth.tensor
    bad = -truth if flip == "negative" else truth + 0.1 * rng.standard_normal(truth.shape)
    with pytest.raises(ValueError, match="truth: expected a symmetric positive semidefinite"):
        _bad(problem, u, truth=bad)()


def test_folded_sensing_must_fit(small):
    problem, u = small
    sensing = SymmetricSensing(problem.matrix, SMALL.n, SMALL.k)
    result = tubal_gd(u, sensing, problem.y, rank=2, step=1e-4, iterations=1)
    assert result.u.shape == u.shape
    with pytest.raises(ValueError, match="does not fit a factor with n=5, k=3"):
        tubal_gd(u[:, :, :3], sensing, problem.y, rank=2, step=1e-4, iterations=1)
    with pytest.raises(ValueError, match="matrix: expected a sensing matrix"):
        tubal_gd(u, None, problem.y, rank=2, step=1e-4, iterations=1)
