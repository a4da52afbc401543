"""FNO, TFNO, MG-TFNO: neuraloperator parity, round trips, training, restart and DDP."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from solvers.tfno import SERIES, TrainParams, evaluate, predict, train  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.models.fno import (  # noqa: E402
    FNO,
    MultigridModel,
    TFNOParams,
    build_model,
    count_parameters,
    factorize_model,
)
from tensorsim.nn.ranks import factorized_size  # noqa: E402
from tensorsim.nn.spectral import kept_modes  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
KINDS = ["dense", "tucker", "cp", "tt"]


def heat_data(n_samples, n, t=0.01, seed=0):
    """The heat semigroup exp(t Laplacian) on random smooth fields of the unit torus.

    A linear operator that is diagonal in Fourier space, so an FNO can represent it with few
    modes. Inputs are scaled to unit standard deviation.
    """
    g = torch.Generator().manual_seed(seed)
    k = torch.fft.fftfreq(n, d=1.0 / n, dtype=torch.float64)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    shape = (n_samples, 1, n, n)
    noise = torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    x = torch.fft.ifft2(noise * (1 + k2) ** -1.5).real
    y = torch.fft.ifft2(torch.fft.fft2(x) * torch.exp(-4 * math.pi**2 * t * k2)).real
    scale = x.std()
    return (x / scale).float(), (y / scale).float()


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def heat():
    x, y = heat_data(96, 16)
    return x[:64], y[:64], x[64:], y[64:]


def _into(out, *, new=True):
    """``record`` and ``save`` of :func:`train` into a Writer (a new one gets the series)."""
    if new:
        for name, (units, long_name) in SERIES.items():
            out.define_series(name, units=units, long_name=long_name)
    return {"record": lambda epoch, values: out.append(epoch, **values), "save": out.checkpoint}


def _neural_fno(kind, **kw):
    models = pytest.importorskip("neuralop.models")
    if kind != "dense":
        kw.update(factorization=kind, rank=0.1, implementation="factorized")
    return models.FNO(in_channels=1, out_channels=1, **kw)


# ------------------------------------------------------------------ neuraloperator parity


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_counts_match_neuraloperator_and_the_formula(kind):
    config = {"n_modes": (16, 16), "hidden_channels": 32, "n_layers": 4}
    ours = build_model(TFNOParams(factorization=kind, rank=0.1, **config))
    theirs = _neural_fno(kind, **config)
    assert count_parameters(ours) == count_parameters(theirs)
    spectral = sum(2 * b.conv.weight.size for b in ours.blocks)
    shape = (32, 32, *kept_modes((16, 16)))
    assert spectral == 4 * 2 * factorized_size(shape, kind, ours.blocks[0].conv.weight.ranks)
    # the rest: lifting 3->64->32, per block bias, skip, channel MLP 32->16->32 and gate,
    # projection 32->64->1
    rest = (3 * 64 + 64 + 64 * 32 + 32) + 4 * (32 + 32 * 32 + 32 * 16 + 16 + 16 * 32 + 32 + 32)
    assert count_parameters(ours) - spectral == rest + (32 * 64 + 64 + 64 + 1)


@pytest.mark.parametrize("kind", ["tucker", "cp", "tt"])
def test_joint_counts_match_tensorly_torch(kind):
    tltorch = pytest.importorskip("tltorch")
    ours = build_model(TFNOParams(factorization=kind, rank=0.05, joint=True))
    shape = (4, 32, 32, 16, 9)
    theirs = tltorch.FactorizedTensor.new(shape, rank=0.05, factorization=kind)
    assert ours.joint_weight.size == sum(p.numel() for p in theirs.parameters())
    assert sum(p.numel() for p in ours.joint_weight.parameters()) == 2 * ours.joint_weight.size


def _copy_from_neuraloperator(ours: FNO, theirs) -> None:
    """Load a neuraloperator FNO's weights into ours (same configuration)."""
    src = theirs.state_dict()
    mapping = {"lifting.fc1": "lifting.fcs.0", "lifting.fc2": "lifting.fcs.1"}
    mapping |= {"projection.fc1": "projection.fcs.0", "projection.fc2": "projection.fcs.1"}
    for layer in range(len(ours.blocks)):
        b, f = f"blocks.{layer}", "fno_blocks"
        mapping |= {
            f"{b}.skip": f"{f}.fno_skips.{layer}.conv",
            f"{b}.mlp.fc1": f"{f}.channel_mlp.{layer}.fcs.0",
            f"{b}.mlp.fc2": f"{f}.channel_mlp.{layer}.fcs.1",
            f"{b}.gate": f"{f}.channel_mlp_skips.{layer}.weight",
            f"{b}.conv.bias": f"{f}.convs.{layer}.bias",
            f"{b}.conv.weight.weight": f"{f}.convs.{layer}.weight.tensor",
            f"{b}.conv.weight.core": f"{f}.convs.{layer}.weight.core",
            f"{b}.conv.weight.weights": f"{f}.convs.{layer}.weight.weights",
        }
        mapping |= {
            f"{b}.conv.weight.factors.{k}": f"{f}.convs.{layer}.weight.factors.factor_{k}"
            for k in range(4)
        }
    with torch.no_grad():
        for name, param in ours.named_parameters():
            prefix = next(p for p in sorted(mapping, key=len, reverse=True) if name.startswith(p))
            value = src[mapping[prefix] + name[len(prefix) :]]
            value = torch.view_as_real(value) if value.is_complex() else value
            param.copy_(value.reshape(param.shape))


@pytest.mark.parametrize("kind", KINDS)
def test_same_weights_give_neuraloperators_outputs(kind):
    config = {"n_modes": (8, 8), "hidden_channels": 8, "n_layers": 2}
    ours = build_model(TFNOParams(factorization=kind, rank=0.1, **config))
    theirs = _neural_fno(kind, **config)
    _copy_from_neuraloperator(ours, theirs)
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ factorization round trips


@pytest.mark.parametrize(("kind", "joint"), [("tucker", False), ("tt", False), ("tucker", True)])
def test_factorize_model_recovers_a_low_rank_model(kind, joint):
    params = TFNOParams(
        n_modes=(8, 8),
        hidden_channels=8,
        n_layers=3,
        factorization=kind,
        rank=0.2,
        joint=joint,
        seed=3,
    )
    low = build_model(params)
    dense = factorize_model(low, "dense", 1.0)
    again = factorize_model(dense, kind, 0.2, joint=joint)
    assert count_parameters(again) == count_parameters(low)
    x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = low(x)
        for model in (dense, again):
            err = (model(x) - ref).abs().max() / ref.abs().max()
            assert err < 1e-5


def test_multigrid_model_shapes_and_resolution_transfer():
    params = TFNOParams(
        n_modes=(8, 8), hidden_channels=8, n_layers=2, mg_levels=1, mg_padding=0.125
    )
    model = build_model(params)
    assert isinstance(model, MultigridModel) and model.in_channels == 1
    assert model.model.in_channels == 2  # the fine patch and one coarser view
    x = torch.randn(3, 1, 32, 32)
    assert predict(model, x, batch_size=2).shape == (3, 1, 32, 32)
    assert model(torch.randn(1, 1, 64, 64)).shape == (1, 1, 64, 64)  # twice the resolution
    inner = build_model(TFNOParams(in_channels=2, n_modes=(8, 8), hidden_channels=8, n_layers=2))
    assert count_parameters(model) == count_parameters(inner)


# ------------------------------------------------------------------ training


@pytest.mark.parametrize(
    ("kind", "extra", "bound"),
    [
        ("dense", {}, 0.12),
        ("tucker", {"rank": 0.3}, 0.12),
        ("tucker", {"mg_levels": 1, "mg_padding": 0.25}, 0.2),
    ],
)
def test_training_learns_the_heat_semigroup(heat, kind, extra, bound):
    x, y, xt, yt = heat
    model = build_model(
        TFNOParams(n_modes=(8, 8), hidden_channels=16, n_layers=2, factorization=kind, **extra)
    )
    start = evaluate(model, xt, yt)["l2"]
    result = train(
        model, x, y, xt, yt, TrainParams(epochs=12, batch_size=8, lr=3e-3, step_size=4, gamma=0.5)
    )
    final = result.history[-1]
    assert start > 0.5
    assert final.test_l2 < bound, [r.test_l2 for r in result.history]
    assert final.test_l2 == pytest.approx(evaluate(model, xt, yt)["l2"])
    assert [r.epoch for r in result.history] == list(range(1, 13))


def test_record_and_save_get_every_epoch(heat):
    """train writes nothing: each epoch goes to record(epoch, values) and save(arrays, attrs)."""
    from solvers.tfno import restore_model

    x, y, xt, yt = heat
    params = TFNOParams(n_modes=(6, 6), hidden_channels=4, n_layers=1, seed=1)
    model = build_model(params)
    records, saved = [], []
    result = train(
        model, x[:16], y[:16], xt, yt, TrainParams(epochs=2, batch_size=8),
        record=lambda epoch, values: records.append((epoch, values)),
        save=lambda arrays, attrs: saved.append((arrays, attrs)),
    )  # fmt: skip
    assert [epoch for epoch, _ in records] == [1, 2]
    for (_, values), r in zip(records, result.history, strict=True):
        assert list(values) == list(SERIES)  # the series a driver declares, in order
        expected = (r.train_loss, r.test_l2, r.test_h1, r.lr, r.seconds)
        assert tuple(values.values()) == expected
    assert [attrs["epoch"] for _, attrs in saved] == [1, 2]
    assert {"model", "optimizer", "scheduler"} <= set(saved[-1][0])
    again, epoch = restore_model(saved[-1], dataclasses.replace(params, seed=7))
    assert epoch == 2 and not again.training
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)


@pytest.mark.slow  # default run kept under 10 min on 2 cores
def test_restart_continues_identically(heat, tmp_path):
    pytest.importorskip("h5netcdf")
    from tensorsim.io import Writer, open_run

    x, y, xt, yt = heat
    params = TFNOParams(n_modes=(6, 6), hidden_channels=8, n_layers=2, rank=0.3)
    train_params = TrainParams(epochs=4, batch_size=16, lr=3e-3, step_size=2, gamma=0.5)

    full = build_model(params)
    with Writer(tmp_path / "full.nc", record_dim="epoch") as out:
        reference = train(full, x, y, xt, yt, train_params, **_into(out)).history

    first = build_model(params)
    with Writer(tmp_path / "part.nc", record_dim="epoch") as out:
        train(first, x, y, xt, yt, dataclasses.replace(train_params, epochs=2), **_into(out))
    writer, checkpoint = Writer.resume(tmp_path / "part.nc")
    assert checkpoint.attrs["epoch"] == 2
    resumed = build_model(dataclasses.replace(params, seed=99))  # other init
    with writer:
        tail = train(
            resumed, x, y, xt, yt, train_params, **_into(writer, new=False), resume=checkpoint
        )
    assert [r.epoch for r in tail.history] == [3, 4]
    for a, b in zip(reference[2:], tail.history, strict=True):
        assert (a.train_loss, a.test_l2, a.test_h1, a.lr) == (
            b.train_loss,
            b.test_l2,
            b.test_h1,
            b.lr,
        )
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    data, ckpt = open_run(tmp_path / "part.nc")
    assert data["train_loss"].values.tolist() == [r.train_loss for r in reference]
    assert ckpt.attrs["epoch"] == 4


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(heat, tmp_path):
    pytest.importorskip("h5netcdf")
    from tensorsim.io import Writer, read_checkpoint

    x, y, xt, yt = heat
    model = build_model(TFNOParams(n_modes=(6, 6), hidden_channels=8, n_layers=1))

    def poison(record):
        if record.epoch == 2:
            with torch.no_grad():
                model.lifting.fc1.bias[0] = float("nan")

    with Writer(tmp_path / "run.nc", record_dim="epoch") as out:
        with pytest.raises(FloatingPointError, match="epoch 3.*after epoch 2"):
            train(
                model,
                x,
                y,
                xt,
                yt,
                TrainParams(epochs=5, batch_size=32),
                **_into(out),
                callback=poison,
            )
    ckpt = read_checkpoint(tmp_path / "run.nc")
    assert ckpt.attrs["epoch"] == 2 and ckpt.record == 2
    assert all(bool(torch.isfinite(torch.as_tensor(v)).all()) for v in ckpt.arrays.values())


WORKER = (
    "import math\nimport torch\n\n"
    + inspect.getsource(heat_data)
    + """
import json
import sys

from solvers.tfno import TrainParams, train
from tensorsim.nn.models.fno import TFNOParams, build_model
from tensorsim.nn.distributed import torch_distributed

torch.set_num_threads(1)
x, y = heat_data(44, 16)
with torch_distributed() as (rank, size):
    model = build_model(TFNOParams(n_modes=(6, 6), hidden_channels=8, n_layers=2,
                                   factorization="tucker", rank=0.3))
    # 40 training samples in batches of 12: the last batch (4) splits unevenly
    params = TrainParams(epochs=3, batch_size=12, lr=3e-3, step_size=2)
    history = train(model, x[:40], y[:40], x[40:], y[40:], params).history
    if rank == 0:
        with open(sys.argv[1], "w") as f:
            json.dump({"size": size, "history": [r.__dict__ for r in history]}, f)
"""
)


@pytest.mark.slow  # default run kept under 10 min on 2 cores
@pytest.mark.mpi
def test_two_ranks_follow_the_serial_loss_curve(tmp_path, mpiexec):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    results = []
    for launcher in ([], [str(mpiexec), "-n", "2", "-genv", "OMP_NUM_THREADS", "1"]):
        out = tmp_path / f"out{len(launcher)}.json"
        proc = subprocess.run(
            [*launcher, sys.executable, str(script), str(out)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            stdin=subprocess.DEVNULL,
        )
        assert proc.returncode == 0, proc.stderr
        results.append(json.loads(out.read_text()))
    serial, parallel = results
    assert (serial["size"], parallel["size"]) == (1, 2)
    for a, b in zip(serial["history"], parallel["history"], strict=True):
        for key in ("train_loss", "test_l2", "test_h1"):
            assert math.isclose(a[key], b[key], rel_tol=1e-5), (key, a, b)


# ------------------------------------------------------------------ bad input


def test_bad_configuration_names_the_key():
    with pytest.raises(ConfigError, match="rank"):
        TFNOParams(rank=1.5)
    with pytest.raises(ConfigError, match="rank"):
        TFNOParams(rank=0.0)
    with pytest.raises(ConfigError, match="factorization"):
        TFNOParams(factorization="svd")
    with pytest.raises(ValueError, match="n_modes"):
        TFNOParams(n_modes=())
    with pytest.raises(ConfigError, match="n_modes"):
        TFNOParams(n_modes=(8, 0))
    with pytest.raises(ConfigError, match="mg_levels"):
        TFNOParams(mg_levels=-1)


def test_bad_shapes_name_the_argument(heat):
    x, y, xt, yt = heat
    model = build_model(TFNOParams(n_modes=(8, 8), hidden_channels=4, n_layers=1))
    with pytest.raises(ValueError, match="x: expected shape"):
        model(torch.zeros(2, 3, 16, 16))
    with pytest.raises(ValueError, match="x: expected shape"):
        model(torch.zeros(2, 1, 16))
    with pytest.raises(ValueError, match="n_modes"):
        model(torch.zeros(2, 1, 6, 16))  # more modes than the grid supports
    with pytest.raises(ValueError, match="x: expected dtype"):
        model(torch.zeros(2, 1, 16, 16, dtype=torch.float64))
    small = TrainParams(epochs=1)
    with pytest.raises(ValueError, match="y_train"):
        train(model, x, y[:, :, :8], xt, yt, small)
    with pytest.raises(ValueError, match="x_train, y_train"):
        train(model, x, y[:10], xt, yt, small)
    with pytest.raises(ValueError, match="x_test"):
        train(model, x, y, xt.double(), yt, small)
    with pytest.raises(ValueError, match="y_test"):
        train(model, x, y, xt, torch.zeros(4, 2, 16, 16), small)
    mg = build_model(TFNOParams(n_modes=(4, 4), hidden_channels=4, n_layers=1, mg_levels=2))
    with pytest.raises(ValueError, match="divisible"):
        mg(torch.zeros(1, 1, 18, 16))


# ------------------------------------------------------------------ grids, presets, options


def test_check_grid_and_the_grids_a_model_does_not_take(heat, caplog):
    from solvers.tfno import check_grid, errors_text, evaluate_grids, predict_grids

    x, y, x_test, y_test = heat
    model = build_model(TFNOParams(n_modes=(12, 12), hidden_channels=4, n_layers=1))
    check_grid(model, x_test, "the test grid")  # 16 points take 12 modes
    coarse_x, coarse_y = x_test[:, :, ::2, ::2], y_test[:, :, ::2, ::2]
    with pytest.raises(ConfigError, match=r"config table 'model' does not fit the 8 x 8 grid"):
        check_grid(model, coarse_x, "resolution 8")
    tests = {8: (coarse_x, coarse_y), 16: (x_test, y_test)}
    with caplog.at_level("WARNING"):
        errors = evaluate_grids(model, tests, batch_size=5)
    assert math.isnan(errors[8]["l2"]) and math.isnan(errors[8]["h1"])
    assert errors[16] == evaluate(model, x_test, y_test, batch_size=5)
    assert any("not evaluated at 8 x 8" in r.getMessage() for r in caplog.records)
    preds = predict_grids(model, {8: coarse_x, 16: x_test})
    assert list(preds) == [16] and torch.equal(preds[16], predict(model, x_test))
    text = errors_text({16: {"l2": 0.5, "h1": 0.25}, 32: {"l2": 1.0, "h1": 2.0}})
    assert text == "5.0000e-01 (2.5000e-01) at 16^2, 1.0000e+00 (2.0000e+00) at 32^2"


def test_model_presets_and_parameter_counts():
    from solvers.tfno import MODEL_PRESETS, TRAIN_DEFAULTS, parameter_counts

    assert TRAIN_DEFAULTS.epochs == 100 and TRAIN_DEFAULTS.lr == 2e-3
    assert TRAIN_DEFAULTS.step_size == 20 and TRAIN_DEFAULTS.gamma == 0.5
    counts = {}
    for name, make in MODEL_PRESETS.items():
        params = make()
        assert params.in_channels == 2 and params.n_modes == (16, 16)
        counts[name] = parameter_counts(build_model(params), params)
    dense = count_parameters(build_model(MODEL_PRESETS["fno"]()))
    assert counts["fno"] == (dense, dense) == (1_192_865, 1_192_865)
    assert counts["tfno_tucker"] == (115_785, dense)  # the counts of docs/tfno.md
    assert counts["mg_tfno"][0] == 115_913 and MODEL_PRESETS["mg_tfno"]().mg_levels == 1


def test_options_without_effect_are_named():
    from solvers.tfno import MODEL_PRESETS, unused_model_options

    fno, mg = MODEL_PRESETS["fno"](), MODEL_PRESETS["mg_tfno"]()
    assert set(unused_model_options(fno)) == {"rank", "joint", "mg_padding"}
    assert unused_model_options(mg) == {}
    cases = [
        ("rank", 0.2, "factorized spectral weights"),
        ("joint", True, "factorized spectral weights"),
        ("mg_padding", 0.25, r"multi-grid levels \(mg_levels > 0\)"),
    ]
    for name, value, match in cases:
        why = unused_model_options(dataclasses.replace(fno, **{name: value}))[name]
        assert re.search(f"{value!r} has no effect without {match}", why)
    factorized = dataclasses.replace(fno, factorization="cp", rank=0.2, joint=True)
    assert set(unused_model_options(factorized)) == {"mg_padding"}
