"""Results of the radiance-field sweep (``drivers.fields``): comparison, stored models, figures.

:func:`compare` finds where each model wins (the Pareto front of test PSNR against field
parameters, and the Strivec runs that beat a TensoRF-VM run with fewer parameters) and
:func:`table_lines` prints it;
:func:`load_model` rebuilds a trained model from the checkpoint of an output file;
:func:`plots` draws the PSNR against the parameters, the training curves and the renders.

References
----------
arXiv 2203.09517 (TensoRF), arXiv 2307.13226 (Strivec).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = ["compare", "load_model", "plots", "table_lines"]

#: The model families in the order of the figures.
_FAMILIES = ("cp", "vm", "strivec")


def compare(table: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Where each model wins: Strivec runs that beat a VM run's PSNR with fewer parameters.

    ``table`` has one row per run (``model``, ``rank``, ``field_params``, ``test_psnr``).
    Returns ``strivec_beats_vm``: pairs ``(strivec rank, vm rank)`` with higher Strivec test
    PSNR and fewer field parameters; ``best``: per model, the run with the best PSNR; and
    ``frontier``: the runs on the Pareto front (no run has both fewer parameters and a higher
    PSNR), in order of parameters.
    """
    beats = [
        (s["rank"], v["rank"])
        for s in table
        if s["model"] == "strivec"
        for v in table
        if v["model"] == "vm"
        and s["test_psnr"] > v["test_psnr"]
        and s["field_params"] < v["field_params"]
    ]
    best = {}
    for row in table:
        if row["model"] not in best or row["test_psnr"] > best[row["model"]]["test_psnr"]:
            best[row["model"]] = row
    ordered = sorted(table, key=lambda r: (r["field_params"], -r["test_psnr"]))
    frontier, top = [], -np.inf
    for row in ordered:
        if row["test_psnr"] > top:
            frontier.append((row["model"], row["rank"]))
            top = row["test_psnr"]
    return {"strivec_beats_vm": beats, "best": best, "frontier": frontier}


def table_lines(table: Sequence[dict[str, Any]], findings: dict[str, Any]) -> list[str]:
    """Lines of a run summary: parameters, PSNRs and time per run, then :func:`compare`."""
    lines = [
        f"  {row['model']:<8} r={row['rank']:<3} {row['field_params']:>8} params  "
        f"test PSNR {row['test_psnr']:6.2f} dB  foreground {row['test_psnr_fg']:6.2f} dB  "
        f"{row['train_seconds']:6.1f} s"
        for row in table
    ]
    lines.append(f"  Pareto front (params ascending): {findings['frontier']}")
    lines.append(
        f"  Strivec rank beating a VM rank with fewer params: {findings['strivec_beats_vm']}"
    )
    return lines


def load_model(path: str | Path, run_index: int) -> Any:
    """Rebuild the trained model of record ``run_index`` from an output file's checkpoint.

    The model is rebuilt from the configuration stored in the file (its ``experiment``
    table) at its final resolution, with the stored parameters, in eval mode.

    Raises
    ------
    ValueError
        If the file holds no stored model for ``run_index`` (``output.save_models = false``).
    """
    import tomllib

    import torch

    from tensorsim.config import load_config
    from tensorsim.io import open_run
    from tensorsim.nn.fields import Box
    from tensorsim.nn.models.fields import (
        StrivecParams,
        TensoRFParams,
        build_model,
        model_specs,
    )
    from tensorsim.nn.state import state_from_arrays

    ds, ckpt = open_run(path)
    if ckpt is None or f"layout_run{run_index}" not in ckpt.attrs:
        raise ValueError(f"path: {path} holds no stored model for run {run_index}")
    e = tomllib.loads(str(ds.attrs["config"]))["experiment"]
    t = e["training"]
    tables = {
        kind: load_config(StrivecParams if kind == "strivec" else TensoRFParams, data=e[kind])
        for kind in e["models"]
    }
    shading = {k: t[k] for k in ("app_dim", "shader_hidden", "n_samples")}
    spec = model_specs(e["models"], tables, **shading)[run_index]
    occ = ckpt.arrays.get("occupancy")
    model = build_model(
        spec,
        Box.cube(e["scene"]["half_size"]),
        seed=t["seed"],
        occupancy=None if occ is None else torch.from_numpy(np.asarray(occ, dtype=bool)),
        resolution=spec.resolution,
    )
    prefix = f"run{run_index}/"
    arrays = {k[len(prefix) :]: v for k, v in ckpt.arrays.items() if k.startswith(prefix)}
    model.load_state_dict(state_from_arrays(arrays, ckpt.attrs[f"layout_run{run_index}"]))
    model.eval()
    return model


def _label(ds: Any, i: int) -> str:
    return f"{ds['model'].values[i]} r={int(ds['rank'].values[i])}"


def plots(ds: Any, base: Path) -> list[Path]:
    """PSNR against field parameters, the training curves and the renders (PNG)."""
    return [_plot_psnr(ds, base), _plot_curves(ds, base), _plot_renders(ds, base)]


def _plot_psnr(ds: Any, base: Path) -> Path:
    models = [str(m) for m in ds["model"].values]
    fig, axes = figure(1, 2, figsize=(11, 4.2))
    for kind, marker in zip(_FAMILIES, "osD", strict=True):
        idx = sorted(
            (i for i, m in enumerate(models) if m == kind),
            key=lambda i: int(ds["field_params"].values[i]),
        )
        if not idx:
            continue
        x = ds["field_params"].values[idx]
        for ax, name in zip(axes, ("test_psnr", "test_psnr_fg"), strict=True):
            ax.plot(x, ds[name].values[idx], marker + "-", label=kind)
            for i, xi in zip(idx, x, strict=True):
                ax.annotate(f"r={int(ds['rank'].values[i])}", (xi, ds[name].values[i]),
                            fontsize=7, textcoords="offset points", xytext=(3, 3))  # fmt: skip
    for ax, title in zip(axes, ("all test pixels", "foreground pixels"), strict=True):
        ax.set(xscale="log", xlabel="field parameters (grids + basis)", ylabel="test PSNR (dB)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    return save(fig, base, "psnr")


def _plot_curves(ds: Any, base: Path) -> Path:
    fig, ax = figure(figsize=(6.5, 4.2))
    for i in range(ds.sizes["run"]):
        ax.plot(ds["eval_step"].values, ds["test_psnr_curve"].values[i], label=_label(ds, i))
    ax.set(xlabel="step", ylabel="test PSNR (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return save(fig, base, "curves")


def _plot_renders(ds: Any, base: Path) -> Path:
    n_views, n_runs = min(ds.sizes["view"], 4), ds.sizes["run"]
    fig, axes = figure(n_views, n_runs + 1, figsize=(1.6 * (n_runs + 1), 1.7 * n_views),
                       squeeze=False)  # fmt: skip
    for v in range(n_views):
        axes[v, 0].imshow(np.clip(ds["truth"].values[v], 0, 1))
        axes[v, 0].set_title("truth" if v == 0 else "", fontsize=7)
        for i in range(n_runs):
            axes[v, i + 1].imshow(np.clip(ds["render"].values[i, v], 0, 1))
            if v == 0:
                axes[v, i + 1].set_title(
                    f"{_label(ds, i)}\n{float(ds['test_psnr'].values[i]):.1f} dB", fontsize=7
                )
    for ax in axes.flat:
        ax.set_axis_off()
    return save(fig, base, "renders")
