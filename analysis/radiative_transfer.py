"""Figures of a radiative transfer run (``drivers.radiative_transfer``, arXiv 2412.00858).

:func:`plots` draws the density at the last record (a line in the slab, maps in the plane,
beside the full-rank reference when the file has it), the ranks of the tree network, and the
relative change of the mass (with the reference's and the relative error of the density).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, log_error, plot_ranks, save

__all__ = ["extent", "plots"]


def plots(ds: Any, base: Path) -> list[Path]:
    """Density, ranks and mass figures of the output file ``ds``."""
    return [_density(ds, base), plot_ranks(ds, base), _mass(ds, base)]


def extent(ds: Any) -> tuple[float, float, float, float]:
    """``(x0, x1, y0, y1)`` of the cell centres of a 2-D file, for ``imshow``."""
    return (float(ds["x"][0]), float(ds["x"][-1]), float(ds["y"][0]), float(ds["y"][-1]))


def _density(ds: Any, base: Path) -> Path:
    has_ref = "density_reference" in ds
    last = ds.isel(time=-1)
    t_last = float(last["time"])
    if "y" not in ds.dims:
        fig, ax = figure(figsize=(6, 4))
        ax.plot(ds["x"], last["density"], label=ds.attrs.get("integrator", "TTN"))
        if has_ref:
            ax.plot(ds["x"], last["density_reference"], "k--", label="full rank")
        ax.set_xlabel("x")
        ax.set_ylabel(f"density at t = {t_last:.3g}")
        ax.legend()
        return save(fig, base, "density")
    names = ["density", "density_reference"] if has_ref else ["density"]
    fig, axes = figure(1, len(names), figsize=(5 * len(names), 4.2), squeeze=False)
    vmax = max(float(last[name].max()) for name in names)
    for ax, name in zip(axes[0], names, strict=True):
        image = ax.imshow(
            last[name].values.T, origin="lower", extent=extent(ds), vmin=0.0, vmax=vmax
        )
        ax.set_title(f"{name}, t = {t_last:.3g}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    fig.colorbar(image, ax=axes[0].tolist())
    return save(fig, base, "density")


def _mass(ds: Any, base: Path) -> Path:
    fig, ax = figure(figsize=(6, 4))
    m0 = float(ds["mass"][0])
    log_error(
        ax, ds["time"], np.abs(ds["mass"] - m0) / abs(m0), label="|mass - mass(0)| / mass(0)"
    )
    if "density_reference" in ds:
        drift = np.abs(ds["mass_reference"] - m0) / abs(m0)
        log_error(ax, ds["time"], drift, "k--", label="the same, full rank")
        log_error(ax, ds["time"], ds["error_density"], label="relative error of the density")
    ax.set_xlabel("time")
    ax.set_ylabel("relative change / error")
    ax.legend()
    return save(fig, base, "mass")
