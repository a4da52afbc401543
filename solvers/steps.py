"""Step-based training of small models: linear warm-up then cosine decay, evaluations.

:func:`fit` runs ``steps`` optimizer steps (AdamW unless an ``optimizer`` factory is
given) on the trainable parameters of a model, each on the batch that ``batches(step)``
returns, and evaluates the model every ``eval_every`` steps (and after the last). The
batches are a function of the step number only, so two runs with the same batch function
see the same data whatever else differs (method, optimizer, rank, learning rate). A
``before_step`` hook runs ahead of chosen steps with a closure computing the loss of that
step's batch: LoQT refreshes its projectors there
(:func:`tensorsim.nn.adapters.refresh_loqt`). A non-finite loss stops the run with
``FloatingPointError`` before the update.

The loop is :class:`solvers.training.Trainer` (one epoch of ``steps`` batches, the schedule
stepped per update) with an :class:`~solvers.callbacks.Evaluate` callback that also records
the mean training loss between evaluations and :class:`~solvers.callbacks.StepHooks`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from solvers.callbacks import Evaluate, StepHooks
from solvers.training import Callback, Trainer

__all__ = [
    "FitResult",
    "batch_loss",
    "cross_entropy",
    "evaluate_splits",
    "OptimizerFactory",
    "cosine_schedule",
    "fit",
    "optimizer_state_bytes",
    "tensor_bytes",
]

logger = logging.getLogger(__name__)

Batch = tuple[torch.Tensor, torch.Tensor]

#: ``factory(params, lr)`` -> an optimizer over ``params`` with peak learning rate ``lr``.
OptimizerFactory = Callable[[list[torch.nn.Parameter], float], torch.optim.Optimizer]


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    steps
        The evaluated steps (after that many updates; 0 = before training).
    evals
        Metric name -> values at ``steps`` (what ``evaluate`` returned).
    train_loss
        Mean training loss of the updates since the previous evaluation (NaN at step 0).
    seconds
        Wall time of the updates (evaluations excluded).
    optimizer
        The optimizer, with its state (for memory accounting).
    """

    steps: list[int] = field(default_factory=list)
    evals: dict[str, list[float]] = field(default_factory=dict)
    train_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    optimizer: torch.optim.Optimizer | None = None


def cosine_schedule(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def tensor_bytes(tensors: Any) -> int:
    """Bytes held by the tensors in a (nested) dict/list/tuple; other leaves count 0."""
    if isinstance(tensors, torch.Tensor):
        return tensors.numel() * tensors.element_size()
    if isinstance(tensors, Mapping):
        return sum(tensor_bytes(v) for v in tensors.values())
    if isinstance(tensors, list | tuple):
        return sum(tensor_bytes(v) for v in tensors)
    return 0


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the tensors in ``optimizer.state`` (moments, step counters, ...)."""
    return sum(tensor_bytes(state) for state in optimizer.state.values())


def fit(
    model: torch.nn.Module,
    *,
    batches: Callable[[int], Batch],
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor],
    evaluate: Callable[[torch.nn.Module], Mapping[str, float]],
    steps: int,
    lr: float,
    warmup: int = 0,
    weight_decay: float = 0.0,
    eval_every: int = 100,
    before_step: Callable[[int, Callable[[], torch.Tensor]], Any] | None = None,
    hook_steps: Collection[int] = (),
    optimizer: OptimizerFactory | None = None,
) -> FitResult:
    """Train the parameters of ``model`` that require grad with AdamW or a given optimizer.

    Parameters
    ----------
    model
        Trained in place (put in train mode for updates, eval mode for evaluations).
    batches
        ``batches(step)`` -> ``(inputs, targets)`` of that step.
    loss
        ``loss(model, batch)`` -> scalar loss tensor.
    evaluate
        ``evaluate(model)`` -> metrics (floats), called under ``torch.no_grad``.
    steps
        Number of updates (``>= 0``).
    lr
        Peak learning rate (``> 0``).
    warmup
        Linear warm-up steps before the cosine decay (``0 <= warmup <= steps``).
    weight_decay
        Decoupled weight decay of the default AdamW (with ``optimizer``, give the weight
        decay to the factory instead; a non-zero value here then raises ``ValueError``).
    eval_every
        Evaluate every this many steps (and at 0 and ``steps``).
    before_step
        ``before_step(step, closure)`` runs before the update of each step in
        ``hook_steps``; ``closure()`` returns the loss on that step's batch (with graph).
    hook_steps
        Steps at which ``before_step`` runs.
    optimizer
        ``optimizer(params, lr)`` -> the ``torch.optim.Optimizer`` to use over the list of
        trainable parameters, with peak learning rate ``lr`` (the schedule scales each
        group's ``lr``); None: ``torch.optim.AdamW(params, lr=lr,
        weight_decay=weight_decay)``.

    Returns
    -------
    FitResult

    Raises
    ------
    ValueError
        On bad arguments or a model without trainable parameters.
    TypeError
        If ``optimizer`` is not callable or does not return a ``torch.optim.Optimizer``.
    FloatingPointError
        If a training loss is not finite.
    """
    for label, value, low in (
        ("steps", steps, 0),
        ("warmup", warmup, 0),
        ("eval_every", eval_every, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{label}: expected an integer >= {low}, got {value!r}")
    if warmup > steps:
        raise ValueError(f"warmup: expected at most steps={steps}, got {warmup}")
    if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr: expected a positive number, got {lr!r}")
    if optimizer is not None and not callable(optimizer):
        raise TypeError(
            f"optimizer: expected a callable (params, lr) -> torch.optim.Optimizer or None, "
            f"got {type(optimizer).__name__}"
        )
    if optimizer is not None and weight_decay != 0:
        raise ValueError(
            f"weight_decay: applies to the default AdamW only, got {weight_decay!r} with an "
            "optimizer factory (give the weight decay to the factory)"
        )
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no parameter that requires grad")
    if optimizer is None:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = optimizer(params, lr)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer: the factory returned {type(opt).__name__}, expected a "
                "torch.optim.Optimizer"
            )
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_schedule(s, steps, warmup))
    evaluation = Evaluate(evaluate, every=eval_every, unit="step", at_start=True, track_loss=True)
    callbacks: list[Callback] = [evaluation]
    if before_step is not None:
        callbacks.insert(0, StepHooks(before_step, hook_steps))
    trainer = Trainer(
        model, opt, loss, scheduler=scheduler, scheduler_interval="step", callbacks=callbacks
    )
    trainer.fit(lambda epoch: (batches(step) for step in range(steps)), epochs=1)
    return FitResult(
        steps=evaluation.points,
        evals=evaluation.history,
        train_loss=evaluation.train_loss,
        seconds=trainer.seconds,
        optimizer=opt,
    )


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy over all positions (classes or next characters)."""
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)
    )


def batch_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Mean cross entropy of the model's logits on ``batch``."""
    return cross_entropy(model(batch[0]), batch[1])


def evaluate_splits(model: torch.nn.Module, data: Mapping[str, Batch]) -> dict[str, float]:
    """``{split}_loss`` (nats) and ``{split}_accuracy`` of ``model`` on every split of ``data``."""
    out = {}
    for split, (x, y) in data.items():
        logits = model(x)
        out[f"{split}_loss"] = float(cross_entropy(logits, y))
        out[f"{split}_accuracy"] = float((logits.argmax(-1) == y).double().mean())
    return out
