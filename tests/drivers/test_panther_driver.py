"""End-to-end tests of ``python -m drivers.panther`` (PANTHER pipeline).

The method's pieces are tested in tests/solvers/test_panther.py, the file analysis in
tests/analysis/test_panther_analysis.py.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
xr = pytest.importorskip("xarray")

import drivers.panther as driver  # noqa: E402
from problems.genomics import SyntheticCohortParams, synthetic_cohort  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

#: 96 patients, one seed, co2 and knowledge fills, w_ortho 0 and 0.01 (20 projected steps).
TINY = [
    "--set", "experiment.cohort.n_patients=96",
    "--set", "experiment.sweep.seeds=1",
    "--set", "experiment.factor.ortho_iter=20",
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("panther") / "tiny.nc"
    summary = driver.main([*TINY, "--set", f"output.path={out}"])
    return out, summary


def test_file_layout_and_reported_numbers(tiny_run):
    path, summary = tiny_run
    ds = load_dataset(path)
    assert ds.attrs["finished"] == 1 and ds.attrs["mode1"] == "pathway"
    assert dict(ds.sizes) == {
        "run": 4, "split": 3, "class": 4, "feature": 10, "component": 8,
        "pathway": 28, "gene": 120,
    }  # fmt: skip
    assert [str(f) for f in ds["fill"].values] == ["knowledge", "knowledge", "co2", "co2"]
    np.testing.assert_array_equal(ds["w_ortho"], [0.0, 0.01, 0.0, 0.01])
    assert (ds["min_factor"] >= 0).all()
    assert (ds["ortho_iterations"].values > 0).tolist() == [False, True, False, True]
    acc = ds["accuracy"].values
    assert np.all((acc >= 0) & (acc <= 1))
    # the reported overlap is |reported group & planted group| / |planted group|
    inter = np.nansum(ds["in_group"].values * ds["planted"].values, axis=2)
    np.testing.assert_allclose(ds["overlap"], inter / np.nansum(ds["planted"].values, axis=2))
    # every group has the planted size (4 pathways); nested pathways are filtered (NaN)
    np.testing.assert_array_equal(np.nansum(ds["in_group"].values, axis=2), 4)
    assert np.isnan(ds["loading1"].values[..., 24:]).all()
    # the group component is the one with the largest classifier weight of the class
    comp = np.argmax(ds["coef"].values[:, :, 2:], axis=2)
    np.testing.assert_array_equal(ds["group_component"], comp)
    assert set(summary["table"]) == {("knowledge", 0.0), ("knowledge", 0.01), ("co2", 0.0),
                                     ("co2", 0.01)}  # fmt: skip
    co2 = summary["table"][("co2", 0.0)]
    assert co2["test"] > 0.5  # chance 0.25


def test_plot_writes_pngs(tiny_run):
    pytest.importorskip("matplotlib")
    assert driver.main(["plot", str(tiny_run[0])]) is None
    paths = [tiny_run[0].with_name(f"tiny_{name}.png") for name in ("accuracy", "groups")]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_bad_configuration_is_refused():
    load = driver.PantherSweep().load
    with pytest.raises(ConfigError, match="files.counts"):
        load(None, ["preset=files", "experiment.files.counts="])
    with pytest.raises(ConfigError, match="fractions"):
        load(None, ["experiment.classifier.fractions=[0.5, 0.5]"])
    with pytest.raises(ConfigError, match="fills"):
        load(None, ['experiment.sweep.fills=["co3"]'])


def test_presets_and_output_path():
    sweep = driver.PantherSweep()
    cfg = sweep.load(None, ["preset=serology"])
    assert cfg.experiment.factor.rank == 4 and cfg.experiment.settings() == [
        ("none", 0.0), ("none", 0.01)
    ]  # fmt: skip
    assert str(sweep.output_path(cfg)) == "runs/panther_serology.nc"
    cfg = sweep.load(None, ["output.path=x/y.nc"])
    assert cfg.preset == "synthetic" and str(sweep.output_path(cfg)) == "x/y.nc"


def test_restart_needs_the_journal(tmp_path):
    """A sweep keeps its finished cases in a journal; --restart needs that journal."""
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["--restart", str(tmp_path / "x.nc")])


def test_files_source_reads_the_tables(tmp_path):
    from problems.genomics_files import write_cohort

    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=60), rng=5)
    counts, member, samples = write_cohort(cohort, tmp_path)
    summary = driver.main([
        "--set", "preset=files",
        "--set", f"experiment.files.counts={counts}",
        "--set", f"experiment.files.membership={member}",
        "--set", f"experiment.files.samples={samples}",
        "--set", 'experiment.sweep.fills=["co2"]',
        "--set", "experiment.sweep.w_orthos=[0.0]",
        "--set", "experiment.sweep.seeds=1",
        "--set", f"output.path={tmp_path / 'files.nc'}",
    ])  # fmt: skip
    ds = load_dataset(tmp_path / "files.nc")
    assert ds.sizes["pathway"] == 28 and np.isnan(ds["overlap"]).all()  # nothing planted
    np.testing.assert_array_equal(np.nansum(ds["in_group"].values, axis=2), 5)
    assert summary["table"][("co2", 0.0)]["min_factor"] >= 0


def test_files_preset_runs_on_the_shipped_cohort(tmp_path, monkeypatch):
    """``--set preset=files`` alone reads data/panther/ (absolute paths: any directory)."""
    from problems.genomics_files import write_cohort
    from problems.shipped_data import DATA_DIR
    from tensorsim.testing import differing_variables

    def sets(*pairs):
        return [arg for pair in pairs for arg in ("--set", pair)]

    names = ("counts", "membership", "samples")
    files = driver.PantherSweep().load(None, ["preset=files"]).experiment.files
    tables = [getattr(files, name) for name in names]
    assert tables == [str(DATA_DIR / "panther" / f"{name}.csv") for name in names]
    few = ('experiment.sweep.fills=["co2"]', "experiment.sweep.w_orthos=[0.0]",
           "experiment.sweep.seeds=1", "experiment.factor.max_iter=20",
           "experiment.classifier.cs=[1.0]")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    summary = driver.main(sets("preset=files", *few))
    out = tmp_path / "runs" / "panther_files.nc"
    ds = load_dataset(out)
    assert ds.attrs["preset"] == ds.attrs["source"] == "files" and ds.attrs["finished"] == 1
    assert all(f'"{table}"' in ds.attrs["config"] for table in tables)
    assert dict(ds.sizes) == {
        "run": 1, "split": 3, "class": 4, "feature": 10, "component": 8,
        "pathway": 28, "gene": 120,
    }  # fmt: skip
    assert list(ds["class"].values) == ["class0", "class1", "class2", "class3"]
    assert np.isnan(ds["overlap"]).all() and (ds["min_factor"] >= 0).all()
    assert 0.25 < summary["table"][("co2", 0.0)]["test"] <= 1  # chance 0.25
    # the tables are the documented cohort (60 patients, seed 5): the same run from its own
    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=60), rng=5)
    paths = write_cohort(cohort, "own")
    own = [f"experiment.files.{n}={p}" for n, p in zip(names, paths, strict=True)]
    driver.main(sets("preset=files", *few, *own, "output.path=own.nc"))
    assert differing_variables(out, tmp_path / "own.nc") == []


def test_serology_smoke(tmp_path):
    out = tmp_path / "sero.nc"
    summary = driver.main([
        "--set", "preset=serology",
        "--set", "experiment.sweep.w_orthos=[0.0]",
        "--set", "experiment.sweep.seeds=1",
        "--set", f"output.path={out}",
    ])  # fmt: skip
    ds = load_dataset(out)
    assert ds.attrs["mode1"] == "antigen" and ds.sizes["receptor"] == 11
    assert str(ds["fill"].values[0]) == "none"
    row = summary["table"][("none", 0.0)]
    # the majority class (Severe) is 196 / 438 = 0.45 of the samples
    assert row["test"] > 0.45 and row["min_factor"] >= 0


@pytest.mark.slow  # default run kept under 10 min on 2 cores
@pytest.mark.mpi
def test_two_ranks_give_the_serial_result(tmp_path, two_ranks, tiny_run):
    out = tmp_path / "mpi.nc"
    two_ranks(["-m", "drivers.panther", *TINY, "--set", f"output.path={out}"], timeout=300)
    a, b = load_dataset(tiny_run[0]), load_dataset(out)
    assert b.attrs["mpi_size"] == 2
    for name in ("accuracy", "rel_error", "coef", "loading1", "overlap"):
        np.testing.assert_array_equal(a[name].values, b[name].values)


@pytest.mark.slow
def test_acceptance_synthetic_cohort(tmp_path):
    """Default cohort (240 patients), co2 fill, w_ortho 0 and 0.01, two seeds."""
    out = tmp_path / "acc.nc"
    summary = driver.main([
        "--set", 'experiment.sweep.fills=["co2"]',
        "--set", "experiment.sweep.seeds=2",
        "--set", f"output.path={out}",
    ])  # fmt: skip
    for row in summary["table"].values():
        assert row["test"] >= 0.8  # chance 0.25
        assert row["overlap"] >= 0.75 and row["overlap_best"] >= 0.75
        assert row["min_factor"] >= 0
