"""Tables and figures of the attention-kind comparison (``drivers.tpa``, arXiv 2501.06425).

:func:`table` reads, per attention kind of an output file, the head and weight counts, the
final validation loss and accuracy (and the loss gap to the reference kind, the first), the
cache bytes per token per layer (and how many times smaller than the reference's) and the
decode speed; :func:`table_lines` formats it. :func:`plots` draws the validation-loss curves
and the measured cache bytes, default and materialized, to ``<base>_tpa.png``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["plots", "table", "table_lines"]

#: The variables :func:`table` reads.
_TABLE = (
    "kind", "n_heads", "total_params", "attention_params", "val_loss", "val_accuracy",
    "cache_bytes", "decode_tokens_per_s", "decode_tokens_per_s_materialized",
)  # fmt: skip


def table(ds: Any) -> dict[str, dict[str, Any]]:
    """Kind -> its counts, final validation metrics, cache bytes and decode speed.

    ``ds`` is an output file (an ``xarray.Dataset``) or a mapping of its variable names to
    arrays over the kinds. The reference is the first kind (``reference_kind``):
    ``loss_gap`` is the final validation loss minus its, ``cache_ratio`` its cache bytes
    over the kind's.
    """
    v = {name: np.asarray(ds[name]) for name in _TABLE}
    cache, loss = v["cache_bytes"], v["val_loss"][:, -1]
    return {
        str(kind): {
            "n_heads": int(v["n_heads"][i]),
            "total_params": int(v["total_params"][i]),
            "attention_params": int(v["attention_params"][i]),
            "val_loss": float(loss[i]),
            "val_accuracy": float(v["val_accuracy"][i, -1]),
            "loss_gap": float(loss[i] - loss[0]),
            "cache_bytes": float(cache[i]),
            "cache_ratio": float(cache[0] / cache[i]),
            "tokens_per_s": float(v["decode_tokens_per_s"][i]),
            "tokens_per_s_materialized": float(v["decode_tokens_per_s_materialized"][i]),
        }
        for i, kind in enumerate(v["kind"])
    }


def table_lines(rows: Mapping[str, Mapping[str, Any]], reference: str) -> list[str]:
    """One line per kind of :func:`table`."""
    return [
        f"  {kind:<10} h={v['n_heads']:<3} {v['total_params']:>8} weights  "
        f"val loss {v['val_loss']:.4f} ({v['loss_gap']:+.4f} vs {reference})  "
        f"cache {v['cache_bytes']:.0f} B ({v['cache_ratio']:.2f}x smaller)  "
        f"decode {v['tokens_per_s']:.0f} tok/s (materialized "
        f"{v['tokens_per_s_materialized']:.0f})"
        for kind, v in rows.items()
    ]


def plots(ds: Any, base: Path) -> list[Path]:
    """Validation-loss curves and measured cache bytes per kind, to ``<base>_tpa.png``."""
    kinds = [str(k) for k in ds["kind"].values]
    steps = ds["eval_step"].values
    fig, axes = figure(1, 2, figsize=(12, 4.5))
    for i, kind in enumerate(kinds):
        axes[0].plot(steps, ds["val_loss"].values[i], label=kind)
    axes[0].set(
        xlabel="step",
        ylabel="validation loss (nats)",
        title=f"{ds.attrs['task']}: validation loss at matched parameters",
    )
    axes[0].set_yscale("log")
    axes[0].grid(True, which="both", alpha=0.3)
    axes[0].legend()
    x = np.arange(len(kinds))
    axes[1].bar(x - 0.2, ds["cache_bytes"].values, 0.4, label="default cache (TPA: factors)")
    axes[1].bar(x + 0.2, ds["cache_bytes_materialized"].values, 0.4, label="keys/values")
    axes[1].set_xticks(x, kinds)
    axes[1].set(ylabel="bytes per token per layer", title="KV cache (measured)")
    axes[1].legend()
    return [save(fig, base, "tpa")]
