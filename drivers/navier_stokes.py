r"""Navier-Stokes neural operators (arXiv 2310.00120, 2010.08895): data, training, evaluation.

``generate`` solves the forced 2-D vorticity equation on the torus from random ``w0`` to
``w(T)`` in batches over the MPI ranks (:mod:`problems.navier_stokes_data`); ``train`` fits an
FNO, TFNO or MG-TFNO to the pairs (:mod:`solvers.tfno`), data parallel, with a checkpoint per
epoch; ``evaluate`` tests a run at every stored resolution; ``plot FILE`` draws a dataset, a
run or an evaluation (:mod:`analysis.navier_stokes`)::

    python -m drivers.navier_stokes generate                       # 1200 samples, 128 -> 64, 128
    mpirun -n 4 python -m drivers.navier_stokes generate --set data.samples=2000 \\
        --set data.viscosity=1e-4 --set data.path=runs/ns_1e-4.nc
    python -m drivers.navier_stokes generate --set preset=tiny     # 8 samples at 32: seconds
    python -m drivers.navier_stokes plot runs/navier_stokes.nc     # some input/output pairs
    mpirun -n 2 python -m drivers.navier_stokes train --set preset=tfno_tucker
    python -m drivers.navier_stokes train --restart runs/navier_stokes_tfno_tucker.nc
    python -m drivers.navier_stokes evaluate --set preset=tfno_tucker --set evaluate.plot=true
    python -m drivers.navier_stokes plot runs/navier_stokes_tfno_tucker.nc  # losses, predictions

``preset`` picks the ``data`` defaults of ``generate`` (``full``: 1200 samples solved at
128^2 to T = 10, stored at 64 and 128; ``tiny``: 8 at 32^2 to T = 1, stored at 16 and 32) and
the ``model`` defaults of ``train`` (:data:`solvers.tfno.MODEL_PRESETS`). The run file is
``output.path`` or ``<data.path without .nc>_<preset>.nc``; torch is imported on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import problems.navier_stokes_data as nsd
import solvers
import tensorsim
from analysis.navier_stokes import plot_dataset, plot_losses, plot_predictions
from drivers._base import Experiment
from drivers._cli import Driver
from problems.navier_stokes import DatasetParams
from tensorsim.config import ConfigError, Params, config_to_toml, load_config, param

__all__ = ["PRESETS", "EvaluationRun", "LearningRun", "NavierStokesRun", "load_run", "main"]

logger = logging.getLogger("drivers.navier_stokes")

#: ``preset`` of ``generate`` -> the ``data`` defaults.
PRESETS = {
    "full": DatasetParams,
    "tiny": lambda: DatasetParams(resolution=32, t_end=1.0, dt=0.05, samples=8,
                                  resolutions=(16, 32), path="runs/navier_stokes_tiny.nc"),
}  # fmt: skip

#: :mod:`solvers.tfno` and :mod:`drivers._training`, imported on first use (they import torch;
#: ``generate`` does not need it).
_tfno = functools.partial(importlib.import_module, "solvers.tfno")
_training = functools.partial(importlib.import_module, "drivers._training")


@dataclass(frozen=True)
class NavierStokesRun(Params):
    """Configuration of ``python -m drivers.navier_stokes generate``."""

    preset: Literal["full", "tiny"] = param("full", "defaults of the data table: full or tiny")
    data: DatasetParams = param(DatasetParams(), "the dataset: problem, samples, file")
    generate: nsd.GenerateParams = param(nsd.GenerateParams(), "how generate computes the data")


@dataclass(frozen=True)
class RunFileParams(Params):
    """The run file of ``train``."""

    path: str | None = param(None, "run file; none: <data.path without .nc>_<preset>.nc")


Preset = Literal["fno", "tfno_tucker", "tfno_cp", "tfno_tt", "mg_tfno"]


@dataclass(frozen=True)
class LearningRun(Params):
    """Configuration of ``python -m drivers.navier_stokes train`` (stored in the run file)."""

    preset: Preset = param("fno", "defaults of the model table (solvers.tfno.MODEL_PRESETS)")
    device: str = param("cpu", "torch device of model and data (cpu, cuda, cuda:1)")
    data: nsd.LearningDataParams = param(nsd.LearningDataParams(), "the dataset and its split")
    model: tensorsim.nn.models.fno.TFNOParams = dataclasses.field(
        default_factory=lambda: _tfno().MODEL_PRESETS["fno"](), metadata={"doc": "the model"}
    )
    train: solvers.tfno.TrainParams = dataclasses.field(
        default_factory=lambda: _tfno().TRAIN_DEFAULTS, metadata={"doc": "Adam, StepLR, loss"}
    )
    output: RunFileParams = param(RunFileParams(), "the run file of train")


@dataclass(frozen=True)
class EvaluateParams(Params):
    """What ``evaluate`` tests and writes."""

    run: str | None = param(None, "run file to evaluate; none: that of preset and data.path")
    dataset: str | None = param(None, "dataset; none: the one the run was trained on")
    path: str | None = param(None, "evaluation file; none: <run without .nc>_evaluation.nc")
    plot: bool = param(False, "also write prediction, error and loss plots (PNG)")
    plot_samples: int = param(3, "test samples shown in the prediction plots", ge=1)


@dataclass(frozen=True)
class EvaluationRun(Params):
    """Configuration of ``python -m drivers.navier_stokes evaluate``."""

    preset: Preset = param("fno", "preset of the run (names its default run file)")
    device: str = param("cpu", "torch device of model and data (cpu, cuda, cuda:1)")
    data: nsd.DatasetFileParams = param(nsd.DatasetFileParams(), "the dataset of the run")
    output: RunFileParams = param(RunFileParams(), "the run file of train")
    evaluate: EvaluateParams = param(EvaluateParams(), "what evaluate tests and writes")

    def __post_init__(self) -> None:
        super().__post_init__()
        given = {"preset": self.preset != "fno", "output.path": self.output.path is not None,
                 "data.path": self.data != nsd.DatasetFileParams()}  # fmt: skip
        for key in (k for k in given if given[k] and self.evaluate.run):
            raise ConfigError(f"config key {key!r}: names the default run file, not used "
                              f"with evaluate.run = {self.evaluate.run!r}")  # fmt: skip


def run_path(cfg: LearningRun | EvaluationRun) -> Path:
    """The run file of a configuration: ``output.path`` or its default."""
    data = Path(cfg.data.path)
    return Path(cfg.output.path or data.with_name(f"{data.stem}_{cfg.preset}.nc"))


class Generate(Experiment):
    """Solve the samples in batches over the ranks; rank 0 writes the dataset file."""

    config, presets, preset_table = NavierStokesRun, PRESETS, "data"
    help = "solve the samples over the MPI ranks and write the dataset file"
    plots = staticmethod(plot_dataset)

    def run(self, cfg: NavierStokesRun, comm: Any, **_: Any) -> dict[str, Any]:
        """Solve every batch, write the file (rank 0); the summary."""
        start, data = time.perf_counter(), cfg.data
        results, busy = nsd.solve_batches(data, cfg.generate, comm)
        if comm.rank == 0:
            nsd.write_dataset(data.path, data, results, comm=comm, config=config_to_toml(cfg),
                              attrs={"command": "generate"})  # fmt: skip
        wall = time.perf_counter() - start
        return {**nsd.dataset_summary(data, results), "busy_time": busy, "wall_time": wall}

    def describe(self, cfg: NavierStokesRun, n_ranks: int) -> str:
        """The dataset and the backend."""
        g, data = cfg.generate, nsd.describe_dataset(cfg.data)
        return f"{data}; {g.backend}, batches of {g.batch} on {n_ranks} rank(s)"

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Samples, time per sample and per rank, largest CFL number, the file."""
        busy, n = summary["busy_time"], summary["samples"]
        return (
            f"{n} samples in {summary['wall_time']:.1f} s ({sum(busy) / n:.3f} s per sample; "
            f"busy time per rank {', '.join(f'{t:.1f}' for t in busy)} s), largest CFL "
            f"number {summary['largest_cfl']:.3f}; wrote {summary['path']}"
        )


class _Learning(Experiment):
    """A command on a run of ``train``: its plots are those of the run (:func:`_plot_run`)."""

    def plots(self, ds: Any, base: Path) -> list[Path]:
        """Loss curves of the run and its predictions on the dataset of the file."""
        return _plot_run(ds.attrs.get("run", ds.encoding["source"]), ds.attrs["dataset"], base)


class Train(_Learning):
    """Fit a model to the pairs of a dataset; restartable from its checkpoint of every epoch."""

    preset_table, restartable = "model", True
    help = "train FNO / TFNO / MG-TFNO on a dataset (data parallel over the ranks)"

    @property
    def config(self) -> type[LearningRun]:  # type: ignore[override]
        """:class:`LearningRun`, once :mod:`solvers.tfno` defines its model and train tables."""
        _tfno()
        return LearningRun

    @property
    def presets(self) -> Mapping[str, Callable[[], Params]]:  # type: ignore[override]
        """:data:`solvers.tfno.MODEL_PRESETS`."""
        return _tfno().MODEL_PRESETS

    def run(
        self, cfg: LearningRun, comm: Any, *, restart: Path | None = None,
        max_steps: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Train (or continue) with :func:`drivers._training.fit`; the summary."""
        from tensorsim.nn.models.fno import build_model

        if max_steps is not None and max_steps < 1:
            raise ValueError(f"--max-steps: expected a positive number of epochs, got {max_steps}")
        start, m, tfno = time.perf_counter(), cfg.model, _tfno()
        tfno.check_unused(m, tfno.MODEL_PRESETS[cfg.preset]())
        split = nsd.load_split(cfg.data, (m.in_channels, m.out_channels), cfg.device)
        model = build_model(m, device=cfg.device)
        tfno.check_grid(model, split.x_train, f"data.resolution = {split.resolution}")
        path, training = Path(restart or run_path(cfg)), _training()
        attrs = {"command": "train", "preset": cfg.preset, "dataset": cfg.data.path,
                 **split.run_attrs()}  # fmt: skip
        out, checkpoint, done = training.run_writer(
            path, cfg, comm, attrs, resume=restart is not None
        )
        summary = training.fit(model, m, split, cfg.train, writer=out, resume=checkpoint,
                               done=done, epochs=max_steps, comm=comm)  # fmt: skip
        return {"path": str(path), **summary, "wall_time": time.perf_counter() - start}

    def describe(self, cfg: LearningRun, n_ranks: int) -> str:
        """Model, schedule, split."""
        model, split = _tfno().describe(cfg.model, cfg.train), nsd.describe_split(cfg.data)
        return f"{cfg.preset}: {model}; {split}; {n_ranks} rank(s) on {cfg.device}"

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """Epochs, parameters, final errors; or how to continue."""
        s, errors = summary, _tfno().errors_text(summary["final"])
        if not s["finished"]:
            return (f"stopped after epoch {s['last_epoch']} ({s['epochs']} run here, "
                    f"{s['wall_time']:.1f} s); continue with --restart {s['path']}")  # fmt: skip
        return (f"{s['epochs']} epochs in {s['wall_time']:.1f} s, {s['parameters']} parameters; "
                f"test relative L2 (H1): {errors}; wrote {s['path']}")  # fmt: skip


class Evaluate(_Learning):
    """Test a trained run at every stored resolution of a dataset."""

    config = EvaluationRun
    help = "test a trained run at every stored resolution of a dataset"

    def run(self, cfg: EvaluationRun, comm: Any, **_: Any) -> dict[str, Any]:
        """The errors per resolution (NaN where the model does not fit the grid); the file."""
        nsd.torch_device(cfg.device, "device")
        run = Path(cfg.evaluate.run or run_path(cfg))
        (trained, scales), tfno = load_run(run, device=cfg.device), _tfno()
        data, dataset = trained.config.data, cfg.evaluate.dataset or trained.config.data.path
        tests = nsd.test_fields(dataset, data.n_test, scales, data.forcing, cfg.device)
        fields, batch = {n: t[1:] for n, t in tests.items()}, trained.config.train.eval_batch_size
        errors = tfno.evaluate_grids(trained.model, fields, batch_size=batch, comm=comm)
        path = Path(cfg.evaluate.path or run.with_name(f"{run.stem}_evaluation.nc"))
        info = trained.data
        attrs = {"command": "evaluate", "run": str(run), "dataset": str(dataset),
                 "epoch": trained.epoch, "preset": trained.config.preset,
                 "train_resolution": int(info.attrs["train_resolution"]),
                 "parameters": int(info["parameters"]), "test_samples": data.n_test}  # fmt: skip
        _training().write_evaluation(path, cfg, comm, errors, attrs)
        plots = []
        if cfg.evaluate.plot and comm.rank == 0:
            plots = _plot_run(run, dataset, path.with_suffix(""), cfg.evaluate.plot_samples)
        return {"path": str(path), "run": str(run), "dataset": str(dataset), "errors": errors,
                "epoch": trained.epoch, "plots": [str(p) for p in plots]}  # fmt: skip

    def describe(self, cfg: EvaluationRun, n_ranks: int) -> str:
        """The run and the dataset."""
        run = cfg.evaluate.run or f"the {cfg.preset} run of {cfg.data.path}"
        return f"evaluate {run} on {cfg.evaluate.dataset or 'its dataset'}; {n_ranks} rank(s)"

    def summarize(self, summary: Mapping[str, Any]) -> str:
        """The errors per resolution."""
        return (f"{summary['run']} after {summary['epoch']} epochs: test relative L2 (H1) "
                f"{_tfno().errors_text(summary['errors'])}; wrote {summary['path']}")  # fmt: skip


def load_run(path: str | Path, *, device: str = "cpu") -> tuple[Any, tuple[float, float]]:
    """A run of ``train`` and its scales: model inputs ``w0 / s[0]``, outputs ``w(T) / s[1]``."""

    def config(text: str) -> LearningRun:  # older run files have an unused evaluate table
        table = {k: v for k, v in tomllib.loads(text).items() if k != "evaluate"}
        return load_config(LearningRun, data=table)

    trained = _training().load_run(path, config, device=device)
    attrs = trained.data.attrs
    return trained, (float(attrs["input_scale"]), float(attrs["output_scale"]))


def _plot_run(run: str | Path, dataset: str, base: Path, samples: int = 3) -> list[Path]:
    """Loss curves of a run and its predictions on ``samples`` test samples of ``dataset``."""
    trained, scales = load_run(run)
    data, written = trained.config.data, [plot_losses(trained.data, base)]
    tests = nsd.test_fields(dataset, data.n_test, scales, data.forcing, first=samples)
    for n, pred in (
        _tfno().predict_grids(trained.model, {n: t[1] for n, t in tests.items()}).items()
    ):
        pred = pred[:, 0].numpy() * scales[1]
        written.append(plot_predictions(trained.data, trained.epoch, tests[n][0], pred, base))
    return written


COMMANDS = {"generate": Generate(), "train": Train(), "evaluate": Evaluate()}
main = Driver("navier_stokes", __doc__, COMMANDS).main

if __name__ == "__main__":
    main()
