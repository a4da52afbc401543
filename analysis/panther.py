"""Tables and figures of PANTHER runs (``drivers.panther``, arXiv 2012.08580).

:func:`analyse` reduces an output file (record dimension ``run``) to one row per
``(fill, w_ortho)`` setting: means (and the deviation of the test accuracy) over the seeds;
:func:`table_lines` formats those rows and :func:`group_lines` the pathway groups of a run.
:func:`plots` draws the accuracy per split of every setting, beside the raw-feature baseline
and chance, and, for the run with the best validation accuracy, the mode-1 loadings of each
class's component (reported and planted groups marked) and the classifier weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["analyse", "group_lines", "plots", "table_lines"]


def analyse(ds: Any) -> dict[tuple[str, float], dict[str, float]]:
    """Per (fill, w_ortho): means and deviations over seeds of the reported numbers.

    Parameters
    ----------
    ds
        An output file of ``drivers.panther`` (opened).

    Returns
    -------
    dict
        ``(fill, w_ortho)`` (in the order of first appearance) -> ``runs``, the mean
        ``train``, ``val``, ``test`` accuracies, ``test_std``, ``baseline_test``,
        ``rel_error``, ``rec_error_test``, ``overlap``, ``overlap_best``, ``ortho_offdiag``,
        ``fit_seconds``, the smallest ``min_factor`` and ``chance`` (1 / classes).
    """
    out: dict[tuple[str, float], dict[str, float]] = {}
    fills = [str(v) for v in ds["fill"].values]
    ws = ds["w_ortho"].values
    for key in dict.fromkeys(zip(fills, ws.tolist(), strict=True)):
        runs = [i for i in range(len(fills)) if (fills[i], float(ws[i])) == key]
        acc = ds["accuracy"].values[runs]
        out[key] = {
            "runs": len(runs),
            "train": float(acc[:, 0].mean()),
            "val": float(acc[:, 1].mean()),
            "test": float(acc[:, 2].mean()),
            "test_std": float(acc[:, 2].std()),
            "baseline_test": float(ds["baseline_accuracy"].values[runs, 2].mean()),
            "rel_error": float(ds["rel_error"].values[runs].mean()),
            "rec_error_test": float(ds["rec_error"].values[runs, 2].mean()),
            "overlap": float(np.mean(ds["overlap"].values[runs])),
            "overlap_best": float(np.mean(ds["overlap_best"].values[runs])),
            "min_factor": float(ds["min_factor"].values[runs].min()),
            "ortho_offdiag": float(ds["ortho_offdiag"].values[runs].mean()),
            "fit_seconds": float(ds["fit_seconds"].values[runs].mean()),
            "chance": 1.0 / ds.sizes["class"],
        }
    return out


def table_lines(table: Mapping[tuple[str, float], Mapping[str, float]]) -> list[str]:
    """One line per setting of :func:`analyse`'s table."""
    return [
        f"  {fill:<9} w_ortho={w:<6g} test accuracy {v['test']:.3f} +- {v['test_std']:.3f} "
        f"(train {v['train']:.3f}, val {v['val']:.3f}; raw features {v['baseline_test']:.3f}; "
        f"chance {v['chance']:.3f}), error {v['rel_error']:.4f}, overlap {v['overlap']:.2f} "
        f"(best match {v['overlap_best']:.2f}), min factor {v['min_factor']:.1e}, "
        f"fit {v['fit_seconds']:.1f} s"
        for (fill, w), v in table.items()
    ]


def group_lines(groups: Mapping[tuple[str, float], Mapping[str, Any]]) -> list[str]:
    """The reported groups of one run per setting: its classes, their mode-1 and mode-2 names.

    ``groups`` maps ``(fill, w_ortho)`` to the ``meta`` of a run of ``drivers.panther``
    (``class_names``, ``group_names``, ``gene_names`` and ``mode_names``); at most five
    mode-2 names are listed per class.
    """
    lines = []
    for (fill, w), meta in groups.items():
        lines.append(f"  groups of seed 0, {fill} w_ortho={w:g}:")
        for k, name in enumerate(meta["class_names"]):
            lines.append(
                f"    {name}: {', '.join(meta['group_names'][k])} | {meta['mode_names'][2]}s "
                f"{', '.join(meta['gene_names'][k][:5])}"
            )
    return lines


def plots(ds: Any, base: Path) -> list[Path]:
    """The accuracy bars and the groups / weights heat maps, as ``<base>_*.png``."""
    return [_plot_accuracy(ds, base), _plot_groups(ds, base)]


def _plot_accuracy(ds: Any, base: Path) -> Path:
    table = analyse(ds)
    keys = list(table)
    fig, ax = figure(figsize=(1.6 * len(keys) + 3, 4.2))
    x = np.arange(len(keys))
    fills = [str(v) for v in ds["fill"].values]
    for j, split in enumerate(ds["split"].values):
        vals = []
        for key in keys:
            runs = [i for i in range(len(fills)) if (fills[i], float(ds["w_ortho"][i])) == key]
            vals.append(ds["accuracy"].values[runs, j])
        ax.bar(x + 0.25 * (j - 1), [v.mean() for v in vals], 0.25, yerr=[v.std() for v in vals],
               capsize=3, label=str(split))  # fmt: skip
    ax.plot(x, [table[k]["baseline_test"] for k in keys], "k^", label="raw features (test)")
    ax.axhline(1.0 / ds.sizes["class"], color="gray", ls=":", label="chance")
    ax.set_xticks(x, [f"{f}\nw_ortho={w:g}" for f, w in keys])
    ax.set(ylabel="accuracy (mean over seeds)", ylim=(0, 1.05))
    ax.legend(fontsize="small", loc="lower right")
    ax.set_title(f"PANTHER softmax classifier ({ds.attrs['preset']})")
    return save(fig, base, "accuracy")


def _plot_groups(ds: Any, base: Path) -> Path:
    m1 = str(ds.attrs["mode1"])
    n_classes = ds.sizes["class"]
    fig, axes = figure(1, 2, figsize=(13, 0.35 * n_classes + 3.5))
    run = int(np.nanargmax(ds["accuracy"].values[:, 1]))
    load = ds["loading1"].values[run]  # component x mode1
    comp = ds["group_component"].values[run]
    axes[0].imshow(np.ma.masked_invalid(load[comp]), aspect="auto", cmap="viridis")
    marks = np.argwhere(ds["in_group"].values[run] == 1)
    axes[0].plot(marks[:, 1], marks[:, 0], "r.", ms=5, label="reported group")
    planted = np.argwhere(ds["planted"].values[run] == 1)
    if planted.size:
        axes[0].plot(planted[:, 1], planted[:, 0], "wo", mfc="none", ms=9, label="planted group")
    axes[0].set_yticks(range(n_classes), [str(c) for c in ds["class"].values])
    axes[0].set_xlabel(f"{m1} index")
    axes[0].set_title(f"{m1} loading of each class's component (run {run})")
    axes[0].legend(fontsize="small")
    coef = ds["coef"].values[run]
    lim = np.abs(coef).max()
    im = axes[1].imshow(coef, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    axes[1].set_xticks(range(ds.sizes["feature"]), [str(f) for f in ds["feature"].values],
                       rotation=60, fontsize=7)  # fmt: skip
    axes[1].set_yticks(range(n_classes), [str(c) for c in ds["class"].values])
    axes[1].set_title("classifier weights (standardized features)")
    fig.colorbar(im, ax=axes[1])
    return save(fig, base, "groups")
