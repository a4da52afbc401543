"""End-to-end tests of ``python -m drivers.migs`` (sweep, file, analysis, plots)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
xr = pytest.importorskip("xarray")

import drivers.migs as driver  # noqa: E402
from problems.gaussian_identities import (  # noqa: E402
    GaussianIdentitiesParams,
    make_data,
    make_problem,
)
from solvers.migs import TrainingParams, train_run  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.io import read_checkpoint  # noqa: E402
from tensorsim.nn.gaussians import MultiIdentityGaussians  # noqa: E402
from tensorsim.nn.state import state_from_arrays  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

N_I, N_G = 3, 6 + 4 * 2

#: 3 identities x 14 Gaussians, 10 x 10 images, 6 steps per model.
TINY = [
    "--set", f"experiment.problem.n_identities={N_I}",
    "--set", "experiment.problem.n_torso=6",
    "--set", "experiment.problem.n_limb=2",
    "--set", "experiment.problem.image_size=10",
    "--set", "experiment.problem.focal=12.0",
    "--set", "experiment.problem.test_poses=1",
    "--set", "experiment.problem.test_views=2",
    "--set", "experiment.training.steps=6",
    "--set", "experiment.training.batch=2",
    "--set", "experiment.training.eval_every=3",
    "--set", "experiment.training.unseen_steps=3",
    "--set", "experiment.cp_ranks=[2, 3]",
    "--set", "experiment.tucker_ranks=[2, 3, 4]",
    "--set", "experiment.panels=[0, 1]",
]  # fmt: skip

PROBLEM = GaussianIdentitiesParams(
    n_identities=N_I, n_torso=6, n_limb=2, image_size=10, focal=12.0, test_poses=1, test_views=2
)


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("migs") / "migs.nc"
    summary = driver.main(["sweep", *TINY, "--set", f"output.path={out}"])
    return out, summary


def test_file_layout_and_parameter_counts(run_file):
    path, summary = run_file
    ds = load_dataset(path)
    assert ds.attrs["finished"] == 1 and ds.attrs["preset"] == "few_views"
    assert dict(ds.sizes) == {
        "run": 4, "eval_step": 3, "identity": N_I, "panel": 4, "y": 10, "x": 10, "channel": 3
    }  # fmt: skip
    assert [str(m) for m in ds["model"].values] == [
        "per_identity", "cp_r2", "cp_r3", "tucker_r2x3x4"
    ]  # fmt: skip
    assert [str(f) for f in ds["form"].values] == ["dense", "cp", "cp", "tucker"]
    np.testing.assert_array_equal(ds["eval_step"], [0, 3, 6])
    expected = [N_I * N_G * 14, 2 * (N_I + N_G + 14), 3 * (N_I + N_G + 14),
                2 * 3 * 4 + N_I * 2 + N_G * 3 + 14 * 4]  # fmt: skip
    np.testing.assert_array_equal(ds["params"], expected)
    np.testing.assert_array_equal(ds["params_per_identity"], [N_G * 14, 2, 3, 2])
    np.testing.assert_allclose(ds["test_psnr"], ds["test_psnr_identity"].mean("identity"))
    np.testing.assert_allclose(ds["test_psnr"], ds["eval_test_psnr"][:, -1])
    assert np.all(np.isfinite(ds["unseen_psnr"])) and np.all(ds["train_seconds"] > 0)
    assert set(summary["table"]) == {str(m) for m in ds["model"].values}


def test_checkpointed_models_reproduce_the_stored_test_psnr(run_file):
    path, _ = run_file
    ds = load_dataset(path)
    ckpt = read_checkpoint(path)
    data = make_data(make_problem(PROBLEM))
    for i, (form, rank) in enumerate(
        [("dense", None), ("cp", 2), ("cp", 3), ("tucker", (2, 3, 4))]
    ):
        model = MultiIdentityGaussians(N_I, N_G, form=form, rank=rank)
        prefix = f"models/run{i}/"
        arrays = {
            k[len(prefix) :]: torch.as_tensor(v)
            for k, v in ckpt.arrays.items()
            if k.startswith(prefix)
        }
        model.load_state_dict(state_from_arrays(arrays, ckpt.attrs[f"layout_run{i}"]))
        with torch.no_grad():
            psnrs = [data.test_psnr(model.identity_tensor(k), k) for k in range(N_I)]
        np.testing.assert_allclose(psnrs, ds["test_psnr_identity"].values[i], rtol=1e-12)


def test_sweep_run_is_reproduced_by_a_direct_call(run_file):
    ds = load_dataset(run_file[0])
    training = TrainingParams(steps=6, batch=2, eval_every=3, unseen_steps=3)
    out = train_run(make_data(make_problem(PROBLEM)), "cp", (3,), training, panels=(0, 1))
    np.testing.assert_array_equal(ds["eval_test_psnr"].values[2], out["eval_test_psnr"])
    assert ds["unseen_psnr"].values[2] == out["unseen_psnr"]


def test_plot_writes_pngs(run_file):
    assert driver.main(["plot", str(run_file[0])]) is None
    paths = [run_file[0].with_name(f"migs_{name}.png") for name in ("renders", "psnr")]
    assert all(p.stat().st_size > 1000 for p in paths)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("experiment.tucker_ranks=[2, 3]", "tucker_ranks"),
        ("experiment.cp_ranks=[0]", "cp_ranks"),
        ("experiment.panels=[40]", "panels"),
        ("experiment.problem.n_identities=0", "n_identities"),
        ("experiment.training.batch=13", "batch"),  # 12 identities x 1 training view
        # options that would have no effect are refused
        ("experiment.cp_ranks=[]\0experiment.tucker_ranks=[]\0experiment.training.lr_factors=1",
         "lr_factors"),
        ("experiment.training.unseen_steps=0\0experiment.training.unseen_lr=0.1", "unseen_lr"),
    ],
)  # fmt: skip
def test_bad_config_is_rejected(override, message):
    with pytest.raises(ConfigError, match=message):
        driver.MIGSSweep().load(None, override.split("\0"))


def test_restart_needs_the_journal(tmp_path):
    """A sweep keeps its finished cases in a journal; --restart needs that journal."""
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["sweep", "--restart", str(tmp_path / "x.nc")])


@pytest.mark.slow  # process start-up of 2 ranks on 2 loaded cores
@pytest.mark.mpi
def test_two_ranks_give_the_serial_file(two_ranks, run_file, tmp_path):
    out = tmp_path / "mpi.nc"
    two_ranks(["-m", "drivers.migs", "sweep", *TINY, "--set", f"output.path={out}"])
    serial, parallel = load_dataset(run_file[0]), load_dataset(out)
    assert parallel.attrs["mpi_size"] == 2
    for name in ("params", "test_psnr_identity", "eval_test_psnr", "unseen_psnr", "renders"):
        np.testing.assert_array_equal(parallel[name], serial[name], err_msg=name)
