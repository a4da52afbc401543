"""Figures of output files: the figure life cycle and the panels shared by the methods.

The figures of every method (:mod:`analysis`) are drawn with these helpers:
:func:`pyplot` (matplotlib on the Agg backend, imported only when plotting),
:func:`figure` (a new figure), :func:`save` (``<base>_<suffix>.png`` at 120 dpi, the figure
closed), :func:`band` (mean over an axis with a min-max band), :func:`log_error` (a
semilog curve of non-negative values, zeros lifted so that they stay visible) and
:func:`plot_ranks` (the ranks of a tree network over time).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["band", "figure", "log_error", "plot_ranks", "pyplot", "save"]

#: Added to non-negative values plotted on a log axis, so that exact zeros stay visible.
TINY = 1e-17


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure(*args: Any, **kwargs: Any) -> tuple[Any, Any]:
    """``plt.subplots(*args, **kwargs)`` with a constrained layout by default."""
    kwargs.setdefault("constrained_layout", True)
    return pyplot().subplots(*args, **kwargs)


def save(fig: Any, base: Path, suffix: str) -> Path:
    """Save ``fig`` as ``<base>_<suffix>.png`` (120 dpi), close it and return the path."""
    out = base.with_name(f"{base.name}_{suffix}.png")
    fig.savefig(out, dpi=120)
    pyplot().close(fig)
    return out


def band(ax: Any, x: Any, values: Any, *, axis: int = 0, log: bool = False, **kwargs: Any) -> Any:
    """Plot the mean of ``values`` over ``axis`` with a min-max band; return the line."""
    values = np.asarray(values)
    mean, low, high = values.mean(axis=axis), values.min(axis=axis), values.max(axis=axis)
    (line,) = (ax.semilogy if log else ax.plot)(x, mean, **kwargs)
    ax.fill_between(x, low, high, color=line.get_color(), alpha=0.2, lw=0)
    return line


def log_error(ax: Any, x: Any, values: Any, *args: Any, **kwargs: Any) -> Any:
    """``ax.semilogy(x, values + TINY, ...)``: non-negative values on a log axis."""
    return ax.semilogy(x, np.asarray(values) + TINY, *args, **kwargs)


def plot_ranks(ds: Any, base: Path) -> Path:
    """Every edge rank (grey) and the largest (black) over time, to ``<base>_ranks.png``.

    ``ds`` is an output file of a tree-network driver (``time``, ``ranks``, ``max_rank``).
    """
    fig, ax = figure(figsize=(6, 4))
    ax.plot(ds["time"], ds["ranks"].values, color="0.7", lw=0.8)
    ax.plot(ds["time"], ds["max_rank"], "k", lw=2, label="max rank")
    ax.set_xlabel("time")
    ax.set_ylabel("edge ranks")
    ax.legend()
    return save(fig, base, "ranks")
