r"""Adapters on a pretrained model (LoRA, PiSSA, LoTR, SoKA, LoQT, peft) and LoQT pretraining.

Two commands, one configuration (``preset`` picks the task and its defaults)::

    mpirun -n 2 python -m drivers.adapters sweep                  # digits MLP (default)
    mpirun -n 2 python -m drivers.adapters sweep --set preset=chars_transformer
    mpirun -n 3 python -m drivers.adapters pretrain --set preset=chars_transformer
    python -m drivers.adapters plot runs/adapters_digits_mlp.nc

``sweep`` pretrains a model on task A (once, on rank 0, broadcast to the others) and adapts it
to task B with every variant of :data:`drivers._adapter_runs.VARIANTS` in
``experiment.sweep.variants`` at every rank of ``experiment.sweep.ranks`` (``full``: once),
for every learning rate of ``experiment.sweep.lrs`` and every seed; these runs are spread over
the MPI ranks. Per (variant, rank) the learning rate with the best mean validation metric is
selected (accuracy for digits, loss for characters); test metrics of the selected runs are
what the summary and the plots report.

- ``digits_mlp``: :func:`problems.adaptation.build_mlp` (width 128, 8 hidden layers, the
  adapter targets) on scikit-learn's digits (A) and pixel-permuted digits (B).
- ``chars_transformer``: :class:`tensorsim.nn.transformer.Decoder` (d = 128, 4 layers,
  pre-norm, RoPE, SwiGLU) on Python source (A) and Python's help topics (B), adapters on
  ``q_proj`` and ``v_proj``.

``pretrain`` trains a fresh model on task A three ways, one per MPI rank: full-rank AdamW,
LoQT-nq and LoQT (NF4 base) on the linear layers of ``experiment.loqt.targets`` (the other
parameters trained in full), and reports validation loss and the bytes of weights +
optimizer state.

Rank 0 writes one netCDF4/HDF5 file per command (``xarray.open_dataset(path,
engine="h5netcdf")``): record dimension ``run``, curves over ``eval_step``.

References
----------
arXiv 2106.09685 (LoRA), 2404.02948 (PiSSA), 2402.01376 (LoTR), 2506.15251 (SoKA),
2405.16528 (LoQT).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from drivers._cli import Command, run_command_line
from tensorsim.config import ConfigError, Params, config_to_toml, load_with_preset, param
from tensorsim.parallel import Executor

__all__ = ["COMMANDS", "PRESETS", "AdaptersRun", "Experiment", "analyse", "main", "plot"]

logger = logging.getLogger("drivers.adapters")

#: Curves stored per run over ``eval_step``: name -> long name.
CURVES = {
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy",
    "test_loss": "test cross entropy (nats)",
    "test_accuracy": "test accuracy",
    "train_loss": "mean training loss since the previous evaluation",
}


@dataclass(frozen=True)
class ModelParams(Params):
    """The pretrained model.

    Attributes
    ----------
    width
        MLP hidden width, or the decoder's ``d_model``.
    depth
        MLP hidden layers, or decoder blocks.
    heads
        Attention heads (decoder).
    seq_len
        Characters per window (decoder).
    """

    width: int = param(128, "MLP width or decoder d_model", ge=2)
    depth: int = param(8, "hidden layers (MLP) or blocks (decoder)", ge=1)
    heads: int = param(4, "attention heads (decoder)", ge=1)
    seq_len: int = param(64, "characters per window (decoder)", ge=2)


@dataclass(frozen=True)
class DataParams(Params):
    """Batches and evaluation splits.

    Attributes
    ----------
    batch_size
        Samples (windows) per step.
    val_fraction
        Digits: fraction of each training split held out for validation.
    eval_windows
        Characters: windows in each of the validation and test sets.
    max_chars
        Characters: keep only the first this many of each corpus (0: all).
    seed
        Seed of the split, the permutation, the pretrained weights and the batches.
    """

    batch_size: int = param(64, "samples per step", ge=1)
    val_fraction: float = param(0.2, "digits: validation fraction", gt=0.0, lt=1.0)
    eval_windows: int = param(64, "characters: windows per evaluation set", ge=1)
    max_chars: int = param(0, "characters: corpus prefix (0: all)", ge=0)
    seed: int = param(0, "base seed", ge=0)


@dataclass(frozen=True)
class TrainingParams(Params):
    """An AdamW run with linear warm-up and cosine decay.

    Attributes
    ----------
    steps
        Optimizer steps.
    lr
        Peak learning rate (the sweep uses ``sweep.lrs`` instead).
    warmup
        Warm-up steps.
    """

    steps: int = param(1500, "optimizer steps", ge=1)
    lr: float = param(3e-3, "peak learning rate", gt=0.0)
    warmup: int = param(50, "warm-up steps", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warmup > self.steps:
            raise ConfigError(
                f"config key 'warmup': expected at most steps={self.steps}, got {self.warmup}"
            )


@dataclass(frozen=True)
class SweepParams(Params):
    """The adaptation sweep.

    Attributes
    ----------
    variants
        Keys of :data:`drivers._adapter_runs.VARIANTS`.
    ranks
        Adapter ranks (for ``full`` ignored: one run).
    targets
        Patterns of the adapted linear layers (suffix or regex; one LoTR group each).
    lrs
        Peak learning rates tried for every (variant, rank).
    seeds
        Seeds per (variant, rank, lr): adapter initialization and batches.
    eval_every
        Steps between evaluations.
    loqt_gap
        LoQT: first gap of its exponential refresh schedule (steps).
    """

    variants: tuple[str, ...] = param(
        (
            "full",
            "lora",
            "pissa",
            "lotr",
            "lotr_tucker",
            "soka",
            "soka_energy",
            "loqt",
            "peft_lora",
            "peft_lokr",
        ),
        "adaptation variants",
    )
    ranks: tuple[int, ...] = param((1, 2, 4, 8, 16), "adapter ranks", ge=1)
    targets: tuple[str, ...] = param((r"hidden\d+",), "adapted layers (suffix or regex)")
    lrs: tuple[float, ...] = param((1e-3, 3e-3, 1e-2), "peak learning rates", gt=0.0)
    seeds: int = param(2, "seeds per setting", ge=1)
    eval_every: int = param(100, "steps between evaluations", ge=1)
    loqt_gap: int = param(100, "LoQT first refresh gap", ge=1)


@dataclass(frozen=True)
class LoQTPretrainParams(Params):
    """The ``pretrain`` command: full-rank AdamW vs LoQT-nq vs LoQT from scratch.

    Attributes
    ----------
    targets
        Linear layers under LoQT (the others train in full).
    rank
        LoQT rank.
    gap
        First refresh gap (exponential schedule, growth 1.2).
    alpha
        Scale of the LoQT update.
    compensation
        Quantization-error compensation iterations at each refresh (LoQT).
    eval_every
        Steps between evaluations.
    """

    targets: tuple[str, ...] = param(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "linear layers under LoQT",
    )
    rank: int = param(32, "LoQT rank", ge=1)
    gap: int = param(50, "first refresh gap", ge=1)
    alpha: float = param(1.0, "scale of the LoQT update", gt=0.0)
    compensation: int = param(2, "compensation iterations", ge=0)
    eval_every: int = param(100, "steps between evaluations", ge=1)


@dataclass(frozen=True)
class Experiment(Params):
    """Task, model, data, pretraining, adaptation sweep and LoQT pretraining.

    Attributes
    ----------
    task
        ``"digits"`` (MLP) or ``"chars"`` (decoder).
    """

    task: Literal["digits", "chars"] = param("digits", "digits (MLP) or chars (decoder)")
    model: ModelParams = param(ModelParams(), "the model")
    data: DataParams = param(DataParams(), "batches and evaluation sets")
    pretrain: TrainingParams = param(TrainingParams(), "pretraining on task A")
    adapt: TrainingParams = param(TrainingParams(steps=2000), "adaptation to task B")
    sweep: SweepParams = param(SweepParams(), "the adaptation sweep")
    loqt: LoQTPretrainParams = param(LoQTPretrainParams(), "the pretrain command")

    def __post_init__(self) -> None:
        super().__post_init__()
        from drivers._adapter_runs import VARIANTS

        unknown = sorted(set(self.sweep.variants) - set(VARIANTS))
        if unknown:
            raise ConfigError(
                f"config key 'sweep.variants': unknown {unknown}; "
                f"expected some of {sorted(VARIANTS)}"
            )
        if not self.sweep.targets:
            raise ConfigError("config key 'sweep.targets': expected at least one pattern")


def _digits_mlp() -> Experiment:
    return Experiment()


def _chars_transformer() -> Experiment:
    return Experiment(
        task="chars",
        model=ModelParams(width=128, depth=4, heads=4, seq_len=64),
        data=DataParams(batch_size=32),
        pretrain=TrainingParams(steps=1500, lr=3e-3, warmup=100),
        adapt=TrainingParams(steps=400, warmup=20),
        sweep=SweepParams(
            variants=("full", "lora", "lotr", "soka_energy", "peft_lora"),
            ranks=(2, 8),
            targets=("q_proj", "v_proj"),
            lrs=(3e-3, 1e-2),
            seeds=1,
            eval_every=50,
        ),
    )


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"digits_mlp": _digits_mlp, "chars_transformer": _chars_transformer}


@dataclass(frozen=True)
class AdaptersOutputParams(Params):
    """The output file.

    Attributes
    ----------
    path
        Output file; empty: ``runs/adapters_{preset}.nc`` (sweep) or
        ``runs/loqt_{preset}.nc`` (pretrain).
    """

    path: str = param("", "output file (empty: from the command and preset)")


@dataclass(frozen=True)
class AdaptersRun(Params):
    """Configuration of ``python -m drivers.adapters``.

    Attributes
    ----------
    preset
        ``"digits_mlp"`` or ``"chars_transformer"``: defaults of ``experiment``.
    experiment
        Task, model, data and schedules.
    output
        The output file.
    """

    preset: Literal["digits_mlp", "chars_transformer"] = param(
        "digits_mlp", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "task, model, data, schedules")
    output: AdaptersOutputParams = param(AdaptersOutputParams(), "output file")

    def path(self, command: str) -> Path:
        """The output file of ``command`` (``"sweep"`` or ``"pretrain"``)."""
        if self.output.path:
            return Path(self.output.path)
        stem = "adapters" if command == "sweep" else "loqt"
        return Path("runs") / f"{stem}_{self.preset}.nc"


def _task(e: Experiment) -> Any:
    from drivers._adapter_runs import char_task, digits_task

    m, d = e.model, e.data
    if e.task == "digits":
        return digits_task(
            width=m.width,
            depth=m.depth,
            batch_size=d.batch_size,
            seed=d.seed,
            val_fraction=d.val_fraction,
        )
    return char_task(
        d_model=m.width,
        n_layers=m.depth,
        n_heads=m.heads,
        seq_len=m.seq_len,
        batch_size=d.batch_size,
        eval_windows=d.eval_windows,
        max_chars=d.max_chars or None,
    )


def _settings(sweep: SweepParams) -> list[tuple[str, int, float, int]]:
    """The ``(variant, rank, lr, seed)`` runs; ``full`` has rank 0."""
    out = []
    for variant in sweep.variants:
        for rank in (0,) if variant == "full" else sweep.ranks:
            for lr in sweep.lrs:
                out += [(variant, rank, lr, seed) for seed in range(sweep.seeds)]
    return out


def _pretrained(cfg: AdaptersRun, comm: Any, task: Any) -> tuple[Any, dict[str, float]]:
    """Pretrain on rank 0 and broadcast the weights."""
    from drivers._adapter_runs import pretrain

    e = cfg.experiment
    payload = None
    if comm.rank == 0:
        start = time.perf_counter()
        model, metrics = pretrain(
            task,
            steps=e.pretrain.steps,
            lr=e.pretrain.lr,
            warmup=e.pretrain.warmup,
            seed=e.data.seed,
        )
        logger.info(
            "pretrained on task A in %.1f s: validation loss %.4f, accuracy %.4f",
            time.perf_counter() - start,
            metrics["val_loss"],
            metrics["val_accuracy"],
        )
        payload = (model.state_dict(), metrics)
    state, metrics = comm.bcast(payload, root=0)
    import torch

    model = task.build(torch.Generator().manual_seed(e.data.seed))
    model.load_state_dict(state)
    return model, metrics


def _write(
    path: Path,
    cfg: AdaptersRun,
    comm: Any,
    command: str,
    labels: Sequence[tuple[str, int, float, int]],
    results: list[dict[str, Any]],
    attrs: dict[str, Any],
) -> None:
    from tensorsim.io import Writer

    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {"preset": cfg.preset, "command": command, "task": cfg.experiment.task, **attrs}
    with Writer(path, record_dim="run", comm=comm, config=config_to_toml(cfg), attrs=attrs) as out:
        out.set_coordinate("eval_step", results[0]["steps"], long_name="optimizer steps done")
        out.define_series("variant", dtype=str, long_name="adaptation variant")
        out.define_series("rank", dtype="int64", long_name="adapter rank (0: none)")
        out.define_series("lr", long_name="peak learning rate")
        out.define_series("seed", dtype="int64", long_name="seed of initialization and batches")
        out.define_series("trainable", dtype="int64", long_name="trainable parameters")
        out.define_series("weight_bytes", dtype="int64", units="B", long_name="bytes of weights")
        out.define_series(
            "optimizer_bytes", dtype="int64", units="B", long_name="bytes of optimizer state"
        )
        out.define_series("step_seconds", units="s", long_name="mean time of one update")
        for name, long_name in CURVES.items():
            out.define_series(name, ("eval_step",), long_name=long_name)
        for i, ((variant, rank, lr, seed), r) in enumerate(zip(labels, results, strict=True)):
            out.append(
                i,
                variant=variant,
                rank=rank,
                lr=lr,
                seed=seed,
                **{k: r[k] for k in ("trainable", "weight_bytes", "optimizer_bytes")},
                step_seconds=r["step_seconds"],
                **{name: r[name] for name in CURVES},
            )


def sweep(cfg: AdaptersRun, comm: Any) -> dict[str, Any]:
    """Pretrain, then adapt with every (variant, rank, lr, seed) over the ranks; write, analyse."""
    from drivers._adapter_runs import adapt_run

    e = cfg.experiment
    start = time.perf_counter()
    task = _task(e)
    model, metrics = _pretrained(cfg, comm, task)
    labels = _settings(e.sweep)

    def one(label: tuple[str, int, float, int]) -> dict[str, Any]:
        variant, rank, lr, seed = label
        t0 = time.perf_counter()
        out = adapt_run(
            model,
            task,
            variant,
            e.sweep.targets,
            max(rank, 1),
            steps=e.adapt.steps,
            lr=lr,
            warmup=e.adapt.warmup,
            eval_every=e.sweep.eval_every,
            seed=seed,
            loqt_gap=e.sweep.loqt_gap,
        )
        logger.info(
            "%s rank %d lr %.0e seed %d: %d trainable, validation loss %.4f, accuracy %.4f, "
            "%.1f s",
            variant,
            rank,
            lr,
            seed,
            out["trainable"],
            out["val_loss"][-1],
            out["val_accuracy"][-1],
            time.perf_counter() - t0,
        )
        return out

    costs = [1.0 + (v.startswith("soka")) + (v == "loqt") for v, *_ in labels]
    results = Executor(comm).map(one, labels, costs=costs)
    path = cfg.path("sweep")
    attrs = {f"pretrain_{k}": v for k, v in metrics.items()}
    _write(path, cfg, comm, "sweep", labels, results, attrs)
    summary: dict[str, Any] = {"path": str(path), "wall_time": time.perf_counter() - start}
    if comm.rank == 0:
        from tensorsim.io import open_run

        summary.update(analyse(open_run(path)[0]))
    return summary


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

    Returns
    -------
    dict
        ``table``: (variant, rank) -> selected-run summary; ``lotr_vs_lora``: per LoRA rank,
        the LoTR setting with the fewest parameters whose test accuracy is within 1 point of
        LoRA's (and the parameter ratio); ``soka_vs_lora``: per LoRA rank, the SoKA setting
        with the fewest parameters whose mean validation loss reaches LoRA's final one, and
        the first evaluation step where it does.
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


def pretrain(cfg: AdaptersRun, comm: Any) -> dict[str, Any]:
    """Full-rank AdamW vs LoQT-nq vs LoQT from scratch on task A, one mode per rank; write."""
    from drivers._adapter_runs import PRETRAIN_MODES, pretrain_run

    e = cfg.experiment
    start = time.perf_counter()
    task = _task(e)

    def one(mode: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = pretrain_run(
            task,
            mode,
            targets=e.loqt.targets,
            rank=e.loqt.rank,
            gap=e.loqt.gap,
            alpha=e.loqt.alpha,
            compensation=e.loqt.compensation,
            steps=e.pretrain.steps,
            lr=e.pretrain.lr,
            warmup=e.pretrain.warmup,
            eval_every=e.loqt.eval_every,
            seed=e.data.seed,
        )
        logger.info(
            "%s: validation loss %.4f, %d trainable, weights + optimizer %.0f kB (%.1f s)",
            mode,
            out["val_loss"][-1],
            out["trainable"],
            (out["weight_bytes"] + out["optimizer_bytes"]) / 1e3,
            time.perf_counter() - t0,
        )
        return out

    results = Executor(comm).map(one, list(PRETRAIN_MODES), costs=[1.0, 1.2, 1.5])
    labels = [
        (mode, 0 if mode == "full" else e.loqt.rank, e.pretrain.lr, e.data.seed)
        for mode in PRETRAIN_MODES
    ]
    path = cfg.path("pretrain")
    _write(path, cfg, comm, "pretrain", labels, results, {})
    full = results[0]
    full_bytes = full["weight_bytes"] + full["optimizer_bytes"]
    table = {
        mode: {
            "val_loss": float(r["val_loss"][-1]),
            "loss_ratio": float(r["val_loss"][-1] / full["val_loss"][-1]),
            "bytes": int(r["weight_bytes"] + r["optimizer_bytes"]),
            "bytes_ratio": (r["weight_bytes"] + r["optimizer_bytes"]) / full_bytes,
        }
        for mode, r in zip(PRETRAIN_MODES, results, strict=True)
    }
    return {"path": str(path), "table": table, "wall_time": time.perf_counter() - start}


def _label(variant: str, rank: int) -> str:
    return variant if rank == 0 else f"{variant} r={rank}"


def _plot_sweep(ds: Any, base: Path, plt: Any) -> list[Path]:
    found = analyse(ds)
    table = found["table"]
    variants = list(dict.fromkeys(k[0] for k in table))
    metric = "test_loss" if ds.attrs["task"] == "chars" else "test_accuracy"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for variant in variants:
        keys = sorted((k for k in table if k[0] == variant), key=lambda k: table[k]["trainable"])
        x = [table[k]["trainable"] for k in keys]
        axes[0].plot(x, [table[k][metric] for k in keys], "o-", label=variant)
        axes[1].plot(x, [table[k]["bytes"] / 1e3 for k in keys], "o-", label=variant)
    axes[0].set(xscale="log", xlabel="trainable parameters", ylabel=metric.replace("_", " "))
    axes[1].set(
        xscale="log",
        yscale="log",
        xlabel="trainable parameters",
        ylabel="weights + optimizer (kB)",
    )
    for ax in axes:
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"adaptation sweep ({ds.attrs['preset']}), selected learning rate per setting")
    fig.tight_layout()
    out = [base.with_name(base.name + "_params.png")]
    fig.savefig(out[0], dpi=120)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = ds["eval_step"].values
    for key, v in table.items():
        if key[0] in ("lora", "lotr", "soka", "full"):
            ax.plot(steps, v["val_loss_curve"], label=_label(*key))
    ax.set(yscale="log", xlabel="step", ylabel="validation loss (mean over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    out.append(base.with_name(base.name + "_curves.png"))
    fig.savefig(out[1], dpi=120)
    plt.close(fig)
    return out


def _plot_pretrain(ds: Any, base: Path, plt: Any) -> list[Path]:
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
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
    fig.tight_layout()
    out = base.with_name(base.name + "_loqt.png")
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]


def plot(path: str) -> list[Path]:
    """Write the plots of a ``sweep`` or ``pretrain`` output file next to it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tensorsim.io import open_run

    ds, _ = open_run(path)
    base = Path(path).with_suffix("")
    if ds.attrs["command"] == "sweep":
        return _plot_sweep(ds, base, plt)
    return _plot_pretrain(ds, base, plt)


def _describe(command: str) -> Any:
    def describe(cfg: AdaptersRun, n_ranks: int) -> str:
        e = cfg.experiment
        what = f"{cfg.preset}: {e.task} task, width {e.model.width}, depth {e.model.depth}"
        if command == "sweep":
            n = len(_settings(e.sweep))
            return (
                f"{what}; pretrain {e.pretrain.steps} steps, then {n} adaptation runs of "
                f"{e.adapt.steps} steps on {n_ranks} rank(s)"
            )
        return f"{what}; full-rank AdamW, LoQT-nq, LoQT for {e.pretrain.steps} steps"

    return describe


def _summarize_sweep(summary: dict[str, Any]) -> str:
    lines = [f"wrote {summary['path']} in {summary['wall_time']:.1f} s"]
    for (variant, rank), v in summary.get("table", {}).items():
        lines.append(
            f"  {_label(variant, rank):<18} {v['trainable']:>8} params  lr {v['lr']:.0e}  "
            f"test accuracy {v['test_accuracy']:.4f} +- {v['test_accuracy_std']:.4f}  "
            f"test loss {v['test_loss']:.4f}  {v['bytes'] / 1e3:.0f} kB"
        )
    for rank, v in summary.get("lotr_vs_lora", {}).items():
        lines.append(
            f"  LoRA r={rank}: {_label(v['variant'], v['rank'])} within 1 point with "
            f"{v['trainable']} parameters, LoRA's / its = {v['ratio']:.1f} "
            f"(gap {100 * v['accuracy_gap']:+.1f} points)"
        )
    for rank, v in summary.get("soka_vs_lora", {}).items():
        lines.append(
            f"  LoRA r={rank} best validation loss {v['threshold']:.4f}: reached by "
            f"{_label(v['variant'], v['rank'])} at step {v['step']} with {v['trainable']} "
            f"parameters, LoRA's / its = {v['ratio']:.1f}"
        )
    return "\n".join(lines)


def _summarize_pretrain(summary: dict[str, Any]) -> str:
    rows = [
        f"  {mode:<8} validation loss {v['val_loss']:.4f} ({v['loss_ratio']:.3f} x full)  "
        f"weights + optimizer {v['bytes'] / 1e6:.2f} MB ({v['bytes_ratio']:.2f} x full)"
        for mode, v in summary["table"].items()
    ]
    return "\n".join([f"wrote {summary['path']} in {summary['wall_time']:.1f} s", *rows])


#: The subcommands (``plot FILE`` is the third).
COMMANDS = {
    "sweep": Command(
        run=sweep,
        describe=_describe("sweep"),
        summarize=_summarize_sweep,
        help="pretrain on task A, adapt to task B with every variant and rank",
    ),
    "pretrain": Command(
        run=pretrain,
        describe=_describe("pretrain"),
        summarize=_summarize_pretrain,
        help="pretrain on task A: full-rank AdamW vs LoQT-nq vs LoQT",
    ),
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any] | None:
    """Command-line entry point; returns the command's summary (None for ``plot``)."""
    return run_command_line(
        argv,
        config_cls=AdaptersRun,
        prog="python -m drivers.adapters",
        description=__doc__.split("\n")[0],
        load=lambda args: load_with_preset(
            AdaptersRun, args.config, args.set, PRESETS, table="experiment"
        ),
        plot=plot,
        commands=COMMANDS,
        logger=logger,
    )


if __name__ == "__main__":
    main()
