"""Tests of the multi-identity Gaussian problem (problems.gaussian_identities)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.gaussian_identities import (  # noqa: E402
    GaussianIdentitiesParams,
    camera,
    initial_params,
    make_data,
    make_problem,
    psnr,
    render,
)
from tensorsim.config import ConfigError  # noqa: E402

SMALL = GaussianIdentitiesParams(
    n_identities=5, n_torso=8, n_limb=3, train_views=2, test_poses=2, test_views=3,
    image_size=12, focal=14.0,
)  # fmt: skip


@pytest.fixture(scope="module")
def problem():
    return make_problem(SMALL)


def test_identity_offsets_have_the_planted_cp_rank(problem):
    n_i, n_g, m = problem.truth.shape
    assert (n_i, n_g, m) == (SMALL.n_identities + 1, SMALL.n_gaussians, 14)
    offsets = problem.truth - problem.template[None]
    s = np.linalg.svd(offsets.reshape(n_i, -1), compute_uv=False)  # identity-mode unfolding
    assert s[SMALL.offset_rank - 1] > 1e-3 * s[0] and s[SMALL.offset_rank] < 1e-12 * s[0]
    # per-Gaussian and per-parameter unfoldings have rank <= offset_rank as well
    for mode in (1, 2):
        mat = np.moveaxis(offsets, mode, 0).reshape(offsets.shape[mode], -1)
        assert np.linalg.matrix_rank(mat, tol=1e-10 * s[0]) == SMALL.offset_rank


def test_poses_are_articulations_about_fixed_joints(problem):
    rots, trans = problem.pose_rotations, problem.pose_translations
    np.testing.assert_allclose(rots[:, 0], np.broadcast_to(np.eye(3), rots[:, 0].shape))
    np.testing.assert_allclose(trans[:, 0], 0.0)
    np.testing.assert_allclose(rots @ rots.transpose(0, 1, 3, 2), np.broadcast_to(
        np.eye(3), rots.shape), atol=1e-12)  # fmt: skip
    np.testing.assert_allclose(np.linalg.det(rots), 1.0)
    # each limb's joint (the limb Gaussian nearest the torso lies next to it) is a fixed point:
    # R j + t = j  <=>  t = (I - R) j, solvable for j in every pose with the same j
    for part in range(1, 5):
        a = np.concatenate([np.eye(3) - rots[k, part] for k in range(3)])
        b = np.concatenate([trans[k, part] for k in range(3)])
        j, *_ = np.linalg.lstsq(a, b, rcond=None)
        np.testing.assert_allclose(a @ j, b, atol=1e-12)
    # not a global transform: limbs of one pose turn by different rotations
    assert np.abs(rots[0, 1] - rots[0, 2]).max() > 0.1


def test_training_and_test_split(problem):
    ids, poses, views = problem.train.T
    np.testing.assert_array_equal(np.bincount(ids), [SMALL.train_views] * SMALL.n_identities)
    assert problem.unseen not in ids
    test_poses, test_views = set(problem.test[:, 0]), set(problem.test[:, 1])
    assert not test_poses & {*poses, problem.unseen_train[0]}
    assert not test_views & {*views, problem.unseen_train[1]}
    assert problem.test.shape == (SMALL.test_poses * SMALL.test_views, 2)


def test_cameras_look_at_the_origin_and_render(problem):
    for v in range(problem.views.shape[0]):
        cam = camera(problem, v)
        centre = cam.translation  # the origin in camera coordinates
        np.testing.assert_allclose(centre[:2].numpy(), 0.0, atol=1e-12)
        np.testing.assert_allclose(float(centre[2]), SMALL.distance)
    x = torch.as_tensor(problem.truth[0]).requires_grad_()
    img = render(problem, x, 0, 0)
    pix = img.detach()
    assert img.shape == (12, 12, 3) and float(pix.min()) >= 0 and float(pix.max()) <= 1
    assert float(pix.max()) > 0.2  # the body is in view
    img.sum().backward()
    assert x.grad.abs().sum() > 0


def test_psnr_and_bad_input(problem):
    assert psnr(np.zeros((2, 2)), np.full((2, 2), 0.1)) == pytest.approx(20.0)
    with pytest.raises(ValueError, match="image: expected shape"):
        psnr(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"view: expected an index in \[0, "):
        camera(problem, problem.views.shape[0])
    with pytest.raises(ValueError, match=r"pose: expected an index in \[0, "):
        render(problem, problem.truth[0], -1, 0)
    with pytest.raises(ConfigError, match="offset_scales"):
        GaussianIdentitiesParams(offset_scales=(0.1, 0.1))
    with pytest.raises(TypeError, match="p: expected GaussianIdentitiesParams"):
        make_problem({"n_identities": 3})


def test_make_data_renders_the_truth_and_scores_it_exactly(problem):
    data = make_data(problem)
    n_train, n_test, size = problem.train.shape[0], problem.test.shape[0], SMALL.image_size
    assert tuple(data.train.shape) == (n_train, size, size, 3)
    assert tuple(data.test.shape) == (SMALL.n_identities + 1, n_test, size, size, 3)
    truth = torch.as_tensor(problem.truth)
    with torch.no_grad():  # the ground truth reproduces its own images: infinite PSNR
        assert data.test_psnr(truth[1], 1) == np.inf
        assert data.train_psnr(lambda i: truth[i]) == np.inf
        assert data.unseen_train_psnr(truth[problem.unseen]) == np.inf
        assert data.test_psnr(truth[0], 1) < 40.0  # another identity does not
    start = data.initial_params(np.random.default_rng(0))
    np.testing.assert_array_equal(start, initial_params(problem, np.random.default_rng(0)))
