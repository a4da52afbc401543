"""End-to-end tests of ``python -m drivers.smmf`` (optimizer sweep, state bytes, plots)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("pytorch_optimizer")
xr = pytest.importorskip("xarray")

import drivers.smmf as driver  # noqa: E402
from solvers.optimizers import OPTIMIZERS  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.optim import smmf_state_bytes  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

#: A tiny CNN sweep: every optimizer, one learning rate, 6 steps.
TINY = [
    "--set", "experiment.steps=6",
    "--set", "experiment.warmup=1",
    "--set", "experiment.eval_every=3",
    "--set", "experiment.seeds=1",
    "--set", "experiment.data.batch_size=16",
    "--set", "experiment.optim.lr_factors=[1.0]",
]  # fmt: skip


@pytest.fixture(scope="module")
def cnn_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("smmf") / "cnn.nc"
    summary = driver.main([*TINY, "--set", f"output.path={out}"])
    return out, summary


def test_file_layout_and_curves(cnn_file):
    path, summary = cnn_file
    ds = load_dataset(path)
    assert ds.attrs["finished"] == 1 and ds.attrs["model"] == "cnn"
    assert ds.attrs["parameters"] == 9930
    assert ds.sizes["run"] == len(OPTIMIZERS) and ds.sizes["eval_step"] == 3
    np.testing.assert_array_equal(ds["eval_step"], [0, 3, 6])
    assert [str(v) for v in ds["optimizer"].values] == list(OPTIMIZERS)
    assert driver.Experiment().optimizers == OPTIMIZERS
    for name in ("val_loss", "test_loss", "val_accuracy", "test_accuracy"):
        assert np.all(np.isfinite(ds[name].values))
    # every run starts from the same weights (seed 0) and the untrained CNN is near chance
    np.testing.assert_allclose(ds["val_loss"][:, 0], ds["val_loss"][0, 0], rtol=1e-6)
    assert abs(float(ds["val_loss"][0, 0]) - np.log(10)) < 0.2
    assert np.isnan(ds["train_loss"][0, 0]) and np.all(np.isfinite(ds["train_loss"][:, 1:]))
    assert set(summary["table"]) == set(OPTIMIZERS)


def test_measured_state_bytes_equal_the_formula(cnn_file):
    ds = load_dataset(cnn_file[0])
    run = {str(v): i for i, v in enumerate(ds["optimizer"].values)}
    state, formula = ds["state_bytes"].values, ds["formula_bytes"].values
    smmf = run["smmf"]
    assert state[smmf] == formula[smmf] == ds["tensor_smmf_bytes"].values.sum()
    # the conv kernels 16x1x3x3 and 32x16x3x3 are matricized 12 x 12 and 72 x 64
    rows = dict(zip(ds["tensor"].values, ds["tensor_rows"].values, strict=True))
    cols = dict(zip(ds["tensor"].values, ds["tensor_cols"].values, strict=True))
    assert (rows["3.weight"], cols["3.weight"]) == (72, 64)
    assert (rows["1.weight"], cols["1.weight"]) == (12, 12)
    assert ds["tensor_smmf_bytes"].values[list(ds["tensor"].values).index("3.weight")] == (
        smmf_state_bytes((32, 16, 3, 3))
    )
    for name in ("adam", "adamw"):
        assert state[run[name]] == formula[run[name]] == ds["tensor_adam_bytes"].values.sum()
    for name in ("adafactor", "came", "sm3"):
        assert np.isnan(formula[run[name]]) and state[run[name]] > 0
    # SMMF keeps about 5% of Adam's state on this model, the most of any optimizer here
    assert 0.03 < state[smmf] / state[run["adam"]] < 0.06
    assert state[smmf] == state.min()


def test_analysis_and_plots(cnn_file):
    path, summary = cnn_file
    cmp = summary["smmf_vs_adam"]
    assert cmp["formula_match"] and cmp["criterion"].startswith("test accuracy")
    t = summary["tensors"]
    assert t["smallest"][0] == 10 and t["smallest"][1] > 0.5 > t["model_ratio"]
    assert "measured == formula: True" in driver.SMMFSweep().summarize(summary)
    pngs = driver.main.__self__.plot(str(path))
    assert [p.name for p in pngs] == ["cnn_curves.png", "cnn_state.png"]
    assert all(p.stat().st_size > 1000 for p in pngs)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["experiment.optimizers=['adam', 'lion']"], "optimizers"),
        (["experiment.optimizers=['adam', 'adam']"], "repeated"),
        (["experiment.warmup=700"], "warmup"),
        (["experiment.optim.sm3.weight_decay=0.1"], "sm3.weight_decay"),
        (["experiment.optim.lr_factors=[]"], "lr_factors"),
        (["experiment.optim.lr_factors=[1, 1]"], "lr_factors"),
        (["experiment.optim.smmf.lr=-1e-3"], "smmf.lr"),
        (["experiment.optim.decay_rate=0.5"], "decay_rate"),
        (["preset=transformer", "experiment.transformer.width=30"], "width"),
        (["preset=resnet"], "preset"),
        (["experiment.optim.adamm.lr=1e-3"], "adamm"),
        # options the experiment would not use are refused, not ignored
        (["experiment.data.corpus=python_docs"], "experiment.data.corpus.*transformer"),
        (["preset=mlp", "experiment.transformer.heads=2"], "transformer.heads"),
        (["preset=transformer", "experiment.data.val_fraction=0.3"], "data.val_fraction"),
        (["experiment.optimizers=['adam']", "experiment.optim.sm3.lr=0.2"], "optim.sm3"),
        (["experiment.optimizers=['adam']", "experiment.optim.decay_rate=-0.8"], "decay_rate"),
    ],
)
def test_bad_config_errors(overrides, match):
    with pytest.raises(ConfigError, match=match):
        driver.SMMFSweep().load(None, overrides)


def test_preset_values_of_unused_options_are_accepted():
    """The transformer preset's SMMF decay rate is no error when SMMF is not compared."""
    cfg = driver.SMMFSweep().load(None, ["preset=transformer", "experiment.optimizers=['adam']"])
    assert cfg.experiment.optim.decay_rate == -0.8 and cfg.experiment.optimizers == ("adam",)
    cnn = driver.SMMFSweep().load(None, ["experiment.model=mlp", "experiment.data.seed=3"])
    assert cnn.experiment.data.seed == 3


def test_presets_and_restart_refused(capsys):
    sweep = driver.SMMFSweep()
    cfg = sweep.load(None, ["preset=transformer"])
    assert cfg.experiment.model == "transformer" and cfg.experiment.optim.decay_rate == -0.8
    assert str(sweep.output_path(cfg)).endswith("smmf_transformer.nc")
    assert len(cfg.experiment.settings()) == 6 * 2 * 2
    assert cfg.experiment.optim.lrs("came") == [6e-4, 2e-3]
    cnn = sweep.load(None, [])
    assert cnn.experiment.optim.lrs("sm3") == [0.1, 0.3, 1.0, 3.0, 10.0]
    # a sweep continues from its case journal, which a never-started run does not have
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["--restart", "x.nc"])


@pytest.mark.slow  # ~15-20 s of process start-up on 2 loaded cores: run with -m mpi or -m slow
@pytest.mark.mpi
def test_two_ranks_give_the_serial_runs(two_ranks, cnn_file, tmp_path):
    out = tmp_path / "two.nc"
    pair = ["--set", "experiment.optimizers=['adam', 'smmf']"]
    two_ranks(["-m", "drivers.smmf", *TINY, *pair, "--set", f"output.path={out}"])
    serial, parallel = load_dataset(cnn_file[0]), load_dataset(out)
    assert parallel.attrs["mpi_size"] == 2
    rows = [list(OPTIMIZERS).index(name) for name in ("adam", "smmf")]
    for name in ("state_bytes", "formula_bytes", "val_loss", "test_accuracy", "train_loss"):
        np.testing.assert_array_equal(parallel[name].values, serial[name].values[rows])


def test_seeded_builders_are_reproducible_and_leave_the_global_generator():
    from tensorsim.nn.models.small import build_char_transformer, build_digits_cnn

    state = torch.random.get_rng_state()
    a, b = build_digits_cnn(seed=3), build_digits_cnn(seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    assert not torch.equal(a[1].weight, build_digits_cnn(seed=4)[1].weight)
    lm = build_char_transformer(96, 8, width=16, layers=1, heads=2, seed=0)
    assert lm(torch.zeros(2, 5, dtype=torch.long)).shape == (2, 5, 96)
    with pytest.raises(ValueError, match="width"):
        build_char_transformer(96, 8, width=15, heads=2)
    with pytest.raises(ValueError, match="seed"):
        build_digits_cnn(seed=-1)
