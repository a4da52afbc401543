"""End-to-end tests of ``python -m drivers.navier_stokes``: generate, the file, plot, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import drivers.navier_stokes as driver
from problems.navier_stokes import (
    DATASET_ATTRS,
    DatasetParams,
    load_dataset,
    solve_samples,
    subsample,
)
from tensorsim.config import ConfigError, load_with_preset

xr = pytest.importorskip("xarray")

ROOT = Path(__file__).resolve().parents[2]

TINY = ["generate", "--set", "preset=tiny"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny dataset (8 samples solved at 32, stored at 16 and 32) and its summary."""
    path = tmp_path_factory.mktemp("ns") / "tiny.nc"
    summary = driver.main([*TINY, "--set", "generate.batch=3", "--set", f"data.path={path}"])
    return path, summary


def _open(path):
    ds = xr.open_dataset(path, engine="h5netcdf")
    ds.load()
    ds.close()
    return ds


def test_dataset_round_trip(dataset):
    path, summary = dataset
    assert summary["samples"] == 8 and summary["steps"] == 20 and summary["dt"] == 0.05
    assert 0 < summary["largest_cfl"] < 1
    assert not list(path.parent.glob("*partial*"))  # no temporary file left
    ds = _open(path)
    assert dict(ds.sizes) == {"sample": 8, "x16": 16, "y16": 16, "x32": 32, "y32": 32}
    for n in (16, 32):
        for kind in ("input", "output"):
            var = ds[f"{kind}_{n}"]
            assert var.dims == ("sample", f"x{n}", f"y{n}") and var.dtype == np.float32
        np.testing.assert_array_equal(ds[f"x{n}"], np.arange(n) / n)
    assert set(DATASET_ATTRS) <= set(ds.attrs) and ds.attrs["finished"] == 1
    assert ds.attrs["viscosity"] == 1e-3 and ds.attrs["t_end"] == 1.0
    assert ds.attrs["solver_resolution"] == 32 and list(ds.attrs["resolutions"]) == [16, 32]
    assert ds.attrs["seed"] == 0 and ds.attrs["steps"] == 20 and ds.attrs["dt"] == 0.05
    assert 'preset = "tiny"' in ds.attrs["config"]

    fine, coarse = load_dataset(path), load_dataset(path, 16)
    assert fine.inputs.shape == fine.outputs.shape == (8, 32, 32)
    assert coarse.inputs.shape == coarse.outputs.shape == (8, 16, 16)
    assert fine.inputs.dtype == np.float32 and fine.attrs["forcing_amplitude"] == 0.1
    assert fine.resolutions == coarse.resolutions == (16, 32)
    np.testing.assert_array_equal(fine.samples, np.arange(8))
    np.testing.assert_array_equal(fine.grid, np.arange(32) / 32)
    # the coarse fields are the fine ones at every other grid point: same samples
    np.testing.assert_array_equal(coarse.inputs, fine.inputs[:, ::2, ::2])
    np.testing.assert_array_equal(coarse.outputs, fine.outputs[:, ::2, ::2])
    # and they are the solver's fields, rounded to float32
    w0, solution = solve_samples(driver._tiny(), [5, 6], seed=0)
    np.testing.assert_array_equal(fine.inputs[5:7], w0.astype(np.float32))
    np.testing.assert_array_equal(
        coarse.outputs[5:7], subsample(solution.w, 16).astype(np.float32)
    )
    part = load_dataset(path, 16, samples=slice(6, None))
    np.testing.assert_array_equal(part.samples, [6, 7])
    np.testing.assert_array_equal(part.outputs, coarse.outputs[6:])


def test_batches_backends_and_ranks_do_not_change_the_data(dataset, tmp_path):
    path, _ = dataset
    reference = _open(path)
    one = tmp_path / "one.nc"
    driver.main([*TINY, "--set", "generate.batch=8", "--set", f"data.path={one}"])
    other = _open(one)
    for name in reference.data_vars:
        np.testing.assert_array_equal(other[name].values, reference[name].values, err_msg=name)
    pytest.importorskip("torch")
    torch_file = tmp_path / "torch.nc"
    driver.main([*TINY, "--set", "generate.backend=torch", "--set", f"data.path={torch_file}"])
    other = _open(torch_file)
    for name in reference.data_vars:  # float64 solves that differ by round-off, in float32
        np.testing.assert_allclose(other[name].values, reference[name].values, atol=1e-6)


@pytest.mark.mpi
def test_two_ranks_equal_serial(dataset, tmp_path, mpiexec):
    path, _ = dataset
    parallel = tmp_path / "mpi.nc"
    cmd = [
        str(mpiexec), "-n", "2", "-genv", "OMP_NUM_THREADS", "1",
        sys.executable, "-m", "drivers.navier_stokes", *TINY,
        "--set", "generate.batch=3",
        "--set", f"data.path={parallel}",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env=os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    a, b = _open(path), _open(parallel)
    assert b.attrs["mpi_size"] == 2 and b.attrs["finished"] == 1
    for name in a.data_vars:  # bitwise: every sample is computed whole by one rank
        np.testing.assert_array_equal(b[name].values, a[name].values, err_msg=name)
    assert "samples 0-2 of 8" in proc.stderr  # the progress lines of rank 0


def test_a_failure_leaves_the_previous_file(dataset, tmp_path, monkeypatch):
    path, _ = dataset
    out = tmp_path / "data.nc"
    out.write_bytes(path.read_bytes())
    before = out.read_bytes()
    calls = {"n": 0}
    real = driver.solve_samples

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("solver crashed")
        return real(*args, **kwargs)

    monkeypatch.setattr(driver, "solve_samples", failing)
    with pytest.raises(RuntimeError, match="solver crashed"):
        driver.main([*TINY, "--set", "generate.batch=3", "--set", f"data.path={out}"])
    monkeypatch.setattr(driver, "solve_samples", real)

    def broken_append(self, *args, **kwargs):
        raise OSError("disk full")

    from tensorsim.io import Writer

    monkeypatch.setattr(Writer, "append", broken_append)
    with pytest.raises(OSError, match="disk full"):
        driver.main([*TINY, "--set", f"data.path={out}"])
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["data.nc"]


def test_loader_rejects_wrong_files(dataset, tmp_path):
    path, _ = dataset
    ds = _open(path)

    def write(name, changed):
        out = tmp_path / name
        changed.to_netcdf(out, engine="h5netcdf")
        return out

    with pytest.raises(ValueError, match=r"no variable 'output_16' for resolution 16"):
        load_dataset(write("missing.nc", ds.drop_vars("output_16")), 16)
    with pytest.raises(ValueError, match=r"resolution 64 \(stored resolutions: 16, 32\)"):
        load_dataset(path, 64)
    wrong = ds.assign(input_32=ds["input_32"].astype(np.float64))
    with pytest.raises(ValueError, match="variable 'input_32' has dims .* and float32"):
        load_dataset(write("double.nc", wrong), 32)
    swapped = ds.assign(output_16=ds["output_16"].transpose("sample", "y16", "x16"))
    with pytest.raises(ValueError, match="variable 'output_16' has dims"):
        load_dataset(write("swapped.nc", swapped), 16)
    bare = ds.copy()
    del bare.attrs["viscosity"], bare.attrs["seed"]
    with pytest.raises(ValueError, match="attribute.*viscosity, seed missing"):
        load_dataset(write("bare.nc", bare))
    unfinished = ds.copy()
    unfinished.attrs["finished"] = np.int8(0)
    with pytest.raises(ValueError, match="unfinished"):
        load_dataset(write("unfinished.nc", unfinished))
    with pytest.raises(FileNotFoundError, match="no such dataset file"):
        load_dataset(tmp_path / "nothing.nc")


@pytest.mark.parametrize(
    ("override", "error", "match"),
    [
        ("data.viscosity=0", ConfigError, "data.viscosity"),
        ("data.resolutions=[12, 32]", ConfigError, "'resolutions': 12 does not divide"),
        ("data.dt=1.0", ValueError, r"dt: the advective CFL number .* use dt <="),
        ("data.max_cfl=2.0", ConfigError, "max_cfl"),
        ("preset='tinny'", ConfigError, "did you mean 'tiny'"),
        ("data.samplez=3", ConfigError, "did you mean 'data.samples'"),
        ("generate.backend='jax'", ConfigError, "generate.backend"),
    ],
)
def test_bad_input(tmp_path, override, error, match):
    out = tmp_path / "x.nc"
    with pytest.raises(error, match=match):
        driver.main([*TINY, "--set", override, "--set", f"data.path={out}"])
    assert list(tmp_path.iterdir()) == []


def test_command_line_usage(capsys):
    with pytest.raises(SystemExit, match="missing command"):
        driver.main([])
    with pytest.raises(SystemExit, match=r"(?s)unknown command 'train'.*generate"):
        driver.main(["train"])
    with pytest.raises(SystemExit) as exit_info:
        driver.main(["--help"])
    assert exit_info.value.code == 0 and "generate" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        driver.main(["generate", "--help"])
    assert exit_info.value.code == 0
    assert "data.samples = 1200" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        driver.main(["generate", "--restart", "x.nc"])  # generate cannot be continued
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --restart" in capsys.readouterr().err


def test_presets():
    cfg = load_with_preset(driver.NavierStokesRun, None, [], driver.PRESETS, table="data")
    assert cfg.data == DatasetParams() and cfg.data.resolutions == (64, 128)
    assert (cfg.data.viscosity, cfg.data.t_end, cfg.data.samples) == (1e-3, 10.0, 1200)
    assert cfg.data.dt == 0.02 and cfg.data.resolution == 128
    cfg = load_with_preset(
        driver.NavierStokesRun,
        None,
        ["preset=tiny", "data.samples=3"],
        driver.PRESETS,
        table="data",
    )
    assert cfg.data.resolution == 32 and cfg.data.samples == 3


def test_plot(dataset):
    pytest.importorskip("matplotlib")
    path, _ = dataset
    driver.main(["plot", str(path)])
    assert path.with_name("tiny_samples.png").stat().st_size > 20_000


@pytest.mark.gpu
@pytest.mark.parametrize("backend", ["cupy", "torch"])
def test_gpu_backends(dataset, tmp_path, backend):
    if backend == "cupy":
        cp = pytest.importorskip("cupy")
        if not cp.is_available():
            pytest.skip("no CUDA device for CuPy")
    elif not pytest.importorskip("torch").cuda.is_available():
        pytest.skip("no CUDA device for torch")
    path, _ = dataset
    out = tmp_path / f"{backend}.nc"
    driver.main(
        [*TINY, "--set", f"generate.backend={backend}", "--set", "generate.device=cuda"]
        + ["--set", f"data.path={out}"]
    )
    a, b = _open(path), _open(out)
    for name in a.data_vars:
        np.testing.assert_allclose(b[name].values, a[name].values, atol=1e-6, err_msg=name)
