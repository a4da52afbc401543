"""Analysis, summary and plots of ``drivers.dain`` output files.

:func:`analyse` reads a sweep file: per model and augmentation the mean test RMSE and MAE
over seeds (with standard errors), and per model the paired differences of DAIN against the
other methods, seed by seed (``dain - other``; negative: DAIN better), with their mean,
standard error and number of pairs. :func:`fit_exponent` fits ``time ~ cells^p`` by least
squares in log-log; :func:`plot` writes the figures of a sweep or scaling file.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["analyse", "fit_exponent", "paired", "plot", "summarize"]

logger = logging.getLogger("drivers.dain")

METRICS = ("test_rmse", "test_mae")


def fit_exponent(cells: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of ``log(seconds)`` against ``log(cells)`` (least squares); NaN for < 2 points."""
    x, y = np.log(np.asarray(cells, float)), np.asarray(seconds, float)
    keep = y > 0
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(x[keep], np.log(y[keep]), 1)[0])


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of ``a - b`` over pairs, its standard error (``sd / sqrt(n)``) and ``n``."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return {"mean": float(d.mean()), "se": se, "n": n, "wins": int((d < 0).sum())}


def _runs(ds: Any) -> dict[tuple[str, str], dict[int, int]]:
    """(model, augmentation) -> seed -> run index."""
    out: dict[tuple[str, str], dict[int, int]] = {}
    for i in range(ds.sizes["run"]):
        key = (str(ds["model"].values[i]), str(ds["augmentation"].values[i]))
        out.setdefault(key, {})[int(ds["seed"].values[i])] = i
    return out


def analyse(ds: Any) -> dict[str, Any]:
    """The sweep's findings from its file.

    Returns
    -------
    dict
        ``table``: (model, augmentation) -> mean and standard error over seeds of
        ``test_rmse`` and ``test_mae`` (``<metric>_se``), ``seeds``, mean ``train_seconds``
        and ``influence_seconds``; ``paired``: (model, other augmentation) -> metric ->
        :func:`paired` statistics of ``dain - other`` over the common seeds.
    """
    runs = _runs(ds)
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for key, seeds in runs.items():
        rows = [seeds[s] for s in sorted(seeds)]
        entry: dict[str, Any] = {"seeds": len(rows)}
        for metric in (*METRICS, "train_seconds", "influence_seconds", "augment_seconds"):
            v = np.asarray(ds[metric].values[rows], float)
            entry[metric] = float(v.mean())
            entry[metric + "_se"] = (
                float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
            )
        table[key] = entry
    pairs: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for (model, method), seeds in runs.items():
        dain = runs.get((model, "dain"))
        if method == "dain" or dain is None:
            continue
        common = sorted(set(seeds) & set(dain))
        if not common:
            continue
        pairs[(model, method)] = {
            metric: paired(
                ds[metric].values[[dain[s] for s in common]],
                ds[metric].values[[seeds[s] for s in common]],
            )
            for metric in METRICS
        }
    return {"table": table, "paired": pairs}


def summarize(found: dict[str, Any]) -> str:
    """Text lines of :func:`analyse`'s table and paired differences."""
    lines = []
    for (model, method), v in found.get("table", {}).items():
        lines.append(
            f"  {model:<9} {method:<10} test RMSE {v['test_rmse']:.4f} +- "
            f"{v['test_rmse_se']:.4f}  MAE {v['test_mae']:.4f} +- {v['test_mae_se']:.4f}  "
            f"({v['seeds']} seeds, train {v['train_seconds']:.1f} s)"
        )
    for (model, method), v in found.get("paired", {}).items():
        r, m = v["test_rmse"], v["test_mae"]
        lines.append(
            f"  {model:<9} dain - {method:<10} RMSE {r['mean']:+.4f} +- {r['se']:.4f}  "
            f"MAE {m['mean']:+.4f} +- {m['se']:.4f}  (DAIN lower in {r['wins']}/{r['n']})"
        )
    return "\n".join(lines)


def _plot_sweep(ds: Any, base: Path, plt: Any) -> list[Path]:
    found = analyse(ds)
    table, pairs = found["table"], found["paired"]
    models = list(dict.fromkeys(k[0] for k in table))
    methods = list(dict.fromkeys(k[1] for k in table))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / max(1, len(methods))
    for j, method in enumerate(methods):
        x = np.arange(len(models)) + j * width
        y = [table.get((m, method), {}).get("test_rmse", np.nan) for m in models]
        e = [table.get((m, method), {}).get("test_rmse_se", np.nan) for m in models]
        axes[0].bar(x, y, width, yerr=e, label=method, capsize=3)
    axes[0].set_xticks(np.arange(len(models)) + 0.4 - width / 2, models)
    axes[0].set(ylabel="test RMSE (mean over seeds, +- s.e.)")
    lo = min((v["test_rmse"] for v in table.values()), default=0)
    axes[0].set_ylim(bottom=0.9 * lo)
    axes[0].legend(fontsize=8)
    labels, means, errors = [], [], []
    for (model, method), v in pairs.items():
        labels.append(f"{model}\ndain - {method}")
        means.append(v["test_rmse"]["mean"])
        errors.append(v["test_rmse"]["se"])
    axes[1].errorbar(np.arange(len(labels)), means, yerr=errors, fmt="o", capsize=4)
    axes[1].axhline(0.0, color="k", lw=0.8)
    axes[1].set_xticks(np.arange(len(labels)), labels, fontsize=7)
    axes[1].set(ylabel="paired test RMSE difference (negative: DAIN better)")
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    fig.suptitle(f"DAIN augmentation ({ds.attrs['preset']}, ratio {ds.attrs['ratio']})")
    fig.tight_layout()
    out = base.with_name(base.name + "_rmse.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]


def _plot_scaling(ds: Any, base: Path, plt: Any) -> list[Path]:
    cells = ds["size"].values
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for key in ("seconds", "train_seconds", "influence_seconds", "augment_seconds"):
        ax.loglog(cells, ds[key].values, "o-", label=key.replace("_", " "))
    ref = ds["seconds"].values[0] * cells / cells[0]
    ax.loglog(cells, ref, "k--", lw=0.8, label="linear")
    ax.set(xlabel="observed cells", ylabel="wall time (s)")
    ax.set_title(f"one DAIN run, time ~ cells^{float(ds.attrs['exponent']):.2f}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = base.with_name(base.name + "_scaling.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]


def plot(path: str) -> list[Path]:
    """Write the PNG plots of a ``sweep`` or ``scaling`` file next to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    if ds.attrs["command"] == "scaling":
        return _plot_scaling(ds, base, plt)
    return _plot_sweep(ds, base, plt)
