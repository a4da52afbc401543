r"""Adapters on a pretrained model (LoRA, PiSSA, LoTR, SoKA, LoQT, peft) and LoQT pretraining.

Two commands, one configuration (``preset`` picks the task and its defaults)::

    mpirun -n 2 python -m drivers.adapters sweep                  # digits MLP (default)
    mpirun -n 2 python -m drivers.adapters sweep --set preset=chars_transformer
    mpirun -n 3 python -m drivers.adapters pretrain --set preset=chars_transformer
    python -m drivers.adapters plot runs/adapters_digits_mlp.nc

``sweep`` pretrains a model on task A (on rank 0, broadcast) and adapts it to task B with
every variant (:data:`solvers.adapters.VARIANTS`), rank (``full``: none), learning rate and
seed of ``experiment.sweep``, the runs spread over the MPI ranks; per (variant, rank) the
learning rate with the best mean validation metric is selected
(:func:`analysis.adapters.analyse`). ``pretrain`` trains a fresh model on task A with
full-rank AdamW, LoQT-nq and LoQT (NF4 base), one per MPI rank, and compares validation loss
and the bytes of weights + optimizer state. Presets: ``digits_mlp`` (an MLP, 8 hidden layers
adapted, on the digits and the pixel-permuted digits) and ``chars_transformer`` (a 4-block
decoder, ``q_proj`` and ``v_proj`` adapted, on Python source and Python's help topics); the
tasks are :mod:`problems.adaptation`, the runs :mod:`solvers.adapters`. Options that the
command or the task does not use must keep their preset's value. One file per command.

References
----------
arXiv 2106.09685 (LoRA), 2404.02948 (PiSSA), 2402.01376 (LoTR), 2506.15251 (SoKA),
2405.16528 (LoQT).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from analysis import adapters as report
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems import adaptation as tasks
from problems.adaptation import AdaptationDataParams, AdaptationModelParams
from solvers import adapters as runs
from solvers.adapters import VARIANTS, LoQTPretrainParams, TrainingParams
from tensorsim.config import ConfigError, Params, param
from tensorsim.parallel import Executor

__all__ = ["PRESETS", "AdaptersRun", "AdaptersSweep", "Experiment", "LoQTPretrain", "main"]

logger = logging.getLogger("drivers.adapters")

#: The series of a file (one record per run): labels, sizes, step time, curves.
SERIES = (
    Var("variant", dtype=str, long_name="adaptation variant"),
    Var("rank", dtype="int64", long_name="adapter rank (0: none)"),
    Var("lr", long_name="peak learning rate"),
    Var("seed", dtype="int64", long_name="seed of initialization and batches"),
    Var("trainable", dtype="int64", long_name="trainable parameters"),
    Var("weight_bytes", dtype="int64", units="B", long_name="bytes of weights"),
    Var("optimizer_bytes", dtype="int64", units="B", long_name="bytes of optimizer state"),
    Var("step_seconds", units="s", long_name="mean time of one update"),
    *(Var(name, ("eval_step",), long_name=doc) for name, doc in runs.CURVES.items()),
)


@dataclass(frozen=True)
class SweepParams(Params):
    """The adaptation sweep: variants x ranks x learning rates x seeds."""

    variants: tuple[str, ...] = param(
        ("full", "lora", "pissa", "lotr", "lotr_tucker", "soka", "soka_energy", "loqt",
         "peft_lora", "peft_lokr"), "adaptation variants", choices=tuple(VARIANTS),
    )  # fmt: skip
    ranks: tuple[int, ...] = param((1, 2, 4, 8, 16), "adapter ranks (full: one run)", ge=1)
    targets: tuple[str, ...] = param((r"hidden\d+",), "adapted layers (suffix or regex)")
    lrs: tuple[float, ...] = param((1e-3, 3e-3, 1e-2), "peak lrs (empty: adapt.lr)", gt=0.0)
    seeds: int = param(2, "seeds per setting (adapter initialization, batches)", ge=1)
    eval_every: int = param(100, "steps between evaluations", ge=1)
    loqt_gap: int = param(100, "LoQT variants: first refresh gap", ge=1)


@dataclass(frozen=True)
class Experiment(Params):
    """Task, model, data, pretraining, adaptation sweep and LoQT pretraining."""

    task: Literal["digits", "chars"] = param("digits", "digits (MLP) or chars (decoder)")
    model: AdaptationModelParams = param(AdaptationModelParams(), "the model")
    data: AdaptationDataParams = param(AdaptationDataParams(), "batches and evaluation sets")
    pretrain: TrainingParams = param(TrainingParams(), "pretraining on task A")
    adapt: TrainingParams = param(TrainingParams(steps=2000), "adaptation to task B")
    sweep: SweepParams = param(SweepParams(), "the adaptation sweep")
    loqt: LoQTPretrainParams = param(LoQTPretrainParams(), "the pretrain command")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.sweep.targets:
            raise ConfigError("config key 'sweep.targets': expected at least one pattern")

    def runs(self) -> list[tuple[str, int, float, int]]:
        """The ``(variant, rank, lr, seed)`` adaptation runs; ``full`` has rank 0."""
        s = self.sweep
        return [
            (variant, rank, lr, seed)
            for variant in s.variants
            for rank in ((0,) if variant == "full" else s.ranks)
            for lr in s.lrs or (self.adapt.lr,)
            for seed in range(s.seeds)
        ]


def _chars_transformer() -> Experiment:
    return Experiment(
        task="chars",
        model=AdaptationModelParams(width=128, depth=4, heads=4, seq_len=64),
        data=AdaptationDataParams(batch_size=32),
        pretrain=TrainingParams(steps=1500, lr=3e-3, warmup=100),
        adapt=TrainingParams(steps=400, warmup=20),
        sweep=SweepParams(variants=("full", "lora", "lotr", "soka_energy", "peft_lora"),
                          ranks=(2, 8), targets=("q_proj", "v_proj"), lrs=(3e-3, 1e-2),
                          seeds=1, eval_every=50),
    )  # fmt: skip


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {"digits_mlp": Experiment, "chars_transformer": _chars_transformer}


@dataclass(frozen=True)
class AdaptersOutput(OutputParams):
    """The output file."""

    path: str = param("", "output file (empty: runs/{adapters|loqt}_{preset}.nc)")


@dataclass(frozen=True)
class AdaptersRun(Params):
    """Configuration of ``python -m drivers.adapters sweep|pretrain``."""

    preset: Literal["digits_mlp", "chars_transformer"] = param(
        "digits_mlp", "defaults of the experiment table"
    )
    experiment: Experiment = param(Experiment(), "task, model, data, schedules")
    output: AdaptersOutput = param(AdaptersOutput(), "output file")


def unused_options(e: Experiment, command: str) -> dict[str, str]:
    """Keys under ``experiment`` that ``command`` does not use with ``e``, and why."""
    out = dict.fromkeys(tasks.UNUSED_FIELDS[e.task], f"not used by task = {e.task!r}")
    if command == "pretrain":
        return out | dict.fromkeys(("adapt", "sweep"), "applies to the sweep command only")
    out["loqt"] = "applies to the pretrain command only"
    if not any(VARIANTS[v][0] == "loqt" for v in e.sweep.variants):
        out["sweep.loqt_gap"] = "applies to the loqt and loqt_nq variants only"
    if set(e.sweep.variants) <= {"full"}:
        out["sweep.ranks"] = "the full variant has no rank"
    if e.sweep.lrs:
        out["adapt.lr"] = "the sweep tries sweep.lrs (set sweep.lrs = [] to use adapt.lr)"
    return out


class _Adapters(Sweep):
    """What both commands share: configuration and its checks, the file, the summary."""

    config, presets = AdaptersRun, PRESETS
    length_key = "experiment.adapt.steps"
    command: ClassVar[str]
    stem: ClassVar[str]

    def unused(self, cfg: AdaptersRun) -> dict[str, str]:
        """The options the command does not use (:func:`unused_options`)."""
        return unused_options(cfg.experiment, self.command)

    def output_path(self, cfg: AdaptersRun) -> Path:
        """``output.path``, or ``runs/{adapters|loqt}_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/{self.stem}_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``, the curves over ``eval_step``; pretraining metrics."""
        cfg, metrics = run.cfg, run.data.get("metrics", {})
        attrs = {"preset": cfg.preset, "command": self.command, "task": cfg.experiment.task}
        attrs |= {f"pretrain_{k}": v for k, v in metrics.items()}
        steps = (run.results[0]["steps"], "optimizer steps done")
        return Layout("run", SERIES, coords={"eval_step": steps}, attrs=attrs)

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """On rank 0: the analysis of the file."""
        if run.comm.rank != 0:
            return {}
        from tensorsim.io import open_run

        return self.analyse(open_run(run.path)[0])

    def describe(self, cfg: AdaptersRun, n_ranks: int) -> str:
        """Task, model and what the command trains."""
        e = cfg.experiment
        what = f"{cfg.preset}: {e.task} task, width {e.model.width}, depth {e.model.depth}"
        return f"{what}; {self.trains(e)} on {n_ranks} rank(s)"

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Times and file, then the lines of the analysis."""
        return "\n".join([super().summarize(summary), *self.lines(summary)])


class AdaptersSweep(_Adapters):
    """Pretrain once, adapt with every (variant, rank, lr, seed); select lr on validation."""

    command, stem = "sweep", "adapters"
    help = "pretrain on task A, adapt to task B with every variant and rank"
    analyse, lines = staticmethod(report.analyse), staticmethod(report.sweep_lines)
    plots = staticmethod(report.sweep_plots)

    def prepare(self, cfg: AdaptersRun, executor: Executor) -> dict[str, Any]:
        """The task, the pretrained model (trained on one rank, given to all) and its metrics."""
        e, seed = cfg.experiment, cfg.experiment.data.seed
        task = tasks.adaptation_task(e.task, e.model, e.data)
        pretrain = functools.partial(runs.pretrained_state, task, e.pretrain, seed=seed)
        state, metrics = executor.map(lambda _: pretrain(), [0])[0]
        model = runs.pretrained_model(task, state, seed=seed)
        return {"task": task, "model": model, "metrics": metrics}

    def cases(self, run: SweepRun) -> list[tuple[str, int, float, int]]:
        """Every ``(variant, rank, lr, seed)``."""
        return run.cfg.experiment.runs()

    def cost(self, run: SweepRun, case: tuple[str, int, float, int]) -> float:
        """SoKA and LoQT take about twice as long."""
        return 1.0 + case[0].startswith("soka") + (case[0] == "loqt")

    def run_case(self, run: SweepRun, case: tuple[str, int, float, int]) -> dict[str, Any]:
        """One adaptation run (:func:`solvers.adapters.adapt_run`), labelled."""
        e, (variant, rank, lr, seed) = run.cfg.experiment, case
        start = time.perf_counter()
        out = runs.adapt_run(
            run.data["model"], run.data["task"], variant, e.sweep.targets, max(rank, 1),
            dataclasses.replace(e.adapt, lr=lr), eval_every=e.sweep.eval_every, seed=seed,
            loqt_gap=e.sweep.loqt_gap,
        )  # fmt: skip
        logger.info(
            "%s rank %d lr %.0e seed %d: %d trainable, validation loss %.4f, accuracy %.4f, "
            "%.1f s",
            *(variant, rank, lr, seed, out["trainable"], out["val_loss"][-1]),
            *(out["val_accuracy"][-1], time.perf_counter() - start),
        )
        return {"variant": variant, "rank": rank, "lr": lr, "seed": seed, **out}

    def trains(self, e: Experiment) -> str:
        """Pretraining, then the adaptation runs."""
        n, steps = len(e.runs()), e.adapt.steps
        return f"pretrain {e.pretrain.steps} steps, then {n} adaptation runs of {steps} steps"


class LoQTPretrain(_Adapters):
    """Full-rank AdamW vs LoQT-nq vs LoQT from scratch on task A, one mode per MPI rank."""

    command, stem = "pretrain", "loqt"
    help = "pretrain on task A: full-rank AdamW vs LoQT-nq vs LoQT"
    length_key = "experiment.pretrain.steps"
    analyse, lines = staticmethod(report.pretrain_table), staticmethod(report.pretrain_lines)
    plots = staticmethod(report.pretrain_plots)

    def prepare(self, cfg: AdaptersRun, executor: Executor) -> dict[str, Any]:
        """The task."""
        e = cfg.experiment
        return {"task": tasks.adaptation_task(e.task, e.model, e.data)}

    def cases(self, run: SweepRun) -> list[str]:
        """The modes of :data:`solvers.adapters.PRETRAIN_MODES`."""
        return list(runs.PRETRAIN_MODES)

    def cost(self, run: SweepRun, case: str) -> float:
        """NF4 dequantization and the refreshes cost extra."""
        return {"full": 1.0, "loqt_nq": 1.2, "loqt": 1.5}[case]

    def run_case(self, run: SweepRun, case: str) -> dict[str, Any]:
        """One mode (:func:`solvers.adapters.pretrain_run`), labelled with the LoQT rank."""
        e, start = run.cfg.experiment, time.perf_counter()
        out = runs.pretrain_run(run.data["task"], case, e.loqt, e.pretrain, seed=e.data.seed)
        logger.info(
            "%s: validation loss %.4f, %d trainable, weights + optimizer %.0f kB (%.1f s)",
            *(case, out["val_loss"][-1], out["trainable"]),
            *((out["weight_bytes"] + out["optimizer_bytes"]) / 1e3, time.perf_counter() - start),
        )
        rank = 0 if case == "full" else e.loqt.rank
        return {"variant": case, "rank": rank, "lr": e.pretrain.lr, "seed": e.data.seed, **out}

    def trains(self, e: Experiment) -> str:
        """The three modes."""
        return f"full-rank AdamW, LoQT-nq, LoQT for {e.pretrain.steps} steps"


DRIVER = Driver("adapters", __doc__, {"sweep": AdaptersSweep(), "pretrain": LoQTPretrain()})
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
