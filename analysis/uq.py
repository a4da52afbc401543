"""Figures of an uncertain radiative transfer run (``drivers.uq``, arXiv 2412.00858).

:func:`plots` draws the expected value and the variance of the density at the last record
(lines in the slab, maps in the plane, beside the collocation reference when the file has
it) and the ranks of the tree network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, plot_ranks, save
from analysis.radiative_transfer import extent

__all__ = ["plots"]

#: The statistics of the density and their labels.
STATISTICS = (("density_mean", "mean"), ("density_var", "variance"))


def plots(ds: Any, base: Path) -> list[Path]:
    """Statistics and ranks figures of the output file ``ds``."""
    return [_statistics(ds, base), plot_ranks(ds, base)]


def _statistics(ds: Any, base: Path) -> Path:
    last = ds.isel(time=-1)
    t_last = float(last["time"])
    if "y" not in ds.dims:
        fig, axes = figure(2, 1, figsize=(6, 6), sharex=True)
        for ax, (name, label) in zip(axes, STATISTICS, strict=True):
            ax.plot(ds["x"], last[name], label=ds.attrs.get("integrator", "TTN"))
            if f"{name}_reference" in ds:
                ax.plot(ds["x"], ds[f"{name}_reference"], "k--", label="collocation")
            ax.set_ylabel(f"{label} of the density")
            ax.legend()
        axes[0].set_title(f"t = {t_last:.3g}")
        axes[-1].set_xlabel("x")
        return save(fig, base, "statistics")
    has_ref = "density_mean_reference" in ds
    fig, axes = figure(2, 2 if has_ref else 1, figsize=(10 if has_ref else 5.5, 8))
    axes = np.asarray(axes).reshape(2, -1)
    for row, (name, label) in enumerate(STATISTICS):
        maps = [(last[name].values, f"{label}, t = {t_last:.3g}")]
        if has_ref:
            maps.append((ds[f"{name}_reference"].values, f"{label}, collocation"))
        vmax = max(float(np.max(m)) for m, _ in maps)
        for ax, (values, title) in zip(axes[row], maps, strict=True):
            image = ax.imshow(values.T, origin="lower", extent=extent(ds), vmin=0.0, vmax=vmax)
            ax.set_title(title)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        fig.colorbar(image, ax=axes[row].tolist())
    return save(fig, base, "statistics")
