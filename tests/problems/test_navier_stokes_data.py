"""Navier-Stokes datasets for neural operators: generation in batches, the file, the split."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import problems.navier_stokes_data as nsd
from problems.navier_stokes import (
    DATASET_ATTRS,
    DatasetParams,
    forcing_field,
    load_dataset,
    solve_samples,
    subsample,
)
from tensorsim.config import ConfigError, config_to_toml

pytest.importorskip("xarray")

TINY = DatasetParams(resolution=32, t_end=0.5, dt=0.05, samples=5, resolutions=(16, 32))


GENERATE = ["generate", "--set", "preset=tiny", "--set", "data.samples=5", "--set",
            "data.t_end=0.5", "--set", "generate.batch=2"]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The tiny dataset, solved in batches of 2 and written by ``drivers.navier_stokes``."""
    import drivers.navier_stokes as driver

    path = tmp_path_factory.mktemp("ns") / "tiny.nc"
    summary = driver.main([*GENERATE, "--set", f"data.path={path}"])
    xp, dev = nsd.array_backend(nsd.GenerateParams())
    results = [nsd.solve_batch(TINY, b, xp, dev) for b in nsd.batches(5, 2)]
    assert [r["indices"] for r in results] == [[0, 1], [2, 3], [4]]
    assert len(summary["busy_time"]) == 1
    return path, results


def test_batches_split_the_samples_in_order():
    assert nsd.batches(8, 3) == [(0, 1, 2), (3, 4, 5), (6, 7)]
    assert nsd.batches(2, 8) == [(0, 1)]


def test_the_file_holds_the_solver_fields(dataset):
    path, results = dataset
    fine, coarse = load_dataset(path), load_dataset(path, 16)
    w0, solution = solve_samples(TINY, [3, 4], seed=0)
    np.testing.assert_array_equal(fine.inputs[3:], w0.astype(np.float32))
    np.testing.assert_array_equal(coarse.outputs[3:], subsample(solution.w, 16).astype(np.float32))
    np.testing.assert_array_equal(fine.samples, np.arange(5))
    attrs = nsd.dataset_attrs(TINY, max(r["max_cfl"] for r in results))
    assert set(DATASET_ATTRS) <= set(attrs) and fine.attrs["command"] == "generate"
    for key in ("viscosity", "t_end", "dt", "steps", "seed", "largest_cfl"):
        assert fine.attrs[key] == attrs[key], key
    import drivers.navier_stokes as driver

    cfg = driver.COMMANDS["generate"].load(None, [a for a in GENERATE[1:] if a != "--set"])
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(path)))
    assert fine.attrs["config"] == config_to_toml(cfg) and fine.attrs["finished"] == 1
    summary = nsd.dataset_summary(TINY, results)
    assert summary == {"path": TINY.path, "samples": 5, "steps": 10, "dt": 0.05,
                       "largest_cfl": attrs["largest_cfl"]}  # fmt: skip
    assert nsd.describe_dataset(TINY).startswith("5 samples: nu=0.001, T=0.5, dt=0.05 (10 steps)")


def test_a_failed_write_keeps_the_previous_file(dataset, tmp_path, monkeypatch):
    import drivers.navier_stokes as driver
    from tensorsim.io import Writer

    path, results = dataset
    out = tmp_path / "data.nc"
    out.write_bytes(path.read_bytes())

    def broken_append(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Writer, "append", broken_append)
    with pytest.raises(OSError, match="disk full"):
        driver.main([*GENERATE, "--set", f"data.path={out}"])
    assert out.read_bytes() == path.read_bytes()
    # no partial output file: the previous one, and the journal of the computed batches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.nc", "data.nc.cases"]


def test_devices_are_refused_where_unused():
    with pytest.raises(ConfigError, match="'device': only the torch backend takes a device"):
        nsd.GenerateParams(device="cuda")
    assert nsd.GenerateParams(backend="torch", device="cuda").device == "cuda"
    torch = pytest.importorskip("torch")
    assert nsd.torch_device("cpu", "device") == torch.device("cpu")
    with pytest.raises(ConfigError, match="'generate.device': not a torch device"):
        nsd.torch_device("nowhere", "generate.device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'device': 'cuda:1' requested, but CUDA"):
            nsd.torch_device("cuda:1", "device")


def test_model_inputs(dataset):
    pytest.importorskip("torch")
    path, _ = dataset
    data = load_dataset(path, 16, samples=slice(2, 5))
    x, y = nsd.model_fields(data, (2.0, 4.0), True, "cpu")
    assert x.shape == (3, 2, 16, 16) and y.shape == (3, 1, 16, 16) and x.dtype == y.dtype
    np.testing.assert_array_equal(x[:, 0].numpy(), data.inputs / np.float32(2))
    np.testing.assert_array_equal(y[:, 0].numpy(), data.outputs / np.float32(4))
    pattern = forcing_field(16, 1.0).astype(np.float32)  # f / A, the same for every sample
    np.testing.assert_array_equal(x[:, 1].numpy(), np.broadcast_to(pattern, (3, 16, 16)))
    x, _ = nsd.model_fields(data, (1.0, 1.0), False, "cpu")
    np.testing.assert_array_equal(x.numpy(), data.inputs[:, None])


def test_the_split(dataset):
    pytest.importorskip("torch")
    path, _ = dataset
    data = nsd.LearningDataParams(path=str(path), n_train=3, n_test=2)
    split = nsd.load_split(data, (2, 1))
    train = load_dataset(path, 16, samples=slice(0, 3))
    scales = [float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))
              for v in (train.inputs, train.outputs)]  # fmt: skip
    assert (split.input_scale, split.output_scale) == tuple(scales) and split.resolution == 16
    np.testing.assert_array_equal(
        split.x_train[:, 0].numpy(), train.inputs / np.float32(scales[0])
    )
    assert list(split.tests) == [16, 32] and split.tests[32][1].shape == (2, 1, 32, 32)
    finest = load_dataset(path, samples=slice(3, None))
    np.testing.assert_array_equal(
        split.tests[32][1][:, 0].numpy(), finest.outputs / np.float32(scales[1])
    )
    expected = {"train_resolution": 16, "input_scale": scales[0], "output_scale": scales[1],
                "viscosity": 1e-3, "t_end": 0.5}  # fmt: skip
    assert split.run_attrs() == expected
    assert nsd.describe_split(data).startswith(f"inputs w0, f; {path}: first 3 samples")
    with pytest.raises(ConfigError, match=r"'model.in_channels': expected 2 \(w0 and the forcing"):
        nsd.load_split(data, (1, 1))
    with pytest.raises(ConfigError, match=r"'model.out_channels': expected 1 \(w\(T\)\), got 2"):
        nsd.load_split(data, (2, 2))
    with pytest.raises(ConfigError, match=r"3 \+ 3 samples requested, but .* holds 5"):
        nsd.load_split(nsd.LearningDataParams(path=str(path), n_train=3, n_test=3), (2, 1))


def test_test_sets(dataset):
    path, _ = dataset
    sets = nsd.test_sets(str(path), 3)
    assert list(sets) == [16, 32]
    np.testing.assert_array_equal(sets[32].samples, [2, 3, 4])
    first = nsd.test_sets(str(path), 3, first=1)
    np.testing.assert_array_equal(first[16].samples, [2])
    np.testing.assert_array_equal(first[16].outputs, sets[16].outputs[:1])
    with pytest.raises(ConfigError, match=r"'data.n_test': 6 test samples requested"):
        nsd.test_sets(str(path), 6)
    pytest.importorskip("torch")
    fields = nsd.test_fields(str(path), 3, (1.0, 2.0), False, first=2)
    test, x, y = fields[16]
    np.testing.assert_array_equal(y[:, 0].numpy(), test.outputs / np.float32(2))
    assert x.shape == (2, 1, 16, 16)
