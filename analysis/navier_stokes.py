"""Figures of the Navier-Stokes neural operators (``drivers.navier_stokes``, arXiv 2310.00120).

:func:`plot_dataset` draws the first samples of a dataset file (``w0``, ``w(T)`` at the
finest stored resolution and ``w(T)`` at the coarsest); :func:`plot_losses` the training loss,
the test errors and the learning rate per epoch of a run file of ``train``;
:func:`plot_predictions` input, truth, prediction and error of some test samples (the
predictions are computed by the driver, which has the model).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["plot_dataset", "plot_losses", "plot_predictions"]


def _field(fig: Any, ax: Any, field: Any, title: str, limit: float | None = None) -> None:
    """A periodic field on its grid (pixels centred on ``i / n``), symmetric colour scale."""
    field = np.asarray(field)
    half = 0.5 / field.shape[-1]
    limit = limit or float(np.max(np.abs(field))) or 1.0
    image = ax.imshow(
        field.T,
        origin="lower",
        extent=(-half, 1.0 - half, -half, 1.0 - half),
        cmap="RdBu_r",
        vmin=-limit,
        vmax=limit,
    )
    fig.colorbar(image, ax=ax, shrink=0.8)
    ax.set_title(title, fontsize="small")
    ax.set_xlabel("x")
    ax.set_ylabel("y")


def plot_dataset(ds: Any, base: Path, samples: int = 4) -> list[Path]:
    """The first ``samples`` pairs: ``w0``, ``w(T)`` (finest) and ``w(T)`` (coarsest stored)."""
    stored = sorted(int(n) for n in np.atleast_1d(ds.attrs["resolutions"]))
    fine, coarse = stored[-1], stored[0]
    shown = {"sample": slice(0, samples)}
    t_end = float(ds.attrs["t_end"])
    columns = [
        (ds[f"input_{fine}"].isel(shown).values, f"w0 ({fine}^2)"),
        (ds[f"output_{fine}"].isel(shown).values, f"w(T = {t_end:g}) ({fine}^2)"),
    ]
    if coarse != fine:
        columns.append(
            (ds[f"output_{coarse}"].isel(shown).values, f"w(T) subsampled ({coarse}^2)")
        )
    indices = ds["sample"].isel(shown).values
    rows = len(indices)
    fig, axes = figure(rows, len(columns), figsize=(3.2 * len(columns), 3.0 * rows), squeeze=False)
    for row in range(rows):
        for col, (values, title) in enumerate(columns):
            _field(fig, axes[row, col], values[row], f"sample {int(indices[row])}: {title}")
    fig.suptitle(
        f"nu = {float(ds.attrs['viscosity']):g}, solved at "
        f"{int(ds.attrs['solver_resolution'])}^2, dt = {float(ds.attrs['dt']):g}"
    )
    return [save(fig, base, "samples")]


def plot_losses(ds: Any, base: Path) -> Path:
    """Training loss, test relative L2 and H1 errors and learning rate per epoch of a run."""
    epochs = ds["epoch"].values
    loss = tomllib.loads(str(ds.attrs["config"]))["train"]["loss"].upper()
    fig, (ax, ax_lr) = figure(1, 2, figsize=(10, 4))
    ax.semilogy(epochs, ds["train_loss"].values, label=f"training loss (relative {loss})")
    ax.semilogy(epochs, ds["test_l2"].values, label="test relative L2")
    ax.semilogy(epochs, ds["test_h1"].values, label="test relative H1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error")
    ax.legend()
    ax_lr.semilogy(epochs, ds["lr"].values)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    for axis in (ax, ax_lr):
        axis.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"{ds.attrs['preset']}: {int(ds['parameters'])} parameters, trained at "
        f"{int(ds.attrs['train_resolution'])}^2"
    )
    return save(fig, base, "losses")


def plot_predictions(ds: Any, epoch: int, test: Any, pred: Any, base: Path) -> Path:
    """Input ``w0``, truth ``w(T)``, prediction and error of test samples of the run ``ds``.

    Parameters
    ----------
    ds
        The run file of ``train`` (its preset and training resolution).
    epoch
        Epochs trained.
    test
        The test samples: ``samples`` (indices), ``inputs`` (``w0``) and ``outputs``
        (``w(T)``), the fields of shape ``(samples, n, n)``
        (:class:`problems.navier_stokes.NavierStokesDataset`).
    pred
        The predictions of ``w(T)``, ``(samples, n, n)``.
    base
        Path prefix: the figure is ``<base>_predictions_<n>.png``.
    """
    truth = test.outputs
    n, rows = truth.shape[-1], len(test.samples)
    fig, axes = figure(rows, 4, figsize=(13, 3.0 * rows), squeeze=False)
    for row in range(rows):
        error = pred[row] - truth[row]
        relative = float(np.linalg.norm(error) / np.linalg.norm(truth[row]))
        limit = float(np.max(np.abs(truth[row]))) or 1.0
        panels = [
            (test.inputs[row], "input w0", None),
            (truth[row], "truth w(T)", limit),
            (pred[row], "prediction", limit),
            (error, f"error (relative L2 {relative:.2e})", None),
        ]
        for col, (field, title, scale) in enumerate(panels):
            label = f"sample {int(test.samples[row])}: {title}"
            _field(fig, axes[row, col], field, label, scale)
    fig.suptitle(
        f"{ds.attrs['preset']} after {epoch} epochs (trained at "
        f"{int(ds.attrs['train_resolution'])}^2), test samples at {n}^2"
    )
    return save(fig, base, f"predictions_{n}")
