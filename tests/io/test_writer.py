"""tensorsim.io: round trip, finished flag, resume, SIGKILL safety, bad input, MPI ranks."""

from __future__ import annotations

import gc
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

h5netcdf = pytest.importorskip("h5netcdf")
xr = pytest.importorskip("xarray")

from tensorsim.io import Checkpoint, Writer, open_run, read_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIG = '[solver]\nname = "bug"\ndt = 0.01\n'


@dataclass
class FakeComm:
    rank: int
    size: int


def _attrs(path: Path) -> dict:
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return dict(ds.attrs)


def _write_sample(path: Path) -> dict:
    """Write a run with every kind of content; return what was written."""
    rng = np.random.default_rng(0)
    x = np.linspace(0.0, 1.0, 5)
    cases = ["dense", "ttn"]
    weights = rng.standard_normal((2, 5))
    energies = rng.standard_normal(4)
    rho = rng.standard_normal((4, 5))
    state = {
        "nodes": {
            0: rng.standard_normal((2, 3)) + 1j * rng.standard_normal((2, 3)),
            1: np.arange(6, dtype=np.int64).reshape(2, 3),
        },
        "mask": np.array([True, False, True]),
        "scalar": np.float32(2.5),
    }
    with Writer(path, record_units="s", config=CONFIG, attrs={"seed": 7, "model": "ising"}) as w:
        w.set_coordinate("x", x, units="m", long_name="position")
        w.set_coordinate("case", cases)
        w.set_variable("weight", ("case", "x"), weights, units="1")
        w.define_series("energy", units="J", long_name="total energy")
        w.define_series("rho", ("x",), units="kg m-3")
        for k in range(4):
            value = rho[k]
            if k == 1:
                torch = pytest.importorskip("torch")
                value = torch.from_numpy(rho[k].copy())
            w.append(0.5 * k, energy=energies[k], rho=value)
        w.checkpoint(state, attrs={"step": 4, "note": "after four steps"})
    return {
        "x": x,
        "cases": cases,
        "weights": weights,
        "energies": energies,
        "rho": rho,
        "state": state,
    }


def test_round_trip(tmp_path):
    path = tmp_path / "run.nc"
    data = _write_sample(path)

    with xr.open_dataset(path, engine="h5netcdf") as ds:
        ds.load()
        assert dict(ds.sizes) == {"time": 4, "x": 5, "case": 2}
        assert ds.encoding["unlimited_dims"] == {"time"}
        np.testing.assert_array_equal(ds["time"].values, 0.5 * np.arange(4))
        assert ds["time"].attrs["units"] == "s"
        np.testing.assert_array_equal(ds["x"].values, data["x"])
        assert ds["x"].attrs == {"units": "m", "long_name": "position"}
        assert [str(c) for c in ds["case"].values] == data["cases"]
        assert all(isinstance(c, str) for c in ds["case"].values.tolist())
        assert ds["weight"].dims == ("case", "x")
        np.testing.assert_array_equal(ds["weight"].values, data["weights"])
        assert ds["energy"].dims == ("time",)
        assert ds["energy"].attrs["units"] == "J"
        assert ds["energy"].attrs["long_name"] == "total energy"
        np.testing.assert_array_equal(ds["energy"].values, data["energies"])
        assert ds["rho"].dims == ("time", "x")
        np.testing.assert_array_equal(ds["rho"].values, data["rho"])
        attrs = ds.attrs
        assert attrs["finished"] == 1
        assert attrs["config"] == CONFIG
        assert attrs["mpi_size"] == 1
        assert attrs["seed"] == 7 and attrs["model"] == "ising"
        assert attrs["tensorsim_version"]
        assert attrs["git_commit"]
        assert "numpy=" in attrs["versions"] and attrs["versions"].startswith("python=")
        created = datetime.fromisoformat(attrs["created"])
        assert created.utcoffset() == UTC.utcoffset(None)

    ds2, ck = open_run(path)
    xr.testing.assert_identical(ds, ds2)
    assert isinstance(ck, Checkpoint)
    assert ck.record == 4
    assert ck.attrs == {"step": 4, "note": "after four steps"}
    expected = {
        "nodes/0": data["state"]["nodes"][0],
        "nodes/1": data["state"]["nodes"][1],
        "mask": data["state"]["mask"],
        "scalar": np.asarray(data["state"]["scalar"]),
    }
    assert set(ck.arrays) == set(expected)
    for key, want in expected.items():
        got = ck.arrays[key]
        assert got.dtype == want.dtype, key
        assert got.shape == want.shape, key
        assert got.tobytes() == want.tobytes(), key

    # netCDF has no complex type: stored as (..., 2) real with complex=1
    with h5netcdf.File(path, "r") as f:
        var = f["state/nodes"].variables["0"]
        assert var.shape == (2, 3, 2)
        assert var.dtype == np.float64
        assert int(var.attrs["complex"]) == 1
        assert f["state/mask"].dtype == np.int8
    only = read_checkpoint(path)
    assert only.record == 4 and only.attrs == ck.attrs
    assert all(only.arrays[k].tobytes() == ck.arrays[k].tobytes() for k in expected)


def test_finished_flag(tmp_path):
    path = tmp_path / "flag.nc"
    w = Writer(path)
    assert _attrs(path)["finished"] == 0  # written at once
    w.define_series("e")
    w.append(0.0, e=1.0)
    w.flush()
    assert _attrs(path)["finished"] == 0
    w.close()
    assert _attrs(path)["finished"] == 1
    w.close()  # closing twice does nothing
    with pytest.raises(ValueError, match="closed"):
        w.append(1.0, e=2.0)

    path2 = tmp_path / "fail.nc"
    with pytest.raises(RuntimeError, match="boom"), Writer(path2) as w2:
        w2.define_series("e")
        w2.append(0.0, e=1.0)
        raise RuntimeError("boom")
    ds, ck = open_run(path2)
    assert ds.attrs["finished"] == 0
    assert ds.sizes["time"] == 1
    assert ck is None


def _start_run(path: Path) -> Writer:
    w = Writer(path, record_dim="step", config=CONFIG)
    w.set_coordinate("x", np.arange(3.0))
    w.define_series("e")
    w.define_series("v", ("x",), dtype="int32")
    for k in range(1, 4):
        w.append(k, e=float(k), v=np.full(3, k))
    w.checkpoint({"psi": np.full(4, 3.0)}, attrs={"step": 3})
    for k in range(4, 6):
        w.append(k, e=-1.0, v=np.full(3, -1))
    return w


def test_resume_after_crash(tmp_path):
    path = tmp_path / "resume.nc"
    w = _start_run(path)
    created = _attrs(path)["created"]
    del w  # crash: no close, no flush
    gc.collect()

    ds, ck = open_run(path)
    assert ds.sizes["step"] == 3
    assert ck.record == 3 and ck.attrs == {"step": 3}

    w2, ck2 = Writer.resume(path)
    assert ck2.record == 3
    np.testing.assert_array_equal(ck2.arrays["psi"], np.full(4, 3.0))
    assert w2.n_records == 3
    assert _attrs(path)["finished"] == 0
    for k in range(4, 6):
        w2.append(k, e=float(k), v=np.full(3, k))
    w2.close()

    ds, ck = open_run(path)
    np.testing.assert_array_equal(ds["step"].values, np.arange(1, 6))
    assert ds["step"].dtype == np.int64
    np.testing.assert_array_equal(ds["e"].values, np.arange(1.0, 6.0))
    np.testing.assert_array_equal(ds["v"].values, np.repeat(np.arange(1, 6), 3).reshape(5, 3))
    np.testing.assert_array_equal(ds["x"].values, np.arange(3.0))
    assert ds.encoding["unlimited_dims"] == {"step"}
    assert ds.attrs["finished"] == 1
    assert ds.attrs["config"] == CONFIG
    assert ds.attrs["created"] == created
    assert ck.record == 3


def test_resume_cuts_series_back_to_checkpoint(tmp_path):
    path = tmp_path / "cut.nc"
    w = _start_run(path)
    w.flush()  # records 4 and 5 reach the file, after the checkpoint
    assert open_run(path)[0].sizes["step"] == 5
    del w
    w2, ck = Writer.resume(path)
    assert ck.record == 3 and w2.n_records == 3
    w2.close()
    ds, _ = open_run(path)
    np.testing.assert_array_equal(ds["e"].values, [1.0, 2.0, 3.0])


_KILL_SCRIPT = """
import sys
import numpy as np
from tensorsim.io import Writer

w = Writer(sys.argv[1], record_dim="step")
w.define_series("value")
k = 0
while True:
    k += 1
    w.append(k, value=float(k))
    state = {
        "big": np.full(1_000_000, k, dtype=np.float64),
        "nested": {"c": np.full((50, 50), k + 0j), "i": np.full(1000, k)},
    }
    w.checkpoint(state, attrs={"step": k})
    if k == 1:
        print("ready", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_leaves_consistent_file(tmp_path, kill_after_ready):
    rng = np.random.default_rng(11)
    for trial in range(4):
        path = tmp_path / f"killed{trial}.nc"
        kill_after_ready(_KILL_SCRIPT, path, rng.uniform(0.0, 0.3))

        ck = read_checkpoint(path)
        step = ck.attrs["step"]
        assert step >= 1 and ck.record == step
        assert set(ck.arrays) == {"big", "nested/c", "nested/i"}
        for key, arr in ck.arrays.items():
            assert np.all(arr == step), key
        assert ck.arrays["nested/c"].dtype == np.complex128
        ds, _ = open_run(path)
        np.testing.assert_array_equal(ds["value"].values, np.arange(1, step + 1))
        assert ds.attrs["finished"] == 0

        # a new writer of the same path removes the killed writer's temporary file
        w, ck2 = Writer.resume(path)
        assert ck2.attrs["step"] == step
        assert not list(tmp_path.glob(f"{path.name}.tmp-*"))
        w.close()


def _bad_calls():
    def unknown_series(w):
        w.append(0.0, energy=1.0, nope=2.0)

    def wrong_shape(w):
        w.append(0.0, rho=np.zeros(4))

    def unknown_dim(w):
        w.define_series("bad", ("y",))

    def state_not_mapping(w):
        w.checkpoint([np.zeros(3)])

    def dims_as_string(w):
        w.define_series("bad", "x")

    def static_shape(w):
        w.set_variable("bad", ("x",), np.zeros(2))

    def complex_into_float(w):
        w.append(0.0, energy=1.0 + 2.0j)

    def reserved_attr(w):
        w.checkpoint({"a": np.zeros(2)}, attrs={"record": 3})

    def string_in_state(w):
        w.checkpoint({"a": "text"})

    def record_dim_in_dims(w):
        w.define_series("bad", ("time",))

    def duplicate_series(w):
        w.define_series("energy")

    return [
        pytest.param(unknown_series, ValueError, r"unknown series \['nope'\]", id="unknown"),
        pytest.param(wrong_shape, ValueError, r"series 'rho' has shape \(4,\)", id="shape"),
        pytest.param(unknown_dim, ValueError, r"unknown dimension 'y'", id="dim"),
        pytest.param(state_not_mapping, TypeError, r"state must be a mapping", id="state"),
        pytest.param(dims_as_string, TypeError, r"dims must be a tuple", id="dims-str"),
        pytest.param(static_shape, ValueError, r"variable 'bad' have shape", id="static"),
        pytest.param(complex_into_float, TypeError, r"series 'energy' has dtype", id="cplx"),
        pytest.param(reserved_attr, ValueError, r"attrs key 'record' is reserved", id="attr"),
        pytest.param(string_in_state, TypeError, r"state\['a'\]", id="str-state"),
        pytest.param(record_dim_in_dims, ValueError, r"record dimension 'time'", id="rec"),
        pytest.param(duplicate_series, ValueError, r"'energy' is already used", id="dup"),
    ]


@pytest.mark.parametrize(("call", "error", "match"), _bad_calls())
def test_bad_input(tmp_path, call, error, match):
    w = Writer(tmp_path / "bad.nc")
    w.set_coordinate("x", np.arange(3.0))
    w.define_series("energy")
    w.define_series("rho", ("x",))
    w.append(0.0, energy=1.0, rho=np.ones(3))
    with pytest.raises(error, match=match):
        call(w)
    assert w.n_records == 1  # a failed append adds nothing
    w.close()


def test_bad_constructor_arguments(tmp_path):
    with pytest.raises(TypeError, match="path must be"):
        Writer(3)
    with pytest.raises(FileNotFoundError):
        Writer(tmp_path / "missing" / "run.nc")
    with pytest.raises(TypeError, match="config must be"):
        Writer(tmp_path / "a.nc", config={"a": 1})
    with pytest.raises(ValueError, match="'finished' is reserved"):
        Writer(tmp_path / "a.nc", attrs={"finished": 1})
    with pytest.raises(TypeError, match="comm must be"):
        Writer(tmp_path / "a.nc", comm=object())
    with pytest.raises(FileNotFoundError):
        Writer.resume(tmp_path / "none.nc")


def test_other_ranks_write_nothing(tmp_path):
    path = tmp_path / "rank1.nc"
    comm = FakeComm(rank=1, size=2)
    with Writer(path, comm=comm, config=CONFIG) as w:
        w.set_coordinate("x", np.arange(3.0))
        w.define_series("e", ("x",))
        w.append(0.0, e=np.ones(3))
        w.checkpoint({"a": np.ones(2)})
        w.flush()
    assert w.n_records == 0 and w.path is None
    w2, ck = Writer.resume(path, comm=comm)
    assert ck is None
    w2.close()
    assert list(tmp_path.iterdir()) == []

    root = Writer(path, comm=FakeComm(rank=0, size=2))
    root.close()
    assert _attrs(path)["mpi_size"] == 2


def test_string_series_round_trip_and_resume(tmp_path):
    xr = pytest.importorskip("xarray")
    path = tmp_path / "labels.nc"
    with Writer(path, record_dim="case") as out:
        out.define_series("label", dtype=str, long_name="case label")
        out.define_series("error")
        out.append(0, label="tucker", error=0.5)
        out.append(1, error=0.25)  # label missing -> ""
        out.append(2, label="cp rank=4", error=0.125)
        out.checkpoint({"x": np.arange(3.0)})
        with pytest.raises(TypeError, match="expected a str label"):
            out.append(3, label=7)
        out.set_dimension("part", 2)
        with pytest.raises(ValueError, match="one label per record"):
            out.define_series("bad", ("part",), dtype=str)
    ds = xr.open_dataset(path, engine="h5netcdf")
    assert list(ds["label"].values) == ["tucker", "", "cp rank=4"]
    ds.close()
    writer, _ = Writer.resume(path)
    writer.append(3, label="tt", error=0.0625)
    writer.close()
    ds, _ = open_run(path)
    assert list(ds["label"].values) == ["tucker", "", "cp rank=4", "tt"]
    np.testing.assert_array_equal(ds["error"].values, [0.5, 0.25, 0.125, 0.0625])


@pytest.mark.parametrize("missing", ["h5netcdf", "h5py"])
def test_a_missing_file_package_names_the_extra(tmp_path, monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # import of it raises ImportError
    with pytest.raises(ImportError, match=rf"needs {missing} .* pip install tensorsim\[io\]"):
        Writer(tmp_path / "run.nc")
    with pytest.raises(ImportError, match=r"pip install tensorsim\[io\]"):
        open_run(tmp_path / "run.nc")
