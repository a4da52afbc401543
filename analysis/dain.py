"""Tables and figures of DAIN runs (``drivers.dain``, arXiv 2108.10248).

:func:`analyse` reads a ``sweep`` file (record dimension ``run``): per model and
augmentation the mean test RMSE and MAE over seeds (with standard errors), and per model the
paired differences of DAIN against the other methods, seed by seed (``dain - other``;
negative: DAIN better), with their mean, standard error and number of pairs (:func:`paired`);
:func:`summary_lines` formats them. :func:`fit_exponent` fits ``time ~ cells^p`` by least
squares in log-log (the ``scaling`` command), :func:`scaling_lines` formats the times.
:func:`sweep_plots` draws the test RMSE per model and method and the paired differences;
:func:`scaling_plots` the times against the observed cells; :func:`plots` picks one by the
file's ``command`` attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = [
    "METRICS",
    "TIMES",
    "analyse",
    "fit_exponent",
    "paired",
    "plots",
    "scaling_lines",
    "scaling_plots",
    "summary_lines",
    "sweep_plots",
]

#: The test errors compared between methods.
METRICS = ("test_rmse", "test_mae")

#: The timed parts of one DAIN run in a ``scaling`` file.
TIMES = ("seconds", "train_seconds", "influence_seconds", "augment_seconds")


def fit_exponent(cells: Sequence[float], seconds: Sequence[float]) -> float:
    """Slope of ``log(seconds)`` against ``log(cells)`` (least squares); NaN for < 2 points.

    Points with a non-positive time are left out.
    """
    x, y = np.log(np.asarray(cells, float)), np.asarray(seconds, float)
    keep = y > 0
    if keep.sum() < 2:
        return math.nan
    return float(np.polyfit(x[keep], np.log(y[keep]), 1)[0])


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean of ``a - b`` over pairs, its standard error (``sd / sqrt(n)``), ``n`` and ``wins``.

    ``wins`` counts the pairs with ``a < b``.
    """
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
    """The findings of a ``sweep`` file.

    Parameters
    ----------
    ds
        An output file of ``drivers.dain sweep`` (opened).

    Returns
    -------
    dict
        ``table``: (model, augmentation) -> mean and standard error over seeds of
        ``test_rmse`` and ``test_mae`` (``<metric>_se``), ``seeds``, mean ``train_seconds``,
        ``influence_seconds`` and ``augment_seconds``; ``paired``: (model, other
        augmentation) -> metric -> :func:`paired` statistics of ``dain - other`` over the
        common seeds.
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


def summary_lines(found: dict[str, Any]) -> list[str]:
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
    return lines


def scaling_lines(rows: Sequence[dict[str, Any]], exponents: dict[str, float]) -> list[str]:
    """Text lines of the ``scaling`` command: the times per size and the fitted exponents.

    ``rows`` hold ``cells`` and the times of :data:`TIMES` and ``retrain_seconds``;
    ``exponents`` the :func:`fit_exponent` of each of :data:`TIMES`.
    """
    lines = [
        f"  {r['cells']:>9} cells: {r['seconds']:.2f} s (train {r['train_seconds']:.2f}, "
        f"influence {r['influence_seconds']:.2f}, sampling {r['augment_seconds']:.2f}, "
        f"retrain {r['retrain_seconds']:.2f})"
        for r in rows
    ]
    ex = exponents
    lines.append(
        f"  time ~ cells^{ex['seconds']:.3f} (train {ex['train_seconds']:.3f}, influence "
        f"{ex['influence_seconds']:.3f}, sampling {ex['augment_seconds']:.3f})"
    )
    return lines


def sweep_plots(ds: Any, base: Path) -> list[Path]:
    """Test RMSE per model and method (bars), paired differences to DAIN (error bars)."""
    found = analyse(ds)
    table, pairs = found["table"], found["paired"]
    models = list(dict.fromkeys(k[0] for k in table))
    methods = list(dict.fromkeys(k[1] for k in table))
    fig, axes = figure(1, 2, figsize=(12, 4.5))
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
    return [save(fig, base, "rmse")]


def scaling_plots(ds: Any, base: Path) -> list[Path]:
    """Wall time of each part of one DAIN run against the observed cells (log-log)."""
    cells = ds["size"].values
    fig, ax = figure(figsize=(6.5, 4.5))
    for key in TIMES:
        ax.loglog(cells, ds[key].values, "o-", label=key.replace("_", " "))
    ref = ds["seconds"].values[0] * cells / cells[0]
    ax.loglog(cells, ref, "k--", lw=0.8, label="linear")
    ax.set(xlabel="observed cells", ylabel="wall time (s)")
    ax.set_title(f"one DAIN run, time ~ cells^{float(ds.attrs['exponent']):.2f}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return [save(fig, base, "scaling")]


def plots(ds: Any, base: Path) -> list[Path]:
    """:func:`scaling_plots` or :func:`sweep_plots`, by the file's ``command`` attribute."""
    if ds.attrs["command"] == "scaling":
        return scaling_plots(ds, base)
    return sweep_plots(ds, base)
