"""End-to-end and unit tests of ``python -m drivers.panther`` (PANTHER pipeline)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
xr = pytest.importorskip("xarray")

import drivers.panther as driver  # noqa: E402
from drivers._panther_runs import (  # noqa: E402
    classify,
    factorize,
    group_overlaps,
    split_errors,
)
from problems.genomics import SyntheticCohortParams, cohort_tensor, synthetic_cohort  # noqa: E402
from tensorsim.config import ConfigError, load_with_preset  # noqa: E402
from tensorsim.decomp import CP  # noqa: E402
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
    paths = driver.plot(str(tiny_run[0]))
    assert [p.name for p in paths] == ["tiny_accuracy.png", "tiny_groups.png"]
    assert all(p.stat().st_size > 10_000 for p in paths)


def test_factorize_error_and_orthogonality_penalty():
    cohort = synthetic_cohort(SyntheticCohortParams(n_patients=60), rng=0)
    x = cohort_tensor(cohort).tensor
    cp, info = factorize(x, 4, w_ortho=0.0, max_iter=300, ortho_iter=1, tol=1e-8, seed=0)
    xhat = np.einsum("ir,jr,kr->ijk", cp.factors[0] * cp.weights, *cp.factors[1:])
    xhat *= np.linalg.norm(x)
    assert info["rel_error"] == pytest.approx(np.linalg.norm(x - xhat) / np.linalg.norm(x))
    assert min(f.min() for f in cp.factors) >= 0
    split = np.arange(60) % 3
    errs = split_errors(x, cp, split)
    for s in range(3):
        rows = split == s
        ref = np.linalg.norm(x[rows] - xhat[rows]) / np.linalg.norm(x[rows])
        assert errs[s] == pytest.approx(ref)

    def offdiag(c):
        g = c.factors[0].T @ c.factors[0]
        return np.sum((g - np.diag(np.diag(g))) ** 2)

    ortho, info2 = factorize(x, 4, w_ortho=0.05, max_iter=300, ortho_iter=40, tol=1e-10, seed=0)
    assert info2["ortho_iterations"] > 0 and min(f.min() for f in ortho.factors) >= 0
    assert offdiag(ortho) < 0.5 * offdiag(cp)
    assert info2["rel_error"] >= info["rel_error"] - 1e-12  # the penalty costs fit
    # the penalized fit flushes denormals only while it runs (a process-wide torch switch)
    tiny = torch.tensor(np.finfo(np.float64).tiny, dtype=torch.float64)
    assert float(tiny / 4) > 0.0


def test_classify_matches_sklearn_at_the_chosen_c(rng):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y = np.repeat(np.arange(3), 40)
    feats = rng.standard_normal((120, 4)) + 1.5 * np.eye(3, 4)[y]
    split = np.tile([0, 0, 0, 1, 2], 24)
    out = classify(feats, y, split, (0.01, 1.0))
    sc = StandardScaler().fit(feats[split == 0])
    ref = LogisticRegression(C=out["C"], max_iter=5000).fit(sc.transform(feats[split == 0]),
                                                           y[split == 0])  # fmt: skip
    for s in range(3):
        acc = ref.score(sc.transform(feats[split == s]), y[split == s])
        assert out["accuracy"][s] == pytest.approx(acc)
    np.testing.assert_allclose(out["coef"], ref.coef_)
    assert out["accuracy"][2] > 0.6  # chance 1/3


def test_group_overlaps_on_a_constructed_factorization():
    b = np.zeros((10, 3))
    b[[0, 1, 2], 0] = [3, 2, 1]
    b[[5, 6, 7], 1] = 1.0
    b[[7, 8, 9], 2] = [1, 2, 3]
    cp = CP(np.ones(3), (np.ones((4, 3)), b, np.ones((5, 3))))
    planted = [(0, 1, 2), (7, 8, 9)]
    chosen = [np.array([0, 1, 9]), np.array([5, 6, 7])]
    overlap, best = group_overlaps(cp, planted, chosen)
    np.testing.assert_allclose(overlap, [2 / 3, 1 / 3])
    np.testing.assert_allclose(best, [1.0, 1.0])  # components 0 and 2


def test_bad_configuration_is_refused():
    with pytest.raises(ConfigError, match="files.counts"):
        load_with_preset(driver.PantherRun, None, ["preset=files", "experiment.files.counts="],
                         driver.PRESETS, table="experiment")  # fmt: skip
    with pytest.raises(ConfigError, match="fractions"):
        load_with_preset(driver.PantherRun, None, ["experiment.classifier.fractions=[0.5, 0.5]"],
                         driver.PRESETS, table="experiment")  # fmt: skip
    with pytest.raises(ConfigError, match="fills"):
        load_with_preset(driver.PantherRun, None, ['experiment.sweep.fills=["co3"]'],
                         driver.PRESETS, table="experiment")  # fmt: skip


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


def test_serology_smoke(tmp_path):
    pytest.importorskip("tensorly")
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
