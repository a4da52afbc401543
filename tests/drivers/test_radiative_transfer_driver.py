"""End-to-end tests of ``python -m drivers.radiative_transfer``."""

from __future__ import annotations

import numpy as np
import pytest

import drivers.radiative_transfer as driver
from problems.radiative_transfer import TransportParams, density, full_rank_solve, time_step
from solvers.bug import INTEGRATORS
from tensorsim.config import ConfigError

xr = pytest.importorskip("xarray")

from tensorsim.testing import load_dataset  # noqa: E402

SMALL = [
    "--set", "problem.cells=41",
    "--set", "problem.degree=7",
    "--set", "problem.t_end=0.2",
    "--set", "output.checkpoint_every=5",
]  # fmt: skip
STEPS = 17  # time_step of SMALL: h = 0.2 / 17

LINE = [
    "--set", "preset=line_source",
    "--set", "problem.cells=24",
    "--set", "problem.degree=5",
    "--set", "problem.t_end=0.2",
    "--set", "problem.width=0.2",
]  # fmt: skip


def _relative_mass_change(ds):
    mass = ds["mass"].values
    return float(np.max(np.abs(mass - mass[0])) / mass[0])


@pytest.mark.parametrize(
    ("integrator", "rtol", "bound"),
    # measured final errors: 8.3e-5 (augmented, rtol 1e-3) and 6.1e-5 (parallel, rtol 1e-4)
    [("augmented_bug", 1e-3, 3e-4), ("parallel_bug", 1e-4, 3e-4)],
)
def test_plane_source_matches_the_full_rank_solution(tmp_path, integrator, rtol, bound):
    out = tmp_path / "run.nc"
    summary = driver.main(
        [
            *SMALL,
            "--set",
            f"solver.integrator={integrator}",
            "--set",
            f"solver.rtol={rtol}",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    assert summary["steps"] == STEPS and summary["finished"]
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.attrs["integrator"] == integrator
    assert ds.sizes["time"] == STEPS + 1 and ds.sizes["x"] == 41
    dims = {
        "density": ("time", "x"),
        "density_reference": ("time", "x"),
        "ranks": ("time", "edge"),
        **{
            name: ("time",)
            for name in (
                "mass",
                "mass_reference",
                "error_density",
                "max_rank",
                "trunc_error",
                "eta",
                "rejected",
                "wall_time",
            )
        },
    }
    for name, expected in dims.items():
        assert ds[name].dims == expected, name
    np.testing.assert_allclose(ds["time"][-1], 0.2, rtol=1e-14)
    # the reference in the file is the library's full-rank solution
    params = TransportParams(cells=41, degree=7, t_end=0.2)
    rho = density(params, full_rank_solve(params)[-1])
    np.testing.assert_allclose(ds["density_reference"][-1], rho, rtol=1e-13, atol=1e-15)
    assert float(ds["error_density"][0]) < 1e-14
    assert 1e-7 < float(ds["error_density"][-1]) < bound
    error = np.linalg.norm(ds["density"][-1] - rho) / np.linalg.norm(rho)
    np.testing.assert_allclose(ds["error_density"][-1], error, rtol=1e-9)
    ranks = ds["ranks"].values
    assert ranks.min() >= 2 and ranks.max() <= 50
    np.testing.assert_array_equal(ranks.max(axis=1), ds["max_rank"].values)
    # zero boundary: the exact solution keeps its mass until it reaches the boundary
    assert abs(float(ds["mass_reference"][-1] / ds["mass_reference"][0]) - 1) < 1e-13


@pytest.mark.parametrize("integrator", ["augmented_bug", "parallel_bug"])
def test_periodic_mass_is_conserved(tmp_path, integrator):
    changes = {}
    for conserve in ("true", "false"):
        out = tmp_path / f"{conserve}.nc"
        driver.main(
            [
                *SMALL,
                "--set",
                "problem.boundary=periodic",
                "--set",
                f"solver.integrator={integrator}",
                "--set",
                f"solver.conserve={conserve}",
                "--set",
                "output.reference=false",
                "--set",
                f"output.path={out}",
            ]  # fmt: skip
        )
        ds = load_dataset(out)
        assert "density_reference" not in ds
        changes[conserve] = _relative_mass_change(ds)
    # measured: 1e-15 with conservative truncation, 1e-4 .. 1e-3 without
    assert changes["true"] < 1e-12
    assert changes["false"] > 1e-8


@pytest.mark.parametrize(
    ("tree", "edges", "bound"),
    # measured final errors: 5.1e-2 on the nested tree, 6.4e-5 on the star (see
    # problems.radiative_transfer.build_tree)
    [("nested", 4, 0.1), ("star", 3, 3e-4)],
)
def test_line_source(tmp_path, tree, edges, bound):
    out = tmp_path / "line.nc"
    driver.main(
        [
            *LINE,
            "--set",
            "problem.boundary=periodic",
            "--set",
            f"tree={tree}",
            "--set",
            f"output.path={out}",
        ]  # fmt: skip
    )
    ds = load_dataset(out)
    assert ds["density"].dims == ("time", "x", "y")
    assert ds["density_reference"].dims == ("time", "x", "y")
    assert ds.sizes["x"] == ds.sizes["y"] == 24 and ds.sizes["edge"] == edges
    params = TransportParams.line_source(cells=24, degree=5, t_end=0.2, width=0.2)
    assert ds.sizes["time"] == time_step(params)[1] + 1
    # the density keeps the symmetry x <-> y of the case (to truncation accuracy)
    rho = ds["density"][-1].values
    assert np.abs(rho - rho.T).max() < 1e-3 * np.abs(rho).max()
    assert float(ds["error_density"][-1]) < bound
    assert _relative_mass_change(ds) < 1e-12  # measured 1.3e-15 and 4.4e-16


def test_restart_gives_the_uninterrupted_result(tmp_path):
    full, part = tmp_path / "full.nc", tmp_path / "part.nc"
    driver.main([*SMALL, "--set", f"output.path={full}"])
    summary = driver.main([*SMALL, "--set", f"output.path={part}", "--max-steps", "7"])
    assert summary["steps"] == 7 and not summary["finished"]
    from tensorsim.io import open_run

    ds, checkpoint = open_run(part)
    assert ds.attrs["finished"] == 0 and checkpoint.attrs["step"] == 7
    assert ds.sizes["time"] == 8
    summary = driver.main(["--restart", str(part)])
    assert summary["steps"] == STEPS - 7 and summary["finished"]
    a, b = load_dataset(full), load_dataset(part)
    assert b.attrs["finished"] == 1 and b.sizes["time"] == a.sizes["time"]
    np.testing.assert_array_equal(b["time"].values, a["time"].values)
    for name in ("density", "mass", "ranks", "error_density", "density_reference"):
        np.testing.assert_allclose(b[name].values, a[name].values, rtol=0, atol=1e-12)
    _, end_a = open_run(full)
    _, end_b = open_run(part)
    for key, value in end_a.arrays.items():
        np.testing.assert_allclose(end_b.arrays[key], value, rtol=0, atol=1e-12)
    with pytest.raises(ConfigError, match="--restart"):
        driver.main(["--restart", str(part), "--set", "solver.rtol=1e-4"])


def test_nan_stops_and_keeps_the_checkpoint(tmp_path, break_step):
    break_step(INTEGRATORS, "augmented_bug", 7, lambda t: t * np.nan)
    out = tmp_path / "nan.nc"
    with pytest.raises(FloatingPointError, match="step 7 .*last checkpoint is that of step 5"):
        driver.main([*SMALL, "--set", f"output.path={out}"])
    from tensorsim.io import open_run

    ds, checkpoint = open_run(out)
    assert ds.attrs["finished"] == 0
    assert checkpoint.attrs["step"] == 5 and checkpoint.record == 6
    # the records of the good steps 0..6 are kept, the broken step is not recorded
    assert ds.sizes["time"] == 7 and np.all(np.isfinite(ds["density"].values))
    assert all(np.all(np.isfinite(a)) for a in checkpoint.arrays.values())


def test_mass_growth_stops_the_run(tmp_path, break_step):
    from tensorsim.io import open_run

    args = [*SMALL, "--set", "problem.boundary=periodic", "--set", "output.checkpoint_every=2"]
    break_step(INTEGRATORS, "augmented_bug", 5, lambda t: t * (1 + 1e-4))
    out = tmp_path / "grow.nc"
    with pytest.raises(FloatingPointError, match="step 5 .*grew by 1.000e-04.*of step 4"):
        driver.main([*args, "--set", "time.max_growth=1e-6", "--set", f"output.path={out}"])
    ds, checkpoint = open_run(out)
    assert ds.attrs["finished"] == 0 and checkpoint.attrs["step"] == 4
    # the default bound (1e-2) lets such a change through
    break_step(INTEGRATORS, "augmented_bug", 5, lambda t: t * (1 + 1e-4))
    summary = driver.main([*args, "--set", f"output.path={tmp_path / 'ok.nc'}"])
    assert summary["finished"] and abs(summary["mass_change"] - 1e-4) < 1e-12


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("solver.integrator='tebd'", ConfigError, "solver.integrator"),
        ("solver.integrator='bug'", ConfigError, "in 'solver'.*conserv.*not to integrator 'bug'"),
        ("solver.rtol=0", ConfigError, "solver.rtol"),
        ("solver.rtol=-1e-3", ConfigError, "solver.rtol"),
        ("solver.max_rank=1", ConfigError, "in 'solver'.*'max_rank': 1 is smaller than min_rank"),
        ("solver.initial_rank=60", ConfigError, "in 'solver'.*'initial_rank': 60 is larger"),
        ("problem.cfl=1.5", ConfigError, "problem.*stability limit"),
        ("problem.case='plane'", ConfigError, "problem.case"),
        ("preset='line'", ConfigError, "preset"),
        ("output.every=0", ConfigError, "output.every"),
        ("time.max_growth=0", ConfigError, "time.max_growth"),
        ("time.h=0.003", ConfigError, "'time.h': t_end = 0.2 is not a multiple of h = 0.003"),
        ("tree='chain'", ConfigError, "tree"),
    ],
)
def test_bad_input(tmp_path, override, error, match):
    with pytest.raises(error, match=match):
        driver.main([*SMALL, "--set", override, "--set", f"output.path={tmp_path / 'x.nc'}"])
    assert not (tmp_path / "x.nc").exists()


def test_time_table_sets_the_grid(tmp_path):
    out = tmp_path / "t.nc"
    summary = driver.main(
        [*SMALL, "--set", "time.t_end=0.1", "--set", "time.h=0.01", "--set", f"output.path={out}"]
    )
    assert summary["steps"] == 10 and summary["finished"]
    ds = load_dataset(out)
    np.testing.assert_allclose(ds["time"].values, 0.01 * np.arange(11), rtol=0, atol=1e-15)
    # the reference is the full-rank solution at the run's own record times
    params = TransportParams(cells=41, degree=7, t_end=0.1)
    rho = [density(params, u) for u in full_rank_solve(params, ds["time"].values)]
    np.testing.assert_allclose(ds["density_reference"], rho, rtol=1e-13, atol=1e-15)
    assert float(ds["error_density"][-1]) < 3e-4


def test_preset_gives_the_defaults_and_keeps_overrides(tmp_path):
    config = tmp_path / "run.toml"
    config.write_text('preset = "line_source"\n[problem]\ncells = 30\n')
    from tensorsim.config import load_with_preset

    cfg = load_with_preset(
        driver.RadiativeTransferRun, config, ["problem.degree=3"], driver.PRESETS
    )
    assert cfg.problem == TransportParams.line_source(cells=30, degree=3)
    cfg = load_with_preset(driver.RadiativeTransferRun, None, [], driver.PRESETS)
    assert cfg.problem == TransportParams()
    cfg = load_with_preset(
        driver.RadiativeTransferRun, config, ["preset=plane_source"], driver.PRESETS
    )
    assert cfg.problem == TransportParams(cells=30)


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    for name, args in (("p", SMALL), ("l", LINE)):
        out = tmp_path / f"{name}.nc"
        driver.main([*args, "--set", f"output.path={out}"])
        driver.main(["plot", str(out)])
        for suffix in ("density", "ranks", "mass"):
            assert (tmp_path / f"{name}_{suffix}.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_two_ranks_equal_serial(tmp_path, two_ranks):
    args = [*LINE, "--set", "solver.integrator=parallel_bug", "--set", "solver.rtol=1e-4"]
    serial, parallel = tmp_path / "serial.nc", tmp_path / "mpi.nc"
    driver.main([*args, "--set", f"output.path={serial}"])
    two_ranks(["-m", "drivers.radiative_transfer", *args, "--set", f"output.path={parallel}"])
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2 and b.attrs["finished"] == 1
    assert b.sizes["time"] == a.sizes["time"]
    for name in a.data_vars:
        if name != "wall_time":
            np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)
