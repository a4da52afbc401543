"""End-to-end tests of ``python -m drivers.compress``: serial, under MPI, bad input, plot."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.compress import CompressConfig, main
from tensorsim.config import ConfigError, config_from_toml

xr = pytest.importorskip("xarray")

from tensorsim.testing import load_dataset  # noqa: E402

SMALL = [
    "--set",
    "input.shape=[14,12,10]",
    "--set",
    "cases.tolerances=[1e-1,1e-3]",
    "--set",
    "cases.cp_ranks=[2,5]",
]


def test_serial_run_writes_consistent_results(tmp_path):
    out = tmp_path / "c.nc"
    results = main([*SMALL, "--set", f"output.path={out}"])["results"]
    assert [r["label"] for r in results] == [
        "tucker rtol=1e-01",
        "tucker rtol=1e-03",
        "tt rtol=1e-01",
        "tt rtol=1e-03",
        "cp rank=2",
        "cp rank=5",
    ]
    ds = load_dataset(out)
    assert ds.sizes["case"] == 6 and ds.attrs["finished"] == 1 and ds.attrs["mpi_size"] == 1
    assert config_from_toml(CompressConfig, ds.attrs["config"]).input.shape == (14, 12, 10)
    svd_based = ds["format"].isin(["tucker", "tt"]).values
    err, bound, tol = (
        ds[v].values[svd_based] for v in ("relative_error", "error_bound", "tolerance")
    )
    assert np.all(err <= bound * (1 + 1e-10) + 1e-14) and np.all(bound <= tol * (1 + 1e-12))
    # stored numbers and the ratio follow from the ranks (Tucker: core + factors)
    first = ds.isel(case=0)
    r = first["ranks"].values.astype(int)
    assert first["stored"] == np.prod(r) + np.dot(r, [14, 12, 10])
    assert first["compression_ratio"] == pytest.approx(14 * 12 * 10 / first["stored"])
    # CP error decreases with rank
    cp_err = ds["relative_error"].values[~svd_based]
    assert cp_err[1] < cp_err[0]


def test_npy_input_and_bad_config(tmp_path):
    x = np.add.outer(np.arange(6.0), np.arange(5.0))[:, :, None] * np.ones(4)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "n.nc"
    main(
        [
            "--set",
            f"input.source={tmp_path / 'x.npy'}",
            "--set",
            "cases.formats=['tucker']",
            "--set",
            f"output.path={out}",
        ]
    )
    ds = load_dataset(out)
    assert ds.sizes["case"] == 4 and np.all(ds["relative_error"].values < 1e-1)
    with pytest.raises(ConfigError, match="did you mean 'cases.tolerances'"):
        main(["--set", "cases.tolerance=[0.1]"])
    with pytest.raises(ConfigError, match="cases.formats"):
        main(["--set", "cases.formats=['tucker','hosvd']"])
    with pytest.raises(ConfigError, match="cases.tolerances"):
        main(["--set", "cases.tolerances=[0.1,-1.0]"])
    with pytest.raises(FileNotFoundError, match="input.source"):
        main(["--set", f"input.source={tmp_path / 'missing.npy'}"])


def test_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.nc"
    main([*SMALL, "--set", f"output.path={out}"])
    main(["plot", str(out)])
    assert (tmp_path / "p_error.png").stat().st_size > 10_000


@pytest.mark.mpi
def test_two_ranks_give_the_serial_result(tmp_path, two_ranks):
    serial, parallel = tmp_path / "serial.nc", tmp_path / "mpi.nc"
    main([*SMALL, "--set", f"output.path={serial}"])
    two_ranks(["-m", "drivers.compress", *SMALL, "--set", f"output.path={parallel}"])
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2
    for name in a.data_vars:
        if name != "wall_time":  # everything but timings is bitwise equal
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_netcdf_variable_input(tmp_path):
    field = np.fromfunction(lambda i, j, k: 1.0 / (1.0 + i + j + k), (8, 7, 6))
    xr.Dataset({"density": (("x", "y", "z"), field)}).to_netcdf(
        tmp_path / "in.nc", engine="h5netcdf"
    )
    out = tmp_path / "o.nc"
    source = ["--set", f"input.source={tmp_path / 'in.nc'}"]
    main(
        [
            *source,
            "--set",
            "input.variable=density",
            "--set",
            "cases.formats=['tt']",
            "--set",
            "cases.tolerances=[1e-6]",
            "--set",
            f"output.path={out}",
        ]
    )
    ds = load_dataset(out)
    assert list(ds.attrs["input_shape"]) == [8, 7, 6]
    assert ds["relative_error"].values[0] <= 1e-6
    with pytest.raises(ValueError, match="has no dataset 'rho'; it has"):
        main([*source, "--set", "input.variable=rho"])
    with pytest.raises(ValueError, match="input.variable: name the dataset"):
        main(source)
