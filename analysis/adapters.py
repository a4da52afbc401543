"""Tables and figures of the adapter experiments (``drivers.adapters``).

A ``sweep`` file holds one record per adaptation run (variant, rank, learning rate, seed;
curves over ``eval_step``). :func:`analyse` selects, per (variant, rank), the learning rate
with the best mean final validation metric (accuracy for digits, loss for characters; the
test split is only reported) and compares LoTR and SoKA with LoRA; :func:`sweep_lines`
formats its findings and :func:`sweep_plots` draws test metric and memory against trainable
parameters and the validation curves. A ``pretrain`` file holds the full-rank, LoQT-nq and
LoQT runs: :func:`pretrain_table`, :func:`pretrain_lines` and :func:`pretrain_plots`.

References
----------
arXiv 2106.09685 (LoRA), 2402.01376 (LoTR), 2506.15251 (SoKA), 2405.16528 (LoQT).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from analysis.figures import figure, save

__all__ = [
    "analyse",
    "label",
    "pretrain_lines",
    "pretrain_plots",
    "pretrain_table",
    "sweep_lines",
    "sweep_plots",
]


def label(variant: str, rank: int) -> str:
    """``"lora r=4"``, or the variant alone for rank 0 (no adapter)."""
    return variant if rank == 0 else f"{variant} r={rank}"


def _selected(ds: Any) -> dict[tuple[str, int], dict[str, Any]]:
    """Per (variant, rank): the lr with the best mean final validation metric, and its runs."""
    by_loss = ds.attrs["task"] == "chars"
    groups: dict[tuple[str, int], dict[float, list[int]]] = {}
    for i in range(ds.sizes["run"]):
        key = (str(ds["variant"].values[i]), int(ds["rank"].values[i]))
        groups.setdefault(key, {}).setdefault(float(ds["lr"].values[i]), []).append(i)
    out = {}
    for key, lrs in groups.items():

        def score(runs: list[int]) -> float:
            loss = float(np.mean(ds["val_loss"].values[runs, -1]))
            acc = float(np.mean(ds["val_accuracy"].values[runs, -1]))
            value = loss if by_loss else -acc
            return value if np.isfinite(value) else np.inf

        lr = min(lrs, key=lambda lr: score(lrs[lr]))
        runs = lrs[lr]
        out[key] = {
            "lr": lr,
            "runs": runs,
            "trainable": int(ds["trainable"].values[runs[0]]),
            "test_accuracy": float(np.mean(ds["test_accuracy"].values[runs, -1])),
            "test_accuracy_std": float(np.std(ds["test_accuracy"].values[runs, -1])),
            "test_loss": float(np.mean(ds["test_loss"].values[runs, -1])),
            "val_loss_curve": np.mean(ds["val_loss"].values[runs], axis=0),
            "bytes": int(
                ds["weight_bytes"].values[runs[0]] + ds["optimizer_bytes"].values[runs[0]]
            ),
            "step_seconds": float(np.mean(ds["step_seconds"].values[runs])),
        }
    return out


def analyse(ds: Any) -> dict[str, Any]:
    """The sweep's findings from its file: selected runs, LoTR vs LoRA, SoKA vs LoRA thresholds.

    Parameters
    ----------
    ds
        A ``sweep`` output file of ``drivers.adapters`` (opened), with the root attribute
        ``task``.

    Returns
    -------
    dict
        ``table``: (variant, rank) -> selected-run summary (``lr``, ``runs``, ``trainable``,
        mean and deviation of the final test accuracy, mean test loss, the mean validation
        loss curve, ``bytes`` of weights + optimizer state, ``step_seconds``);
        ``lotr_vs_lora``: per LoRA rank, the LoTR setting with the fewest parameters whose
        test accuracy is within 1 point of LoRA's (and the parameter ratio);
        ``soka_vs_lora``: per LoRA rank, the SoKA setting with the fewest parameters whose
        mean validation loss reaches the best of LoRA's curve, and the first evaluation
        step where it does.
    """
    table = _selected(ds)
    steps = ds["eval_step"].values
    lora = {r: v for (m, r), v in table.items() if m == "lora"}
    lotr_vs_lora, soka_vs_lora = {}, {}
    for rank, ref in sorted(lora.items()):
        lotr = [
            (v["trainable"], m, r)
            for (m, r), v in table.items()
            if m.startswith("lotr") and v["test_accuracy"] >= ref["test_accuracy"] - 0.01
        ]
        if lotr:
            n, m, r = min(lotr)
            lotr_vs_lora[rank] = {
                "variant": m,
                "rank": r,
                "trainable": n,
                "ratio": ref["trainable"] / n,
                "accuracy_gap": table[(m, r)]["test_accuracy"] - ref["test_accuracy"],
            }
        threshold = ref["val_loss_curve"].min()
        soka = []
        for (m, r), v in table.items():
            reached = np.nonzero(v["val_loss_curve"] <= threshold)[0]
            if m.startswith("soka") and reached.size:
                soka.append((v["trainable"], m, r, int(steps[reached[0]])))
        if soka:
            n, m, r, step = min(soka)
            soka_vs_lora[rank] = {
                "variant": m,
                "rank": r,
                "trainable": n,
                "ratio": ref["trainable"] / n,
                "step": step,
                "threshold": float(threshold),
            }
    return {"table": table, "lotr_vs_lora": lotr_vs_lora, "soka_vs_lora": soka_vs_lora}


def sweep_lines(found: Mapping[str, Any]) -> list[str]:
    """One line per selected setting, LoTR vs LoRA and SoKA vs LoRA (of :func:`analyse`)."""
    lines = []
    for (variant, rank), v in found.get("table", {}).items():
        lines.append(
            f"  {label(variant, rank):<18} {v['trainable']:>8} params  lr {v['lr']:.0e}  "
            f"test accuracy {v['test_accuracy']:.4f} +- {v['test_accuracy_std']:.4f}  "
            f"test loss {v['test_loss']:.4f}  {v['bytes'] / 1e3:.0f} kB"
        )
    for rank, v in found.get("lotr_vs_lora", {}).items():
        lines.append(
            f"  LoRA r={rank}: {label(v['variant'], v['rank'])} within 1 point with "
            f"{v['trainable']} parameters, LoRA's / its = {v['ratio']:.1f} "
            f"(gap {100 * v['accuracy_gap']:+.1f} points)"
        )
    for rank, v in found.get("soka_vs_lora", {}).items():
        lines.append(
            f"  LoRA r={rank} best validation loss {v['threshold']:.4f}: reached by "
            f"{label(v['variant'], v['rank'])} at step {v['step']} with {v['trainable']} "
            f"parameters, LoRA's / its = {v['ratio']:.1f}"
        )
    return lines


def pretrain_table(ds: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Per mode of a ``pretrain`` file: final validation loss and bytes, and both vs full.

    Returns
    -------
    dict
        ``table``: mode (the ``variant`` of each run; the first is the full-rank reference)
        -> ``val_loss``, ``loss_ratio``, ``bytes`` (weights + optimizer state),
        ``bytes_ratio``.
    """
    final = ds["val_loss"].values[:, -1]
    total = ds["weight_bytes"].values + ds["optimizer_bytes"].values
    table = {
        str(mode): {
            "val_loss": float(final[i]),
            "loss_ratio": float(final[i] / final[0]),
            "bytes": int(total[i]),
            "bytes_ratio": int(total[i]) / int(total[0]),
        }
        for i, mode in enumerate(ds["variant"].values)
    }
    return {"table": table}


def pretrain_lines(found: Mapping[str, Any]) -> list[str]:
    """One line per mode of the ``table`` of :func:`pretrain_table`."""
    return [
        f"  {mode:<8} validation loss {v['val_loss']:.4f} ({v['loss_ratio']:.3f} x full)  "
        f"weights + optimizer {v['bytes'] / 1e6:.2f} MB ({v['bytes_ratio']:.2f} x full)"
        for mode, v in found.get("table", {}).items()
    ]


def sweep_plots(ds: Any, base: Path) -> list[Path]:
    """Test metric and memory against trainable parameters; validation curves.

    Writes ``<base>_params.png`` (selected learning rate per setting) and
    ``<base>_curves.png`` (mean validation loss of LoRA, LoTR, SoKA and full training).
    """
    table = analyse(ds)["table"]
    variants = list(dict.fromkeys(k[0] for k in table))
    metric = "test_loss" if ds.attrs["task"] == "chars" else "test_accuracy"
    fig, axes = figure(1, 2, figsize=(12, 4.5))
    for variant in variants:
        keys = sorted((k for k in table if k[0] == variant), key=lambda k: table[k]["trainable"])
        x = [table[k]["trainable"] for k in keys]
        axes[0].plot(x, [table[k][metric] for k in keys], "o-", label=variant)
        axes[1].plot(x, [table[k]["bytes"] / 1e3 for k in keys], "o-", label=variant)
    axes[0].set(xscale="log", xlabel="trainable parameters", ylabel=metric.replace("_", " "))
    axes[1].set(
        xscale="log", yscale="log", xlabel="trainable parameters",
        ylabel="weights + optimizer (kB)",
    )  # fmt: skip
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"adaptation sweep ({ds.attrs['preset']}), selected learning rate per setting")
    out = [save(fig, base, "params")]
    fig, ax = figure(figsize=(7, 4.5))
    steps = ds["eval_step"].values
    for key, v in table.items():
        if key[0] in ("lora", "lotr", "soka", "full"):
            ax.plot(steps, v["val_loss_curve"], label=label(*key))
    ax.set(yscale="log", xlabel="step", ylabel="validation loss (mean over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return [*out, save(fig, base, "curves")]


def pretrain_plots(ds: Any, base: Path) -> list[Path]:
    """Validation loss over the steps and bytes of weights + optimizer state, per mode.

    Writes ``<base>_loqt.png``.
    """
    fig, axes = figure(1, 2, figsize=(11, 4.2))
    steps = ds["eval_step"].values
    names = [str(v) for v in ds["variant"].values]
    total = (ds["weight_bytes"].values + ds["optimizer_bytes"].values) / 1e6
    for i, name in enumerate(names):
        axes[0].plot(steps, ds["val_loss"].values[i], label=name)
    axes[0].set(xlabel="step", ylabel="validation loss (nats)", title="pretraining on task A")
    axes[0].grid(True, alpha=0.3)
    axes[0].legend()
    axes[1].bar(names, total)
    axes[1].set(ylabel="weights + optimizer state (MB)", title="memory")
    return [save(fig, base, "loqt")]
