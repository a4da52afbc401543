"""End-to-end tests of ``python -m drivers.dain`` (sweep on generator / IL2 / file, scaling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
xr = pytest.importorskip("xarray")

import drivers.dain as driver  # noqa: E402
from analysis.dain import analyse  # noqa: E402
from problems.completion_data import synthetic_completion  # noqa: E402
from solvers.completion import CompletionParams, run_pipeline  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.io.sparse import split_cells, write_tsv  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

#: A tiny synthetic sweep: 14 x 12 x 10 at 20 %, small models, 3 epochs, 2 seeds.
TINY = [
    "--set", "experiment.data.shape=[14, 12, 10]",
    "--set", "experiment.data.density=0.2",
    "--set", "experiment.model.embed_dim=4",
    "--set", "experiment.model.hidden=[16, 8]",
    "--set", "experiment.model.cp_rank=3",
    "--set", "experiment.training.epochs=3",
    "--set", "experiment.model.factor_epochs=3",
    "--set", "experiment.seeds=2",
]  # fmt: skip
#: A tiny scaling run: the options the scaling command reads.
SCALING = [
    "--set", "experiment.model.embed_dim=4",
    "--set", "experiment.model.hidden=[16, 8]",
    "--set", "experiment.scaling.sizes=[300, 1200]",
    "--set", "experiment.scaling.epochs=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("dain") / "sweep.nc"
    summary = driver.main(["sweep", *TINY, "--set", f"output.path={out}"])
    return out, summary


def test_sweep_file_layout(sweep_file):
    path, summary = sweep_file
    ds = load_dataset(path)
    assert ds.attrs["finished"] == 1 and ds.attrs["command"] == "sweep"
    assert ds.sizes["run"] == 2 * 2 * 4  # models x seeds x (none + 3 methods)
    assert ds.attrs["observed_cells"] == round(0.2 * 14 * 12 * 10)
    rows = {
        (str(m), str(a), int(s))
        for m, a, s in zip(
            ds["model"].values, ds["augmentation"].values, ds["seed"].values, strict=True
        )
    }
    assert rows == {
        (m, a, s)
        for m in ("dain_mlp", "cp")
        for a in ("none", "dain", "uniform", "frequency")
        for s in (0, 1)
    }
    aug = ds["augmentation"].values != "none"
    n_train = ds["n_train"].values - ds["n_aug"].values
    np.testing.assert_array_equal(ds["n_aug"].values[aug], np.round(0.5 * n_train[aug]))
    assert np.all(ds["n_aug"].values[~aug] == 0)
    assert np.all(ds["test_mae"].values <= ds["test_rmse"].values)
    assert set(summary["paired"]) == {
        (m, a) for m in ("dain_mlp", "cp") for a in ("none", "uniform", "frequency")
    }


def test_sweep_run_is_reproduced_by_a_direct_call(sweep_file):
    ds = load_dataset(sweep_file[0])
    tensor = synthetic_completion((14, 12, 10), rank=3, density=0.2, noise=0.1, seed=0).tensor
    out = run_pipeline(
        "cp",
        split_cells(tensor, seed=1),
        ratio=0.5,
        seed=1,
        params=CompletionParams(epochs=3, lr=3e-2, patience=30),
        model_options={"rank": 3},
    )
    for method, r in out.items():
        i = np.flatnonzero(
            (ds["model"].values == "cp")
            & (ds["augmentation"].values == method)
            & (ds["seed"].values == 1)
        )[0]
        assert ds["test_rmse"].values[i] == r["test_rmse"], method


def test_paired_statistics_match_a_direct_computation(sweep_file):
    ds = load_dataset(sweep_file[0])
    found = analyse(ds)
    for (model, other), stats in found["paired"].items():

        def pick(a, model=model):
            return ds["test_rmse"].values[
                (ds["model"].values == model) & (ds["augmentation"].values == a)
            ]

        d = pick("dain") - pick(other)  # both ordered by seed in the file
        assert math.isclose(stats["test_rmse"]["mean"], d.mean(), rel_tol=1e-12)
        assert math.isclose(stats["test_rmse"]["se"], d.std(ddof=1) / math.sqrt(2))
        assert stats["test_rmse"]["n"] == 2


def test_il2_preset_runs_on_natural_missing_cells(tmp_path):
    out = tmp_path / "il2.nc"
    summary = driver.main(
        ["sweep", "--set", "preset=il2", "--set", "experiment.model.factor_epochs=2",
         "--set", "experiment.seeds=1", "--set", 'experiment.models=["cp"]',
         "--set", f"output.path={out}"]
    )  # fmt: skip
    ds = load_dataset(out)
    assert ds.attrs["source"] == "il2" and ds.attrs["missing_cells"] == 192
    # a quarter of the 4800 observed cells is kept: the rest is free for augmentation
    assert abs(ds.attrs["observed_cells"] - 0.25 * (13 * 4 * 12 * 8 - 192)) < 100
    assert list(ds.attrs["shape"]) == [13, 4, 12, 8]
    assert np.all(np.isfinite(ds["test_rmse"].values))
    assert ("cp", "dain") in summary["table"]


def test_file_source_and_scaling(tmp_path):
    tensor = synthetic_completion((10, 9, 8), density=0.3, seed=2).tensor
    path = write_tsv(tmp_path / "t.tensor", tensor)
    out = tmp_path / "file.nc"
    driver.main(
        ["sweep", "--set", "experiment.data.source=file",
         "--set", f"experiment.data.path={path}", "--set", 'experiment.models=["tucker"]',
         "--set", "experiment.model.tucker_rank=2", "--set", "experiment.model.factor_epochs=3",
         "--set", 'experiment.augmentations=["dain"]',
         "--set", "experiment.seeds=1", "--set", f"output.path={out}"]
    )  # fmt: skip
    ds = load_dataset(out)
    assert ds.attrs["observed_cells"] == tensor.nnz and ds.sizes["run"] == 2
    scal = tmp_path / "scaling.nc"
    summary = driver.main(
        ["scaling", *SCALING, "--set", f"output.path={scal}"]
    )  # fmt: skip
    ds = load_dataset(scal)
    np.testing.assert_array_equal(ds["size"].values, [300, 1200])
    assert math.isfinite(ds.attrs["exponent"])
    assert summary["exponents"]["seconds"] == ds.attrs["exponent"]
    assert driver.main(["plot", str(scal)]) is None
    assert [p.name for p in tmp_path.glob("scaling*.png")] == ["scaling_scaling.png"]


def test_plot_writes_png(sweep_file, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "copy.nc"
    path.write_bytes(sweep_file[0].read_bytes())
    assert driver.main(["plot", str(path)]) is None
    pngs = list(tmp_path.glob("copy*.png"))
    assert [p.name for p in pngs] == ["copy_rmse.png"] and pngs[0].stat().st_size > 0


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('experiment.models=["dain_mlp", "ntf"]', "experiment.models[1]'.* got 'ntf'"),
        ('experiment.models=["cp", "cp"]', "'models': expected distinct models"),
        ('experiment.augmentations=["mixup"]', "experiment.augmentations[0]'.* got 'mixup'"),
        ("experiment.ratio=-0.5", "experiment.ratio"),
        ("experiment.data.source=file", "data.path"),
        ("experiment.data.density=0", "density"),
    ],
)
def test_bad_config_is_rejected(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        driver.DainSweep().load(None, [override])


@pytest.mark.parametrize(
    ("command", "overrides", "key"),
    [
        ("sweep", ["scaling.sizes=[500]"], "scaling.sizes"),
        ("sweep", ["model.costco_rank=3"], "model.costco_rank"),
        ("sweep", ["model.tucker_lr=0.1"], "model.tucker_lr"),
        ("sweep", ["data.path=x.tensor"], "data.path"),
        ("sweep", ["data.source=file", "data.path=x.tensor", "data.noise=0.5"], "data.noise"),
        ("sweep", ["data.source=file", "data.path=x.tensor", "data.seed=3"], "data.seed"),
        ("sweep", ['augmentations=["none"]', "ratio=1.0"], "ratio"),
        ("sweep", ['models=["cp"]', "training.epochs=3"], "training.epochs"),
        ("scaling", ["data.shape=[9, 9, 9]"], "data.shape"),
        ("scaling", ["data.subsample=0.5"], "data.subsample"),
        ("scaling", ["seeds=2"], "seeds"),
        ("scaling", ["training.patience=3"], "training.patience"),
        ("scaling", ["model.factor_epochs=3"], "model.factor_epochs"),
        ("scaling", ["model.cp_rank=3"], "model.cp_rank"),
    ],
)
def test_options_a_command_does_not_read_are_refused(command, overrides, key):
    experiment = driver.main.__self__.commands[command]
    with pytest.raises(ConfigError, match=f"'experiment.{key}': has no effect in the {command}"):
        experiment.load(None, [f"experiment.{o}" for o in overrides])


def test_options_at_the_preset_value_or_read_by_the_command_are_accepted():
    il2 = driver.DainSweep().load(None, ["preset=il2"]).experiment  # tucker_rank 3: unused
    assert il2.model.tucker_rank == 3 and il2.data.source == "il2"
    with pytest.raises(ConfigError, match="'experiment.data.shape': has no effect"):
        driver.DainSweep().load(None, ["preset=il2", "experiment.data.shape=[9, 9, 9]"])
    sweep = driver.DainSweep().load(
        None, ['experiment.models=["costco"]', "experiment.model.costco_rank=3"]
    )
    assert sweep.experiment.model.costco_rank == 3
    scaling = driver.DainScaling().load(
        None, ["experiment.scaling.model=cp", "experiment.model.cp_rank=3",
               "experiment.data.seed=4", "experiment.data.skew=1.0"]
    ).experiment  # fmt: skip
    assert (scaling.model.cp_rank, scaling.data.seed, scaling.data.skew) == (3, 4, 1.0)


def test_restart_of_the_sweep_needs_its_journal_and_scaling_has_none(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["sweep", "--restart", str(tmp_path / "x.nc")])
    with pytest.raises(SystemExit) as info:
        driver.main(["scaling", "--restart", "x.nc"])
    assert info.value.code == 2 and "--restart" in capsys.readouterr().err


def test_too_dense_a_tensor_to_augment_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="asked for 1728 new cells but only 192"):
        driver.main(["sweep", "--set", "preset=il2", "--set", "experiment.data.subsample=1",
                     "--set", "experiment.model.factor_epochs=1", "--set", "experiment.seeds=1",
                     "--set", 'experiment.models=["cp"]',
                     "--set", f"output.path={tmp_path / 'x.nc'}"])  # fmt: skip


def test_bad_tensor_file_names_the_problem(tmp_path):
    bad = tmp_path / "bad.tensor"
    bad.write_text("0\t1\t2\t0.5\n0\t1\t2\t0.7\n")
    with pytest.raises(ValueError, match="duplicate"):
        driver.main(["sweep", "--set", "experiment.data.source=file",
                     "--set", f"experiment.data.path={bad}",
                     "--set", f"output.path={tmp_path / 'x.nc'}"])  # fmt: skip


@pytest.mark.slow
@pytest.mark.mpi
def test_two_ranks_give_the_serial_sweep(two_ranks, sweep_file, tmp_path):
    out = tmp_path / "mpi.nc"
    two_ranks(["-m", "drivers.dain", "sweep", *TINY, "--set", f"output.path={out}"])
    serial, parallel = load_dataset(sweep_file[0]), load_dataset(out)
    assert parallel.attrs["mpi_size"] == 2
    for name in ("test_rmse", "test_mae", "n_aug"):
        np.testing.assert_array_equal(parallel[name], serial[name], err_msg=name)
