r"""``train`` and ``evaluate`` of :mod:`drivers.navier_stokes`: FNO, TFNO and MG-TFNO.

This module imports torch, so :mod:`drivers.navier_stokes` imports it only for these
subcommands (``generate`` and the dataset plot run without torch). Its configuration,
:class:`LearningRun`, is the one of ``python -m drivers.navier_stokes train|evaluate``.

``train`` fits the model of the ``model`` table (defaults from ``preset``,
:data:`MODEL_PRESETS`) to the pairs ``w0 -> w(T)`` of a dataset written by ``generate``:
the first ``data.n_train`` samples at ``data.resolution`` (default: the coarsest stored),
tested on the last ``data.n_test`` samples, with :func:`solvers.tfno.train` (Adam, StepLR,
per-epoch checkpoints, data parallel over the MPI ranks through ``torch.distributed``). With
``data.normalize`` the inputs and the outputs are divided by their root mean square over the
training samples (``input_scale``, ``output_scale``; the vorticity has zero mean on the torus,
so this is the usual unit-Gaussian normalization per channel). Relative L2 and H1 errors do
not change when prediction and target are scaled alike, so the losses and errors are those
of the physical fields; every later use of the model (evaluation, plots) applies the stored
scales. With ``data.forcing`` (the default) the forcing pattern ``f / A`` is a second input
channel: the model learns ``(w0, f) -> w(T)``. Most of ``w(T)`` is the forced,
position-dependent response, which the input ``w0`` (a statistically homogeneous field) does
not locate; MG-TFNO's patches see only patch-local coordinates and cannot learn it without
this channel. When all epochs are done, the test errors at the training resolution and at the
finest stored one (resolution transfer) are written.

``evaluate`` reloads a run file (its configuration and checkpoint), tests the model on the
last ``n_test`` samples (the run's own split) of a dataset at every stored resolution and
writes one small file with a ``resolution`` dimension; with ``evaluate.plot`` it also writes
the PNGs of :func:`plot_run`.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
Z. Li et al., "Fourier Neural Operator for Parametric Partial Differential Equations",
arXiv 2010.08895 (ICLR 2021).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch

import solvers.tfno as tfno
from problems.navier_stokes import NavierStokesDataset, forcing_field, load_dataset
from tensorsim.config import ConfigError, Params, config_from_toml, config_to_toml, param

__all__ = [
    "MODEL_PRESETS",
    "EvaluateParams",
    "LearningDataParams",
    "LearningRun",
    "OutputParams",
    "TRAIN_DEFAULTS",
    "TrainedRun",
    "evaluate",
    "load_run",
    "plot_run",
    "run_path",
    "train",
]

logger = logging.getLogger("drivers.navier_stokes")


def _fno() -> tfno.TFNOParams:
    return tfno.TFNOParams(
        in_channels=2, n_modes=(16, 16), hidden_channels=32, n_layers=4, factorization="dense"
    )


def _tfno(factorization: str) -> tfno.TFNOParams:
    return dataclasses.replace(_fno(), factorization=factorization, rank=0.08)


#: ``preset`` -> the ``model`` defaults it stands for: FNO (dense spectral weights), TFNO
#: with Tucker, CP or TT weights at 8 % of the dense spectral parameters (about 10x fewer
#: parameters in all), and MG-TFNO (the Tucker TFNO on 2 x 2 patches with 1/8 of the grid
#: as periodic context). Inputs: ``w0`` and the forcing pattern.
MODEL_PRESETS = {
    "fno": _fno,
    "tfno_tucker": lambda: _tfno("tucker"),
    "tfno_cp": lambda: _tfno("cp"),
    "tfno_tt": lambda: _tfno("tt"),
    "mg_tfno": lambda: dataclasses.replace(_tfno("tucker"), mg_levels=1, mg_padding=0.125),
}

#: The optimization defaults of ``train`` (:class:`solvers.tfno.TrainParams`).
TRAIN_DEFAULTS = tfno.TrainParams(
    epochs=100, batch_size=16, lr=2e-3, weight_decay=1e-4, step_size=20, gamma=0.5, loss="l2"
)


@dataclass(frozen=True)
class LearningDataParams(Params):
    """The samples a model is trained and tested on.

    Attributes
    ----------
    path
        The dataset (written by ``generate``).
    n_train
        Training samples: the first ``n_train`` of the file.
    n_test
        Test samples: the last ``n_test`` of the file (disjoint from the training ones).
    resolution
        Training resolution, one of the stored ones; ``None``: the coarsest.
    normalize
        Divide inputs and outputs by their root mean square over the training samples.
    forcing
        Give the model the forcing pattern ``f / A`` as a second input channel, so that it
        maps ``(w0, f) -> w(T)``; ``model.in_channels`` must then be 2 (else 1).
    """

    path: str = param("runs/navier_stokes.nc", "the dataset file (written by generate)")
    n_train: int = param(1000, "training samples: the first n_train of the file", ge=1)
    n_test: int = param(200, "test samples: the last n_test of the file", ge=1)
    resolution: int | None = param(
        None, "training resolution (a stored one); none: the coarsest", ge=2
    )
    normalize: bool = param(True, "divide inputs and outputs by their training RMS")
    forcing: bool = param(True, "forcing pattern f / A as a second input channel")


@dataclass(frozen=True)
class OutputParams(Params):
    """The run file of ``train``.

    Attributes
    ----------
    path
        The run file; ``None``: ``<data.path without .nc>_<preset>.nc``.
    """

    path: str | None = param(None, "run file; none: <data.path without .nc>_<preset>.nc")


@dataclass(frozen=True)
class EvaluateParams(Params):
    """What ``evaluate`` tests and writes.

    Attributes
    ----------
    run
        The run file to evaluate; ``None``: the run file of this configuration
        (:func:`run_path`).
    dataset
        The dataset; ``None``: the one the run was trained on.
    path
        The evaluation file; ``None``: ``<run without .nc>_evaluation.nc``.
    plot
        Also write the PNGs of :func:`plot_run`.
    plot_samples
        Test samples shown in the prediction plots.
    """

    run: str | None = param(None, "run file to evaluate; none: this configuration's run file")
    dataset: str | None = param(None, "dataset; none: the one the run was trained on")
    path: str | None = param(None, "evaluation file; none: <run without .nc>_evaluation.nc")
    plot: bool = param(False, "also write prediction, error and loss plots (PNG)")
    plot_samples: int = param(3, "test samples shown in the prediction plots", ge=1)


@dataclass(frozen=True)
class LearningRun(Params):
    """Configuration of ``python -m drivers.navier_stokes train|evaluate``.

    Attributes
    ----------
    preset
        Defaults of ``model`` (:data:`MODEL_PRESETS`): ``fno``, ``tfno_tucker``,
        ``tfno_cp``, ``tfno_tt`` or ``mg_tfno``.
    device
        Torch device of model and data (``cpu``, ``cuda``); ranks talk through gloo.
    data
        The dataset and its split.
    model
        The neural operator (:class:`solvers.tfno.TFNOParams`).
    train
        Optimization (:class:`solvers.tfno.TrainParams`).
    output
        The run file.
    evaluate
        What ``evaluate`` tests and writes.
    """

    preset: Literal["fno", "tfno_tucker", "tfno_cp", "tfno_tt", "mg_tfno"] = param(
        "fno", "defaults of the model table: fno, tfno_tucker, tfno_cp, tfno_tt, mg_tfno"
    )
    device: str = param("cpu", "torch device of model and data (cpu, cuda, cuda:1)")
    data: LearningDataParams = param(LearningDataParams(), "the dataset and its split")
    model: tfno.TFNOParams = param(_fno(), "the neural operator (FNO, TFNO, MG-TFNO)")
    train: tfno.TrainParams = param(TRAIN_DEFAULTS, "optimization: Adam, StepLR, loss")
    output: OutputParams = param(OutputParams(), "the run file of train")
    evaluate: EvaluateParams = param(EvaluateParams(), "what evaluate tests and writes")


def run_path(cfg: LearningRun) -> Path:
    """The run file of a configuration: ``output.path`` or its default."""
    if cfg.output.path is not None:
        return Path(cfg.output.path)
    data = Path(cfg.data.path)
    return data.with_name(f"{data.with_suffix('').name}_{cfg.preset}.nc")


# ---------------------------------------------------------------------------------------------
# data


class _Split(NamedTuple):
    """The training and test pairs of a run (:func:`_fields`) and the normalization."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    tests: dict[int, tuple[torch.Tensor, torch.Tensor]]  # resolution -> scaled test pairs
    resolution: int
    input_scale: float
    output_scale: float
    attrs: dict[str, Any]


def _fields(
    data: NavierStokesDataset, scales: tuple[float, float], forcing: bool, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs ``(samples, 1 + forcing, n, n)`` and outputs ``(samples, 1, n, n)``.

    ``w0`` and ``w(T)`` are divided by the scales; the forcing channel is ``f / A`` (zero
    for an unforced dataset), the same for every sample.
    """
    x = torch.from_numpy(data.inputs / np.float32(scales[0]))[:, None]
    y = torch.from_numpy(data.outputs / np.float32(scales[1]))[:, None]
    if forcing:
        amplitude = float(data.attrs["forcing_amplitude"])
        pattern = forcing_field(x.shape[-1], 1.0 if amplitude else 0.0)
        pattern = torch.from_numpy(pattern.astype(np.float32)).expand(x.shape[0], 1, -1, -1)
        x = torch.cat([x, pattern], dim=1)
    return x.to(device), y.to(device)


def _test_data(path: str, n_test: int, resolution: int | None) -> NavierStokesDataset:
    """The last ``n_test`` samples at ``resolution`` (the finest when None), checked."""
    test = load_dataset(path, resolution, samples=slice(-n_test, None))
    if len(test.samples) < n_test:
        raise ConfigError(
            f"config key 'data.n_test': {n_test} test samples requested, but {path} holds "
            f"{len(test.samples)}"
        )
    return test


def _load_split(cfg: LearningRun) -> _Split:
    """Read the training samples at the training resolution and the test samples."""
    data = cfg.data
    if cfg.model.in_channels != 1 + data.forcing:
        raise ConfigError(
            f"config key 'model.in_channels': expected {1 + data.forcing} (w0"
            f"{' and the forcing' if data.forcing else ''}: data.forcing = "
            f"{str(data.forcing).lower()}), got {cfg.model.in_channels}"
        )
    finest = _test_data(data.path, data.n_test, None)
    resolution = min(finest.resolutions) if data.resolution is None else data.resolution
    if resolution not in finest.resolutions:
        raise ConfigError(
            f"config key 'data.resolution': {resolution} is not stored in {data.path} "
            f"(stored resolutions: {', '.join(map(str, finest.resolutions))})"
        )
    total = int(finest.samples[-1]) + 1
    if data.n_train + data.n_test > total:
        raise ConfigError(
            f"config keys 'data.n_train', 'data.n_test': {data.n_train} + {data.n_test} "
            f"samples requested, but {data.path} holds {total}"
        )
    train = load_dataset(data.path, resolution, samples=slice(0, data.n_train))
    scales = (1.0, 1.0)
    if data.normalize:
        scales = tuple(
            float(np.sqrt(np.mean(np.square(v, dtype=np.float64))))
            for v in (train.inputs, train.outputs)
        )
    x, y = _fields(train, scales, data.forcing, cfg.device)
    tests = {}
    for n in sorted({resolution, max(finest.resolutions)}):
        test = finest if n == max(finest.resolutions) else _test_data(data.path, data.n_test, n)
        tests[n] = _fields(test, scales, data.forcing, cfg.device)
    return _Split(x, y, tests, resolution, scales[0], scales[1], finest.attrs)


def _check_fits(model: torch.nn.Module, x: torch.Tensor, what: str) -> None:
    """Raise ``ConfigError`` unless the model takes ``x`` (modes, multi-grid levels)."""
    try:
        with torch.no_grad():
            model(x[:1])
    except ValueError as exc:
        n = x.shape[-1]
        raise ConfigError(
            f"config table 'model' does not fit the {n} x {n} grid of {what}: {exc}"
        ) from exc


# ---------------------------------------------------------------------------------------------
# train


def _new_writer(path: Path, cfg: LearningRun, comm: Any, split: _Split) -> Any:
    from tensorsim.io import Writer

    if comm.rank == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
    attrs = {
        "preset": cfg.preset,
        "dataset": cfg.data.path,
        "train_resolution": split.resolution,
        "input_scale": split.input_scale,
        "output_scale": split.output_scale,
        "viscosity": float(split.attrs["viscosity"]),
        "t_end": float(split.attrs["t_end"]),
    }
    return Writer(path, record_dim="epoch", comm=comm, config=config_to_toml(cfg), attrs=attrs)


def _resumed_writer(path: Path, comm: Any) -> tuple[Any, Any, int]:
    """The writer and checkpoint of ``--restart`` and the epochs done (on every rank)."""
    from tensorsim.io import Writer

    writer, checkpoint = Writer.resume(path, comm=comm)
    done = None if checkpoint is None else int(checkpoint.attrs["epoch"])
    done = comm.bcast(done, root=0)
    if done is None:
        writer.close(finished=False)
        raise ValueError(f"--restart: {path} holds no checkpoint (no epoch finished)")
    return writer, checkpoint, done


def train(
    cfg: LearningRun, comm: Any, *, restart: Path | None = None, max_steps: int | None = None
) -> dict[str, Any]:
    """Train (or continue training) a model and write the run file; return a summary.

    Parameters
    ----------
    cfg
        The configuration (of the file, for a restart).
    comm
        The MPI communicator; with several ranks the model is trained data parallel.
    restart
        Continue the run in this file from its checkpoint.
    max_steps
        Stop after this many epochs (checkpointed; the file stays ``finished = 0``).

    Returns
    -------
    dict
        ``path``, ``epochs`` (run here), ``last_epoch``, ``finished``, ``parameters``,
        ``dense_parameters``, ``final`` (resolution -> ``{"l2", "h1"}``, when finished),
        ``wall_time``.

    Raises
    ------
    ConfigError
        If the split does not fit the dataset or the model does not fit the grid.
    FloatingPointError
        If the training loss is not finite (the file keeps the last good checkpoint).
    """
    from tensorsim.nn.distributed import torch_distributed

    if max_steps is not None and max_steps < 1:
        raise ValueError(f"--max-steps: expected a positive number of epochs, got {max_steps}")
    start = time.perf_counter()
    split = _load_split(cfg)
    model = tfno.build_model(cfg.model, device=cfg.device)
    _check_fits(model, split.x_train, f"data.resolution = {split.resolution}")
    dense = dataclasses.replace(cfg.model, factorization="dense")
    counts = (tfno.count_parameters(model), tfno.count_parameters(tfno.build_model(dense)))
    path = run_path(cfg) if restart is None else Path(restart)
    if restart is None:
        writer, checkpoint, done = _new_writer(path, cfg, comm, split), None, 0
    else:
        writer, checkpoint, done = _resumed_writer(path, comm)
    epochs = cfg.train.epochs
    stop = epochs if max_steps is None else min(epochs, done + max_steps)
    logger.info(
        "%s: %d parameters (%d with dense spectral weights, %.1fx), epochs %d-%d of %d",
        path,
        counts[0],
        counts[1],
        counts[1] / counts[0],
        done + 1,
        stop,
        epochs,
    )
    final: dict[int, dict[str, float]] = {}
    try:
        writer.set_variable("parameters", (), counts[0], long_name="trained parameters")
        writer.set_variable(
            "dense_parameters", (), counts[1], long_name="parameters with dense spectral weights"
        )
        with torch_distributed(comm, backend="gloo"):
            tfno.train(
                model,
                split.x_train,
                split.y_train,
                *split.tests[split.resolution],
                dataclasses.replace(cfg.train, epochs=stop),
                writer=writer,
                resume=checkpoint,
            )
            if stop == epochs:
                for n, (x, y) in split.tests.items():
                    final[n] = tfno.evaluate(model, x, y, batch_size=cfg.train.eval_batch_size)
        if final:
            _write_final(writer, final)
    except BaseException:
        writer.close(finished=False)
        raise
    writer.close(finished=bool(final))
    for n, errors in final.items():
        logger.info(
            "final test error at %d x %d: L2 %.4e, H1 %.4e", n, n, errors["l2"], errors["h1"]
        )
    return {
        "path": str(path),
        "epochs": stop - done,
        "last_epoch": stop,
        "finished": bool(final),
        "parameters": counts[0],
        "dense_parameters": counts[1],
        "final": final,
        "wall_time": time.perf_counter() - start,
    }


def _write_final(writer: Any, final: dict[int, dict[str, float]]) -> None:
    writer.set_coordinate(
        "resolution", np.array(sorted(final)), long_name="grid points per axis of the test"
    )
    for key in ("l2", "h1"):
        writer.set_variable(
            f"final_test_{key}",
            ("resolution",),
            np.array([final[n][key] for n in sorted(final)]),
            units="1",
            long_name=f"test relative {key.upper()} error after the last epoch",
        )


# ---------------------------------------------------------------------------------------------
# evaluate


class TrainedRun(NamedTuple):
    """A run file read back by :func:`load_run`.

    Attributes
    ----------
    config
        The run's configuration.
    model
        The model with the weights of the checkpoint, in eval mode.
    epoch
        Epochs trained (the checkpoint's).
    input_scale, output_scale
        The normalization of the run: model inputs are ``w0 / input_scale``, its outputs
        ``w(T) / output_scale``.
    data
        The run file's contents (series, final errors, attributes).
    """

    config: LearningRun
    model: torch.nn.Module
    epoch: int
    input_scale: float
    output_scale: float
    data: Any


def load_run(path: str | Path, *, device: str = "cpu") -> TrainedRun:
    """Read a run file of ``train``: its configuration, normalization and trained model.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If it is not a run file of ``train`` or holds no checkpoint.
    """
    from tensorsim.io import open_run

    data, checkpoint = open_run(path)
    if "train_loss" not in data.variables or "input_scale" not in data.attrs:
        raise ValueError(f"{path} is not a run file of 'python -m drivers.navier_stokes train'")
    if checkpoint is None:
        raise ValueError(f"{path} holds no checkpoint (no epoch finished)")
    cfg = config_from_toml(LearningRun, str(data.attrs["config"]))
    model = tfno.build_model(cfg.model, device=device)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    epoch = tfno.restore_training_state(checkpoint, model, optimizer, scheduler)
    model.eval()
    scales = float(data.attrs["input_scale"]), float(data.attrs["output_scale"])
    return TrainedRun(cfg, model, epoch, *scales, data)


def _evaluation_path(cfg: LearningRun, run: Path) -> Path:
    if cfg.evaluate.path is not None:
        return Path(cfg.evaluate.path)
    return run.with_name(f"{run.with_suffix('').name}_evaluation.nc")


def evaluate(cfg: LearningRun, comm: Any) -> dict[str, Any]:
    """Test a trained model at every stored resolution and write the evaluation file.

    The test samples are the last ``data.n_test`` of the dataset, with ``n_test`` of the
    run. A resolution the model does not take (too few points for its modes, or not
    divisible for its multi-grid levels) gets NaN and a warning.

    Returns
    -------
    dict
        ``path``, ``run``, ``dataset``, ``epoch``, ``errors`` (resolution ->
        ``{"l2", "h1"}``), ``plots``.
    """
    from tensorsim.io import Writer
    from tensorsim.nn.distributed import torch_distributed

    run = Path(cfg.evaluate.run) if cfg.evaluate.run is not None else run_path(cfg)
    trained = load_run(run, device=cfg.device)
    n_test = trained.config.data.n_test
    dataset = cfg.evaluate.dataset or trained.config.data.path
    scales = (trained.input_scale, trained.output_scale)
    finest = _test_data(dataset, n_test, None)
    errors: dict[int, dict[str, float]] = {}
    with torch_distributed(comm, backend="gloo"):
        for n in sorted(finest.resolutions):
            test = finest if n == max(finest.resolutions) else _test_data(dataset, n_test, n)
            x, y = _fields(test, scales, trained.config.data.forcing, cfg.device)
            try:
                _check_fits(trained.model, x, f"resolution {n}")
            except ConfigError as exc:
                logger.warning("not evaluated at %d x %d: %s", n, n, exc)
                errors[n] = {"l2": float("nan"), "h1": float("nan")}
                continue
            batch = trained.config.train.eval_batch_size
            errors[n] = tfno.evaluate(trained.model, x, y, batch_size=batch)
            logger.info("%d x %d: test L2 %.4e, H1 %.4e", n, n, errors[n]["l2"], errors[n]["h1"])
    path = _evaluation_path(cfg, run)
    attrs = {
        "run": str(run),
        "dataset": str(dataset),
        "epoch": trained.epoch,
        "preset": trained.config.preset,
        "train_resolution": int(trained.data.attrs["train_resolution"]),
        "parameters": int(trained.data["parameters"]),
        "test_samples": n_test,
    }
    with Writer(
        path, record_dim="resolution", comm=comm, config=config_to_toml(cfg), attrs=attrs
    ) as out:
        out.define_series("test_l2", units="1", long_name="test relative L2 error")
        out.define_series("test_h1", units="1", long_name="test relative H1 error")
        for n, values in errors.items():
            out.append(n, test_l2=values["l2"], test_h1=values["h1"])
    plots = []
    if cfg.evaluate.plot and comm.rank == 0:
        plots = plot_run(
            run, dataset, stem=path.with_suffix(""), samples=cfg.evaluate.plot_samples
        )
    return {
        "path": str(path),
        "run": str(run),
        "dataset": str(dataset),
        "epoch": trained.epoch,
        "errors": errors,
        "plots": [str(p) for p in plots],
    }


# ---------------------------------------------------------------------------------------------
# plots


def plot_run(
    run: str | Path,
    dataset: str | None = None,
    *,
    stem: Path | None = None,
    samples: int = 3,
) -> list[Path]:
    """Plot the loss curves of a run and its predictions on test samples.

    Writes ``<stem>_losses.png`` (training loss, test L2 and H1 errors, learning rate per
    epoch) and, for every stored resolution the model takes, ``<stem>_predictions_<n>.png``:
    for the first ``samples`` test samples the input ``w0``, the truth ``w(T)``, the
    prediction and the error (prediction - truth).

    Parameters
    ----------
    run
        A run file of ``train``.
    dataset
        The dataset of the test samples; ``None``: the run's.
    stem
        Path prefix of the PNG files; ``None``: the run file without ``.nc``.
    samples
        Number of test samples shown.

    Returns
    -------
    list of Path
        The files written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = load_run(run)
    stem = Path(run).with_suffix("") if stem is None else Path(stem)
    dataset = dataset or trained.config.data.path
    written = [_plot_losses(plt, trained, stem)]
    n_test = trained.config.data.n_test
    shown = slice(-n_test, -n_test + samples if samples < n_test else None)
    for n in load_dataset(dataset, samples=slice(0, 0)).resolutions:
        test = load_dataset(dataset, n, samples=shown)
        scales = (trained.input_scale, trained.output_scale)
        x, _ = _fields(test, scales, trained.config.data.forcing, "cpu")
        try:
            _check_fits(trained.model, x, f"resolution {n}")
        except ConfigError as exc:
            logger.warning("no predictions plotted at %d x %d: %s", n, n, exc)
            continue
        pred = tfno.predict(trained.model, x)[:, 0].numpy() * trained.output_scale
        written.append(_plot_predictions(plt, test, pred, trained, stem))
    return written


def _plot_losses(plt: Any, trained: TrainedRun, stem: Path) -> Path:
    data = trained.data
    epochs = data["epoch"].values
    fig, (ax, ax_lr) = plt.subplots(1, 2, figsize=(10, 4))
    loss = trained.config.train.loss.upper()
    ax.semilogy(epochs, data["train_loss"].values, label=f"training loss (relative {loss})")
    ax.semilogy(epochs, data["test_l2"].values, label="test relative L2")
    ax.semilogy(epochs, data["test_h1"].values, label="test relative H1")
    ax.set_xlabel("epoch")
    ax.set_ylabel("error")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    ax_lr.semilogy(epochs, data["lr"].values)
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"{trained.config.preset}: {int(data['parameters'])} parameters, trained at "
        f"{int(data.attrs['train_resolution'])}^2"
    )
    fig.tight_layout()
    out = stem.with_name(stem.name + "_losses.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _plot_predictions(
    plt: Any, test: NavierStokesDataset, pred: np.ndarray, trained: TrainedRun, stem: Path
) -> Path:
    n = test.inputs.shape[-1]
    half = 0.5 / n  # pixels centred on the grid points i / n
    extent = (-half, 1.0 - half, -half, 1.0 - half)
    rows = len(test.samples)
    fig, axes = plt.subplots(rows, 4, figsize=(13, 3.0 * rows), squeeze=False)
    for row in range(rows):
        truth, guess = test.outputs[row], pred[row]
        error = guess - truth
        limit = float(np.max(np.abs(truth))) or 1.0
        relative = float(np.linalg.norm(error) / np.linalg.norm(truth))
        panels = [
            (test.inputs[row], "input w0", float(np.max(np.abs(test.inputs[row]))) or 1.0),
            (truth, "truth w(T)", limit),
            (guess, "prediction", limit),
            (error, f"error (relative L2 {relative:.2e})", float(np.max(np.abs(error))) or 1.0),
        ]
        for col, (field, title, scale) in enumerate(panels):
            ax = axes[row, col]
            image = ax.imshow(
                field.T, origin="lower", extent=extent, cmap="RdBu_r", vmin=-scale, vmax=scale
            )
            fig.colorbar(image, ax=ax, shrink=0.8)
            ax.set_title(f"sample {int(test.samples[row])}: {title}", fontsize="small")
            ax.set_xlabel("x")
            ax.set_ylabel("y")
    trained_at = int(trained.data.attrs["train_resolution"])
    fig.suptitle(
        f"{trained.config.preset} after {trained.epoch} epochs (trained at {trained_at}^2), "
        f"test samples at {n}^2"
    )
    fig.tight_layout()
    out = stem.with_name(f"{stem.name}_predictions_{n}.png")
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
