"""Training of multi-identity Gaussians (solvers.migs): labels, rates, the starting model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.gaussian_identities import (  # noqa: E402
    GaussianIdentitiesParams,
    initial_params,
    make_data,
    make_problem,
)
from solvers.migs import TrainingParams, build_model, model_label, train_run  # noqa: E402

PROBLEM = GaussianIdentitiesParams(
    n_identities=2, n_torso=4, n_limb=1, image_size=8, focal=10.0, test_poses=1, test_views=1
)


@pytest.fixture(scope="module")
def data():
    return make_data(make_problem(PROBLEM))


def test_model_labels():
    assert model_label("dense", ()) == "per_identity"
    assert model_label("cp", (8,)) == "cp_r8"
    assert model_label("tucker", (4, 12, 10)) == "tucker_r4x12x10"


def test_learning_rates_per_block():
    lrs = TrainingParams(lr_xyz=1.0, lr_factors=3.0).lrs()
    assert lrs["xyz"] == 1.0 and lrs["opacity"] == TrainingParams().lr_opacity
    assert lrs["identity"] == lrs["gaussian"] == lrs["core"] == 3.0


def test_every_identity_starts_near_the_problem_prior_and_the_seed_fixes_it(data):
    prior = initial_params(data.problem, np.random.default_rng([5, 1]))
    for form, rank in (("dense", ()), ("cp", (14,)), ("tucker", (4, 14, 14))):
        model = build_model(data, form, rank, seed=5)
        again = build_model(data, form, rank, seed=5)
        for i in range(PROBLEM.n_identities):  # the prior plus the model's 1% noise
            got = model.identity_tensor(i).detach().numpy()
            assert np.linalg.norm(got - prior) < 0.05 * np.linalg.norm(prior), form
            np.testing.assert_array_equal(got, again.identity_tensor(i).detach().numpy())


def test_zero_steps_leave_the_start_and_the_unseen_row_fit_improves_its_image(data):
    training = TrainingParams(steps=1, eval_every=1, unseen_steps=0, batch=1)
    still = train_run(data, "cp", (2,), training, panels=(0,))
    fitted = train_run(
        data, "cp", (2,), TrainingParams(steps=1, eval_every=1, unseen_steps=20, batch=1),
        panels=(0,),
    )  # fmt: skip
    np.testing.assert_array_equal(still["eval_test_psnr"], fitted["eval_test_psnr"])
    assert fitted["unseen_train_psnr"] > still["unseen_train_psnr"]
    assert still["renders"].shape == (2, 8, 8, 3)
    assert still["params"] == 2 * (PROBLEM.n_identities + PROBLEM.n_gaussians + 14)
