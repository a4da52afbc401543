"""Training and evaluation of neural operators: Adam + StepLR, checkpoints, data parallel.

The models (FNO, TFNO, MG-TFNO) are in :mod:`tensorsim.nn.models.fno`. :func:`train` fits a
model on ``(samples, channels, n_1, ..., n_d)`` tensors with Adam and a step learning-rate
decay, one epoch at a time: the samples are shuffled by a generator
seeded with ``(seed, epoch)``, cut into global batches of ``batch_size``, and the model is
updated once per batch on the relative L2 or H1 loss (:mod:`tensorsim.nn.losses`), averaged
over the batch. After every epoch the test errors are computed, the epoch's numbers are
handed to the caller's ``record(epoch, values)`` (the series of :data:`SERIES`: names, units,
long names) and its checkpoint (model, optimizer, scheduler, epoch; arrays and attributes,
no pickles, :mod:`tensorsim.nn.state`) to ``save(arrays, attrs)``; this module writes no
files (``drivers/_training.py`` keeps the run file of ``python -m drivers.navier_stokes
train``). Training from a checkpoint continues exactly as the run that saved it would have:
the shuffling depends only on the seed and the epoch. The loop is
:class:`solvers.training.Trainer` (scheduler stepped per epoch, data parallel).

Under ``torch.distributed`` (e.g. :func:`tensorsim.nn.distributed.init_torch_distributed`
from ``mpirun``) the model is wrapped in ``DistributedDataParallel`` and each global batch is
split into contiguous shards, one per rank. Each rank's loss is its shard's sum scaled by
``world_size / batch``, so that DDP's gradient average is the gradient of the batch mean:
any number of ranks follows the serial loss curve up to rounding. A rank whose shard is
empty (a last batch smaller than the number of ranks) runs one sample with weight 0.

A non-finite training loss stops the run with ``FloatingPointError`` before the update;
the checkpoint of the previous epoch stays the last one saved.

Around :func:`train`: :func:`evaluate_grids` tests at several resolutions (NaN where the
model does not fit the grid, :func:`check_grid`), :func:`predict_grids` predicts at them,
:func:`restore_model` rebuilds the model of a checkpoint, :func:`parameter_counts` compares
with dense spectral weights. :data:`MODEL_PRESETS` and :data:`TRAIN_DEFAULTS` are the models
and the schedule of the Navier-Stokes comparison of arXiv 2310.00120 (``python -m
drivers.navier_stokes train``).

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import torch

from solvers.callbacks import Checkpoint, Evaluate, LambdaCallback, LossSum
from solvers.training import Trainer, all_sum, distributed_world, local_batch, shard_bounds
from tensorsim.config import ConfigError, Params, param
from tensorsim.nn.losses import relative_h1, relative_l2
from tensorsim.nn.models.fno import TFNOParams, build_model, count_parameters

__all__ = [
    "CHECKPOINT_FORMAT",
    "MODEL_PRESETS",
    "SERIES",
    "TRAIN_DEFAULTS",
    "EpochRecord",
    "TrainParams",
    "TrainResult",
    "check_grid",
    "unused_model_options",
    "describe",
    "errors_text",
    "evaluate",
    "evaluate_grids",
    "parameter_counts",
    "predict",
    "predict_grids",
    "restore_model",
    "train",
]

logger = logging.getLogger(__name__)

#: Value of the checkpoint attribute ``format`` written by :func:`train`.
CHECKPOINT_FORMAT = "tensorsim.operator-training.v1"

_LOSSES = {"l2": relative_l2, "h1": relative_h1}

#: The series of :func:`train`'s ``record(epoch, values)``: name -> (units, long name).
SERIES = {
    "train_loss": ("1", "training loss, mean over the epoch's samples"),
    "test_l2": ("1", "test relative L2 error, mean over the samples"),
    "test_h1": ("1", "test relative H1 error, mean over the samples"),
    "lr": ("1", "learning rate of the epoch"),
    "epoch_seconds": ("s", "wall time of the epoch"),
}


@dataclass(frozen=True)
class TrainParams(Params):
    """Optimization settings of :func:`train`.

    Attributes
    ----------
    epochs
        Number of epochs (a restart continues up to it).
    batch_size
        Global batch size (split over the ranks).
    lr
        Adam learning rate.
    weight_decay
        Adam weight decay (L2 penalty).
    step_size
        StepLR: epochs between two learning-rate decays.
    gamma
        StepLR decay factor.
    loss
        Training loss: ``"l2"`` (relative L2) or ``"h1"`` (relative H1).
    seed
        Seed of the shuffling (with the epoch number).
    eval_batch_size
        Batch size of the test evaluation.
    """

    epochs: int = param(20, "number of epochs", ge=1)
    batch_size: int = param(16, "global batch size, split over the ranks", ge=1)
    lr: float = param(1e-3, "Adam learning rate", gt=0)
    weight_decay: float = param(1e-4, "Adam weight decay", ge=0)
    step_size: int = param(100, "StepLR: epochs between decays", ge=1)
    gamma: float = param(0.5, "StepLR decay factor", gt=0, le=1)
    loss: Literal["l2", "h1"] = param("l2", "training loss: relative l2 or h1")
    seed: int = param(0, "seed of the per-epoch shuffling")
    eval_batch_size: int = param(32, "batch size of the test evaluation", ge=1)


def _operator(**changes: Any) -> TFNOParams:
    base = TFNOParams(
        in_channels=2, n_modes=(16, 16), hidden_channels=32, n_layers=4, factorization="dense"
    )
    return dataclasses.replace(base, **changes)


#: The models of the Navier-Stokes comparison (arXiv 2310.00120; inputs ``w0`` and the forcing
#: pattern, 2 channels): FNO (dense spectral weights), TFNO with Tucker, CP or TT weights at
#: 8 % of the dense spectral parameters (about 10x fewer parameters in all), MG-TFNO (the
#: Tucker TFNO on 2 x 2 patches with 1/8 of the grid as periodic context).
MODEL_PRESETS: dict[str, Callable[[], TFNOParams]] = {
    "fno": _operator,
    "tfno_tucker": lambda: _operator(factorization="tucker", rank=0.08),
    "tfno_cp": lambda: _operator(factorization="cp", rank=0.08),
    "tfno_tt": lambda: _operator(factorization="tt", rank=0.08),
    "mg_tfno": lambda: _operator(factorization="tucker", rank=0.08, mg_levels=1, mg_padding=0.125),
}

#: The optimization of that comparison: 100 epochs, batches of 16, lr 2e-3 halved every 20.
TRAIN_DEFAULTS = TrainParams(
    epochs=100, batch_size=16, lr=2e-3, weight_decay=1e-4, step_size=20, gamma=0.5, loss="l2"
)


@dataclass(frozen=True)
class EpochRecord:
    """What :func:`train` records after an epoch.

    Attributes
    ----------
    epoch
        Epoch number, from 1.
    train_loss
        Mean training loss over the epoch's samples (as the model changed during it).
    test_l2, test_h1
        Mean relative L2 and H1 test errors after the epoch.
    lr
        Learning rate used in the epoch.
    seconds
        Wall time of the epoch, test evaluation included.
    """

    epoch: int
    train_loss: float
    test_l2: float
    test_h1: float
    lr: float
    seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Result of :func:`train`: the records of the epochs run by this call."""

    history: tuple[EpochRecord, ...]


def _check_fields(model: torch.nn.Module, x: Any, y: Any, xname: str, yname: str) -> None:
    dtype = next(model.parameters()).dtype
    for name, t, channels in ((xname, x, model.in_channels), (yname, y, model.out_channels)):
        if not isinstance(t, torch.Tensor) or t.ndim < 3 or t.shape[1] != channels:
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"{name}: expected a tensor (samples, {channels}, n_1, ...), got {got}"
            )
        if t.dtype != dtype:
            raise ValueError(f"{name}: expected dtype {dtype} (the model's), got {t.dtype}")
    if x.shape[0] != y.shape[0] or x.shape[0] < 1:
        raise ValueError(
            f"{xname}, {yname}: expected the same number (>= 1) of samples, "
            f"got {x.shape[0]} and {y.shape[0]}"
        )
    if x.shape[2:] != y.shape[2:]:
        raise ValueError(
            f"{yname}: spatial shape {tuple(y.shape[2:])} differs from {xname}'s "
            f"{tuple(x.shape[2:])}"
        )


def evaluate(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 32
) -> dict[str, float]:
    """Mean relative L2 and H1 errors of a model on a data set (at its resolution).

    Under ``torch.distributed`` the samples are split over the ranks and the sums reduced
    (collective: every rank calls it with the same data).

    Parameters
    ----------
    model
        A model with ``in_channels`` and ``out_channels`` (e.g. from
        :func:`tensorsim.nn.models.fno.build_model`), not wrapped in DDP.
    x, y
        Inputs ``(samples, in_channels, n_1, ...)`` and targets ``(samples, out_channels,
        n_1, ...)``.
    batch_size
        Samples per forward pass.

    Returns
    -------
    dict
        ``{"l2": ..., "h1": ...}``.
    """
    _check_fields(model, x, y, "x", "y")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    rank, world = distributed_world()
    lo, hi = shard_bounds(x.shape[0], rank, world)
    sums = torch.zeros(2, dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for start in range(lo, hi, batch_size):
                stop = min(start + batch_size, hi)
                pred, target = model(x[start:stop]), y[start:stop]
                sums[0] += relative_l2(pred, target, "sum").double().cpu()
                sums[1] += relative_h1(pred, target, "sum").double().cpu()
    finally:
        model.train(was_training)
    sums = all_sum(sums, world) / x.shape[0]
    return {"l2": float(sums[0]), "h1": float(sums[1])}


def predict(model: torch.nn.Module, x: torch.Tensor, *, batch_size: int = 32) -> torch.Tensor:
    """The model's outputs on ``x``, in batches, without gradients (serial)."""
    if not isinstance(x, torch.Tensor) or x.ndim < 3 or x.shape[0] < 1:
        raise ValueError("x: expected a tensor (samples, channels, n_1, ...) with samples")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return torch.cat([model(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])
    finally:
        model.train(was_training)


def describe(model: TFNOParams, params: TrainParams) -> str:
    """One line on a model and its optimization (spectral weights, multi-grid, schedule)."""
    m = model
    weights = "dense" if m.factorization == "dense" else f"{m.factorization} rank {m.rank:g}"
    multigrid = f", {m.mg_levels} multi-grid level(s)" if m.mg_levels else ""
    return (
        f"modes {list(m.n_modes)}, width {m.hidden_channels}, {m.n_layers} layers, {weights} "
        f"spectral weights{multigrid}; {params.epochs} epochs, batch {params.batch_size}, "
        f"lr {params.lr:g}, {params.loss} loss"
    )


def restore_model(
    checkpoint: Any, params: TFNOParams, *, device: Any = None
) -> tuple[torch.nn.Module, int]:
    """The model of ``params`` with the weights of a checkpoint of :func:`train`, in eval mode.

    Returns
    -------
    model : torch.nn.Module
        From :func:`tensorsim.nn.models.fno.build_model` on ``device``.
    epoch : int
        The epoch after which the checkpoint was written.

    Raises
    ------
    ValueError
        If it is not such a checkpoint or does not fit the model.
    """
    model = build_model(params, device=device)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    trainer = Trainer(
        model, optimizer, None, scheduler=scheduler, checkpoint_format=CHECKPOINT_FORMAT
    )
    if checkpoint is None:
        raise ValueError(f"resume: not a checkpoint of this trainer (format {CHECKPOINT_FORMAT})")
    trainer.load_state(checkpoint)
    model.eval()
    return model, trainer.epoch


def unused_model_options(params: TFNOParams) -> dict[str, str]:
    """The model options that have no effect in ``params``: name -> why.

    ``rank`` and ``joint`` need factorized spectral weights (not ``"dense"``),
    ``mg_padding`` multi-grid levels. A driver refuses them when they differ from their
    default (:meth:`drivers._base.Experiment.unused`).
    """
    dense, flat = params.factorization == "dense", params.mg_levels == 0
    needs = {
        "rank": ("factorized spectral weights", dense),
        "joint": ("factorized spectral weights", dense),
        "mg_padding": ("multi-grid levels (mg_levels > 0)", flat),
    }
    return {
        name: f"{getattr(params, name)!r} has no effect without {what}"
        for name, (what, unused) in needs.items()
        if unused
    }


def check_grid(
    model: torch.nn.Module, x: torch.Tensor, what: str, *, table: str = "model"
) -> None:
    """Raise ``ConfigError`` unless the model takes ``x`` (its modes, multi-grid levels).

    The message names the configuration ``table`` of the model and ``what`` the grid is.
    """
    try:
        with torch.no_grad():
            model(x[:1])
    except ValueError as exc:
        n = x.shape[-1]
        raise ConfigError(
            f"config table {table!r} does not fit the {n} x {n} grid of {what}: {exc}"
        ) from exc


def evaluate_grids(
    model: torch.nn.Module,
    tests: Mapping[int, tuple[torch.Tensor, torch.Tensor]],
    *,
    batch_size: int = 32,
    comm: Any = None,
) -> dict[int, dict[str, float]]:
    """:func:`evaluate` on test sets at several resolutions; NaN where the model does not fit.

    ``tests`` maps the grid points per axis to inputs and targets. A grid the model does not
    take (too few points for its modes, or not divisible for its multi-grid levels) gets NaN
    errors and a warning. Collective like :func:`evaluate`; with ``comm`` it runs inside
    :func:`tensorsim.nn.distributed.torch_distributed` over it (gloo), the samples split over
    the MPI ranks.
    """
    from tensorsim.nn.distributed import torch_distributed

    if comm is not None:
        with torch_distributed(comm, backend="gloo"):
            return evaluate_grids(model, tests, batch_size=batch_size)
    errors = {}
    for n, (x, y) in tests.items():
        try:
            check_grid(model, x, f"resolution {n}")
        except ConfigError as exc:
            logger.warning("not evaluated at %d x %d: %s", n, n, exc)
            errors[n] = {"l2": float("nan"), "h1": float("nan")}
            continue
        errors[n] = evaluate(model, x, y, batch_size=batch_size)
        logger.info("%d x %d: test L2 %.4e, H1 %.4e", n, n, errors[n]["l2"], errors[n]["h1"])
    return errors


def errors_text(errors: Mapping[int, Mapping[str, float]]) -> str:
    """Errors per resolution as ``"L2 (H1) at n^2, ..."`` (of :func:`evaluate_grids`)."""
    return ", ".join(f"{e['l2']:.4e} ({e['h1']:.4e}) at {n}^2" for n, e in errors.items())


def predict_grids(
    model: torch.nn.Module, fields: Mapping[int, torch.Tensor], *, batch_size: int = 32
) -> dict[int, torch.Tensor]:
    """:func:`predict` at several resolutions; grids the model does not take are left out.

    ``fields`` maps the grid points per axis to inputs; a grid the model does not take gets a
    warning instead of a prediction.
    """
    out = {}
    for n, x in fields.items():
        try:
            check_grid(model, x, f"resolution {n}")
        except ConfigError as exc:
            logger.warning("no predictions at %d x %d: %s", n, n, exc)
            continue
        out[n] = predict(model, x, batch_size=batch_size)
    return out


def parameter_counts(model: torch.nn.Module, params: TFNOParams) -> tuple[int, int]:
    """Real parameters of ``model`` and of the model of ``params`` with dense spectral weights."""
    dense = build_model(dataclasses.replace(params, factorization="dense"))
    return count_parameters(model), count_parameters(dense)


def train(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    params: TrainParams | None = None,
    *,
    record: Callable[[int, dict[str, float]], Any] | None = None,
    save: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None,
    resume: Any = None,
    callback: Callable[[EpochRecord], Any] | None = None,
) -> TrainResult:
    """Train a neural operator (module docstring): Adam, StepLR, checkpoints, DDP.

    Parameters
    ----------
    model
        A model with ``in_channels`` and ``out_channels`` attributes (e.g. from
        :func:`tensorsim.nn.models.fno.build_model`), trained in place. Not wrapped in DDP:
        that is done here when a process group is initialized.
    x_train, y_train, x_test, y_test
        Inputs ``(samples, in_channels, n_1, ...)`` and targets
        ``(samples, out_channels, n_1, ...)`` of the model's dtype; every rank holds all of
        them.
    params
        Optimization settings (default :class:`TrainParams`).
    record
        Called after every epoch as ``record(epoch, values)``, ``values`` mapping each name
        of :data:`SERIES` to the epoch's number (e.g. appended to a
        :class:`tensorsim.io.Writer` with these series); every rank calls it.
    save
        Called after every epoch (after ``record``) with the checkpoint ``(arrays, attrs)``
        of :meth:`solvers.training.Trainer.state` (e.g. :meth:`tensorsim.io.Writer.checkpoint`);
        every rank calls it.
    resume
        The :class:`tensorsim.io.Checkpoint` to continue from (on rank 0 at least; it is
        broadcast to the others).
    callback
        Called with each :class:`EpochRecord`.

    Returns
    -------
    TrainResult
        The records of the epochs run by this call.

    Raises
    ------
    ValueError
        If the data do not fit the model or the checkpoint does not fit.
    FloatingPointError
        If the training loss is not finite (the last checkpoint is kept).
    """
    params = TrainParams() if params is None else params
    if not isinstance(params, TrainParams):
        raise TypeError(f"params: expected TrainParams, got {type(params).__name__}")
    _check_fields(model, x_train, y_train, "x_train", "y_train")
    _check_fields(model, x_test, y_test, "x_test", "y_test")
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.step_size, params.gamma)
    loss_fn = _LOSSES[params.loss]
    rank, world = distributed_world()
    n = x_train.shape[0]

    def loss(net: torch.nn.Module, indices: torch.Tensor) -> tuple[torch.Tensor, Any]:
        mine, scale = local_batch(indices, rank, world)
        per_sample = loss_fn(net(x_train[mine]), y_train[mine], "none")
        return per_sample.sum() * scale, (per_sample, scale)

    def batches(epoch: int) -> Any:
        generator = torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator)
        return (
            order[first : first + params.batch_size] for first in range(0, n, params.batch_size)
        )

    total = LossSum(
        lambda batch, value, extra: extra[0].detach().sum().double().cpu() if extra[1] else None,
        zero=lambda: torch.zeros(1, dtype=torch.float64),
        all_reduce=True,
    )
    test = Evaluate(
        lambda m: evaluate(m, x_test, y_test, batch_size=params.eval_batch_size), at_end=False
    )
    history: list[EpochRecord] = []
    started: dict[str, float] = {}

    def epoch_start(trainer: Trainer) -> None:
        started["time"] = time.perf_counter()
        started["lr"] = optimizer.param_groups[0]["lr"]

    def epoch_end(trainer: Trainer) -> None:
        epoch = trainer.epoch
        entry = EpochRecord(
            epoch,
            float(total.total[0]) / n,
            trainer.metrics["l2"],
            trainer.metrics["h1"],
            started["lr"],
            time.perf_counter() - started["time"],
        )
        history.append(entry)
        if record is not None:
            values = (entry.train_loss, entry.test_l2, entry.test_h1, entry.lr, entry.seconds)
            record(epoch, dict(zip(SERIES, values, strict=True)))

    def report(trainer: Trainer) -> None:
        entry = history[-1]
        logger.info(
            "epoch %d/%d: train %.4e, test l2 %.4e, h1 %.4e, lr %.2e, %.1f s",
            entry.epoch,
            params.epochs,
            entry.train_loss,
            entry.test_l2,
            entry.test_h1,
            entry.lr,
            entry.seconds,
        )
        if callback is not None:
            callback(entry)

    callbacks: list[Any] = [
        total,
        test,
        LambdaCallback(on_epoch_start=epoch_start, on_epoch_end=epoch_end),
    ]
    if save is not None:
        callbacks.append(Checkpoint(save))
    callbacks.append(LambdaCallback(on_epoch_end=report))
    trainer = Trainer(
        model,
        optimizer,
        loss,
        scheduler=scheduler,
        scheduler_interval="epoch",
        callbacks=callbacks,
        data_parallel=True,
        checkpoint_format=CHECKPOINT_FORMAT,
    )
    trainer.load_state(resume)
    trainer.fit(batches, epochs=params.epochs)
    return TrainResult(tuple(history))
