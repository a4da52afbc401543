"""The driver side of neural-operator training: the run file of :func:`solvers.tfno.train`.

:mod:`solvers.tfno` trains and tests without touching files; here (imported on first use, it
needs torch) a run of ``python -m drivers.navier_stokes train`` gets its file:
:func:`run_writer` opens a new run file (the series of :data:`solvers.tfno.SERIES` over the
record dimension ``epoch``) or continues the file of a stopped run; :func:`fit` writes the
parameter counts, trains with one record and one checkpoint per epoch, writes the errors at
every resolution after the last epoch and closes the file, finished or not; :func:`load_run`
reads a run file back with the model of its checkpoint; :func:`write_evaluation` writes the
errors of ``evaluate`` over ``resolution``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from drivers._base import Layout, Var, new_writer
from solvers import tfno
from tensorsim.config import Params
from tensorsim.nn.models.fno import TFNOParams

if TYPE_CHECKING:
    from problems.navier_stokes_data import Split
    from tensorsim.io import Writer

__all__ = ["TrainedRun", "fit", "load_run", "run_writer", "write_evaluation"]

logger = logging.getLogger(__name__)


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
