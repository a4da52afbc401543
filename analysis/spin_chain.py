"""Figures of a spin-chain time evolution (``drivers.spin_chain``, arXiv 2412.00858 Sec. 5.1).

:func:`plots` draws, for a time evolution, the mean magnetization over time (with the
exact one and the error when the file has them), the ranks of the tree network, the drift
of the norm and of the energy from their initial values (only truncation changes them in a
unitary flow), and the entanglement: the entropy of every edge over time and the last
correlation matrix. :func:`ground_plots` draws a DMRG run's convergence per sweep and the
entanglement of its final state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, log_error, plot_ranks, save

__all__ = ["ground_plots", "plots"]


def plots(ds: Any, base: Path) -> list[Path]:
    """Magnetization, ranks, drift and entanglement figures of a time evolution ``ds``."""
    return [
        _magnetization(ds, base),
        plot_ranks(ds, base),
        _drift(ds, base),
        _entanglement(ds, base, "time"),
    ]


def ground_plots(ds: Any, base: Path) -> list[Path]:
    """Convergence and entanglement figures of a ground-state run ``ds`` (one record a sweep)."""
    return [_convergence(ds, base), _entanglement(ds, base, "sweep")]


def _entanglement(ds: Any, base: Path, record: str) -> Path:
    """Entropy of every edge over the records, and the file's last correlation matrix.

    ``record`` is ``"time"`` or ``"sweep"``; the matrix is the first of ``corr_zz``,
    ``corr_xx``, ``corr_yy`` that the file has (none: the entropy panel alone).
    """
    corr = next((name for name in ("corr_zz", "corr_xx", "corr_yy") if name in ds), None)
    fig, axes = figure(1, 2 if corr else 1, figsize=(11 if corr else 6, 4), squeeze=False)
    ax = axes[0, 0]
    entropy = ds["entropy"]
    ax.plot(ds[record], entropy.values, color="0.7", lw=0.8)
    ax.plot(ds[record], entropy.max("edge"), "k", lw=2, label="largest (every edge in grey)")
    ax.set_xlabel(record)
    ax.set_ylabel("von Neumann entropy (nats)")
    ax.legend(fontsize="small")
    if corr:
        panel = axes[0, 1]
        last = ds[corr].isel({record: -1})
        image = panel.imshow(last.values, cmap="RdBu_r", vmin=-1, vmax=1, origin="lower")
        fig.colorbar(image, ax=panel, shrink=0.8)
        pauli = corr[-1].upper()
        panel.set_title(f"<{pauli}_i {pauli}_j> at {record} {ds[record].values[-1]:g}")
        panel.set_xlabel("site j")
        panel.set_ylabel("site i")
    return save(fig, base, "entanglement")


def _convergence(ds: Any, base: Path) -> Path:
    """Energy change, variance, discarded weight (and the error against exact) per sweep."""
    fig, ax = figure(figsize=(6, 4))
    sweeps = ds["sweep"].values
    energy = ds["energy"].values
    if energy.size > 1:
        change = np.abs(np.diff(energy)) / max(1.0, abs(energy[-1]))
        log_error(ax, sweeps[1:], change, "o-", label="|E - E(previous sweep)| / |E|")
    log_error(ax, sweeps, ds["variance"], "s-", label="variance <H^2> - <H>^2")
    log_error(ax, sweeps, ds["discarded"], "^-", label="discarded weight")
    if "error_energy" in ds:
        log_error(ax, sweeps, ds["error_energy"], "k*-", label="|E - exact| / |exact|")
    ax.set_xlabel("sweep")
    ax.set_title(f"E = {energy[-1]:.12g}")
    ax.legend(fontsize="small")
    return save(fig, base, "convergence")


def _magnetization(ds: Any, base: Path) -> Path:
    has_exact = "mz_mean_exact" in ds
    fig, axes = figure(
        2 if has_exact else 1, 1, figsize=(6, 6 if has_exact else 4), sharex=True, squeeze=False
    )
    ax = axes[0, 0]
    name = ds.attrs.get("integrator", "TTN")
    # the mean is conserved by some models: show two sites that move as well
    sites = sorted({0, int(ds.sizes["site"]) // 2})
    for k in sites:
        (line,) = ax.plot(ds["time"], ds["mz"].isel(site=k), label=f"{name}, site {k}")
        if "mz_exact" in ds:
            ax.plot(ds["time"], ds["mz_exact"].isel(site=k), "--", color=line.get_color())
    ax.plot(ds["time"], ds["mz_mean"], color="0.4", label=f"{name}, mean")
    if has_exact:
        ax.plot(ds["time"], ds["mz_mean_exact"], "k--", label="exact (dashed)")
        panel = axes[1, 0]
        for var, label in (
            ("error_mz_site", "max over sites, <Z_k>"),
            ("error_zz", "max over bonds, <Z_k Z_k+1>"),
            ("error_mz", "mean magnetization"),
        ):
            if var in ds:
                log_error(panel, ds["time"][1:], ds[var][1:], label=label)
        panel.set_ylabel("|error| against exact")
        panel.legend(fontsize="small")
    axes[-1, 0].set_xlabel("time")
    ax.set_ylabel("magnetization")
    ax.legend(fontsize="small")
    return save(fig, base, "magnetization")


def _drift(ds: Any, base: Path) -> Path:
    fig, ax = figure(figsize=(6, 4))
    log_error(ax, ds["time"][1:], np.abs(ds["norm"][1:] - 1.0), label="|norm - 1|")
    energy = ds["energy"]
    log_error(ax, ds["time"][1:], np.abs(energy[1:] - energy[0]), label="|E - E(0)|")
    ax.set_xlabel("time")
    ax.set_ylabel("drift")
    ax.legend()
    return save(fig, base, "drift")
