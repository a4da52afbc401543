"""The training loop: :class:`Trainer`, the callback protocol and data-parallel helpers.

A :class:`Trainer` owns a model, an optimizer, an optional learning-rate scheduler (stepped
after every update or after every epoch), a loss ``loss(net, batch)`` and a list of
callbacks. :meth:`Trainer.fit` runs epochs; an epoch is an iterable of batches, and each
batch is one update::

    loss(net, batch) -> finite? -> optimizer.zero_grad -> backward -> optimizer.step
    -> scheduler.step (per update)

with the hooks of the callbacks around it (:class:`Callback`: ``on_fit_start``,
``on_epoch_start``, ``before_step`` with a closure computing the loss of the batch,
``after_step``, ``on_epoch_end``, ``on_fit_end``). A step-based run is one epoch of
``steps`` batches (``trainer.fit(lambda epoch: (batches(s) for s in range(steps)))``). The
callbacks of the project's loops are in :mod:`solvers.callbacks`: evaluation every N steps
or epochs with its record (``Evaluate``, with the mean training loss of the window since the
previous evaluation), training-loss sums per epoch (``LossSum``), hooks at chosen steps
(``StepHooks``, e.g. LoQT's projector refresh or a radiance field's upsampling), early
stopping with the best state restored (``EarlyStopping``), TracIn influence sums (``TracIn``,
arXiv 2002.08484), checkpoints (``Checkpoint``) and plain functions (``LambdaCallback``). A
callback sets ``trainer.stop`` to end the run after the current step.

A non-finite loss raises ``FloatingPointError`` naming the epoch and the step, before the
update (so the last checkpoint stays the last good state). With ``data_parallel=True`` and an
initialized ``torch.distributed`` process group of more than one rank, the model is wrapped in
``DistributedDataParallel`` (the loss gets the wrapped ``net``), the finite check is reduced
over the ranks (all stop together), and :meth:`Trainer.load_state` takes rank 0's checkpoint;
the loss shards each global batch (:func:`local_batch`: contiguous shards, scaled so that
DDP's gradient average is the gradient of the batch mean).

Checkpoints: :meth:`Trainer.state` gives ``(arrays, attrs)`` without pickles
(:func:`tensorsim.nn.state.state_to_arrays`): the groups ``model``, ``optimizer`` and
``scheduler``, the counters ``epoch`` and ``step``, the ``format`` string and the state of
every stateful callback; :meth:`Trainer.load_state` restores it, so a resumed run continues
bit for bit as the uninterrupted one (when the batches depend only on the epoch or step).
The trainer writes no file: :class:`solvers.callbacks.Checkpoint` calls a
``save(arrays, attrs)`` given by the caller (e.g. :meth:`tensorsim.io.Writer.checkpoint`).

The design follows the callback trainers of neuraloperator (``neuralop.training.Trainer``)
and PyTorch Lightning, reduced to what the project's experiments use.

References
----------
G. Pruthi, F. Liu, M. Sundararajan, S. Kale, "Estimating Training Data Influence by Tracing
Gradient Descent", NeurIPS 2020, arXiv 2002.08484 (TracIn).
J. Kossaifi et al., "Multi-Grid Tensorized Fourier Neural Operator for High-Resolution PDEs",
arXiv 2310.00120 (the data-parallel neural-operator training).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import torch

from tensorsim.nn.state import state_from_arrays, state_to_arrays

__all__ = [
    "HOOKS",
    "TRAINER_FORMAT",
    "Callback",
    "Trainer",
    "all_sum",
    "distributed_world",
    "local_batch",
    "shard_bounds",
]

logger = logging.getLogger(__name__)

#: Default value of the checkpoint attribute ``format`` of :meth:`Trainer.state`.
TRAINER_FORMAT = "tensorsim.trainer.v1"

#: The hooks of a :class:`Callback`, in the order of a fit.
HOOKS = (
    "on_fit_start",
    "on_epoch_start",
    "before_step",
    "after_step",
    "on_epoch_end",
    "on_fit_end",
)


# ------------------------------------------------------------------ torch.distributed helpers


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialized ``torch.distributed`` group, else ``(0, 1)``."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Bounds of ``rank``'s contiguous share of ``n`` items (the first ones get one more)."""
    base, extra = divmod(n, world)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (rank < extra)


def local_batch(indices: torch.Tensor, rank: int, world: int) -> tuple[torch.Tensor, float]:
    """The shard of a global batch of sample indices on ``rank``, and the scale of its loss sum.

    The shard is contiguous (:func:`shard_bounds`) and the scale is ``world / len(indices)``:
    each rank's loss is its shard's sum times the scale, so that DDP's average of the ranks'
    gradients is the gradient of the mean over the global batch. A rank whose shard is empty
    (a last batch smaller than the number of ranks) gets the first sample with scale 0.
    """
    lo, hi = shard_bounds(len(indices), rank, world)
    mine, scale = indices[lo:hi], world / len(indices)
    if len(mine) == 0:
        mine, scale = indices[:1], 0.0
    return mine, scale


def all_sum(values: torch.Tensor, world: int) -> torch.Tensor:
    """Sum ``values`` over the ranks in place (``world > 1``) and return it."""
    if world > 1:
        import torch.distributed as dist

        dist.all_reduce(values)
    return values


# ------------------------------------------------------------------ callbacks


class Callback:
    """Base class of the callbacks: every hook does nothing.

    Hooks, in the order a :meth:`Trainer.fit` calls them (each gets the trainer first):
    ``on_fit_start``; per epoch ``on_epoch_start``, per batch ``before_step(trainer, batch,
    closure)`` (``closure()`` returns the loss of the batch with its graph) and, after the
    update, ``after_step(trainer, batch, loss, extra)`` (``loss`` detached, ``extra`` what
    the loss returned besides it, or None), then ``on_epoch_end``; ``on_fit_end`` (not
    called when the run raised). A stateful callback also defines ``state() -> (arrays,
    attrs)`` (groups of arrays and scalar attributes whose names do not clash with the
    trainer's or other callbacks') and ``load_state(arrays, attrs)`` (the groups by name).
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch of a :meth:`Trainer.fit`."""

    def on_epoch_start(self, trainer: Trainer) -> None:
        """At the start of an epoch (``trainer.epoch`` is its number, from 1)."""

    def before_step(self, trainer: Trainer, batch: Any, closure: Callable[[], Any]) -> None:
        """Before the update on ``batch`` (``trainer.step`` updates done so far)."""

    def after_step(self, trainer: Trainer, batch: Any, loss: torch.Tensor, extra: Any) -> None:
        """After the update on ``batch`` (and the per-update scheduler step)."""

    def on_epoch_end(self, trainer: Trainer) -> None:
        """After the epoch's last update and the per-epoch scheduler step."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch of a :meth:`Trainer.fit` that did not raise."""


# ------------------------------------------------------------------ the trainer


def _groups(arrays: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"g/name": a}`` (a read checkpoint) or ``{"g": {"name": a}}`` -> ``{g: {name: a}}``."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in arrays.items():
        if isinstance(value, Mapping):
            out.setdefault(key, {}).update(value)
        else:
            group, _, name = str(key).partition("/")
            out.setdefault(group, {})[name] = value
    return out


class Trainer:
    """The training loop (module docstring).

    Parameters
    ----------
    model
        The module trained in place (``model.train()`` at the start of every epoch).
    optimizer
        A ``torch.optim.Optimizer`` over (some of) its parameters.
    loss
        ``loss(net, batch)`` -> scalar loss tensor, or ``(loss, extra)`` (``extra`` goes to
        the ``after_step`` hooks). ``net`` is the model, or its ``DistributedDataParallel``
        wrapper under data parallelism.
    scheduler
        A learning-rate scheduler of ``optimizer``, or None.
    scheduler_interval
        Step the scheduler after every update (``"step"``) or every epoch (``"epoch"``).
    callbacks
        :class:`Callback` objects (or objects with some of its hooks), called in order
        (:mod:`solvers.callbacks`). A non-finite loss names the last save of those with a
        ``saved_epoch`` (:class:`solvers.callbacks.Checkpoint`).
    data_parallel
        Under an initialized ``torch.distributed`` group of several ranks: wrap the model in
        ``DistributedDataParallel``, reduce the finite check over the ranks and broadcast
        rank 0's checkpoint in :meth:`load_state`.
    checkpoint_format
        The ``format`` attribute of :meth:`state` (checked by :meth:`load_state`).

    Attributes
    ----------
    epoch
        Epochs started (the current one's number during an epoch; completed ones between).
    step
        Updates done.
    batch
        Index of the current batch in its epoch.
    epochs
        The last epoch of the current (or last) :meth:`fit`.
    stop
        Set by a callback to end the fit after the current step.
    finished
        After a fit: whether it ended by ``stop`` or at its last epoch ``epochs``.
    metrics
        Latest metrics of the evaluation callbacks.
    seconds
        Wall time of the updates: drawing the batches, ``before_step`` hooks, loss, backward,
        optimizer and per-update scheduler steps (evaluations and other hooks excluded).
    rank, world
        This process's rank and the number of ranks (``0, 1`` without data parallelism).
    net
        The model, or its DDP wrapper once a fit started under data parallelism.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loss: Callable[[torch.nn.Module, Any], Any],
        *,
        scheduler: Any = None,
        scheduler_interval: Literal["step", "epoch"] = "epoch",
        callbacks: Iterable[Any] = (),
        data_parallel: bool = False,
        checkpoint_format: str = TRAINER_FORMAT,
    ) -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if loss is not None and not callable(loss):
            raise TypeError(f"loss: expected a callable (net, batch), got {type(loss).__name__}")
        if scheduler_interval not in ("step", "epoch"):
            raise ValueError(
                f"scheduler_interval: expected 'step' or 'epoch', got {scheduler_interval!r}"
            )
        self.model = model
        self.optimizer = optimizer
        self.loss = loss
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.callbacks = list(callbacks)
        self.data_parallel = bool(data_parallel)
        self.checkpoint_format = str(checkpoint_format)
        self.rank, self.world = distributed_world() if self.data_parallel else (0, 1)
        self.net: torch.nn.Module = model
        self.epoch = 0
        self.step = 0
        self.batch = 0
        self.epochs = 0
        self.stop = False
        self.finished = False
        self.metrics: dict[str, float] = {}
        self.seconds = 0.0
        self._loaded_epoch: int | None = None

    # ------------------------------------------------------------------ loop

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            fn = getattr(callback, hook, None)
            if fn is not None:
                fn(self, *args)

    def _loss(self, batch: Any) -> tuple[torch.Tensor, Any]:
        out = self.loss(self.net, batch)
        return out if isinstance(out, tuple) else (out, None)

    def _check_finite(self, value: torch.Tensor) -> None:
        if self.world > 1:
            bad = torch.tensor([0.0 if bool(torch.isfinite(value)) else 1.0])
            nonfinite = float(all_sum(bad, self.world)[0]) > 0
        else:
            nonfinite = not bool(torch.isfinite(value))
        if nonfinite:
            savers = [c for c in self.callbacks if hasattr(c, "saved_epoch")]
            saved = [c.saved_epoch for c in savers if c.saved_epoch is not None]
            last = max(saved) if saved else self._loaded_epoch
            if not savers:
                note = f"the last complete epoch is {self.epoch - 1}"
            elif last is None:
                note = "no checkpoint was written"
            else:
                note = f"the last checkpoint (after epoch {last}) is kept"
            raise FloatingPointError(
                f"non-finite training loss ({float(value.detach())} on rank {self.rank}) at "
                f"epoch {self.epoch}, batch {self.batch} (step {self.step}): stopped before "
                f"the update; {note}"
            )

    def _update(self, batch: Any, start: float) -> tuple[torch.Tensor, Any]:
        self._call("before_step", batch, lambda: self._loss(batch)[0])
        value, extra = self._loss(batch)
        self._check_finite(value)
        self.optimizer.zero_grad(set_to_none=True)
        value.backward()
        self.optimizer.step()
        if self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        self.step += 1
        self.seconds += time.perf_counter() - start
        return value.detach(), extra

    def _run_epoch(self, data: Any) -> None:
        self.epoch += 1
        self.batch = 0
        self._call("on_epoch_start")
        self.model.train()
        start = time.perf_counter()
        batches = iter(data(self.epoch) if callable(data) else data)
        self.seconds += time.perf_counter() - start
        while not self.stop:
            start = time.perf_counter()
            try:
                batch = next(batches)
            except StopIteration:
                break
            loss, extra = self._update(batch, start)
            self._call("after_step", batch, loss, extra)
            self.batch += 1
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self.scheduler.step()
        self._call("on_epoch_end")

    def fit(self, data: Any, *, epochs: int = 1, max_epochs: int | None = None) -> Trainer:
        """Train up to epoch ``epochs`` (from ``self.epoch``, e.g. after :meth:`load_state`).

        Parameters
        ----------
        data
            ``data(epoch)`` -> the batches of that epoch (an iterable; ``epoch`` from 1), or
            an iterable of batches run again every epoch.
        epochs
            The last epoch (a resumed run continues up to it).
        max_epochs
            Run at most this many epochs in this call (``trainer.finished`` stays False if
            that stops it before ``epochs``).

        Returns
        -------
        Trainer
            ``self``.

        Raises
        ------
        FloatingPointError
            If a training loss is not finite (before that update).
        """
        for label, value in (("epochs", epochs), ("max_epochs", max_epochs)):
            if value is None and label == "max_epochs":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{label}: expected an integer >= 0, got {value!r}")
        if self.loss is None:
            raise ValueError("loss: this trainer has no loss (it was made to load a state)")
        self.epochs = epochs
        last = epochs if max_epochs is None else min(epochs, self.epoch + max_epochs)
        self.stop = False
        self.finished = False
        if self.world > 1 and self.net is self.model:
            self.net = torch.nn.parallel.DistributedDataParallel(self.model)
        self._call("on_fit_start")
        while self.epoch < last and not self.stop:
            self._run_epoch(data)
        self.finished = self.stop or self.epoch >= epochs
        self._call("on_fit_end")
        return self

    # ------------------------------------------------------------------ checkpoints

    def _parts(self) -> list[tuple[str, Any]]:
        parts = [("model", self.model), ("optimizer", self.optimizer)]
        if self.scheduler is not None:
            parts.append(("scheduler", self.scheduler))
        return parts

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The checkpoint of the run now: ``(arrays, attrs)`` (module docstring).

        Returns
        -------
        arrays : dict
            Groups ``model``, ``optimizer``, ``scheduler`` (if any) of arrays
            (:func:`tensorsim.nn.state.state_to_arrays`, copies) and the callbacks' groups.
        attrs : dict
            ``format``, ``epoch``, ``step``, the layouts ``<group>_layout`` and the callbacks'
            attributes.
        """
        arrays: dict[str, Any] = {}
        attrs: dict[str, Any] = {
            "format": self.checkpoint_format,
            "epoch": int(self.epoch),
            "step": int(self.step),
        }
        for name, obj in self._parts():
            arrays[name], attrs[f"{name}_layout"] = state_to_arrays(obj.state_dict())
        for callback in self.callbacks:
            state = getattr(callback, "state", None)
            if state is None:
                continue
            more_arrays, more_attrs = state()
            clash = (set(more_arrays) & set(arrays)) | (set(more_attrs) & set(attrs))
            if clash:
                raise ValueError(
                    f"state: {type(callback).__name__} reuses the names {sorted(clash)}"
                )
            arrays.update(more_arrays)
            attrs.update(more_attrs)
        return arrays, attrs

    def load_state(self, checkpoint: Any) -> bool:
        """Restore a :meth:`state` (collective under data parallelism).

        Parameters
        ----------
        checkpoint
            A :class:`tensorsim.io.Checkpoint` (``arrays`` by path ``group/name``, ``attrs``),
            an ``(arrays, attrs)`` pair of :meth:`state`, or None (nothing to load). Under
            data parallelism rank 0's is used (the other ranks may pass None).

        Returns
        -------
        bool
            Whether a checkpoint was loaded.

        Raises
        ------
        ValueError
            If it is not a checkpoint of this trainer's format or does not fit.
        """
        if self.world > 1:
            import torch.distributed as dist

            box = [checkpoint]
            dist.broadcast_object_list(box, src=0)
            checkpoint = box[0]
        if checkpoint is None:
            return False
        if isinstance(checkpoint, tuple) and len(checkpoint) == 2:
            arrays, attrs = checkpoint
        else:
            arrays = getattr(checkpoint, "arrays", None)
            attrs = getattr(checkpoint, "attrs", None)
        if not isinstance(attrs, Mapping) or attrs.get("format") != self.checkpoint_format:
            raise ValueError(
                f"resume: not a checkpoint of this trainer (format {self.checkpoint_format})"
            )
        groups = _groups(arrays or {})
        for name, obj in self._parts():
            try:
                obj.load_state_dict(
                    state_from_arrays(groups.get(name, {}), attrs[f"{name}_layout"])
                )
            except (RuntimeError, KeyError, ValueError) as err:
                raise ValueError(f"resume: the {name} state does not fit: {err}") from err
        self.epoch = self._loaded_epoch = int(attrs["epoch"])
        # checkpoints of the loops before this trainer have no step counter
        self.step = int(attrs.get("step", 0))
        for callback in self.callbacks:
            load = getattr(callback, "load_state", None)
            if load is not None:
                load(groups, attrs)
        return True
