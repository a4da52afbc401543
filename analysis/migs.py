"""Results of the MIGS sweep (``drivers.migs``): the comparison table and the figures.

:func:`analyse` tabulates every model of an output file (parameters, PSNRs, time) and finds
the factorized models that beat the per-identity baseline at no more parameters;
:func:`table_lines` prints it; :func:`plots` draws the renders of identity 0 and of the unseen
identity next to the ground truth, and the test PSNR against the parameters and over
training.

References
----------
arXiv 2407.07284 (MIGS), arXiv 2308.04079 (3D Gaussian Splatting).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["analyse", "plots", "table_lines"]

#: The per-run numbers of :func:`analyse`.
_NUMBERS = (
    "params", "params_per_identity", "test_psnr", "train_psnr", "unseen_psnr",
    "unseen_train_psnr", "train_seconds",
)  # fmt: skip


def analyse(ds: Any) -> dict[str, Any]:
    """Per model: parameters, PSNRs, time; and which factorized models beat per-identity.

    Returns
    -------
    dict
        ``table``: model -> numbers; ``beats_per_identity``: the factorized models with
        higher test PSNR than the per-identity model at no more parameters (empty without a
        per-identity run).
    """
    table = {
        str(ds["model"].values[i]): {k: float(ds[k].values[i]) for k in _NUMBERS}
        for i in range(ds.sizes["run"])
    }
    ref = table.get("per_identity")
    beats = []
    if ref is not None:
        beats = [
            m
            for m, v in table.items()
            if m != "per_identity"
            and v["test_psnr"] > ref["test_psnr"]
            and v["params"] <= ref["params"]
        ]
    return {"table": table, "beats_per_identity": beats}


def table_lines(found: Mapping[str, Any]) -> list[str]:
    """Lines of a run summary: one per model of :func:`analyse`'s table, then the winners."""
    lines = [
        f"  {m:<18} {int(v['params']):>7} params  test PSNR {v['test_psnr']:6.2f} dB  "
        f"train {v['train_psnr']:6.2f} dB  unseen identity {v['unseen_psnr']:6.2f} dB  "
        f"{v['train_seconds']:.0f} s"
        for m, v in found.get("table", {}).items()
    ]
    if "beats_per_identity" in found:
        lines.append(
            "  beat per-identity at no more parameters: "
            + (", ".join(found["beats_per_identity"]) or "none")
        )
    return lines


def plots(ds: Any, base: Path) -> list[Path]:
    """The renders (``*_renders.png``) and PSNR against parameters (``*_psnr.png``)."""
    return [_plot_renders(ds, base), _plot_psnr(ds, base)]


def _plot_renders(ds: Any, base: Path) -> Path:
    models = [str(m) for m in ds["model"].values]
    truth = np.clip(ds["truth"].values, 0, 1)
    renders = np.clip(ds["renders"].values, 0, 1)
    n_panel = truth.shape[0]
    fig, axes = figure(
        1 + len(models), n_panel, figsize=(1.3 * n_panel, 1.4 * (1 + len(models))), squeeze=False
    )
    for j in range(n_panel):
        axes[0, j].imshow(truth[j])
        for i in range(len(models)):
            axes[i + 1, j].imshow(renders[i, j])
    for i, name in enumerate(["truth", *models]):
        axes[i, 0].set_ylabel(name, fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("identity 0, unseen poses", fontsize=7, loc="left")
    axes[0, n_panel // 2].set_title("unseen identity (row fit)", fontsize=7, loc="left")
    return save(fig, base, "renders")


def _plot_psnr(ds: Any, base: Path) -> Path:
    fig, axes = figure(1, 2, figsize=(11, 4.2))
    for i, m in enumerate(str(m) for m in ds["model"].values):
        n = ds["params"].values[i]
        axes[0].scatter(n, ds["test_psnr"].values[i], label=m)
        axes[0].scatter(n, ds["unseen_psnr"].values[i], marker="x", color=f"C{i}")
        axes[1].plot(ds["eval_step"].values, ds["eval_test_psnr"].values[i], label=m)
    axes[0].set(
        xscale="log",
        xlabel="stored parameters",
        ylabel="test PSNR (dB); x: unseen identity",
        title=f"MIGS vs per-identity ({ds.attrs['preset']})",
    )
    axes[1].set(xlabel="step", ylabel="mean test PSNR (dB)", title="unseen poses and views")
    for ax in axes:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return save(fig, base, "psnr")
