"""Figures of the dynamic functional connectome (``drivers.connectome``, arXiv 2402.14102).

:func:`plots` draws, for the first run of a file, the mean affinity matrix of every epoch
ordered by the planted partition above the weighted graph of every NTF component ordered by
its found communities (``<base>_run0_graphs.png``), the temporal loadings with the time
course of every community (``<base>_run0_loadings.png``), and for all runs the epoch NMI
of the NTF communities beside that of the static (pooled) graph (``<base>_nmi.png``).
Pair values are refolded into neuron x neuron matrices with the file's ``pair_i`` and
``pair_j``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["plots", "square"]


def plots(ds: Any, base: Path) -> list[Path]:
    """The graphs and loadings of the first run and the NMI of all runs."""
    return [_plot_graphs(ds, 0, base), _plot_loadings(ds, 0, base), _plot_nmi(ds, base)]


def square(ds: Any, values: Any) -> np.ndarray:
    """Values over the pairs of ``ds`` (``pair_i < pair_j``) as a symmetric neuron matrix."""
    i, j = ds["pair_i"].values, ds["pair_j"].values
    n = ds.sizes["neuron"]
    out = np.zeros((n, n))
    out[i, j] = values
    out[j, i] = values
    return out


def _show(ax: Any, matrix: np.ndarray, labels: np.ndarray, title: str) -> None:
    """The matrix with rows and columns sorted by community, the boundaries drawn."""
    order = np.argsort(labels, kind="stable")
    ax.imshow(matrix[np.ix_(order, order)], cmap="magma", interpolation="nearest")
    for c in np.cumsum(np.bincount(labels[labels >= 0]))[:-1]:
        ax.axhline(c - 0.5, color="cyan", lw=0.6)
        ax.axvline(c - 0.5, color="cyan", lw=0.6)
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def _plot_graphs(ds: Any, i: int, base: Path) -> Path:
    n_epochs, rank = ds.sizes["epoch"], int(ds["ntf_rank"][i])
    cols = max(n_epochs, rank)
    fig, axes = figure(2, cols, figsize=(2.6 * cols, 5.6), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for e in range(n_epochs):
        axes[0, e].set_axis_on()
        matrix = square(ds, ds["epoch_affinity"][i, e].values)
        _show(axes[0, e], matrix, ds["planted"][i, e].values, f"epoch {e}: mean affinity")
    for r in range(rank):
        axes[1, r].set_axis_on()
        graph = float(ds["weight"][i, r]) * square(ds, ds["pair_factor"][i, :, r].values)
        e = int(ds["peak_epoch"][i, r])
        title = f"component {r} (peak epoch {e})\nNMI {float(ds['nmi'][i, r, e]):.2f}"
        _show(axes[1, r], graph, ds["labels"][i, r].values, title)
    fig.suptitle(
        f"run {i} (seed {int(ds['seed'][i])}, rank {rank}): top ordered by planted, "
        "bottom by found communities",
        fontsize=9,
    )
    return save(fig, base, f"run{i}_graphs")


def _plot_loadings(ds: Any, i: int, base: Path) -> Path:
    rank = int(ds["ntf_rank"][i])
    steps = ds["window"].values
    fig, axes = figure(1, rank + 1, figsize=(3.4 * (rank + 1), 3.2), squeeze=False)
    axes = axes[0]
    for r in range(rank):
        axes[0].plot(steps, ds["time_factor"][i, :, r].values, label=f"component {r}")
        for c in range(int(ds["n_communities"][i, r])):
            course = ds["courses"][i, r, c].values
            if np.any(np.isfinite(course)):
                axes[r + 1].plot(steps, course, lw=1, label=f"community {c}")
        axes[r + 1].set(title=f"component {r}: communities", xlabel="time step")
        axes[r + 1].set_ylabel("mean within-community affinity", fontsize=8)
    axes[0].set(title="temporal loadings", xlabel="time step", ylabel="loading")
    for ax in axes:
        for b in np.asarray(ds.attrs["epoch_bounds"])[1:-1]:
            ax.axvline(b, color="grey", ls=":", lw=1)
        ax.legend(fontsize=6)
    return save(fig, base, f"run{i}_loadings")


def _plot_nmi(ds: Any, base: Path) -> Path:
    n_runs, n_epochs = ds.sizes["run"], ds.sizes["epoch"]
    fig, ax = figure(figsize=(max(5.0, 1.2 * n_runs * n_epochs / 2), 3.5))
    x = np.arange(n_runs)
    width = 0.8 / (2 * n_epochs)
    for e in range(n_epochs):
        ax.bar(x + 2 * e * width, ds["epoch_nmi"][:, e], width, label=f"NTF, epoch {e}")
        ax.bar(x + (2 * e + 1) * width, ds["static_nmi"][:, e], width, hatch="//", alpha=0.5,
               label=f"static, epoch {e}")  # fmt: skip
    labels = [
        f"seed {int(s)}\nrank {int(r)}" for s, r in zip(ds["seed"], ds["ntf_rank"], strict=True)
    ]
    ax.set_xticks(x + 0.4 - width / 2, labels, fontsize=7)
    ax.axhline(0.9, color="k", ls=":", lw=1)
    ax.set(ylabel="NMI with the planted partition", ylim=(0, 1.05))
    ax.legend(fontsize=6, ncol=2)
    return save(fig, base, "nmi")
