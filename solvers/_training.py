"""Training and evaluation of neural operators: Adam + StepLR, checkpoints, data parallel.

:func:`train` fits a model on ``(samples, channels, n_1, ..., n_d)`` tensors with Adam and a
step learning-rate decay, one epoch at a time: the samples are shuffled by a generator
seeded with ``(seed, epoch)``, cut into global batches of ``batch_size``, and the model is
updated once per batch on the relative L2 or H1 loss (:mod:`tensorsim.nn.losses`), averaged
over the batch. After every epoch the test errors are computed, the epoch is appended to the
writer's series and a checkpoint (model, optimizer, scheduler, epoch) is written through
:meth:`tensorsim.io.Writer.checkpoint`, atomically and without pickles
(:mod:`tensorsim.nn.state`). Training from a checkpoint continues exactly as the run that
wrote it would have: the shuffling depends only on the seed and the epoch.

Under ``torch.distributed`` (e.g. :func:`tensorsim.nn.distributed.init_torch_distributed`
from ``mpirun``) the model is wrapped in ``DistributedDataParallel`` and each global batch is
split into contiguous shards, one per rank. Each rank's loss is its shard's sum scaled by
``world_size / batch``, so that DDP's gradient average is the gradient of the batch mean:
any number of ranks follows the serial loss curve up to rounding. A rank whose shard is
empty (a last batch smaller than the number of ranks) runs one sample with weight 0.

A non-finite training loss stops the run with ``FloatingPointError`` before the update;
the checkpoint of the previous epoch stays the last one in the file.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tensorsim.config import Params, param
from tensorsim.nn.losses import relative_h1, relative_l2
from tensorsim.nn.state import state_from_arrays, state_to_arrays

__all__ = [
    "CHECKPOINT_FORMAT",
    "SERIES",
    "EpochRecord",
    "TrainParams",
    "TrainResult",
    "evaluate",
    "predict",
    "restore_training_state",
    "train",
    "training_state",
]

logger = logging.getLogger(__name__)

#: Value of the checkpoint attribute ``format`` written by :func:`training_state`.
CHECKPOINT_FORMAT = "tensorsim.operator-training.v1"

_LOSSES = {"l2": relative_l2, "h1": relative_h1}
_PARTS = ("model", "optimizer", "scheduler")

#: The writer series of :func:`train`: name -> (units, long name).
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


def _world() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Bounds of ``rank``'s contiguous share of ``n`` items (the first ones get one more)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def _all_sum(values: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


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
        :func:`solvers.tfno.build_model`), not wrapped in DDP.
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
    rank, world = _world()
    lo, hi = _shard(x.shape[0], rank, world)
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
    sums = _all_sum(sums, world) / x.shape[0]
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


def training_state(
    model: torch.nn.Module, optimizer: Any, scheduler: Any, epoch: int
) -> tuple[dict[str, dict[str, torch.Tensor]], dict[str, Any]]:
    """The checkpoint of a training run after ``epoch``: arrays and attributes.

    Returns
    -------
    state : dict
        Groups ``model``, ``optimizer`` and ``scheduler`` of arrays (for
        :meth:`tensorsim.io.Writer.checkpoint`).
    attrs : dict
        ``epoch``, ``format`` (:data:`CHECKPOINT_FORMAT`) and the JSON layouts
        ``<group>_layout`` of the state dicts (:func:`tensorsim.nn.state.state_to_arrays`).
    """
    state: dict[str, dict[str, torch.Tensor]] = {}
    attrs: dict[str, Any] = {"epoch": int(epoch), "format": CHECKPOINT_FORMAT}
    for name, obj in zip(_PARTS, (model, optimizer, scheduler), strict=True):
        state[name], attrs[f"{name}_layout"] = state_to_arrays(obj.state_dict())
    return state, attrs


def restore_training_state(
    checkpoint: Any, model: torch.nn.Module, optimizer: Any, scheduler: Any
) -> int:
    """Load a checkpoint of :func:`training_state` into model, optimizer and scheduler.

    Parameters
    ----------
    checkpoint
        A :class:`tensorsim.io.Checkpoint` (``arrays`` by path, ``attrs``).

    Returns
    -------
    int
        The epoch after which the checkpoint was written.

    Raises
    ------
    ValueError
        If it is not such a checkpoint or does not fit the model.
    """
    attrs = getattr(checkpoint, "attrs", None)
    arrays = getattr(checkpoint, "arrays", None)
    if not isinstance(attrs, dict) or attrs.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"resume: not a checkpoint of this trainer (format {CHECKPOINT_FORMAT})")
    for name, obj in zip(_PARTS, (model, optimizer, scheduler), strict=True):
        prefix = name + "/"
        own = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
        state = state_from_arrays(own, attrs[f"{name}_layout"])
        try:
            obj.load_state_dict(state)
        except (RuntimeError, KeyError, ValueError) as err:
            raise ValueError(f"resume: the {name} state does not fit: {err}") from err
    return int(attrs["epoch"])


def train(
    model: torch.nn.Module,
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    params: TrainParams | None = None,
    *,
    writer: Any = None,
    resume: Any = None,
    callback: Callable[[EpochRecord], Any] | None = None,
) -> TrainResult:
    """Train a neural operator (module docstring): Adam, StepLR, checkpoints, DDP.

    Parameters
    ----------
    model
        A model with ``in_channels`` and ``out_channels`` attributes (e.g. from
        :func:`solvers.tfno.build_model`), trained in place. Not wrapped in DDP: that is done
        here when a process group is initialized.
    x_train, y_train, x_test, y_test
        Inputs ``(samples, in_channels, n_1, ...)`` and targets
        ``(samples, out_channels, n_1, ...)`` of the model's dtype; every rank holds all of
        them.
    params
        Optimization settings (default :class:`TrainParams`).
    writer
        A :class:`tensorsim.io.Writer` (record dimension: the epoch): each epoch appends the
        series of :data:`SERIES` and writes a checkpoint. With ``resume`` it must be the
        writer of :meth:`~tensorsim.io.Writer.resume` (the series exist); otherwise the
        series are defined here. ``None``: nothing is written.
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
    rank, world = _world()
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, params.step_size, params.gamma)
    done = 0
    if world > 1:
        import torch.distributed as dist

        box = [resume]
        dist.broadcast_object_list(box, src=0)
        resume = box[0]
    if resume is not None:
        done = restore_training_state(resume, model, optimizer, scheduler)
    elif writer is not None:
        for name, (units, long_name) in SERIES.items():
            writer.define_series(name, units=units, long_name=long_name)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    loss_fn = _LOSSES[params.loss]
    n = x_train.shape[0]
    history = []
    for epoch in range(done + 1, params.epochs + 1):
        start_time = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        generator = torch.Generator().manual_seed(params.seed * 1_000_003 + epoch)
        order = torch.randperm(n, generator=generator)
        model.train()
        total = torch.zeros(1, dtype=torch.float64)
        for batch, first in enumerate(range(0, n, params.batch_size)):
            indices = order[first : first + params.batch_size]
            lo, hi = _shard(len(indices), rank, world)
            mine, scale = indices[lo:hi], world / len(indices)
            if len(mine) == 0:
                mine, scale = indices[:1], 0.0
            per_sample = loss_fn(net(x_train[mine]), y_train[mine], "none")
            loss = per_sample.sum() * scale
            bad = torch.tensor([0.0 if bool(torch.isfinite(loss)) else 1.0])
            if float(_all_sum(bad, world)[0]) > 0:
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch}, batch {batch}: stopped; the "
                    f"last checkpoint (after epoch {epoch - 1}) is kept"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scale:
                total += per_sample.detach().sum().double().cpu()
        scheduler.step()
        train_loss = float(_all_sum(total, world)[0]) / n
        test = evaluate(model, x_test, y_test, batch_size=params.eval_batch_size)
        record = EpochRecord(
            epoch, train_loss, test["l2"], test["h1"], lr, time.perf_counter() - start_time
        )
        history.append(record)
        if writer is not None:
            writer.append(
                epoch,
                train_loss=record.train_loss,
                test_l2=record.test_l2,
                test_h1=record.test_h1,
                lr=record.lr,
                epoch_seconds=record.seconds,
            )
            state, attrs = training_state(model, optimizer, scheduler, epoch)
            writer.checkpoint(state, attrs)
        logger.info(
            "epoch %d/%d: train %.4e, test l2 %.4e, h1 %.4e, lr %.2e, %.1f s",
            epoch,
            params.epochs,
            record.train_loss,
            record.test_l2,
            record.test_h1,
            record.lr,
            record.seconds,
        )
        if callback is not None:
            callback(record)
    return TrainResult(tuple(history))
