"""The driver side of neural-operator training: configurations and files of ``train``.

:mod:`solvers.tfno` trains and tests without touching files; here (imported on first use: it
needs torch) the ``train`` and ``evaluate`` commands of ``drivers.navier_stokes`` get their
configurations (:class:`LearningRun`, :class:`EvaluationRun`) and files: :func:`run_writer`
opens or continues a run file, :func:`fit` trains with one record and one checkpoint per
epoch and closes it, :func:`load_run` / :func:`load_learning_run` read one back with its
model, :func:`write_evaluation` and :func:`plot_run` write what ``evaluate`` finds.
"""

from __future__ import annotations

import dataclasses
import logging
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np
import torch

import problems.navier_stokes_data as nsd
from drivers._base import Layout, Var, new_writer
from solvers import tfno
from tensorsim.config import ConfigError, Params, load_config, param
from tensorsim.nn.models.fno import TFNOParams

if TYPE_CHECKING:
    from problems.navier_stokes_data import Split
    from tensorsim.io import Writer

__all__ = [
    "EvaluationRun",
    "LearningRun",
    "TrainedRun",
    "fit",
    "load_learning_run",
    "load_run",
    "plot_run",
    "run_path",
    "run_writer",
    "write_evaluation",
]

logger = logging.getLogger(__name__)


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
    model: TFNOParams = param(tfno.MODEL_PRESETS["fno"](), "the model")
    train: tfno.TrainParams = param(tfno.TRAIN_DEFAULTS, "Adam, StepLR, loss")
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


def run_writer(
    path: Path, cfg: Params, comm: Any, attrs: Mapping[str, Any], *, resume: bool = False
) -> tuple[Writer, Any, int]:
    """The writer of a run file, the checkpoint to continue from and the epochs done.

    A new file gets the root attributes ``attrs`` and the series of
    :data:`solvers.tfno.SERIES`; with ``resume`` the file at ``path`` is continued
    (:meth:`tensorsim.io.Writer.resume`, collective: every rank gets the writer and the
    epochs done, rank 0 the checkpoint and the others None, :func:`solvers.tfno.train`
    broadcasts it).

    Raises
    ------
    ValueError
        If the file to continue holds no checkpoint (no epoch finished); it is left unfinished.
    """
    from tensorsim.io import Writer

    if not resume:
        series = [Var(name, units=u, long_name=text) for name, (u, text) in tfno.SERIES.items()]
        return new_writer(path, cfg, comm, Layout("epoch", series, attrs=attrs)), None, 0
    writer, checkpoint = Writer.resume(path, comm=comm)
    done = None if checkpoint is None else int(checkpoint.attrs["epoch"])
    done = comm.bcast(done, root=0)
    if done is None:
        writer.close(finished=False)
        raise ValueError(f"--restart: {path} holds no checkpoint (no epoch finished)")
    return writer, checkpoint, done


def fit(
    model: torch.nn.Module,
    model_params: TFNOParams,
    split: Split,
    params: tfno.TrainParams,
    *,
    writer: Writer,
    resume: Any = None,
    done: int = 0,
    epochs: int | None = None,
    comm: Any = None,
) -> dict[str, Any]:
    """Train a run for ``epochs`` more epochs (default: to the end) and close its file.

    Writes the parameter counts (``parameters``, ``dense_parameters``:
    :func:`solvers.tfno.parameter_counts`), then runs :func:`solvers.tfno.train` from epoch
    ``done`` (the checkpoint ``resume``) on ``split`` (``x_train``, ``y_train``, ``tests``:
    resolution -> inputs and targets, tested during training at ``resolution``) inside
    :func:`tensorsim.nn.distributed.torch_distributed` over ``comm`` (gloo), appending every
    epoch to the writer and checkpointing it. After the last epoch the errors at every
    resolution of ``tests`` (:func:`solvers.tfno.evaluate_grids`) are written as
    ``final_test_l2``, ``final_test_h1`` over ``resolution`` and the writer is closed
    finished; otherwise, or on an error, it is closed unfinished (the last checkpoint stays).

    Returns
    -------
    dict
        ``epochs`` (run here), ``last_epoch``, ``finished``, ``parameters``,
        ``dense_parameters`` and ``final`` (resolution -> ``{"l2", "h1"}``; empty when the
        run stopped before the last epoch).
    """
    from tensorsim.nn.distributed import torch_distributed

    stop = min(params.epochs, done + (epochs or params.epochs))
    counts = tfno.parameter_counts(model, model_params)
    logger.info(
        "%s: %d parameters (%d with dense spectral weights, %.1fx), epochs %d-%d of %d",
        writer.path, *counts, counts[1] / counts[0], done + 1, stop, params.epochs,
    )  # fmt: skip
    final: dict[int, dict[str, float]] = {}
    try:
        writer.set_variable("parameters", (), counts[0], long_name="trained parameters")
        writer.set_variable(
            "dense_parameters", (), counts[1], long_name="parameters with dense spectral weights"
        )
        with torch_distributed(comm, backend="gloo"):
            until, tests = dataclasses.replace(params, epochs=stop), split.tests
            tfno.train(model, split.x_train, split.y_train, *tests[split.resolution], until,
                       record=lambda epoch, values: writer.append(epoch, **values),
                       save=writer.checkpoint, resume=resume)  # fmt: skip
            if stop == params.epochs:
                final = tfno.evaluate_grids(model, tests, batch_size=params.eval_batch_size)
        if final:
            n = sorted(final)
            writer.set_coordinate(
                "resolution", np.array(n), long_name="grid points per axis of the test"
            )
            for key in ("l2", "h1"):
                values = np.array([final[i][key] for i in n])
                text = f"test relative {key.upper()} error after the last epoch"
                writer.set_variable(
                    f"final_test_{key}", ("resolution",), values, units="1", long_name=text
                )
    except BaseException:
        writer.close(finished=False)
        raise
    writer.close(finished=bool(final))
    return {"epochs": stop - done, "last_epoch": stop, "finished": bool(final),
            "parameters": counts[0], "dense_parameters": counts[1], "final": final}  # fmt: skip


class TrainedRun(NamedTuple):
    """A run file of :func:`fit` read back by :func:`load_run`.

    Attributes
    ----------
    config
        The run's configuration (its ``model`` table made the model).
    model
        The model with the weights of the checkpoint, in eval mode.
    epoch
        Epochs trained (the checkpoint's).
    data
        The file's contents (series, variables, attributes) as an xarray Dataset.
    """

    config: Any
    model: torch.nn.Module
    epoch: int
    data: Any


def load_run(path: Any, config: Callable[[str], Any], *, device: Any = None) -> TrainedRun:
    """Read a run file of :func:`fit`: its configuration and its trained model.

    ``config`` makes the configuration from the file's ``config`` attribute (TOML text); its
    ``model`` attribute (a :class:`~tensorsim.nn.models.fno.TFNOParams`) builds the model,
    which gets the weights of the checkpoint (:func:`solvers.tfno.restore_model`).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it holds no series of :func:`solvers.tfno.train` or no checkpoint.
    """
    from tensorsim.io import open_run

    data, checkpoint = open_run(path)
    if any(name not in data.variables for name in tfno.SERIES):
        raise ValueError(
            f"{path} is not a run file of solvers.tfno.train (no series {list(tfno.SERIES)})"
        )
    if checkpoint is None:
        raise ValueError(f"{path} holds no checkpoint (no epoch finished)")
    cfg = config(str(data.attrs["config"]))
    model, epoch = tfno.restore_model(checkpoint, cfg.model, device=device)
    return TrainedRun(cfg, model, epoch, data)


def write_evaluation(
    path: Path, cfg: Params, comm: Any, errors: Mapping[int, Mapping[str, float]], attrs: Any
) -> None:
    """Write the errors per resolution (``test_l2``, ``test_h1``) over ``resolution``.

    ``errors`` is the result of :func:`solvers.tfno.evaluate_grids`; the record coordinate
    is the grid points per axis, ``attrs`` the root attributes.
    """
    series = [Var(f"test_{k}", units="1", long_name=f"test relative {k.upper()} error")
              for k in ("l2", "h1")]  # fmt: skip
    with new_writer(path, cfg, comm, Layout("resolution", series, attrs=attrs)) as out:
        for n, values in errors.items():
            out.append(n, test_l2=values["l2"], test_h1=values["h1"])


def plot_run(loaded: tuple[TrainedRun, tuple[float, float]], dataset: str, base: Path,
             samples: int = 3) -> list[Path]:  # fmt: skip
    """Loss curves of a loaded run (with its scales) and its predictions on ``dataset``."""
    from analysis.navier_stokes import plot_losses, plot_predictions
    from problems.navier_stokes_data import test_fields

    trained, scales = loaded
    data, written = trained.config.data, [plot_losses(trained.data, base)]
    tests = test_fields(dataset, data.n_test, scales, data.forcing, first=samples)
    inputs = {n: t[1] for n, t in tests.items()}
    for n, pred in tfno.predict_grids(trained.model, inputs).items():
        pred = pred[:, 0].numpy() * scales[1]
        written.append(plot_predictions(trained.data, trained.epoch, tests[n][0], pred, base))
    return written


def load_learning_run(
    path: str | Path, *, device: str = "cpu"
) -> tuple[TrainedRun, tuple[float, float]]:
    """A run of ``train`` and its scales: model inputs ``w0 / s[0]``, outputs ``w(T) / s[1]``."""

    def config(text: str) -> LearningRun:  # older run files have an unused evaluate table
        table = {k: v for k, v in tomllib.loads(text).items() if k != "evaluate"}
        return load_config(LearningRun, data=table)

    trained = load_run(path, config, device=device)
    attrs = trained.data.attrs
    return trained, (float(attrs["input_scale"]), float(attrs["output_scale"]))
