"""Bulk series of tensorsim.io.Writer: set files, joining, restart, SIGKILL safety."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

h5netcdf = pytest.importorskip("h5netcdf")
xr = pytest.importorskip("xarray")

from tensorsim.io import Writer, open_run, read_checkpoint  # noqa: E402
from tensorsim.io.bulk import BULK_GROUP, set_directory, set_path  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
N_SITES = 3


def _matrix(k: int) -> np.ndarray:
    """The bulk value of record ``k``: distinct in every entry and every record."""
    return k + np.arange(N_SITES * N_SITES, dtype=np.float64).reshape(N_SITES, N_SITES) / 100


def _new_run(path: Path, per_file: int) -> Writer:
    w = Writer(path, record_dim="step", record_units="1", records_per_file=per_file)
    w.set_coordinate("site", np.arange(N_SITES), long_name="site")
    w.set_coordinate("site_j", np.arange(N_SITES))
    w.define_series("energy")
    w.define_series("corr", ("site", "site_j"), units="1", long_name="a matrix", bulk=True)
    w.define_series("count", ("site",), dtype="int32", bulk=True)
    return w


def _append(w: Writer, k: int) -> None:
    w.append(k, energy=-float(k), corr=_matrix(k), count=np.full(N_SITES, k, dtype=np.int32))


def _group_records(path: Path) -> int:
    with h5netcdf.File(path, "r") as root:
        if BULK_GROUP not in root.groups:  # not flushed since the series were defined
            return 0
        return root.groups[BULK_GROUP].dimensions["step"].size


def test_sets_are_written_once_full_and_joined_on_reading(tmp_path):
    path = tmp_path / "run.nc"
    with _new_run(path, per_file=4) as w:
        for k in range(10):
            _append(w, k)
            if k % 3 == 2:
                w.checkpoint({"k": np.array(k)})
            # the file never holds more than the set being filled
            assert _group_records(path) <= 4
    files = sorted(set_directory(path).iterdir())
    assert files == [set_path(path, 0), set_path(path, 1)]
    ds, ck = open_run(path)
    assert ck.record == 9
    np.testing.assert_array_equal(ds["step"].values, np.arange(10))
    np.testing.assert_array_equal(ds["energy"].values, -np.arange(10.0))
    assert ds["corr"].dims == ("step", "site", "site_j")
    np.testing.assert_array_equal(ds["corr"].values, np.stack([_matrix(k) for k in range(10)]))
    assert ds["corr"].attrs["long_name"] == "a matrix"
    assert ds["count"].dtype == np.int32
    np.testing.assert_array_equal(ds["count"].values[:, 0], np.arange(10))
    np.testing.assert_array_equal(ds["site"].values, np.arange(N_SITES))
    # each set file is a dataset on its own, with its records and coordinates
    with xr.open_dataset(set_path(path, 1), engine="h5netcdf") as part:
        np.testing.assert_array_equal(part["step"].values, np.arange(4, 8))
        np.testing.assert_array_equal(part["corr"].values[0], _matrix(4))
        np.testing.assert_array_equal(part["site"].values, np.arange(N_SITES))
        assert part.attrs["source"] == "run.nc" and part.attrs["first_record"] == 4
    # the plain xarray view of the output file holds the monitoring series only
    with xr.open_dataset(path, engine="h5netcdf") as plain:
        assert "corr" not in plain and plain.sizes["step"] == 10


def test_default_set_size_is_sixteen_mebibytes(tmp_path):
    w = Writer(tmp_path / "big.nc")
    w.set_dimension("i", 128)
    w.set_dimension("j", 128)
    w.define_series("m", ("i", "j"), bulk=True)
    w.append(0.0, m=np.zeros((128, 128)))
    w.close()
    ds, _ = open_run(tmp_path / "big.nc")
    assert ds["m"].shape == (1, 128, 128)
    with h5netcdf.File(tmp_path / "big.nc", "r") as root:
        assert int(root.groups[BULK_GROUP].attrs["records_per_file"]) == 128


@pytest.mark.parametrize(
    ("stop", "flush_after"),
    [(7, 0), (8, 0), (6, 3), (9, 5), (3, 0)],
    ids=["mid-set", "set-boundary", "flushed-beyond-into-next-set", "two-sets-beyond", "first"],
)
def test_resume_continues_bitwise(tmp_path, stop, flush_after):
    """A run checkpointed at ``stop`` (and flushed ``flush_after`` records later), then
    resumed and finished, has the files of the uninterrupted run."""
    per_file, total = 4, 14
    full = tmp_path / "full.nc"
    with _new_run(full, per_file) as w:
        for k in range(total):
            _append(w, k)
    part = tmp_path / "part.nc"
    w = _new_run(part, per_file)
    for k in range(stop):
        _append(w, k)
    w.checkpoint({"k": np.array(stop)})
    for k in range(stop, stop + flush_after):
        _append(w, k)
    w.flush()
    del w  # killed
    w, ck = Writer.resume(part)
    assert ck.record == stop and w.n_records == stop
    for k in range(stop, total):
        _append(w, k)
    w.close()

    expected, _ = open_run(full)
    got, _ = open_run(part)
    for name in ("corr", "count", "energy", "step"):
        np.testing.assert_array_equal(got[name].values, expected[name].values)
    n_sets = total // per_file
    assert [p.name[len("part") :] for p in sorted(set_directory(part).iterdir())] == [
        p.name[len("full") :] for p in sorted(set_directory(full).iterdir())
    ]
    for index in range(n_sets):
        with (
            xr.open_dataset(set_path(full, index), engine="h5netcdf") as a,
            xr.open_dataset(set_path(part, index), engine="h5netcdf") as b,
        ):
            for name in ("corr", "count", "step"):
                np.testing.assert_array_equal(a[name].values, b[name].values)


def test_a_new_run_removes_the_old_runs_sets(tmp_path):
    path = tmp_path / "run.nc"
    with _new_run(path, per_file=2) as w:
        for k in range(7):
            _append(w, k)
    assert len(list(set_directory(path).iterdir())) == 3
    with _new_run(path, per_file=2) as w:
        _append(w, 100)
    assert not list(set_directory(path).iterdir())
    ds, _ = open_run(path)
    np.testing.assert_array_equal(ds["corr"].values, _matrix(100)[None])


def test_a_missing_set_file_is_named(tmp_path):
    path = tmp_path / "run.nc"
    w = _new_run(path, per_file=2)
    for k in range(5):
        _append(w, k)
    w.checkpoint({"k": np.array(5)})
    w.close()
    set_path(path, 1).unlink()
    with pytest.raises(FileNotFoundError, match="run_s00001.nc"):
        open_run(path)
    with pytest.raises(ValueError, match="run_s00001.nc"):
        Writer.resume(path)


def test_bulk_input_is_checked(tmp_path):
    with pytest.raises(ValueError, match="records_per_file"):
        Writer(tmp_path / "a.nc", records_per_file=0)
    w = Writer(tmp_path / "b.nc")
    w.set_dimension("i", 2)
    with pytest.raises(ValueError, match="numeric"):
        w.define_series("label", dtype=str, bulk=True)
    w.define_series("m", ("i",), bulk=True)
    with pytest.raises(ValueError, match="already used by a series"):
        w.define_series("m", bulk=True)
    with pytest.raises(ValueError, match="shape"):
        w.append(0.0, m=np.zeros(3))
    w.append(0.0, m=np.zeros(2))
    with pytest.raises(ValueError, match="before the first record"):
        w.define_series("late", ("i",), bulk=True)
    w.close()


_KILL_SCRIPT = """
import sys
import numpy as np
from tensorsim.io import Writer

w = Writer(sys.argv[1], record_dim="step", records_per_file=5)
w.set_dimension("i", 64)
w.set_dimension("j", 64)
w.define_series("value")
w.define_series("field", ("i", "j"), bulk=True)
k = 0
while True:
    w.append(k, value=float(k), field=np.full((64, 64), float(k)))
    k += 1
    if k % 3 == 0:
        w.checkpoint({"big": np.full(200_000, k)}, attrs={"step": k})
    if k == 6:
        print("ready", flush=True)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_on_the_bulk_path_leaves_readable_files(tmp_path, kill_after_ready):
    """Killed at random instants, the output file and the sets it names read back whole,
    and a restart continues the series record for record."""
    rng = np.random.default_rng(5)
    for trial in range(4):
        path = tmp_path / f"killed{trial}.nc"
        kill_after_ready(_KILL_SCRIPT, path, rng.uniform(0.0, 0.5))

        ds, ck = open_run(path)
        n = ds.sizes["step"]
        assert n >= ck.record == ck.attrs["step"] >= 6
        np.testing.assert_array_equal(ds["value"].values, np.arange(n))
        np.testing.assert_array_equal(ds["field"].values[:, 7, 3], np.arange(n))
        assert np.all(ds["field"].values == ds["step"].values[:, None, None])

        w, ck = Writer.resume(path)
        for k in range(ck.record, ck.record + 7):
            w.append(k, value=float(k), field=np.full((64, 64), float(k)))
        w.close()
        ds, _ = open_run(path)
        assert ds.sizes["step"] == ck.record + 7
        assert np.all(ds["field"].values == np.arange(ck.record + 7)[:, None, None])
        assert read_checkpoint(path).record == ck.record
