"""Figures of a spin-chain time evolution (``drivers.spin_chain``, arXiv 2412.00858 Sec. 5.1).

:func:`plots` draws the mean magnetization over time (with the exact one and the error
when the file has them), the ranks of the tree network, and the drift of the norm and of
the energy from their initial values (only truncation changes them in a unitary flow).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, log_error, plot_ranks, save

__all__ = ["plots"]


def plots(ds: Any, base: Path) -> list[Path]:
    """Magnetization, ranks and drift figures of the output file ``ds``."""
    return [_magnetization(ds, base), plot_ranks(ds, base), _drift(ds, base)]


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
