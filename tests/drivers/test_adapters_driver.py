"""End-to-end tests of ``python -m drivers.adapters`` (sweep, LoQT pretraining, plots)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
xr = pytest.importorskip("xarray")

import drivers.adapters as driver  # noqa: E402
from drivers._adapter_runs import adapt_run, digits_task, pretrain  # noqa: E402
from tensorsim.config import ConfigError, load_with_preset  # noqa: E402
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
    task = digits_task(width=WIDTH, depth=DEPTH, batch_size=64, seed=0, val_fraction=0.2)
    model, _ = pretrain(task, steps=40, lr=3e-3, warmup=5, seed=0)
    out = adapt_run(
        model, task, "lotr", [r"hidden\d+"], 2,
        steps=30, lr=1e-2, warmup=5, eval_every=10, seed=0, loqt_gap=100,
    )  # fmt: skip
    i = [k for k in range(ds.sizes["run"]) if ds["variant"].values[k] == "lotr"][1]
    np.testing.assert_array_equal(ds["val_loss"][i].values, out["val_loss"])


def test_analyse_selects_by_validation_and_matches_lotr_and_soka_to_lora():
    runs = [
        # variant, rank, lr, trainable, final val acc, test acc, val loss curve
        ("lora", 4, 1e-3, 1000, 0.80, 0.81, [2.0, 1.0, 0.50]),
        ("lora", 4, 1e-2, 1000, 0.90, 0.88, [2.0, 0.8, 0.40]),
        ("lotr", 2, 1e-2, 200, 0.89, 0.875, [2.0, 0.9, 0.45]),
        ("lotr", 8, 1e-2, 400, 0.91, 0.90, [2.0, 0.7, 0.35]),
        ("soka", 1, 1e-2, 300, 0.85, 0.85, [2.0, 0.6, 0.41]),
        ("soka", 2, 1e-2, 600, 0.90, 0.89, [2.0, 0.4, 0.30]),
    ]
    ds = xr.Dataset(
        {
            "variant": ("run", [r[0] for r in runs]),
            "rank": ("run", [r[1] for r in runs]),
            "lr": ("run", [r[2] for r in runs]),
            "trainable": ("run", [r[3] for r in runs]),
            "val_accuracy": (("run", "eval_step"), [[0, 0, r[4]] for r in runs]),
            "test_accuracy": (("run", "eval_step"), [[0, 0, r[5]] for r in runs]),
            "test_loss": (("run", "eval_step"), [[0, 0, 1.0] for r in runs]),
            "val_loss": (("run", "eval_step"), [r[6] for r in runs]),
            "weight_bytes": ("run", [10] * len(runs)),
            "optimizer_bytes": ("run", [1] * len(runs)),
            "step_seconds": ("run", [0.1] * len(runs)),
        },
        coords={"eval_step": [0, 10, 20]},
        attrs={"task": "digits"},
    )
    found = driver.analyse(ds)
    assert found["table"]["lora", 4]["lr"] == 1e-2  # best validation accuracy, not test
    lotr = found["lotr_vs_lora"][4]
    assert (lotr["rank"], lotr["ratio"]) == (2, 5.0)  # 0.875 is within 1 point of 0.88
    soka = found["soka_vs_lora"][4]
    # soka r=1 never reaches 0.40; soka r=2 does at step 10
    assert (soka["rank"], soka["step"], soka["ratio"]) == (2, 10, 1000 / 600)


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


def test_plot_writes_pngs(sweep_file):
    paths = driver.plot(str(sweep_file[0]))
    assert [p.suffix for p in paths] == [".png", ".png"] and all(p.stat().st_size for p in paths)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ('experiment.sweep.variants=["lora", "dora"]', "unknown ['dora']"),
        ("experiment.sweep.targets=[]", "at least one pattern"),
        ("experiment.sweep.ranks=[0]", "sweep.ranks"),
        ("experiment.adapt.warmup=5000", "at most steps=2000"),
    ],
)
def test_bad_config_is_rejected(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_with_preset(driver.AdaptersRun, None, [override], driver.PRESETS, table="experiment")


def test_target_that_matches_no_layer_names_the_pattern(tmp_path):
    with pytest.raises(ValueError, match="q_proj"):
        driver.main(["sweep", *TINY, "--set", 'experiment.sweep.targets=["q_proj"]',
                     "--set", f"output.path={tmp_path / 'x.nc'}"])  # fmt: skip


@pytest.mark.mpi
def test_two_ranks_give_the_serial_sweep(two_ranks, sweep_file, tmp_path):
    out = tmp_path / "mpi.nc"
    two_ranks(["-m", "drivers.adapters", "sweep", *TINY, "--set", f"output.path={out}"])
    serial, parallel = load_dataset(sweep_file[0]), load_dataset(out)
    assert parallel.attrs["mpi_size"] == 2
    for name in ("val_loss", "test_accuracy", "trainable"):
        np.testing.assert_array_equal(parallel[name], serial[name], err_msg=name)
