"""Figures of tensor compression (``drivers.compress``): error against compression ratio."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from analysis.figures import figure, save

__all__ = ["plots"]


def plots(ds: Any, base: Path) -> list[Path]:
    """Relative error against compression ratio, one line per format: ``<base>_error.png``."""
    fig, ax = figure(figsize=(6, 4))
    for fmt, marker in (("tucker", "o"), ("tt", "s"), ("cp", "^")):
        sel = ds.where(ds["format"] == fmt, drop=True)
        if sel.sizes["case"]:
            ax.loglog(sel["compression_ratio"], sel["relative_error"], marker, ls="-", label=fmt)
    ax.set_xlabel("compression ratio (entries / stored numbers)")
    ax.set_ylabel("relative error")
    ax.set_title(f"compression of a {ds.attrs['input_shape']} tensor")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return [save(fig, base, "error")]
