"""The callbacks of :class:`solvers.training.Trainer`: what the project's training loops use.

- :class:`LambdaCallback`: hooks from plain functions;
- :class:`LossWindow`: the losses of the updates since the last look (their mean, as
  :func:`solvers.steps.fit` records it); :class:`LossSum`: a per-epoch sum of loss terms
  (a Python float or a float64 tensor, optionally summed over the ranks);
- :class:`Evaluate`: evaluation every N updates or epochs (eval mode, no grad), with the
  metrics and the mean training loss since the previous evaluation recorded;
- :class:`StepHooks`: a function with a loss closure before chosen updates (LoQT's
  projector refresh, a radiance field's grid upsampling);
- :class:`EarlyStopping`: patience on a metric, the best state copied and restored;
- :class:`TracIn`: TracIn influence sums after every epoch (arXiv 2002.08484), with the copy
  at the best epoch;
- :class:`Checkpoint`: ``save(*trainer.state())`` every N epochs.

The stateful ones (:class:`EarlyStopping`, :class:`TracIn`) put their state into
:meth:`solvers.training.Trainer.state` and take it back in ``load_state``.

References
----------
G. Pruthi, F. Liu, M. Sundararajan, S. Kale, "Estimating Training Data Influence by Tracing
Gradient Descent", NeurIPS 2020, arXiv 2002.08484 (TracIn).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, Literal

import torch

from solvers.training import HOOKS, Callback, all_sum
from tensorsim.nn.completion import TracInAccumulator
from tensorsim.nn.state import state_from_arrays, state_to_arrays

if TYPE_CHECKING:
    from solvers.training import Trainer

__all__ = [
    "Checkpoint",
    "EarlyStopping",
    "Evaluate",
    "LambdaCallback",
    "LossSum",
    "LossWindow",
    "StepHooks",
    "TracIn",
]

logger = logging.getLogger(__name__)


class LambdaCallback(Callback):
    """A callback from plain functions: ``LambdaCallback(on_epoch_end=f)`` calls ``f(trainer)``.

    Each keyword is a hook name of :class:`~solvers.training.Callback`; the function takes
    the hook's arguments.
    """

    def __init__(self, **hooks: Callable[..., Any]) -> None:
        unknown = sorted(set(hooks) - set(HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hooks {unknown}; expected some of {HOOKS}")
        for name, fn in hooks.items():
            if not callable(fn):
                raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
            setattr(self, name, fn)


class LossWindow(Callback):
    """The training losses of the updates since the last :meth:`mean` (Python floats).

    Attributes
    ----------
    values
        ``float(loss)`` of each update since the last :meth:`mean`.
    """

    def __init__(self) -> None:
        self.values: list[float] = []

    def after_step(self, trainer: Trainer, batch: Any, loss: torch.Tensor, extra: Any) -> None:
        """Append the update's loss."""
        self.values.append(float(loss))

    def mean(self) -> float:
        """``sum(values) / len(values)`` (NaN without values), then forget the values."""
        value = sum(self.values) / len(self.values) if self.values else math.nan
        self.values.clear()
        return value


class LossSum(Callback):
    """A sum of per-update terms of the training loss over each epoch.

    Parameters
    ----------
    term
        ``term(batch, loss, extra)`` -> the value added for an update (None: nothing);
        default ``float(loss)``.
    zero
        ``zero()`` -> the sum at the start of an epoch (default ``0.0``; a tensor is summed in
        place).
    all_reduce
        Sum the (tensor) total over the ranks at the end of each epoch, in place, before the
        callbacks after this one run.

    Attributes
    ----------
    total
        The sum of the current (or last) epoch.
    """

    def __init__(
        self,
        term: Callable[[Any, torch.Tensor, Any], Any] | None = None,
        *,
        zero: Callable[[], Any] = float,
        all_reduce: bool = False,
    ) -> None:
        self.term = term
        self.zero = zero
        self.all_reduce = all_reduce
        self.total: Any = zero()

    def on_epoch_start(self, trainer: Trainer) -> None:
        """Start the epoch's sum."""
        self.total = self.zero()

    def after_step(self, trainer: Trainer, batch: Any, loss: torch.Tensor, extra: Any) -> None:
        """Add the update's term."""
        value = float(loss) if self.term is None else self.term(batch, loss, extra)
        if value is not None:
            self.total += value

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Sum over the ranks (``all_reduce``)."""
        if self.all_reduce:
            all_sum(self.total, trainer.world)


class Evaluate(Callback):
    """Evaluate the model every ``every`` updates or epochs and record the metrics.

    The model is put in eval mode and evaluated under ``torch.no_grad``, then put back in
    train mode. The latest metrics are also in ``trainer.metrics``.

    Parameters
    ----------
    evaluate
        ``evaluate(model)`` -> metrics (name -> float).
    every
        Evaluate after every this many updates (``unit="step"``) or epochs (``"epoch"``).
    unit
        ``"step"`` or ``"epoch"``.
    at_start
        Also evaluate before training (at step or epoch 0 of a fresh run).
    at_end
        Also evaluate at the end of the fit if there were updates since the last evaluation.
    track_loss
        Record the mean training loss of the updates since the previous evaluation with each
        evaluation (NaN at the start).

    Attributes
    ----------
    points
        The evaluated steps or epochs.
    history
        Metric name -> values at ``points``.
    train_loss
        With ``track_loss``: the mean training losses at ``points``.
    """

    def __init__(
        self,
        evaluate: Callable[[torch.nn.Module], Mapping[str, float]],
        *,
        every: int = 1,
        unit: Literal["step", "epoch"] = "epoch",
        at_start: bool = False,
        at_end: bool = True,
        track_loss: bool = False,
    ) -> None:
        if not callable(evaluate):
            raise TypeError(f"evaluate: expected a callable, got {type(evaluate).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every!r}")
        if unit not in ("step", "epoch"):
            raise ValueError(f"unit: expected 'step' or 'epoch', got {unit!r}")
        self.evaluate = evaluate
        self.every = every
        self.unit = unit
        self.at_start = at_start
        self.at_end = at_end
        self.window = LossWindow() if track_loss else None
        self.points: list[int] = []
        self.history: dict[str, list[float]] = {}
        self.train_loss: list[float] = []
        self._pending = False

    def _point(self, trainer: Trainer) -> int:
        return trainer.step if self.unit == "step" else trainer.epoch

    def _run(self, trainer: Trainer) -> None:
        model = trainer.model
        model.eval()
        with torch.no_grad():
            metrics = self.evaluate(model)
        model.train()
        self._pending = False
        point = self._point(trainer)
        self.points.append(point)
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(float(value))
            trainer.metrics[name] = float(value)
        if self.window is not None:
            self.train_loss.append(self.window.mean())
        shown = ", ".join(f"{name} {float(value):.4g}" for name, value in metrics.items())
        loss = f"train loss {self.train_loss[-1]:.4g}, " if self.window is not None else ""
        logger.debug("%s %d: %s%s", self.unit, point, loss, shown)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Evaluate before training (``at_start``, fresh run)."""
        if self.at_start and self._point(trainer) == 0:
            self._run(trainer)

    def after_step(self, trainer: Trainer, batch: Any, loss: torch.Tensor, extra: Any) -> None:
        """Track the loss; evaluate every ``every`` updates (``unit='step'``)."""
        self._pending = True
        if self.window is not None:
            self.window.after_step(trainer, batch, loss, extra)
        if self.unit == "step" and trainer.step % self.every == 0:
            self._run(trainer)

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Evaluate every ``every`` epochs (``unit='epoch'``)."""
        if self.unit == "epoch" and trainer.epoch % self.every == 0:
            self._run(trainer)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Evaluate the last updates if not yet done (``at_end``)."""
        if self.at_end and self._pending:
            self._run(trainer)


class StepHooks(Callback):
    """Call ``hook(step, closure)`` before the updates of chosen steps.

    ``step`` counts the updates before this one (from 0) and ``closure()`` returns the loss
    of this step's batch with its graph (e.g. :func:`tensorsim.nn.adapters.refresh_loqt`
    probes gradients with it).
    """

    def __init__(self, hook: Callable[[int, Callable[[], Any]], Any], steps: Collection[int]):
        if not callable(hook):
            raise TypeError(f"hook: expected a callable, got {type(hook).__name__}")
        self.hook = hook
        self.steps = frozenset(steps)

    def before_step(self, trainer: Trainer, batch: Any, closure: Callable[[], Any]) -> None:
        """Run the hook if this step is one of ``steps``."""
        if trainer.step in self.steps:
            self.hook(trainer.step, closure)


class EarlyStopping(Callback):
    """Stop ``patience`` epochs after the last improvement of a metric; restore the best state.

    After each epoch the metric ``trainer.metrics[monitor]`` (e.g. from an :class:`Evaluate`
    earlier in the list) is compared with the best so far: lower is better. On an improvement
    the model's state dict is copied and ``on_improvement()`` is called. At the end of a fit
    that is complete (stopped here, or at its last epoch; not one cut short by
    ``max_epochs``) the model gets the best copy back (``restore_best``).

    Parameters
    ----------
    monitor
        Name of the metric.
    patience
        Epochs without improvement before stopping (0: never stop).
    restore_best
        Load the best state into the model at the end of a complete fit.
    on_improvement
        Called after each improvement.

    Attributes
    ----------
    best_epoch, best_value
        Epoch (0: none yet) and value of the best metric.
    since
        Epochs since the last improvement.
    best_state
        The model's state dict at the best epoch (at the start before any).

    Notes
    -----
    Checkpoint state: group ``best`` (the best state dict) and attributes ``best_layout``,
    ``since``, ``best_epoch``, ``best_val``.
    """

    def __init__(
        self,
        monitor: str,
        *,
        patience: int,
        restore_best: bool = True,
        on_improvement: Callable[[], Any] | None = None,
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(f"patience: expected an integer >= 0, got {patience!r}")
        self.monitor = monitor
        self.patience = patience
        self.restore_best = restore_best
        self.on_improvement = on_improvement
        self.best_epoch = 0
        self.best_value = math.inf
        self.since = 0
        self.best_state: dict[str, torch.Tensor] | None = None

    def _stopped(self) -> bool:
        return bool(self.patience) and self.since >= self.patience

    @staticmethod
    def _copy(model: torch.nn.Module) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_fit_start(self, trainer: Trainer) -> None:
        """Copy the initial state; stop at once if patience ran out."""
        if self.best_state is None:
            self.best_state = self._copy(trainer.model)
        if self._stopped():
            trainer.stop = True

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Compare the metric with the best; stop after ``patience``."""
        value = trainer.metrics[self.monitor]
        if value < self.best_value:
            self.best_epoch, self.best_value, self.since = trainer.epoch, value, 0
            self.best_state = self._copy(trainer.model)
            if self.on_improvement is not None:
                self.on_improvement()
        else:
            self.since += 1
        if self._stopped():
            trainer.stop = True

    def on_fit_end(self, trainer: Trainer) -> None:
        """Restore the best state at the end of a complete fit."""
        if self.restore_best and trainer.finished and self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The best state dict (group ``best``) and the counters."""
        arrays, layout = state_to_arrays(dict(self.best_state or {}))
        attrs = {
            "since": self.since,
            "best_epoch": self.best_epoch,
            "best_val": self.best_value,
            "best_layout": layout,
        }
        return {"best": arrays}, attrs

    def load_state(self, arrays: Mapping[str, Mapping[str, Any]], attrs: Mapping[str, Any]):
        """Restore :meth:`state`."""
        try:
            self.best_state = state_from_arrays(arrays.get("best", {}), attrs["best_layout"])
            self.since = int(attrs["since"])
            self.best_epoch = int(attrs["best_epoch"])
            self.best_value = float(attrs["best_val"])
        except KeyError as err:
            raise ValueError(
                f"resume: the checkpoint has no early-stopping state ({err})"
            ) from err


class TracIn(Callback):
    """TracIn influence: after every epoch add the scores of the training samples.

    Parameters
    ----------
    scores
        ``scores(model)`` -> one epoch's scores of the ``n`` training samples (e.g.
        :func:`tensorsim.nn.completion.tracin_scores`).
    n
        Number of training samples.

    Attributes
    ----------
    accumulator
        The :class:`tensorsim.nn.completion.TracInAccumulator` (running sum, copy at the best
        epoch: give :meth:`mark_best` to :class:`EarlyStopping` as ``on_improvement``).
    seconds
        Wall time of the score passes.

    Notes
    -----
    Checkpoint state: group ``influence`` and attributes ``influence_epochs``,
    ``influence_best_epoch``. arXiv 2002.08484.
    """

    def __init__(self, scores: Callable[[torch.nn.Module], torch.Tensor], n: int) -> None:
        if not callable(scores):
            raise TypeError(f"scores: expected a callable, got {type(scores).__name__}")
        self.scores = scores
        self.accumulator = TracInAccumulator(n)
        self.seconds = 0.0

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Add the epoch's scores."""
        start = time.perf_counter()
        self.accumulator.add(self.scores(trainer.model))
        self.seconds += time.perf_counter() - start

    def mark_best(self) -> None:
        """Remember the current sums as those up to the best epoch."""
        self.accumulator.mark_best()

    def state(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The sums (group ``influence``) and their epoch counters."""
        arrays, extra = self.accumulator.state()
        return {"influence": arrays}, {f"influence_{k}": v for k, v in extra.items()}

    def load_state(self, arrays: Mapping[str, Mapping[str, Any]], attrs: Mapping[str, Any]):
        """Restore :meth:`state`."""
        if "influence_epochs" not in attrs:
            raise ValueError("resume: the checkpoint holds no influence sums")
        extra = {"epochs": attrs["influence_epochs"], "best_epoch": attrs["influence_best_epoch"]}
        self.accumulator.load_state(dict(arrays.get("influence", {})), extra)


class Checkpoint(Callback):
    """Call ``save(*trainer.state())`` after every ``every`` epochs.

    ``save(arrays, attrs)`` is e.g. :meth:`tensorsim.io.Writer.checkpoint`. Put it after the
    callbacks whose state or records the checkpoint must include. ``saved_epoch`` is the epoch
    of the last save (None before); a non-finite loss names it.
    """

    def __init__(self, save: Callable[[dict[str, Any], dict[str, Any]], Any], *, every: int = 1):
        if not callable(save):
            raise TypeError(f"save: expected a callable, got {type(save).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {every!r}")
        self.save = save
        self.every = every
        self.saved_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer) -> None:
        """Save the trainer's state every ``every`` epochs."""
        if trainer.epoch % self.every == 0:
            self.save(*trainer.state())
            self.saved_epoch = trainer.epoch
