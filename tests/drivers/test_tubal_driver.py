"""End-to-end tests of ``python -m drivers.tubal`` (arXiv 2410.16247's experiments)."""

from __future__ import annotations

import numpy as np
import pytest

import drivers.tubal as driver
from problems.tubal_sensing import TubalSensingParams, initial_factor, make_problem
from solvers.tubal_gd import tubal_gd
from tensorsim.config import ConfigError, load_with_preset

xr = pytest.importorskip("xarray")

from tensorsim.testing import load_dataset  # noqa: E402

#: A small sweep: 2 widths x 2 scales x 2 trials of 300 iterations on the init_scale problem.
SWEEP = [
    "--set", "preset=init_scale",
    "--set", "experiment.sweep.widths=[20, 40]",
    "--set", "experiment.sweep.alphas=[1e-2, 1e-4]",
    "--set", "experiment.sweep.trials=2",
    "--set", "experiment.solver.iterations=300",
    "--set", "experiment.solver.log_every=100",
]  # fmt: skip


def test_sweep_file_layout_and_values(tmp_path):
    out = tmp_path / "sweep.nc"
    summary = driver.main([*SWEEP, "--set", f"output.path={out}"])
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.attrs["preset"] == "init_scale"
    assert ds.attrs["symmetric_dof"] == 210
    assert dict(ds.sizes) == {"setting": 4, "trial": 2, "iteration": 4, "tube": 10}
    for name in (*driver.MONITORS, "tube_norms"):
        assert ds[name].dims[:3] == ("setting", "trial", "iteration"), name
    assert ds["tube_norms"].dims[3] == "tube" and ds["wall_time"].dims == ("setting", "trial")
    np.testing.assert_array_equal(ds["iteration"], [0, 100, 200, 300])
    np.testing.assert_array_equal(ds["width"], [20, 20, 40, 40])
    np.testing.assert_array_equal(ds["alpha"], [1e-2, 1e-4, 1e-2, 1e-4])
    assert ds["tubal_rank"].dtype == np.int64
    # setting 3 (R = 40, alpha = 1e-4), trial 1: the solver called directly
    problem = make_problem(TubalSensingParams(rank=3, m=285, symmetric=True), [0, 0])
    u0 = initial_factor(10, 40, 4, alpha=1e-4, rng=np.random.default_rng([0, 1, 1]))
    history = tubal_gd(
        u0,
        problem.matrix,
        problem.y,
        rank=3,
        step=1e-5,
        iterations=300,
        truth=problem.truth.tensor,
        log_every=100,
        rank_rtol=1e-2,
    ).history
    for name in driver.MONITORS:
        np.testing.assert_array_equal(
            ds[name][3, 1].values, [getattr(m, name) for m in history], err_msg=name
        )
    np.testing.assert_array_equal(summary["final_test_error"], ds["test_error"][:, :, -1])
    # every trial starts from its own U_0; the problem is shared unless redrawn
    loss0 = ds["loss"][:, :, 0].values
    assert np.all(loss0[:, 0] != loss0[:, 1])
    norms = ds["tube_norms"][0, :, 0].values
    assert not np.allclose(norms[0], norms[1])


def test_redraw_problem_gives_each_trial_its_own_measurements(tmp_path):
    out = tmp_path / "redraw.nc"
    driver.main(
        [
            *SWEEP,
            "--set",
            "experiment.sweep.widths=[20]",
            "--set",
            "experiment.sweep.alphas=[1e-6]",
            "--set",
            "experiment.solver.iterations=0",
            "--set",
            "experiment.sweep.redraw_problem=true",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    ds = load_dataset(out)
    assert ds.sizes["iteration"] == 1
    # at U_0 ~ 0 the loss is ||y||^2 / 2: different problems give different losses
    loss0 = ds["loss"][0, :, 0].values
    assert abs(loss0[0] - loss0[1]) > 1e-3 * loss0[0]


def test_init_scale_final_error_decreases_with_alpha(tmp_path):
    """The paper's Fig. 4 setting with one trial and four scales (4000 iterations each)."""
    out = tmp_path / "alpha.nc"
    summary = driver.main(
        [
            "--set",
            "preset=init_scale",
            "--set",
            "experiment.sweep.alphas=[1e-2, 1e-4, 1e-6, 1e-8]",
            "--set",
            "experiment.sweep.trials=1",
            "--set",
            "experiment.solver.log_every=4000",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    final = summary["final_test_error"][:, 0]
    assert np.all(np.diff(final) < 0)  # measured 7.5e-3, 3.9e-4, 9.1e-6, 8.6e-7
    # measured log-log slope 0.67, far below the paper's guide 21/16 (see docs/tubal.md)
    assert summary["alpha_slope"] > 0.5


def test_underdetermined_small_alpha_recovers_large_alpha_does_not(tmp_path):
    out = tmp_path / "under.nc"
    summary = driver.main(
        [
            "--set",
            "preset=underdetermined",
            "--set",
            "experiment.sweep.alphas=[1e-6, 1.0]",
            "--set",
            "experiment.sweep.trials=1",
            "--set",
            "experiment.solver.log_every=1000",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    ds = load_dataset(out)
    assert ds.attrs["symmetric_dof"] == 210 and "m = 120" in ds.attrs["config"]
    small, large = summary["final_test_error"][:, 0]
    assert small < 1e-3  # measured 5.3e-5
    assert large > 1e-1  # measured 5.3
    assert ds["tubal_rank"][0, 0, -1] == 1 and ds["tubal_rank"][1, 0, -1] > 5


def test_presets():
    def load(*overrides):
        return load_with_preset(
            driver.TubalRun, None, list(overrides), driver.PRESETS, table="experiment"
        )

    fig2 = load().experiment
    assert (fig2.problem.m, fig2.problem.rank, fig2.problem.symmetric) == (254, 2, False)
    assert (fig2.solver.width, fig2.solver.alpha, fig2.solver.iterations) == (100, 1e-7, 10000)
    over = load("preset=overparam").experiment
    assert over.sweep.widths == (10, 50, 100, 200, 400) and over.sweep.trials == 15
    assert (over.problem.m, over.problem.rank, over.problem.symmetric) == (285, 3, True)
    scale = load("preset=init_scale", "experiment.sweep.trials=3").experiment
    assert scale.sweep.alphas == (1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
    assert scale.sweep.trials == 3 and scale.solver.width == 200
    assert len(scale.settings()) == 7
    under = load("preset=underdetermined").experiment
    assert under.problem.m < 210 and under.problem.rank == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--set", "preset=init_scales"], "preset.*did you mean 'init_scale'"),
        (["--set", "experiment.solver.width=1"], "'solver.width'.*at least the tubal rank"),
        (["--set", "experiment.sweep.widths=[1, 5]"], "'sweep.widths'.*at least"),
        (["--set", "experiment.problem.m=0"], "experiment.problem.m"),
        (["--set", "experiment.solver.step=-1"], "experiment.solver.step"),
        (["--set", "experiment.sweep.alphas=[0.0]"], "experiment.sweep.alphas"),
        (["--set", "experiment.problem.nn=3"], "did you mean 'experiment.problem.n'"),
    ],
)
def test_bad_input(tmp_path, args, match):
    with pytest.raises(ConfigError, match=match):
        driver.main([*args, "--set", f"output.path={tmp_path / 'x.nc'}"])
    assert not (tmp_path / "x.nc").exists()


def test_divergence_names_the_step(tmp_path):
    with pytest.raises(FloatingPointError, match="try a smaller one"):
        driver.main(
            [
                *SWEEP,
                "--set",
                "experiment.solver.step=0.01",
                "--set",
                f"output.path={tmp_path / 'x.nc'}",
            ]  # fmt: skip
        )


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "sweep.nc"
    driver.main([*SWEEP, "--set", f"output.path={out}"])
    driver.main(["plot", str(out)])
    for suffix in ("errors", "alpha", "rank"):
        assert (tmp_path / f"sweep_{suffix}.png").stat().st_size > 10_000
    single = tmp_path / "single.nc"
    driver.main(
        [
            "--set",
            "experiment.solver.iterations=200",
            "--set",
            f"output.path={single}",
        ]  # fmt: skip
    )
    driver.main(["plot", str(single)])
    assert (tmp_path / "single_errors.png").exists() and not (
        tmp_path / "single_alpha.png"
    ).exists()


@pytest.mark.mpi
def test_two_ranks_equal_serial(tmp_path, two_ranks):
    serial, parallel = tmp_path / "serial.nc", tmp_path / "mpi.nc"
    driver.main([*SWEEP, "--set", f"output.path={serial}"])
    two_ranks(["-m", "drivers.tubal", *SWEEP, "--set", f"output.path={parallel}"])
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2 and b.attrs["finished"] == 1
    for name in a.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)


@pytest.mark.slow
def test_init_scale_preset(tmp_path):
    """The full Fig. 4 sweep: 7 scales x 20 trials (about two minutes)."""
    summary = driver.main(
        ["--set", "preset=init_scale", "--set", f"output.path={tmp_path / 'a.nc'}"]
    )
    mean = summary["final_test_error"].mean(axis=1)
    assert np.all(np.diff(mean) < 0)  # measured 7.5e-3 ... 8.7e-7
    assert summary["alpha_slope"] > 0.5  # measured 0.70 (the paper's guide: 21/16)
