r"""Navier-Stokes neural operators (arXiv 2310.00120, 2010.08895): data, training, evaluation.

``generate`` solves the forced 2-D vorticity equation on the torus from random ``w0`` to
``w(T)`` in batches over the MPI ranks (:mod:`problems.navier_stokes_data`); ``train`` fits an
FNO, TFNO or MG-TFNO to the pairs (:mod:`solvers.tfno`), data parallel, with a checkpoint per
epoch; ``evaluate`` tests a run at every stored resolution; ``plot FILE`` draws a dataset, a
run or an evaluation (:mod:`analysis.navier_stokes`)::

    python -m drivers.navier_stokes generate                       # 1200 samples, 128 -> 64, 128
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

import functools
import importlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import problems.navier_stokes_data as nsd
from analysis.navier_stokes import plot_dataset
from drivers._base import Experiment, Layout, Sweep, SweepRun, Var, check_output
from drivers._cli import Driver
from problems.navier_stokes import DatasetParams
from tensorsim.config import Params, param

__all__ = ["COMMANDS", "PRESETS", "NavierStokesRun", "main"]

if TYPE_CHECKING:
    from drivers._training import EvaluationRun, LearningRun

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


class Generate(Sweep):
    """Solve the samples in batches over the ranks; rank 0 writes the dataset file."""

    config, presets, preset_table = NavierStokesRun, PRESETS, "data"
    help = "solve the samples over the MPI ranks and write the dataset file"
    plots = staticmethod(plot_dataset)

    def prepare(self, cfg: NavierStokesRun, executor: Any) -> tuple[Any, Any]:
        """The array namespace and device of the backend (logged with the batch size)."""
        xp, dev = nsd.array_backend(cfg.generate)
        logger.info('backend="%s" (device %s), batch=%d', cfg.generate.backend, dev,
                    cfg.generate.batch)  # fmt: skip
        return xp, dev

    def cases(self, run: SweepRun) -> list[tuple[int, ...]]:
        """Consecutive batches of sample indices, each solved whole on one rank."""
        return nsd.batches(run.cfg.data.samples, run.cfg.generate.batch)

    def cost(self, run: SweepRun, case: tuple[int, ...]) -> float:
        """The batch size."""
        return len(case)

    def run_case(self, run: SweepRun, case: tuple[int, ...]) -> dict[str, Any]:
        """One batch (:func:`problems.navier_stokes_data.solve_batch`)."""
        return nsd.solve_batch(run.cfg.data, case, *run.data)

    def output_path(self, cfg: NavierStokesRun) -> Path:
        """``data.path``."""
        return Path(cfg.data.path)

    def layout(self, run: SweepRun) -> Layout:
        """Record dimension ``sample``; :func:`problems.navier_stokes_data.dataset_variables`."""
        coords, fields = nsd.dataset_variables(run.cfg.data)
        series = [Var(name, dims, "float32", long_name=text) for name, dims, text in fields]
        largest = max(r["max_cfl"] for r in run.results)
        attrs = {"command": "generate", **nsd.dataset_attrs(run.cfg.data, largest)}
        return Layout("sample", series, coords=coords, attrs=attrs)

    def records(self, run: SweepRun) -> list[dict[str, Any]]:
        """One record per sample, in order."""
        return [{name: v[k] for name, v in r["fields"].items()}
                for r in run.results for k in range(len(r["indices"]))]  # fmt: skip

    def finish(self, run: SweepRun) -> dict[str, Any]:
        """Samples, time steps and the largest CFL number."""
        return nsd.dataset_summary(run.cfg.data, run.results)

    def describe(self, cfg: NavierStokesRun, n_ranks: int) -> str:
        """The dataset and the backend."""
        g, data = cfg.generate, nsd.describe_dataset(cfg.data)
        return f"{data}; {g.backend}, batches of {g.batch} on {n_ranks} rank(s)"

    def report(self, summary: Mapping[str, Any]) -> str:
        """Samples, time per sample and the largest CFL number."""
        n, busy = summary["samples"], summary["busy_time"]
        return (f"{n} samples ({sum(busy) / n:.3f} s per sample), largest CFL number "
                f"{summary['largest_cfl']:.3f}")  # fmt: skip


class _Learning(Experiment):
    """A command on a run of ``train``: its plots are those of the run."""

    def plots(self, ds: Any, base: Path) -> list[Path]:
        """Loss curves of the run and its predictions on the dataset of the file."""
        run = ds.attrs.get("run", ds.encoding["source"])
        return _training().plot_run(_training().load_learning_run(run), ds.attrs["dataset"], base)


class Train(_Learning):
    """Fit a model to the pairs of a dataset; restartable from its checkpoint of every epoch."""

    preset_table, restartable = "model", True
    help = "train FNO / TFNO / MG-TFNO on a dataset (data parallel over the ranks)"

    @property
    def config(self) -> type[Params]:  # type: ignore[override]
        """:class:`drivers._training.LearningRun` (imported on first use: it needs torch)."""
        return _training().LearningRun

    @property
    def presets(self) -> Mapping[str, Callable[[], Params]]:  # type: ignore[override]
        """:data:`solvers.tfno.MODEL_PRESETS`."""
        return _tfno().MODEL_PRESETS

    def unused(self, cfg: LearningRun) -> dict[str, str]:
        """Model options without effect (:func:`solvers.tfno.unused_model_options`)."""
        return _tfno().unused_model_options(cfg.model)

    def run(
        self, cfg: LearningRun, comm: Any, *, restart: Path | None = None,
        max_steps: int | None = None,
    ) -> dict[str, Any]:  # fmt: skip
        """Train (or continue) with :func:`drivers._training.fit`; the summary."""
        from tensorsim.nn.models.fno import build_model

        start, m, tfno = time.perf_counter(), cfg.model, _tfno()
        if restart is None:
            check_output(_training().run_path(cfg), comm)
        split = nsd.load_split(cfg.data, (m.in_channels, m.out_channels), cfg.device)
        model = build_model(m, device=cfg.device)
        tfno.check_grid(model, split.x_train, f"data.resolution = {split.resolution}")
        path, training = Path(restart or _training().run_path(cfg)), _training()
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

    help = "test a trained run at every stored resolution of a dataset"

    @property
    def config(self) -> type[Params]:  # type: ignore[override]
        """:class:`drivers._training.EvaluationRun` (imported on first use: it needs torch)."""
        return _training().EvaluationRun

    def run(self, cfg: EvaluationRun, comm: Any, **_: Any) -> dict[str, Any]:
        """The errors per resolution (NaN where the model does not fit the grid); the file."""
        nsd.torch_device(cfg.device, "device")
        run = Path(cfg.evaluate.run or _training().run_path(cfg))
        (trained, scales), tfno = _training().load_learning_run(run, device=cfg.device), _tfno()
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
            plots = _training().plot_run(
                _training().load_learning_run(run),
                dataset,
                path.with_suffix(""),
                cfg.evaluate.plot_samples,
            )
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


COMMANDS = {"generate": Generate(), "train": Train(), "evaluate": Evaluate()}
DRIVER = Driver("navier_stokes", __doc__, COMMANDS)
main = DRIVER.main
cli = DRIVER.cli

if __name__ == "__main__":
    raise SystemExit(cli())
