"""Tests of the plain-torch Gaussian splatting renderer (tensorsim.nn.splat)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.splat import (  # noqa: E402
    Camera,
    check_rotation,
    covariance_3d,
    look_at,
    quaternion_to_rotation,
    render_2d,
    render_3d,
)

F64 = torch.float64


def _t(x):
    return torch.as_tensor(np.asarray(x, dtype=float))


def _pixels(h, w):
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    return u, v


def _gauss_numpy(h, w, mean, cov, opacity):
    """alpha(p) = o exp(-d^T S^-1 d / 2) on the pixel centres (independent of the renderer)."""
    u, v = _pixels(h, w)
    d = np.stack([u - mean[0], v - mean[1]], axis=-1)
    q = np.einsum("...i,ij,...j->...", d, np.linalg.inv(cov), d)
    return opacity * np.exp(-0.5 * q)


def test_single_isotropic_gaussian_matches_the_analytic_image():
    h, w, sigma, o = 16, 20, 2.5, 0.7
    mean, color, bg = np.array([10.3, 7.6]), np.array([0.2, 0.5, 0.9]), np.array([0.1, 0.3, 0.0])
    img = render_2d(
        _t([mean]), _t([np.eye(2) * sigma**2]), _t([color]), _t([o]),
        height=h, width=w, background=_t(bg),
    )  # fmt: skip
    u, v = _pixels(h, w)
    alpha = o * np.exp(-((u - mean[0]) ** 2 + (v - mean[1]) ** 2) / (2 * sigma**2))
    expected = alpha[..., None] * color + (1 - alpha[..., None]) * bg
    assert img.shape == (h, w, 3) and img.dtype == F64
    np.testing.assert_allclose(img.numpy(), expected, rtol=0, atol=1e-13)


def test_two_anisotropic_gaussians_composite_front_to_back_in_the_given_order():
    h, w = 12, 14
    means = np.array([[5.0, 6.0], [8.0, 5.5]])
    rot = np.array([[math.cos(0.6), -math.sin(0.6)], [math.sin(0.6), math.cos(0.6)]])
    covs = np.stack([rot @ np.diag([9.0, 2.0]) @ rot.T, np.diag([4.0, 6.0])])
    colors, ops = np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([0.8, 0.995])
    a0 = _gauss_numpy(h, w, means[0], covs[0], ops[0])
    a1 = np.minimum(_gauss_numpy(h, w, means[1], covs[1], ops[1]), 0.99)  # alpha_max clamp
    for order, (first, second) in ((None, (0, 1)), (torch.tensor([1, 0]), (1, 0))):
        img = render_2d(
            _t(means), _t(covs), _t(colors), _t(ops), height=h, width=w, order=order
        ).numpy()
        al = {0: a0, 1: a1}
        fa, sa = al[first], al[second]
        expected = fa[..., None] * colors[first] + ((1 - fa) * sa)[..., None] * colors[second]
        np.testing.assert_allclose(img, expected, rtol=0, atol=1e-13)


def _camera(eye, focal=30.0, size=(24, 20)):
    return look_at(
        torch.tensor(eye, dtype=F64),
        torch.zeros(3, dtype=F64),
        torch.tensor([0.0, -1.0, 0.0], dtype=F64),
        focal=focal,
        width=size[0],
        height=size[1],
    )


def test_isotropic_gaussian_on_the_optical_axis_projects_to_the_2d_analytic_image():
    cam = _camera([0.0, 0.0, -5.0])  # looks along +z, at depth 5 from the origin
    s, f = 0.4, 30.0
    img = render_3d(
        _t([[0.0, 0.0, 0.0]]), _t([np.eye(3) * s**2]), _t([[0.3, 0.6, 0.9]]), _t([0.9]), cam,
        blur=0.0,
    )  # fmt: skip
    sigma = f * s / 5.0
    u, v = _pixels(20, 24)
    alpha = 0.9 * np.exp(-((u - 12.0) ** 2 + (v - 10.0) ** 2) / (2 * sigma**2))
    np.testing.assert_allclose(img.numpy(), alpha[..., None] * [0.3, 0.6, 0.9], atol=1e-13)


def test_off_axis_anisotropic_gaussian_follows_the_ewa_projection():
    cam = _camera([1.0, 0.5, -4.0], focal=25.0)
    mean = np.array([0.3, -0.2, 0.4])
    q = np.array([0.9, 0.2, -0.3, 0.25])
    cov = covariance_3d(_t([[0.3, 0.1, 0.2]]), _t([q])).numpy()[0]
    img = render_3d(_t([mean]), _t([cov]), _t([[1.0]]), _t([0.6]), cam, blur=0.3).numpy()
    # independent EWA: camera point, Jacobian of the pinhole map, projected covariance
    r, t = cam.rotation.numpy(), cam.translation.numpy()
    x, y, z = r @ mean + t
    jac = np.array([[25 / z, 0, -25 * x / z**2], [0, 25 / z, -25 * y / z**2]])
    cov2 = jac @ r @ cov @ r.T @ jac.T + 0.3 * np.eye(2)
    centre = np.array([25 * x / z + 12, 25 * y / z + 10])
    np.testing.assert_allclose(img[..., 0], _gauss_numpy(20, 24, centre, cov2, 0.6), atol=1e-13)


def test_depth_sorting_makes_the_nearer_gaussian_cover_the_farther_one():
    cam = _camera([0.0, 0.0, -5.0])
    means = _t([[0.0, 0.0, 1.0], [0.05, 0.0, -1.0]])  # the second is nearer the camera
    covs = _t([np.eye(3) * 0.3**2] * 2)
    colors, ops = _t([[1.0, 0.0], [0.0, 1.0]]), _t([0.98, 0.98])
    img = render_3d(means, covs, colors, ops, cam)
    swapped = render_3d(means.flip(0), covs, colors.flip(0), ops.flip(0), cam)
    np.testing.assert_allclose(img.numpy(), swapped.numpy(), rtol=0, atol=1e-15)
    centre = img[10, 12].numpy()
    assert centre[1] > 0.9 and centre[0] < 0.1  # the nearer (second) colour wins


def test_rotation_from_quaternion_matches_scipy():
    transform = pytest.importorskip("scipy.spatial.transform")
    q = np.random.default_rng(0).normal(size=(5, 4))
    r = quaternion_to_rotation(_t(q)).numpy()
    ref = transform.Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()  # scipy: (x, y, z, w)
    np.testing.assert_allclose(r, ref, atol=1e-14)


def test_gradients_of_the_2d_renderer_match_finite_differences():
    means = _t([[2.1, 2.4], [3.0, 1.7]]).requires_grad_()
    covs = _t([[[1.5, 0.3], [0.3, 1.1]], [[0.9, -0.2], [-0.2, 1.3]]]).requires_grad_()
    colors = _t([[0.3, 0.8], [0.9, 0.1]]).requires_grad_()
    ops = _t([0.6, 0.8]).requires_grad_()

    def f(m, c, col, o):
        c = 0.5 * (c + c.mT)
        return render_2d(m, c, col, o, height=4, width=5, background=0.2)

    assert torch.autograd.gradcheck(f, (means, covs, colors, ops))


def test_bad_inputs_raise_clear_errors():
    ok = dict(height=4, width=4)
    one = (_t([[1.0, 1.0]]), _t([[[1.0, 0.0], [0.0, 1.0]]]), _t([[1.0]]), _t([0.5]))
    with pytest.raises(ValueError, match="covariances: expected positive-definite"):
        render_2d(one[0], _t([[[1.0, 0.0], [0.0, -1.0]]]), *one[2:], **ok)
    with pytest.raises(ValueError, match="covariances: expected symmetric"):
        render_2d(one[0], _t([[[1.0, 0.5], [0.0, 1.0]]]), *one[2:], **ok)
    with pytest.raises(ValueError, match="opacities: expected values in"):
        render_2d(*one[:3], _t([1.5]), **ok)
    with pytest.raises(ValueError, match=r"means: expected shape \(N, 2\)"):
        render_2d(_t([1.0, 1.0]), *one[1:], **ok)
    with pytest.raises(TypeError, match="means: expected a torch.Tensor"):
        render_2d(np.ones((1, 2)), *one[1:], **ok)
    with pytest.raises(ValueError, match="height: expected an integer >= 1"):
        render_2d(*one, height=0, width=3)
    with pytest.raises(ValueError, match="scales: expected finite positive"):
        covariance_3d(_t([[0.1, -0.2, 0.3]]), _t([[1.0, 0, 0, 0]]))
    reflection = torch.diag(_t([1.0, 1.0, -1.0]))
    with pytest.raises(ValueError, match=r"rotation: expected a proper rotation \(det \+1\)"):
        check_rotation(reflection)
    with pytest.raises(ValueError, match="rotation: expected an orthogonal matrix"):
        Camera(1.1 * torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64), 10.0, 8, 8)
    with pytest.raises(ValueError, match="focal: expected a positive focal length"):
        Camera(torch.eye(3, dtype=F64), torch.zeros(3, dtype=F64), -1.0, 8, 8)
    with pytest.raises(ValueError, match="q: expected non-zero quaternions"):
        quaternion_to_rotation(torch.zeros(1, 4, dtype=F64))
    cam = _camera([0.0, 0.0, -5.0])
    bad3 = _t([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 0.0]]])
    with pytest.raises(ValueError, match="covariances: expected positive-definite"):
        render_3d(_t([[0.0, 0, 0]]), bad3, _t([[1.0]]), _t([0.5]), cam)
