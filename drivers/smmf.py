r"""SMMF against Adam, AdamW, Adafactor, CAME and SM3: accuracy/loss curves and state bytes.

::

    mpirun -n 2 python -m drivers.smmf                            # digits CNN (default)
    mpirun -n 2 python -m drivers.smmf --set preset=mlp
    mpirun -n 2 python -m drivers.smmf --set preset=transformer
    python -m drivers.smmf plot runs/smmf_cnn.nc

Every (optimizer, learning rate, seed) run of the sweep trains a fresh model (initial
weights and batches from the seed, the same for every optimizer) for ``experiment.steps``
steps, linear warm-up then cosine decay to 0, evaluating on a validation and a test set every
``experiment.eval_every`` steps (:func:`solvers.optimizers.train_run`); the runs are spread
over the MPI ranks. Per optimizer the learning rate with the best mean final validation
metric is selected (accuracy for the digits models, loss for the transformer); the summary
and the plots report the test metrics of the selected runs, mean over seeds
(:mod:`analysis.smmf`).

- ``cnn``: the digits CNN of :mod:`tensorsim.nn.models.small` (two 3x3 convolutions: 4-D
  kernels that SMMF square-matricizes) on scikit-learn's digits
  (:func:`problems.adaptation.digits_model_task`); ``mlp``: the digits MLP (64-128-64-10);
- ``transformer``: the character transformer (2 layers, width 64) predicting the next
  character of Python standard-library source (:func:`problems.language.char_model_task`).

Optimizers and their defaults (``experiment.optim.NAME.lr``, ``.weight_decay``; every other
option is the library's default, :func:`solvers.optimizers.make_optimizer`):
``torch.optim.Adam`` (lr 1e-3, no weight decay), ``torch.optim.AdamW`` (lr 1e-3, weight
decay 1e-2), ``torch.optim.Adafactor`` (lr 1e-2, its relative-step cap),
``pytorch_optimizer.CAME`` (lr 2e-4), ``pytorch_optimizer.SM3`` (lr 0.1) and
:class:`tensorsim.optim.SMMF` (lr 1e-3, weight decay 5e-4, ``decay_rate`` -0.5 for the CNN
and MLP and -0.8 for the transformer, as the paper recommends). Each runs at its default
learning rate times each of ``experiment.optim.lr_factors`` (1, 3, 10, 30, 100 for the digits
models, 3 and 10 for the transformer: these short runs want larger steps than the defaults,
which are tuned for long training). A run whose loss turns non-finite is kept with NaN
curves (``diverged``) and loses the selection. Options the experiment would not use (the
corpus and transformer for the digits, the digits split for the transformer, the table of an
optimizer not compared) are refused when they differ from the preset's values.

Rank 0 writes one netCDF4/HDF5 file (``xarray.open_dataset(path, engine="h5netcdf")``):
record dimension ``run``, curves over ``eval_step``, per run the optimizer-state bytes
measured with :func:`tensorsim.optim.state_bytes` and predicted by formula (SMMF:
:func:`tensorsim.optim.smmf_state_bytes`; Adam/AdamW: two moments and a step counter), and
per parameter tensor (dimension ``tensor``) its size, SMMF matrix shape and SMMF/Adam bytes.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from analysis.smmf import analyse, plots, summary_lines
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var
from drivers._cli import Driver
from problems.adaptation import ModelTask, TaskDataParams, digits_model_task
from problems.language import char_model_task
from solvers.optimizers import (
    CURVES,
    OPTIMIZERS,
    STEP_COSTS,
    TENSOR_COLUMNS,
    OptimParams,
    tensor_table,
    train_run,
)
from tensorsim.config import ConfigError, Params, param
from tensorsim.nn.models.small import CharTransformerParams

__all__ = ["OPTIMIZERS", "PRESETS", "Experiment", "SMMFRun", "SMMFSweep", "main", "make_task"]

logger = logging.getLogger("drivers.smmf")


@dataclass(frozen=True)
class Experiment(Params):
    """Model, data, schedule, optimizers.

    Attributes
    ----------
    model
        ``"cnn"``, ``"mlp"`` (digits) or ``"transformer"`` (characters).
    optimizers
        Optimizers compared (keys of ``optim``).
    steps, warmup
        Optimizer steps; linear warm-up steps before the cosine decay.
    eval_every
        Steps between evaluations.
    seeds
        Seeds per (optimizer, learning rate): 0, 1, ...
    """

    model: Literal["cnn", "mlp", "transformer"] = param("cnn", "the model")
    optimizers: tuple[str, ...] = param(OPTIMIZERS, "optimizers compared", choices=OPTIMIZERS)
    steps: int = param(600, "optimizer steps", ge=1)
    warmup: int = param(30, "warm-up steps", ge=0)
    eval_every: int = param(50, "steps between evaluations", ge=1)
    seeds: int = param(2, "seeds per setting", ge=1)
    data: TaskDataParams = param(TaskDataParams(), "batches and evaluation sets")
    transformer: CharTransformerParams = param(CharTransformerParams(), "the transformer")
    optim: OptimParams = param(OptimParams(), "learning-rate grids and weight decays")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.optimizers:
            raise ConfigError("config key 'optimizers': expected at least one optimizer")
        if len(set(self.optimizers)) != len(self.optimizers):
            raise ConfigError(f"config key 'optimizers': repeated names in {self.optimizers}")
        if self.warmup > self.steps:
            raise ConfigError(
                f"config key 'warmup': expected at most steps={self.steps}, got {self.warmup}"
            )

    def settings(self) -> list[tuple[str, float, int]]:
        """The ``(optimizer, lr, seed)`` runs."""
        out = []
        for name in self.optimizers:
            for lr in self.optim.lrs(name):
                out += [(name, lr, seed) for seed in range(self.seeds)]
        return out

    def unused(self) -> list[tuple[str, str]]:
        """``(key, what uses it)`` of the options this experiment does not use."""
        if self.model == "transformer":
            out = [(f"data.{k}", "the digits models") for k in ("val_fraction", "seed")]
        else:
            out = [
                (key, "model = 'transformer'")
                for key in ("data.corpus", "data.max_chars", "data.context", "data.eval_windows",
                            "transformer.width", "transformer.layers", "transformer.heads")
            ]  # fmt: skip
        out += [(f"optim.{n}", f"optimizer {n!r}") for n in OPTIMIZERS if n not in self.optimizers]
        if "smmf" not in self.optimizers:
            out.append(("optim.decay_rate", "optimizer 'smmf'"))
        return out


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "cnn": Experiment,
    "mlp": lambda: Experiment(model="mlp"),
    "transformer": lambda: Experiment(
        model="transformer", steps=800, warmup=40, eval_every=80,
        data=TaskDataParams(batch_size=32),
        optim=OptimParams(lr_factors=(3.0, 10.0), decay_rate=-0.8),
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SMMFOutput(OutputParams):
    """The output file."""

    path: str = param("", "output file (empty: runs/smmf_{preset}.nc)")


@dataclass(frozen=True)
class SMMFRun(Params):
    """Configuration of ``python -m drivers.smmf``."""

    preset: Literal["cnn", "mlp", "transformer"] = param("cnn", "defaults of the experiment table")
    experiment: Experiment = param(Experiment(), "model, data, schedule, optimizers")
    output: SMMFOutput = param(SMMFOutput(), "output file")


def make_task(e: Experiment) -> ModelTask:
    """The model and data of ``e.model`` (digits or characters)."""
    d, t = e.data, e.transformer
    if e.model == "transformer":
        return char_model_task(
            corpus=d.corpus, max_chars=d.max_chars or None, context=d.context,
            batch_size=d.batch_size, eval_windows=d.eval_windows,
            width=t.width, layers=t.layers, heads=t.heads,
        )  # fmt: skip
    return digits_model_task(
        e.model, batch_size=d.batch_size, val_fraction=d.val_fraction, data_seed=d.seed
    )


class SMMFSweep(Sweep):
    """Every (optimizer, learning rate, seed) run; one record per run."""

    config = SMMFRun
    presets = PRESETS
    length_key = "experiment.steps"

    def unused(self, cfg: SMMFRun) -> dict[str, str]:
        """The options this run does not use (:meth:`Experiment.unused`)."""
        e = cfg.experiment
        setting = f"(model {e.model!r}, optimizers {list(e.optimizers)})"
        return {key: f"used only with {why} {setting}" for key, why in e.unused()}

    def prepare(self, cfg: SMMFRun, executor: Any) -> ModelTask:
        """The task shared by every run (:func:`make_task`)."""
        return make_task(cfg.experiment)

    def cases(self, run: SweepRun) -> list[tuple[str, float, int]]:
        """Every (optimizer, lr, seed)."""
        return run.cfg.experiment.settings()

    def cost(self, run: SweepRun, case: tuple[str, float, int]) -> float:
        """Relative cost of the optimizer's step."""
        return STEP_COSTS[case[0]]

    def run_case(self, run: SweepRun, case: tuple[str, float, int]) -> dict[str, Any]:
        """One training run (:func:`solvers.optimizers.train_run`)."""
        (name, lr, seed), e, t0 = case, run.cfg.experiment, time.perf_counter()
        out = train_run(
            run.data, name, lr, seed, steps=e.steps, warmup=e.warmup, eval_every=e.eval_every,
            weight_decay=getattr(e.optim, name).weight_decay, decay_rate=e.optim.decay_rate,
        )  # fmt: skip
        logger.info(
            "%s lr %.0e seed %d: validation loss %.4f, accuracy %.4f; state %d B; %.1f s",
            *(name, lr, seed, out["val_loss"][-1], out["val_accuracy"][-1]),
            *(out["state_bytes"], time.perf_counter() - t0),
        )
        return out

    def output_path(self, cfg: SMMFRun) -> Path:
        """``output.path``, or ``runs/smmf_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/smmf_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``, curves over ``eval_step``, the tensor table."""
        tensors, first = tensor_table(run.data.build(0)), run.results[0]
        series = [
            Var("optimizer", (), str, long_name="optimizer"),
            Var("lr", long_name="peak learning rate"),
            Var("seed", (), "int64", long_name="seed of initial weights and batches"),
            Var("state_bytes", (), "int64", "B", "optimizer state bytes, measured"),
            Var("formula_bytes", (), "float64", "B",
                "optimizer state bytes by formula (SMMF, Adam, AdamW; NaN: none)"),
            Var("step_seconds", (), "float64", "s", "mean wall time of one update"),
            Var("diverged", (), "int8",
                long_name="1: training loss turned non-finite (NaN curves)"),
            *(Var(n, ("eval_step",), long_name=long) for n, long in CURVES.items()),
        ]  # fmt: skip
        variables = [
            (Var(f"tensor_{k}", ("tensor",), units=units, long_name=long), tensors[k])
            for k, (units, long) in TENSOR_COLUMNS.items()
        ]
        coords = {
            "eval_step": (first["steps"], "optimizer steps done"),
            "tensor": (tensors["names"], "parameter tensor"),
        }
        attrs = {"preset": run.cfg.preset, "model": run.cfg.experiment.model}
        attrs["parameters"] = int(first["parameters"])
        return Layout("run", series, coords=coords, variables=variables, attrs=attrs)

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """The run's label and results."""
        return [
            {**r, "optimizer": name, "lr": lr, "seed": seed, "diverged": int(r["diverged"])}
            for (name, lr, seed), r in zip(run.cases, run.results, strict=True)
        ]

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """On rank 0, the findings of :func:`analysis.smmf.analyse`."""
        if run.comm.rank != 0:
            return {}
        from tensorsim.io import open_run

        return analyse(open_run(run.path)[0])

    def describe(self, cfg: SMMFRun, n_ranks: int) -> str:
        """Model, runs, steps."""
        e = cfg.experiment
        return (
            f"{cfg.preset}: {e.model}, {len(e.settings())} runs (optimizer x lr x seed) of "
            f"{e.steps} steps on {n_ranks} rank(s)"
        )

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Times and file, then one line per optimizer and SMMF against Adam."""
        return "\n".join([super().summarize(summary), *summary_lines(summary)])

    plots = staticmethod(plots)


DRIVER = Driver("smmf", __doc__, SMMFSweep())
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
