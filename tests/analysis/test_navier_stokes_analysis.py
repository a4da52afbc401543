"""Figures of the Navier-Stokes neural operators (analysis.navier_stokes) on constructed files."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

xr = pytest.importorskip("xarray")
pytest.importorskip("matplotlib")

from analysis.navier_stokes import plot_dataset, plot_losses, plot_predictions  # noqa: E402


def _fields(samples: int, n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((samples, n, n)).astype(np.float32)


def _dataset(resolutions: tuple[int, ...]) -> xr.Dataset:
    data, coords = {}, {"sample": np.arange(6)}
    for k, n in enumerate(resolutions):
        coords[f"x{n}"] = coords[f"y{n}"] = np.arange(n) / n
        data[f"input_{n}"] = (("sample", f"x{n}", f"y{n}"), _fields(6, n, k))
        data[f"output_{n}"] = (("sample", f"x{n}", f"y{n}"), _fields(6, n, 10 + k))
    attrs = {"resolutions": list(resolutions), "t_end": 1.0, "viscosity": 1e-3,
             "solver_resolution": max(resolutions), "dt": 0.05}  # fmt: skip
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _run() -> xr.Dataset:
    epochs = np.arange(1, 4)
    series = {name: ("epoch", np.array([0.5, 0.2, 0.1]) * (k + 1))
              for k, name in enumerate(("train_loss", "test_l2", "test_h1", "lr"))}  # fmt: skip
    attrs = {"preset": "tfno_tucker", "train_resolution": 16, "config": '[train]\nloss = "h1"\n'}
    return xr.Dataset({**series, "parameters": 1234}, coords={"epoch": epochs}, attrs=attrs)


@pytest.mark.parametrize(("resolutions", "columns"), [((16, 32), 3), ((32,), 2)])
def test_plot_dataset(tmp_path, resolutions, columns, monkeypatch):
    import analysis.navier_stokes as module

    shapes = []
    real = module.figure

    def figure(rows, cols, **kwargs):
        shapes.append((rows, cols))
        return real(rows, cols, **kwargs)

    monkeypatch.setattr(module, "figure", figure)
    written = plot_dataset(_dataset(resolutions), tmp_path / "tiny")
    assert written == [tmp_path / "tiny_samples.png"] and written[0].stat().st_size > 10_000
    assert shapes == [(4, columns)]  # the first four samples; the coarsest output if stored


def test_plot_losses_and_predictions(tmp_path):
    run = _run()
    losses = plot_losses(run, tmp_path / "run")
    assert losses == tmp_path / "run_losses.png" and losses.stat().st_size > 10_000
    test = SimpleNamespace(samples=np.array([4, 5]), inputs=_fields(2, 16, 1),
                           outputs=_fields(2, 16, 2))  # fmt: skip
    out = plot_predictions(run, 3, test, test.outputs * 1.1, tmp_path / "run")
    assert out == tmp_path / "run_predictions_16.png" and out.stat().st_size > 10_000
