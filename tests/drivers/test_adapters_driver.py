"""End-to-end tests of ``python -m drivers.adapters`` (sweep, LoQT pretraining, plots)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
xr = pytest.importorskip("xarray")

import drivers.adapters as driver  # noqa: E402
from problems.adaptation import digits_adaptation_task  # noqa: E402
from solvers.adapters import TrainingParams, adapt_run, pretrain  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

WIDTH, DEPTH = 16, 3

#: A tiny digits sweep: MLP 16 wide with 3 hidden layers, 40 + 30 steps.
TINY = [
    "--set", f"experiment.model.width={WIDTH}",
    "--set", f"experiment.model.depth={DEPTH}",
    "--set", "experiment.pretrain.steps=40",
    "--set", "experiment.pretrain.warmup=5",
    "--set", "experiment.adapt.steps=30",
    "--set", "experiment.adapt.warmup=5",
    "--set", "experiment.sweep.eval_every=10",
    "--set", 'experiment.sweep.variants=["lora", "lotr", "soka", "peft_lora", "full"]',
    "--set", "experiment.sweep.ranks=[1, 2]",
    "--set", "experiment.sweep.lrs=[1e-2]",
    "--set", "experiment.sweep.seeds=1",
]  # fmt: skip


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("adapters") / "sweep.nc"
    summary = driver.main(["sweep", *TINY, "--set", f"output.path={out}"])
    return out, summary


def test_sweep_file_layout_and_counts(sweep_file):
    path, summary = sweep_file
    ds = load_dataset(path)
    assert ds.attrs["finished"] == 1 and ds.attrs["command"] == "sweep"
    assert dict(ds.sizes) == {"run": 9, "eval_step": 4}
    np.testing.assert_array_equal(ds["eval_step"], [0, 10, 20, 30])
    runs = {
        (str(v), int(r)): i
        for i, (v, r) in enumerate(zip(ds["variant"].values, ds["rank"].values, strict=True))
    }
    trainable = ds["trainable"].values
    for r in (1, 2):
        assert trainable[runs["lora", r]] == DEPTH * 2 * WIDTH * r
        assert trainable[runs["peft_lora", r]] == trainable[runs["lora", r]]
        assert trainable[runs["lotr", r]] == 2 * WIDTH * r + DEPTH * r * r
        # 16 x 16 splits into 4 x 4 (x) 4 x 4: 32 parameters per Kronecker term
        assert trainable[runs["soka", r]] == DEPTH * 32 * r
    assert trainable[runs["full", 0]] == DEPTH * WIDTH * WIDTH
    # Adam keeps two moments (+ a step counter) per trainable value
    opt = ds["optimizer_bytes"].values
    np.testing.assert_array_less(8 * trainable - 1, opt)
    np.testing.assert_array_less(opt, 8 * trainable + 8 * 64)
    assert set(summary["table"]) == set(runs)


def test_adapters_leave_the_pretrained_model_unchanged_at_step_0(sweep_file):
    ds = load_dataset(sweep_file[0])
    first = ds["val_loss"][:, 0].values
    # zero-init LoRA / LoTR / peft's LoRA, and the SoKA split, all start at the same loss
    np.testing.assert_allclose(first, first[0], rtol=2e-6)
    assert np.all(ds["val_loss"][:, -1].values < first)


def test_sweep_run_is_reproduced_by_a_direct_call(sweep_file):
    ds = load_dataset(sweep_file[0])
    task = digits_adaptation_task(
        width=WIDTH, depth=DEPTH, batch_size=64, seed=0, val_fraction=0.2
    )
    model, _ = pretrain(task, TrainingParams(steps=40, lr=3e-3, warmup=5), seed=0)
    out = adapt_run(
        model, task, "lotr", [r"hidden\d+"], 2, TrainingParams(steps=30, lr=1e-2, warmup=5),
        eval_every=10, seed=0, loqt_gap=100,
    )  # fmt: skip
    i = [k for k in range(ds.sizes["run"]) if ds["variant"].values[k] == "lotr"][1]
    np.testing.assert_array_equal(ds["val_loss"][i].values, out["val_loss"])


def test_pretrain_command_compares_full_loqt_nq_and_loqt(tmp_path):
    out = tmp_path / "loqt.nc"
    summary = driver.main(
        [
            "pretrain",
            *TINY[:4],
            "--set", "experiment.pretrain.steps=30",
            "--set", "experiment.pretrain.warmup=5",
            "--set", 'experiment.loqt.targets=["hidden\\\\d+"]',
            "--set", "experiment.loqt.rank=4",
            "--set", "experiment.loqt.gap=10",
            "--set", "experiment.loqt.eval_every=10",
            "--set", f"output.path={out}",
        ]
    )  # fmt: skip
    ds = load_dataset(out)
    assert [str(v) for v in ds["variant"].values] == ["full", "loqt_nq", "loqt"]
    table = summary["table"]
    assert table["full"]["bytes_ratio"] == 1.0
    # NF4 stores each targeted 16 x 16 float32 weight as 128 packed bytes + 4 float32 scales
    saved = DEPTH * (WIDTH * WIDTH * 4 - (WIDTH * WIDTH // 2 + WIDTH * WIDTH // 64 * 4))
    weights = ds["weight_bytes"].values
    assert weights[1] - weights[2] == saved
    # trained: every parameter (full) vs B (rank x in) and the untargeted parameters
    trainable = ds["trainable"].values
    assert trainable[0] == (64 * WIDTH + WIDTH + DEPTH * (WIDTH * WIDTH + WIDTH) + 10 * WIDTH + 10)
    assert (
        trainable[1] == trainable[2] == trainable[0] - DEPTH * (WIDTH * WIDTH + WIDTH - 4 * WIDTH)
    )
    assert np.all(ds["val_loss"][:, -1].values < ds["val_loss"][:, 0].values)


def test_plot_writes_pngs(sweep_file, tmp_path):
    pytest.importorskip("matplotlib")
    assert driver.main(["plot", str(sweep_file[0])]) is None
    base = sweep_file[0].with_suffix("")
    for suffix in ("params", "curves"):
        png = base.with_name(f"{base.name}_{suffix}.png")
        assert png.stat().st_size > 0, png


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('experiment.sweep.variants=["lora", "dora"]', "'dora'"),
        ("experiment.sweep.targets=[]", "at least one pattern"),
        ("experiment.sweep.ranks=[0]", "sweep.ranks"),
        ("experiment.adapt.warmup=5000", "at most steps=2000"),
        # options the sweep or the task does not use are refused off their preset's value
        ("experiment.loqt.rank=4", "'experiment.loqt': applies to the pretrain command"),
        ("experiment.model.heads=8", "'experiment.model.heads': not used by task = 'digits'"),
        ("experiment.data.max_chars=1000", "'experiment.data.max_chars'"),
        ("experiment.adapt.lr=1e-2", "'experiment.adapt.lr': the sweep tries sweep.lrs"),
        ('experiment.sweep.variants=["lora"]\nexperiment.sweep.loqt_gap=5', "sweep.loqt_gap"),
        ('experiment.sweep.variants=["full"]\nexperiment.sweep.ranks=[2]', "sweep.ranks"),
    ],
)
def test_bad_config_is_rejected(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        driver.AdaptersSweep().load(None, override.split("\n"))


def test_options_the_pretrain_command_does_not_use_are_refused():
    load = driver.LoQTPretrain().load
    with pytest.raises(ConfigError, match="'experiment.sweep': applies to the sweep command"):
        load(None, ["experiment.sweep.seeds=3"])
    with pytest.raises(ConfigError, match="'experiment.adapt': applies to the sweep command"):
        load(None, ["experiment.adapt.steps=100"])
    with pytest.raises(ConfigError, match="'experiment.data.val_fraction'"):
        load(None, ["preset=chars_transformer", "experiment.data.val_fraction=0.3"])
    # a preset's own values are not "changed": the chars preset's sweep table is accepted
    cfg = load(None, ["preset=chars_transformer", "experiment.loqt.rank=4"])
    assert cfg.experiment.sweep.ranks == (2, 8) and cfg.experiment.loqt.rank == 4
    assert str(driver.LoQTPretrain().output_path(cfg)) == "runs/loqt_chars_transformer.nc"


def test_empty_lrs_use_adapt_lr():
    overrides = [
        "experiment.sweep.lrs=[]",
        "experiment.adapt.lr=0.02",
        'experiment.sweep.variants=["full", "lora"]',
        "experiment.sweep.ranks=[2]",
        "experiment.sweep.seeds=1",
    ]
    e = driver.AdaptersSweep().load(None, overrides).experiment
    assert e.runs() == [("full", 0, 0.02, 0), ("lora", 2, 0.02, 0)]


def test_restart_needs_the_journal(tmp_path):
    """A sweep keeps its finished cases in a journal; --restart needs that journal."""
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["sweep", "--restart", str(tmp_path / "x.nc")])


def test_target_that_matches_no_layer_names_the_pattern(tmp_path):
    with pytest.raises(ValueError, match="q_proj"):
        driver.main(["sweep", *TINY, "--set", 'experiment.sweep.targets=["q_proj"]',
                     "--set", f"output.path={tmp_path / 'x.nc'}"])  # fmt: skip


@pytest.mark.slow  # default run kept under 10 min on 2 cores
@pytest.mark.mpi
def test_two_ranks_give_the_serial_sweep(two_ranks, sweep_file, tmp_path):
    out = tmp_path / "mpi.nc"
    two_ranks(["-m", "drivers.adapters", "sweep", *TINY, "--set", f"output.path={out}"])
    serial, parallel = load_dataset(sweep_file[0]), load_dataset(out)
    assert parallel.attrs["mpi_size"] == 2
    for name in ("val_loss", "test_accuracy", "trainable"):
        np.testing.assert_array_equal(parallel[name], serial[name], err_msg=name)
