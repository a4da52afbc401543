"""End-to-end tests of ``python -m drivers.uq``."""

from __future__ import annotations

import numpy as np
import pytest

import drivers.uq as driver
from problems.radiative_transfer import TransportParams, full_rank_solve
from problems.uq import UQParams, collocation_reference
from solvers.bug import INTEGRATORS
from tensorsim.config import ConfigError

xr = pytest.importorskip("xarray")

from tensorsim.testing import load_dataset  # noqa: E402

SMALL = [
    "--set", "problem.transport.cells=21",
    "--set", "problem.transport.degree=5",
    "--set", "problem.nodes_xi=4",
    "--set", "problem.nodes_eta=4",
    "--set", "problem.transport.t_end=0.4",
    "--set", "output.checkpoint_every=5",
]  # fmt: skip
STEPS = 17
PARAMS = UQParams(
    transport=TransportParams(cells=21, degree=5, sigma_s=5.0, t_end=0.4), nodes_xi=4, nodes_eta=4
)

PLANE = [
    "--set", "preset=section_5_3",
    "--set", "problem.transport.cells=16",
    "--set", "problem.transport.degree=3",
    "--set", "problem.nodes_xi=3",
    "--set", "problem.nodes_eta=3",
    "--set", "problem.transport.t_end=0.3",
]  # fmt: skip


def _relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize(
    ("integrator", "rtol", "mean_bound", "var_bound"),
    # measured: mean 5.1e-5, variance 4.2e-3 (augmented, rtol 1e-4);
    #           mean 5.8e-3, variance 7.2e-2 (parallel, rtol 1e-5)
    [("augmented_bug", 1e-4, 2e-4, 2e-2), ("parallel_bug", 1e-5, 2e-2, 0.2)],
)
def test_statistics_match_the_collocation_reference(
    tmp_path, integrator, rtol, mean_bound, var_bound
):
    out = tmp_path / "uq.nc"
    summary = driver.main(
        [
            *SMALL,
            "--set",
            f"solver.integrator={integrator}",
            "--set",
            f"solver.rtol={rtol}",
            "--set",
            "output.reference=true",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    assert summary["steps"] == STEPS and summary["finished"]
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.attrs["integrator"] == integrator
    assert ds.sizes["time"] == STEPS + 1 and ds.sizes["x"] == 21 and ds.sizes["edge"] == 6
    dims = {
        "density_mean": ("time", "x"),
        "density_var": ("time", "x"),
        "ranks": ("time", "edge"),
        "density_mean_reference": ("x",),
        "density_var_reference": ("x",),
        "error_mean": (),
        "error_var": (),
        **{
            name: ("time",)
            for name in ("mass", "max_rank", "trunc_error", "eta", "rejected", "wall_time")
        },
    }
    for name, expected in dims.items():
        assert ds[name].dims == expected, name
    # the stored reference is the library's collocation, the errors are of the final record
    ref_mean, ref_var = collocation_reference(PARAMS, lambda p: full_rank_solve(p)[-1])
    np.testing.assert_allclose(ds["density_mean_reference"], ref_mean, rtol=1e-12, atol=1e-16)
    np.testing.assert_allclose(ds["density_var_reference"], ref_var, rtol=1e-10, atol=1e-18)
    error_mean = _relative(ds["density_mean"][-1].values, ref_mean)
    error_var = _relative(ds["density_var"][-1].values, ref_var)
    np.testing.assert_allclose(float(ds["error_mean"]), error_mean, rtol=1e-9)
    np.testing.assert_allclose(float(ds["error_var"]), error_var, rtol=1e-9)
    assert error_mean < mean_bound and error_var < var_bound
    # E[rho^2] - E[rho]^2 is nonnegative up to cancellation
    assert float(ds["density_var"].min()) > -1e-14 * float(ds["density_mean"].max()) ** 2
    ranks = ds["ranks"].values
    assert ranks.min() >= 2 and ranks.max() <= 50


def test_periodic_expected_mass_is_conserved(tmp_path):
    changes = {}
    for conserve in ("true", "false"):
        out = tmp_path / f"{conserve}.nc"
        driver.main(
            [
                *SMALL,
                "--set",
                "problem.transport.boundary=periodic",
                "--set",
                f"solver.conserve={conserve}",
                "--set",
                f"output.path={out}",
            ]  # fmt: skip
        )
        ds = load_dataset(out)
        assert "density_mean_reference" not in ds  # reference is off by default
        mass = ds["mass"].values
        changes[conserve] = float(np.max(np.abs(mass - mass[0])) / mass[0])
    assert changes["true"] < 1e-12  # measured 2e-15
    assert changes["false"] > 1e-8


def test_section_5_3_preset(tmp_path):
    out = tmp_path / "plane.nc"
    driver.main([*PLANE, "--set", "output.reference=true", "--set", f"output.path={out}"])
    ds = load_dataset(out)
    assert ds["density_mean"].dims == ("time", "x", "y")
    assert ds["density_var"].dims == ("time", "x", "y")
    assert ds["density_mean_reference"].dims == ("x", "y")
    assert ds.sizes["x"] == ds.sizes["y"] == 16 and ds.sizes["edge"] == 7
    assert "sigma_a_eta = 1.0" in ds.attrs["config"]
    assert float(ds["error_mean"]) < 5e-3  # measured 7.5e-4
    assert float(ds["error_var"]) < 5e-3  # measured 5.5e-4
    # absorption sigma_a = 1 + eta removes mass: about exp(-t) of it
    mass = ds["mass"].values
    assert 0.7 < mass[-1] / mass[0] < 0.8


def test_interpolated_reference_matches_the_direct_one(tmp_path):
    refs = {}
    for nodes in (0, 6):  # 9 points: direct; 6 Chebyshev solves in sigma_s, interpolated
        out = tmp_path / f"ref{nodes}.nc"
        driver.main(
            [
                *PLANE,
                "--set", "output.reference=true",
                "--set", f"output.reference_nodes={nodes}",
                "--set", f"output.path={out}",
            ]
        )  # fmt: skip
        refs[nodes] = load_dataset(out)
    for name in ("density_mean_reference", "density_var_reference"):
        direct, interpolated = refs[0][name].values, refs[6][name].values
        # the absorption factor exp(-sigma_a t) holds to the RK4 error of these coarse steps
        # (h = 0.09): measured 2e-4; on the Sec. 5.3 grid 5e-7
        assert np.linalg.norm(interpolated - direct) < 1e-3 * np.linalg.norm(direct)


def test_restart_gives_the_uninterrupted_result(tmp_path):
    full, part = tmp_path / "full.nc", tmp_path / "part.nc"
    args = [*SMALL, "--set", "output.reference=true"]
    driver.main([*args, "--set", f"output.path={full}"])
    driver.main([*args, "--set", f"output.path={part}", "--max-steps", "6"])
    first = load_dataset(part)
    assert first.attrs["finished"] == 0 and "error_mean" not in first
    summary = driver.main(["--restart", str(part)])
    assert summary["steps"] == STEPS - 6
    a, b = load_dataset(full), load_dataset(part)
    assert b.attrs["finished"] == 1 and b.sizes["time"] == a.sizes["time"]
    for name in (
        "density_mean",
        "density_var",
        "mass",
        "ranks",
        "density_mean_reference",
        "error_mean",
        "error_var",
    ):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="--restart"):
        driver.main(["--restart", str(part), "--set", "solver.rtol=1e-5"])


def test_nan_stops_and_keeps_the_checkpoint(tmp_path, break_step):
    break_step(INTEGRATORS, "augmented_bug", 8, lambda t: t * np.inf)
    out = tmp_path / "nan.nc"
    with pytest.raises(FloatingPointError, match="step 8 .*last checkpoint is that of step 5"):
        driver.main([*SMALL, "--set", "output.reference=true", "--set", f"output.path={out}"])
    from tensorsim.io import open_run

    ds, checkpoint = open_run(out)
    assert ds.attrs["finished"] == 0 and "error_mean" not in ds
    assert checkpoint.attrs["step"] == 5
    assert all(np.all(np.isfinite(a)) for a in checkpoint.arrays.values())


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("preset='section_5_4'", ConfigError, "preset.*did you mean"),
        ("solver.integrator='bug'", ConfigError, "in 'solver'.*conserv.*not to integrator 'bug'"),
        ("solver.rtol=0", ConfigError, "solver.rtol"),
        (
            "solver.min_rank=60",
            ConfigError,
            "in 'solver'.*'max_rank': 50 is smaller than min_rank",
        ),
        ("time.max_growth=-1", ConfigError, "time.max_growth"),
        ("time.h=0.03", ConfigError, "'time.h': t_end = 0.4 is not a multiple of h = 0.03"),
        ("problem.sigma_s_xi=6.0", ValueError, "sigma_s.*negative"),
        ("problem.nodes_xi=0", ConfigError, "problem.nodes_xi"),
        ("problem.transport.cfl=1.5", ConfigError, "problem.transport.*stability limit"),
        ("problem.transport.cellz=3", ConfigError, "did you mean 'problem.transport.cells'"),
    ],
)
def test_bad_input(tmp_path, override, error, match):
    with pytest.raises(error, match=match):
        driver.main([*SMALL, "--set", override, "--set", f"output.path={tmp_path / 'x.nc'}"])
    assert not (tmp_path / "x.nc").exists()


def test_time_table_sets_the_final_time(tmp_path):
    out = tmp_path / "t.nc"
    args = ["--set", "time.t_end=0.2", "--set", "output.reference=true"]
    summary = driver.main([*SMALL, *args, "--set", f"output.path={out}"])
    assert summary["finished"]
    ds = load_dataset(out)
    np.testing.assert_allclose(float(ds["time"][-1]), 0.2, rtol=1e-14)
    # the reference is the collocation at the run's final time, not at problem.transport.t_end
    transport = TransportParams(cells=21, degree=5, sigma_s=5.0, t_end=0.2)
    params = UQParams(transport=transport, nodes_xi=4, nodes_eta=4)
    ref_mean, _ = collocation_reference(params, lambda p: full_rank_solve(p)[-1])
    np.testing.assert_allclose(ds["density_mean_reference"], ref_mean, rtol=1e-12, atol=1e-16)
    assert float(ds["error_mean"]) < 2e-4


def test_preset_defaults():
    from tensorsim.config import load_with_preset

    cfg = load_with_preset(driver.UQRun, None, ["preset=section_5_3"], driver.PRESETS)
    assert cfg.problem == UQParams.section_5_3()
    assert cfg.solver.rtol == 1e-4 and cfg.solver.integrator == "augmented_bug"
    cfg = load_with_preset(
        driver.UQRun,
        None,
        ["preset=section_5_3", "problem.transport.cells=10", "problem.sigma_a_eta=0.5"],
        driver.PRESETS,
    )
    assert cfg.problem == UQParams.section_5_3(transport={"cells": 10}, sigma_a_eta=0.5)
    assert load_with_preset(driver.UQRun, None, [], driver.PRESETS).problem == UQParams()


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    for name, args in (("p", SMALL), ("l", PLANE)):
        out = tmp_path / f"{name}.nc"
        driver.main([*args, "--set", "output.reference=true", "--set", f"output.path={out}"])
        driver.main(["plot", str(out)])
        for suffix in ("statistics", "ranks"):
            assert (tmp_path / f"{name}_{suffix}.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_two_ranks_equal_serial(tmp_path, two_ranks):
    args = [*SMALL, "--set", "output.reference=true", "--set", "solver.integrator=parallel_bug"]
    serial, parallel = tmp_path / "serial.nc", tmp_path / "mpi.nc"
    args = [*args, "--set", "solver.rtol=1e-5"]
    driver.main([*args, "--set", f"output.path={serial}"])
    two_ranks(
        [
            "-m",
            "drivers.uq",
            *args,
            "--set",
            "solver.rtol=1e-5",
            "--set",
            f"output.path={parallel}",
        ]
    )
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2 and b.attrs["finished"] == 1
    assert b.sizes["time"] == a.sizes["time"]
    for name in a.data_vars:
        if name != "wall_time":
            np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=1e-12)
