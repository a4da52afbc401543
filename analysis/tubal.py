"""Figures of gradient descent on tubal factorizations (``drivers.tubal``, arXiv 2410.16247).

:func:`plots` draws the error curves of every setting (mean over trials, min-max band), the
final errors against the initialization scale with their least-squares slope beside the
paper's guide slope 21/16 (when the scale varies), and the numerical tubal rank with the
singular-tube norms of the first and last setting.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import band, figure, save

__all__ = ["GUIDE_SLOPE", "log_log_slope", "plots"]

#: The paper's guide line for the final error against alpha: ``c alpha^(21/16)``.
GUIDE_SLOPE = 21 / 16


def log_log_slope(x: Sequence[float], y: Sequence[float]) -> float:
    """Least-squares slope of ``log10 y`` against ``log10 x`` (NaN for fewer than 2 points)."""
    lx, ly = np.log10(np.asarray(x, dtype=float)), np.log10(np.asarray(y, dtype=float))
    if lx.size < 2 or np.ptp(lx) == 0:
        return math.nan
    return float(np.polyfit(lx, ly, 1)[0])


def plots(ds: Any, base: Path) -> list[Path]:
    """Error curves, the final error against alpha (if alpha varies), tubal ranks."""
    outputs = [_plot_errors(ds, base)]
    if np.unique(ds["alpha"].values).size > 1:
        outputs.append(_plot_alpha(ds, base))
    outputs.append(_plot_rank(ds, base))
    return outputs


def _setting_label(ds: Any, s: int) -> str:
    return f"R={int(ds['width'][s])}, alpha={float(ds['alpha'][s]):.0e}"


def _plot_errors(ds: Any, base: Path) -> Path:
    it = ds["iteration"].values
    panels = [
        ("test_error", "test error ||X_t - X*|| / ||X*||"),
        ("train_error", "train error ||A(X_t) - y|| / ||y||"),
        ("tube_error", "error of the r*-th singular tube"),
        ("angle_truth", "sin angle to X* (solid), to A*(y) (dashed)"),
    ]
    fig, axes = figure(2, 2, figsize=(11, 7.5), sharex=True)
    for ax, (name, title) in zip(axes.flat, panels, strict=True):
        for s in range(ds.sizes["setting"]):
            line = band(ax, it, ds[name][s].values, log=True, label=_setting_label(ds, s))
            if name == "angle_truth":
                ax.semilogy(
                    it, ds["angle_power"][s].values.mean(axis=0), "--", color=line.get_color()
                )
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("iteration t")
    axes[0, 0].legend(fontsize="small")
    fig.suptitle("mean over trials (band: min to max)")
    return save(fig, base, "errors")


def _plot_alpha(ds: Any, base: Path) -> Path:
    alpha = ds["alpha"].values
    log_alpha = np.log10(alpha)
    fig, ax = figure(figsize=(6.5, 4.5))
    for name, marker in (("test_error", "o"), ("train_error", "s")):
        final = ds[name].isel(iteration=-1).values  # setting x trial
        mean = final.mean(axis=1)
        err = [mean - final.min(axis=1), final.max(axis=1) - mean]
        bars = ax.errorbar(alpha, mean, yerr=err, fmt=marker, capsize=3, label=f"final {name}")
        fit = np.polyfit(log_alpha, np.log10(mean), 1)
        ax.loglog(alpha, 10 ** np.polyval(fit, log_alpha), "-", color=bars[0].get_color(), lw=1,
                  label=f"least-squares fit, slope {log_log_slope(alpha, mean):.2f}")  # fmt: skip
        if name == "test_error":  # the paper's guide slope, through the middle of the fit
            middle = log_alpha.mean()
            guide = np.polyval(fit, middle) + GUIDE_SLOPE * (log_alpha - middle)
            ax.loglog(alpha, 10**guide, "k:", label="slope 21/16 (the paper's guide)")
    ax.set_xlabel("initialization scale alpha")
    ax.set_ylabel("relative error at the last iteration")
    ax.set_title(f"mean over {ds.sizes['trial']} trials (bars: min to max)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return save(fig, base, "alpha")


def _plot_rank(ds: Any, base: Path) -> Path:
    it = ds["iteration"].values
    fig, (left, right) = figure(1, 2, figsize=(11, 4.2))
    shown = sorted({0, ds.sizes["setting"] - 1})
    for s in range(ds.sizes["setting"]):
        mean_rank = ds["tubal_rank"][s].values.mean(axis=0)
        (line,) = left.plot(it, mean_rank, label=_setting_label(ds, s))
        if s in shown:
            style = "-" if s == 0 else "--"
            right.semilogy(it, ds["tube_norms"][s, 0].values, style, color=line.get_color(), lw=1)
    left.set_xlabel("iteration t")
    left.set_ylabel("numerical tubal rank (mean over trials)")
    left.legend(fontsize="small")
    right.set_xlabel("iteration t")
    right.set_ylabel("norms of the singular tubes of U_t")
    right.set_title(
        "trial 0: "
        + " / ".join(f"{'solid' if s == 0 else 'dashed'} {_setting_label(ds, s)}" for s in shown),
        fontsize="small",
    )
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
    return save(fig, base, "rank")
