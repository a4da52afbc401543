r"""DAIN: influence-guided data augmentation for tensor completion (arXiv 2108.10248).

Two commands, one configuration (``preset`` picks the data and its defaults)::

    mpirun -n 2 python -m drivers.dain sweep                     # built-in generator
    mpirun -n 2 python -m drivers.dain sweep --set preset=il2    # the IL-2 tensor
    python -m drivers.dain sweep --set experiment.data.source=file \
        --set experiment.data.path=data/synthetic_10K.tensor
    python -m drivers.dain scaling                               # time vs observed cells
    python -m drivers.dain plot runs/dain_synthetic.nc

``sweep`` runs the DAIN pipeline (:func:`solvers.completion.run_pipeline`) for every model of
``experiment.models`` and every seed: split the cells of ``experiment.data``
(:func:`problems.completion_data.load_data`) by the seed, train with TracIn influence,
retrain the same initial model on the training cells plus ``ratio`` x as many new cells
drawn by each method of ``experiment.augmentations``, valued by the trained model. One record
per model, method and seed: test RMSE and MAE, validation RMSE, cells, timings; the summary
gives the paired differences ``dain - other`` over seeds (:func:`analysis.dain.analyse`).
``scaling`` times one DAIN run on generated tensors of ``experiment.scaling.sizes`` observed
cells (after an untimed warm-up) and fits the exponent of time against cells. The tasks are
spread over the MPI ranks; the results do not depend on their number. An option that a
command does not read is refused unless it keeps the preset's value (:meth:`Experiment.unused`).

References
----------
arXiv 2108.10248 (DAIN), 2002.08484 (TracIn), 1005.2197 (CP-WOPT).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

import solvers.completion as completion
from analysis.dain import TIMES, analyse, fit_exponent, plots, scaling_lines, summary_lines
from drivers._base import Experiment as BaseExperiment
from drivers._base import Layout, OutputParams, Sweep, SweepRun, Var, new_writer
from drivers._cli import Driver
from problems.completion_data import DataParams, load_data, sized_data
from tensorsim.config import ConfigError, Params, param
from tensorsim.io import open_run
from tensorsim.io.sparse import split_cells
from tensorsim.nn.completion import AUGMENTATIONS
from tensorsim.parallel import Executor

__all__ = ["PRESETS", "DainRun", "DainScaling", "DainSweep", "Experiment", "main"]

logger = logging.getLogger("drivers.dain")
MODEL_NAMES = tuple(completion.MODEL_FIELDS)


@dataclass(frozen=True)
class ScalingParams(Params):
    """The ``scaling`` command."""

    sizes: tuple[int, ...] = param((10_000, 100_000), "observed cells per tensor", ge=100)
    epochs: int = param(3, "epochs per training (no early stopping)", ge=1)
    density: float = param(0.03, "observed fraction", gt=0, le=1)
    model: str = param("dain_mlp", "model", choices=MODEL_NAMES)


#: The ``experiment`` keys that the scaling command does not read (besides other models'), why.
SCALING_UNUSED = {
    **dict.fromkeys([f"data.{k}" for k in ("source", "path", "shape", "density", "subsample")],
                    "it generates its tensors"),
    **dict.fromkeys(("models", "augmentations", "seeds"), "a sweep setting"),
    **dict.fromkeys(("training.epochs", "training.patience", "model.factor_epochs",
                     "model.factor_patience"), "it trains scaling.epochs epochs, no early stop"),
}  # fmt: skip


@dataclass(frozen=True)
class Experiment(Params):
    """Data, models, augmentations (``none`` is always run), paired seeds, training."""

    data: DataParams = param(DataParams(), "the tensor")
    model: completion.ModelParams = param(completion.ModelParams(), "model settings")
    training: completion.TrainingParams = param(completion.TrainingParams(), "training")
    models: tuple[str, ...] = param(("dain_mlp", "cp"), "completion models", choices=MODEL_NAMES)
    augmentations: tuple[str, ...] = param(
        ("dain", "uniform", "frequency"), "methods", choices=AUGMENTATIONS
    )
    seeds: int = param(5, "paired seeds 0 .. seeds-1 (split, weights, shuffling, draws)", ge=1)
    ratio: float = param(0.5, "augmented cells per training cell", ge=0)
    scaling: ScalingParams = param(ScalingParams(), "the scaling command")

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.models or len(set(self.models)) < len(self.models):
            raise ConfigError(f"config key 'models': expected distinct models, got {self.models}")
        if self.data.source == "file" and not self.data.path:
            raise ConfigError("config key 'data.path': required with data.source = 'file'")

    def methods(self) -> tuple[str, ...]:
        """``none`` and the augmentations."""
        return ("none", *[m for m in self.augmentations if m != "none"])

    def unused(self, command: str) -> dict[str, str]:
        """The keys of this table that ``command`` does not read, and why."""
        models = (self.scaling.model,) if command == "scaling" else self.models
        why = f"not read by the models {list(models)}"
        out = {f"model.{k}": why for k in self.model.unused(models)}
        out |= {f"training.{k}": why for k in self.training.unused(models)}
        if command == "scaling":
            return out | SCALING_UNUSED
        out |= {f"data.{k}": why for k, why in self.data.unused().items()}
        out |= {f"scaling.{k}": "a scaling setting" for k in vars(self.scaling)}
        return out | ({"ratio": "no augmentation"} if len(self.methods()) == 1 else {})


#: ``preset`` -> the ``experiment`` defaults it stands for.
PRESETS = {
    "synthetic": Experiment,
    "il2": lambda: Experiment(
        data=DataParams(source="il2", subsample=0.25),
        model=completion.ModelParams(embed_dim=8, hidden=(64, 32), cp_rank=4, tucker_rank=3),
        training=completion.TrainingParams(epochs=200, batch_size=64, patience=20),
        models=("dain_mlp", "cp"),
        seeds=5,
    ),
}


@dataclass(frozen=True)
class DainOutput(OutputParams):
    """The output file."""

    path: str = param("", "output file (empty: runs/dain_{preset}.nc or runs/dain_scaling.nc)")


@dataclass(frozen=True)
class DainRun(Params):
    """Configuration of ``python -m drivers.dain``."""

    preset: Literal["synthetic", "il2"] = param("synthetic", "defaults of the experiment")
    experiment: Experiment = param(Experiment(), "data, models, methods, training")
    output: DainOutput = param(DainOutput(), "output file")


#: Series of the sweep file (one record per model, augmentation and seed).
RUN_SERIES = [
    Var("model", (), str, None, "completion model"),
    Var("augmentation", (), str, None, "augmentation method"),
    Var("seed", (), "int64", None, "seed of split, weights, shuffling and draws"),
    *(Var(name, (), *entry) for name, entry in completion.RESULTS.items()),
]


class _Command(BaseExperiment):
    """What both commands share: the configuration, presets, loading and plots."""

    config, presets, command = DainRun, PRESETS, ""
    plots = staticmethod(plots)

    def unused(self, cfg: DainRun) -> dict[str, str]:
        """The options this command does not read (:meth:`Experiment.unused`)."""
        return {
            key: f"has no effect in the {self.command} command ({why})"
            for key, why in cfg.experiment.unused(self.command).items()
        }


class DainSweep(_Command, Sweep):
    """Models x seeds, each the DAIN pipeline; one record per model, method and seed."""

    command, help = "sweep", "models x augmentations x seeds: test errors and paired differences"

    def prepare(self, cfg: DainRun, executor: Executor) -> tuple[Any, dict[str, Any]]:
        """The observed cells and their attributes (:func:`load_data`)."""
        return load_data(cfg.experiment.data)

    def cases(self, run: SweepRun) -> list[tuple[str, int]]:
        """Every (model, seed)."""
        e = run.cfg.experiment
        return [(m, s) for m in e.models for s in range(e.seeds)]

    def cost(self, run: SweepRun, case: tuple[str, int]) -> float:
        """Relative cost of the model (CoSTCo 2.5, the MLP 1, CP and Tucker 0.6)."""
        return {"dain_mlp": 1.0, "costco": 2.5}.get(case[0], 0.6)

    def run_case(self, run: SweepRun, case: tuple[str, int]) -> dict[str, dict[str, Any]]:
        """Split by the seed, then :func:`run_pipeline`; results per method."""
        e, (name, seed) = run.cfg.experiment, case
        torch.set_num_threads(1)
        t0 = time.perf_counter()
        split = split_cells(run.data[0], test=e.data.test, val=e.data.val, seed=seed)
        options, params = e.model.settings(name, e.training)
        out = completion.run_pipeline(
            name, split, methods=e.methods(), ratio=e.ratio, seed=seed, params=params,
            model_options=options,
        )  # fmt: skip
        rmse = ", ".join(f"{m} {r['test_rmse']:.4f}" for m, r in out.items())
        logger.info("%s seed %d: RMSE %s (%.1f s)", name, seed, rmse, time.perf_counter() - t0)
        return out

    def output_path(self, cfg: DainRun) -> Path:
        """``output.path``, or ``runs/dain_{preset}.nc`` when it is empty."""
        return Path(cfg.output.path or f"runs/dain_{cfg.preset}.nc")

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``run``; the data's description in the attributes."""
        attrs = {"preset": run.cfg.preset, "command": "sweep", "ratio": run.cfg.experiment.ratio}
        return Layout("run", RUN_SERIES, attrs=attrs | run.data[1])

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """One record per method of every (model, seed), methods innermost."""
        return [
            {"model": name, "augmentation": m, "seed": seed, **result[m]}
            for (name, seed), result in zip(run.cases, run.results, strict=True)
            for m in run.cfg.experiment.methods()
        ]

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """On rank 0, :func:`analysis.dain.analyse` of the file."""
        return analyse(open_run(run.path)[0]) if run.comm.rank == 0 else {}

    def describe(self, cfg: DainRun, n_ranks: int) -> str:
        """Data, models, methods, seeds and ratio."""
        e = cfg.experiment
        return (
            f"{cfg.preset}: data {e.data.source}, models {list(e.models)}, methods "
            f"{list(e.methods())}, {e.seeds} seeds, ratio {e.ratio}, on {n_ranks} rank(s)"
        )

    def summarize(self, summary: dict[str, Any]) -> str:
        """Times and file, then the table and the paired differences."""
        return "\n".join([super().summarize(summary), *summary_lines(summary)])


def scaling_case(e: Experiment, size: int) -> dict[str, Any]:
    """One timed DAIN run of ``e.scaling.model`` on a generated tensor of ``size`` cells."""
    torch.set_num_threads(1)
    tensor = sized_data(e.data, size, e.scaling.density)
    split = split_cells(tensor, test=e.data.test, val=e.data.val, seed=0)
    name = e.scaling.model
    opts, params = e.model.settings(name, e.training, epochs=e.scaling.epochs, patience=0)
    out = completion.time_pipeline(name, split, ratio=e.ratio, params=params, model_options=opts)
    shape = "x".join(map(str, tensor.shape))
    logger.info("%d cells (%s): %.1f s", tensor.nnz, shape, out["seconds"])
    return {"cells": tensor.nnz, "side": tensor.shape[0], **out}


#: Series of the scaling file (record coordinate ``size``: the observed cells).
SCALING_SERIES = [
    Var("side", (), "int64", None, "side of the cubic tensor"),
    *(Var(name, (), *entry) for name, entry in completion.TIMED.items()),
]


class DainScaling(_Command):
    """Time of one DAIN run against the observed cells; one record per size."""

    command, help = "scaling", "time of one DAIN run vs observed cells"

    def run(self, cfg: DainRun, comm: Any) -> dict[str, Any]:
        """A warm-up, every size over the ranks, the fits; the file (record coordinate: cells)."""
        e, start = cfg.experiment, time.perf_counter()
        scaling_case(e, 1000)  # warm-up (first torch calls, allocator), not timed
        sizes, executor = list(e.scaling.sizes), Executor(comm)
        rows = executor.map(lambda size: scaling_case(e, size), sizes, costs=sizes)
        fits = {k: fit_exponent([r["cells"] for r in rows], [r[k] for r in rows]) for k in TIMES}
        path = Path(cfg.output.path or "runs/dain_scaling.nc")
        attrs = {"preset": cfg.preset, "command": "scaling", "model": e.scaling.model,
                 "epochs": e.scaling.epochs, "exponent": fits["seconds"],
                 "train_exponent": fits["train_seconds"],
                 "influence_exponent": fits["influence_seconds"]}  # fmt: skip
        with new_writer(path, cfg, comm, Layout("size", SCALING_SERIES, attrs=attrs)) as out:
            for r in rows:
                out.append(r["cells"], **{v.name: r[v.name] for v in SCALING_SERIES})
        return {"path": str(path), "rows": rows, "exponents": fits,
                "wall_time": time.perf_counter() - start,
                "busy_time": executor.last_timings}  # fmt: skip

    def describe(self, cfg: DainRun, n_ranks: int) -> str:
        """Model, epochs and sizes."""
        s = cfg.experiment.scaling
        return f"scaling: {s.model}, {s.epochs} epochs, sizes {list(s.sizes)} on {n_ranks} rank(s)"

    def summarize(self, summary: dict[str, Any]) -> str:
        """File and time, one line per size, the fitted exponents."""
        head = f"wrote {summary['path']} in {summary['wall_time']:.1f} s"
        return "\n".join([head, *scaling_lines(summary["rows"], summary["exponents"])])


DRIVER = Driver("dain", __doc__, {"sweep": DainSweep(), "scaling": DainScaling()})
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
