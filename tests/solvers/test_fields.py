"""Coarse-to-fine training of radiance fields and the coarse occupancy pass (solvers.fields)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.scenes import SceneParams, make_scene, make_views  # noqa: E402
from solvers.fields import OccupancyParams, TrainingParams, coarse_occupancy, train_model  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.models.fields import ModelSpec, build_model  # noqa: E402
from tensorsim.nn.render import psnr  # noqa: E402


@pytest.fixture(scope="module")
def scene_views():
    scene = make_scene(SceneParams(image_size=6, n_train=3, n_test=1, truth_samples=24, n_rods=1))
    return scene, make_views(scene)


TRAIN = TrainingParams(
    steps=8, batch_rays=32, n_samples=8, upsample_steps=(3, 6), eval_every=4,
    shader_hidden=8, app_dim=4,
)  # fmt: skip


def test_upsampling_swaps_the_grids_into_the_optimizer_and_reaches_the_final_resolution(
    scene_views,
):
    scene, views = scene_views
    spec = ModelSpec("cp", 2, 2, (16,), (4,), **TRAIN.shading())
    model = build_model(spec, scene.box, seed=TRAIN.seed)
    out = train_model(model, spec, TRAIN, views)
    # log-spaced 4 -> 8 -> 16 nodes
    assert model.field.density_lines[0].shape[0] == 16
    np.testing.assert_array_equal(out["steps"], [0, 4, 8])
    assert out["field_params"] == 3 * 16 * 3 * 2 + 4 * 2 * 2
    assert out["renders"].shape == (1, 6, 6, 3) and out["renders"].dtype == np.float32
    render = torch.from_numpy(out["renders"].reshape(-1, 3))
    assert out["test_psnr"] == pytest.approx(psnr(render, views.test_rgb), rel=1e-5)
    assert out["test_psnr_curve"][-1] == out["test_psnr"]
    # the same seed gives the same run, bit for bit
    again = train_model(build_model(spec, scene.box, seed=TRAIN.seed), spec, TRAIN, views)
    np.testing.assert_array_equal(out["test_psnr_curve"], again["test_psnr_curve"])
    np.testing.assert_array_equal(out["renders"], again["renders"])


def test_upsample_steps_must_increase_below_steps():
    for bad in ((5, 3), (8,), (3, 3)):
        with pytest.raises(ConfigError, match="upsample_steps"):
            TrainingParams(steps=8, upsample_steps=bad)


def test_coarse_occupancy_marks_cells_and_its_threshold_matters(scene_views):
    scene, views = scene_views
    low, seconds = coarse_occupancy(scene.box, TRAIN, views, OccupancyParams(2, 6, 1e-4))
    high, _ = coarse_occupancy(scene.box, TRAIN, views, OccupancyParams(2, 6, 1e4))
    assert low.dtype == torch.bool and low.shape == (6, 6, 6) and seconds > 0
    assert int(low.sum()) > int(high.sum())
