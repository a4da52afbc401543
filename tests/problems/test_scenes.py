"""Procedural radiance-field scenes: cameras, rays, the rods' ranks, true renders."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.scenes import (  # noqa: E402
    Camera,
    SceneParams,
    camera_rays,
    look_at,
    make_scene,
    make_views,
    orbit_cameras,
    render_truth,
    rod_density,
)
from tensorsim.config import ConfigError  # noqa: E402

D = torch.float64


def test_cameras_look_at_the_target_with_the_field_of_view():
    cam = look_at(np.array([3.0, 1.0, 2.0]), fov_deg=40.0, size=9)
    r = cam.rotation
    np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)
    rays = camera_rays(cam, dtype=D).reshape(9, 9, 6)
    centre = rays[4, 4]
    np.testing.assert_allclose(centre[3:].numpy(), -cam.position / np.linalg.norm(cam.position))
    torch.testing.assert_close(rays[..., 3:].norm(dim=-1), torch.ones(9, 9, dtype=D))
    # the outermost pixel centres are (W/2 - 1/2) / f off axis: tan(angle) = 8/9 tan(20 deg)
    cos = float((rays[4, 0, 3:] * centre[3:]).sum())
    assert math.tan(math.acos(cos)) == pytest.approx(8 / 9 * math.tan(math.radians(20)))
    # image rows go from the top: the first row looks higher (along the camera's up)
    up = torch.tensor(r[:, 1])
    assert float(rays[0, 4, 3:] @ up) > 0 > float(rays[8, 4, 3:] @ up)


def test_cameras_that_are_not_proper_rotations_are_rejected():
    good = look_at(np.array([0.0, -3.0, 0.5]), fov_deg=30.0, size=4)
    reflection = good.rotation @ np.diag([1.0, 1.0, -1.0])
    with pytest.raises(ValueError, match=r"rotation: expected a proper rotation.*det R = -1"):
        Camera(reflection, good.position, good.focal, 4, 4)
    with pytest.raises(ValueError, match="rotation: expected a proper rotation"):
        Camera(1.01 * good.rotation, good.position, good.focal, 4, 4)
    with pytest.raises(ValueError, match="rotation: expected a finite"):
        Camera(np.eye(2), good.position, good.focal, 4, 4)
    with pytest.raises(ValueError, match="focal"):
        Camera(good.rotation, good.position, 0.0, 4, 4)
    with pytest.raises(ValueError, match="up: must not be parallel"):
        look_at(np.array([0.0, 0.0, 3.0]), fov_deg=30.0, size=4)
    with pytest.raises(TypeError, match="camera"):
        camera_rays("camera")


def test_orbits_interleave_and_stay_on_the_radius():
    train = orbit_cameras(6, radius=2.5, fov_deg=40, size=4)
    test = orbit_cameras(6, radius=2.5, fov_deg=40, size=4, phase=0.5)
    pos = np.array([c.position for c in train + test])
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), 2.5)
    assert np.min(np.linalg.norm(pos[:6, None] - pos[None, 6:], axis=-1)) > 0.3


def _unfolding_rank(values: np.ndarray, rtol: float = 1e-3) -> int:
    s = np.linalg.svd(values.reshape(values.shape[0], -1), compute_uv=False)
    return int((s > rtol * s[0]).sum())


def test_a_rotated_rod_is_high_rank_globally_and_nearly_rank_one_locally():
    n = 32
    g = torch.linspace(-1, 1, n, dtype=D)
    pts = torch.stack(torch.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)
    c = torch.zeros(1, 3, dtype=D)
    along_x = torch.tensor([[1.0, 0.0, 0.0]], dtype=D)
    oblique = torch.nn.functional.normalize(torch.tensor([[1.0, 0.8, -0.6]], dtype=D), dim=1)
    aligned = rod_density(pts, c, along_x, 0.05, 1.2).reshape(n, n, n).numpy()
    rotated = rod_density(pts, c, oblique, 0.05, 1.2).reshape(n, n, n).numpy()
    assert _unfolding_rank(aligned) == 1  # separable: cap(x) * gauss(y) * gauss(z)
    assert _unfolding_rank(rotated, 1e-2) >= 12
    # over a cube of half-side one rod width on the rod's axis: numerically rank two at 1e-2,
    # with the second singular value of the unfolding about a tenth of the first
    lg = torch.linspace(-0.05, 0.05, 16, dtype=D)
    cube = torch.stack(torch.meshgrid(lg, lg, lg, indexing="ij"), -1).reshape(-1, 3)
    block = rod_density(cube + 0.2 * oblique, c, oblique, 0.05, 1.2).reshape(16, 16, 16).numpy()
    s = np.linalg.svd(block.reshape(16, -1), compute_uv=False)
    assert s[1] / s[0] < 0.2 and _unfolding_rank(block, 1e-2) <= 3


def test_true_render_of_a_blob_matches_its_analytic_optical_depth():
    p = SceneParams(n_blobs=1, n_rods=0, blob_radius=0.1, peak=5.0, truth_samples=256)
    scene = make_scene(p)
    c = scene.blob_centres[0]
    # rays through the blob centre along the axes and a diagonal: optical depth peak r sqrt(2 pi)
    dirs = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [1.0, 1.0, 1.0]], dtype=D), dim=1
    )
    rays = torch.cat([c - 3 * dirs, dirs], 1)
    from tensorsim.nn.render import volume_render

    out = volume_render(rays, scene.box, density=scene.density, colour=scene.colour,
                        n_samples=256)  # fmt: skip
    # the blob's tails beyond the box (>= 0.5 / 0.1 = 5 sigma away) are negligible
    t = math.exp(-p.peak * p.blob_radius * math.sqrt(2 * math.pi))
    torch.testing.assert_close(out.transmittance, torch.full((4,), t, dtype=D), rtol=0, atol=1e-6)
    assert bool((scene.colour(torch.rand(100, 3, dtype=D)) > 0.09).all())
    rgb = render_truth(scene, rays, n_samples=256)
    torch.testing.assert_close(rgb, out.rgb)


def test_views_and_scene_parameters():
    p = SceneParams(image_size=6, n_train=3, n_test=2, truth_samples=32, n_rods=2)
    v = make_views(make_scene(p))
    assert v.train_rays.shape == (3 * 36, 6) and v.test_images.shape == (2, 6, 6, 3)
    assert float(v.train_rgb.min()) >= 0.0 and float(v.train_rgb.max()) <= 1.0 + 1e-6
    a, b = make_scene(p), make_scene(p)
    torch.testing.assert_close(a.rod_directions, b.rod_directions)
    assert float(a.rod_directions.abs().max()) < 0.8  # oblique rods
    with pytest.raises(ConfigError):
        SceneParams(rod_width=0.0)
    with pytest.raises(TypeError, match="params"):
        make_scene({"n_rods": 2})
