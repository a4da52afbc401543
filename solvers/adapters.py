"""Adaptation of a pretrained model and LoQT pretraining, on the training loop of ``fit``.

A task (:class:`Task`, e.g. :class:`problems.adaptation.AdaptationTask`) gives the
evaluation sets and the training batches of a pretraining part ``"a"`` and an adaptation
part ``"b"`` and builds the model. :func:`pretrain` fits a fresh model on part A
(:func:`pretrained_state`, computed once, and :func:`pretrained_model` on every rank);
:func:`adapt_variant` puts one method's adapters (ours, :func:`tensorsim.nn.adapt`, or
peft's) on a copy of it (:data:`VARIANTS`); :func:`adapt_run` trains them on part B;
:func:`pretrain_run` trains a fresh model on part A in full or under LoQT (a frozen base,
NF4 for ``"loqt"``, and a trainable low-rank update re-projected on a schedule). Every run
goes through :func:`fit_measured`: :func:`solvers.steps.fit` (AdamW, linear warm-up then
cosine decay, evaluations every ``eval_every`` steps, LoQT refreshes as step hooks) and the
measurements: curves (:data:`CURVES`), trainable parameters, bytes of weights and optimizer
state, mean time of an update. :class:`TrainingParams` and :class:`LoQTPretrainParams`
configure them.

torch, peft and the training loop are imported by the functions that need them.

References
----------
arXiv 2106.09685 (LoRA), 2404.02948 (PiSSA), 2402.01376 (LoTR), 2506.15251 (SoKA),
2405.16528 (LoQT).
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from tensorsim.config import ConfigError, Params, param

if TYPE_CHECKING:
    import torch

__all__ = [
    "CURVES",
    "PRETRAIN_MODES",
    "VARIANTS",
    "LoQTPretrainParams",
    "Task",
    "TrainingParams",
    "adapt_run",
    "adapt_variant",
    "fit_measured",
    "model_bytes",
    "pretrain",
    "pretrain_run",
    "pretrained_model",
    "pretrained_state",
    "trainable_count",
]

logger = logging.getLogger(__name__)

#: Adaptation variants: name -> (our method or peft's, options). ``full`` trains the
#: targeted layers in full (no adapter); ``peft_*`` use peft's implementations.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "full": ("full", {}),
    "lora": ("lora", {}),
    "pissa": ("lora", {"init": "pissa"}),
    "lotr": ("lotr", {}),
    "lotr_tucker": ("lotr", {"init": "tucker"}),
    "soka": ("soka", {}),
    "soka_energy": ("soka", {"select": "energy_elbow"}),
    "loqt": ("loqt", {"quantize": True, "compensation": 2}),
    "loqt_nq": ("loqt", {"quantize": False}),
    "peft_lora": ("peft_lora", {}),
    "peft_lokr": ("peft_lokr", {}),
}

#: The curves of :func:`fit_measured` over the evaluated steps: name -> long name.
CURVES = {
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy",
    "test_loss": "test cross entropy (nats)",
    "test_accuracy": "test accuracy",
    "train_loss": "mean training loss since the previous evaluation",
}

#: Modes of the LoQT pretraining comparison (:func:`pretrain_run`).
PRETRAIN_MODES = ("full", "loqt_nq", "loqt")


@dataclass(frozen=True)
class TrainingParams(Params):
    """An AdamW run with linear warm-up and cosine decay."""

    steps: int = param(1500, "optimizer steps", ge=1)
    lr: float = param(3e-3, "peak learning rate", gt=0.0)
    warmup: int = param(50, "warm-up steps", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.warmup > self.steps:
            raise ConfigError(
                f"config key 'warmup': expected at most steps={self.steps}, got {self.warmup}"
            )


@dataclass(frozen=True)
class LoQTPretrainParams(Params):
    """LoQT pretraining from scratch (:func:`pretrain_run`; the untargeted layers train in full).

    Attributes
    ----------
    gap
        First gap of the exponential refresh schedule (growth 1.2, refreshes from step 0).
    compensation
        Quantization-error compensation iterations at each refresh (``"loqt"``, NF4 only).
    """

    targets: tuple[str, ...] = param(
        ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
        "linear layers under LoQT (suffix or regex)",
    )
    rank: int = param(32, "LoQT rank", ge=1)
    gap: int = param(50, "first refresh gap (steps)", ge=1)
    alpha: float = param(1.0, "scale of the LoQT update", gt=0.0)
    compensation: int = param(2, "compensation iterations (NF4)", ge=0)
    eval_every: int = param(100, "steps between evaluations", ge=1)


class Task(Protocol):
    """What the runs need of a task (:class:`problems.adaptation.AdaptationTask`).

    Attributes
    ----------
    data
        Part (``"a"``, ``"b"``) -> split (``"val"``, ``"test"``) -> ``(inputs, targets)``.
    build
        ``build(generator)`` -> a fresh model for part A.
    """

    data: Mapping[str, Mapping[str, tuple[Any, Any]]]
    build: Callable[[Any], Any]

    def batches(self, part: str, seed: int) -> Callable[[int], tuple[Any, Any]]:
        """``batches(step)`` -> the training batch of that step of ``part``."""
        ...


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model`` (frozen, trainable, quantized)."""
    from solvers.steps import tensor_bytes

    return tensor_bytes(list(model.parameters())) + tensor_bytes(list(model.buffers()))


def trainable_count(model: torch.nn.Module) -> int:
    """Trainable parameters of an adapted model (peft's count, ours, or ``requires_grad``)."""
    from tensorsim.nn.adapters import trainable_parameters

    if hasattr(model, "get_nb_trainable_parameters"):
        return int(model.get_nb_trainable_parameters()[0])
    if any(hasattr(m, "own_parameters") for m in model.modules()):
        return trainable_parameters(model).trainable
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _evaluate(task: Task, part: str) -> Callable[[torch.nn.Module], dict[str, float]]:
    """``evaluate(model)`` -> loss and accuracy on the validation and test sets of ``part``."""
    from solvers.steps import evaluate_splits

    return lambda model: evaluate_splits(model, {s: task.data[part][s] for s in ("val", "test")})


def pretrain(
    task: Task, training: TrainingParams, *, seed: int
) -> tuple[torch.nn.Module, dict[str, float]]:
    """Fit a fresh model (weights from ``seed``) on part A with the batches of ``seed``.

    Returns the model and its final validation/test loss and accuracy.
    """
    import torch

    from solvers.steps import batch_loss, fit

    model = task.build(torch.Generator().manual_seed(seed))
    result = fit(
        model,
        batches=task.batches("a", seed),
        loss=batch_loss,
        evaluate=_evaluate(task, "a"),
        steps=training.steps,
        lr=training.lr,
        warmup=training.warmup,
        eval_every=max(1, training.steps),
    )
    return model, {k: v[-1] for k, v in result.evals.items()}


def pretrained_state(
    task: Task, training: TrainingParams, *, seed: int
) -> tuple[dict[str, Any], dict[str, float]]:
    """:func:`pretrain`'s weights (a state dict) and metrics, for :func:`pretrained_model`.

    A driver computes them once (on one MPI rank) and gives them to every rank.
    """
    import time

    start = time.perf_counter()
    model, metrics = pretrain(task, training, seed=seed)
    logger.info(
        "pretrained on task A in %.1f s: validation loss %.4f, accuracy %.4f",
        time.perf_counter() - start, metrics["val_loss"], metrics["val_accuracy"],
    )  # fmt: skip
    return model.state_dict(), metrics


def pretrained_model(task: Task, state: dict[str, Any], *, seed: int) -> torch.nn.Module:
    """A fresh model of ``task.build`` (seeded by ``seed``) holding the weights ``state``."""
    import torch

    model = task.build(torch.Generator().manual_seed(seed))
    model.load_state_dict(state)
    return model


def _peft_pattern(targets: Sequence[str]) -> str:
    """The ``target_modules`` of peft regex (full match) for our suffix-or-regex patterns."""
    return "|".join(f"(?:.*\\.)?(?:{p})" for p in targets)


def adapt_variant(
    pretrained: torch.nn.Module, variant: str, targets: Sequence[str], rank: int, *, seed: int
) -> torch.nn.Module:
    """A copy of ``pretrained`` with the adapters of ``variant`` (a key of :data:`VARIANTS`).

    ``targets`` are suffix-or-regex patterns of the adapted linear layers; ``seed`` seeds
    the adapter initialization (peft's from torch's global generator).
    """
    import torch

    from tensorsim.nn.adapters import adapt

    if variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    method, options = VARIANTS[variant]
    model = copy.deepcopy(pretrained)
    generator = torch.Generator().manual_seed(seed)
    if method == "full":
        pattern = re.compile(_peft_pattern(targets))
        for p in model.parameters():
            p.requires_grad_(False)
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and pattern.fullmatch(name):
                m.weight.requires_grad_(True)
        return model
    if method.startswith("peft_"):
        import peft

        torch.manual_seed(seed)
        pattern = _peft_pattern(targets)
        if method == "peft_lora":
            config = peft.LoraConfig(r=rank, lora_alpha=rank, target_modules=pattern)
        else:
            config = peft.LoKrConfig(r=rank, alpha=rank, target_modules=pattern)
        return peft.get_peft_model(model, config)
    return adapt(model, method, list(targets), rank, generator=generator, **options)


def adapt_run(
    pretrained: torch.nn.Module,
    task: Task,
    variant: str,
    targets: Sequence[str],
    rank: int,
    training: TrainingParams,
    *,
    eval_every: int,
    seed: int,
    loqt_gap: int,
) -> dict[str, Any]:
    """Adapt ``pretrained`` to part B with one variant; :func:`fit_measured`'s results.

    The adapters are seeded by ``seed``, the batches by ``1000 + seed``; LoQT variants
    refresh on the exponential schedule with first gap ``loqt_gap``.
    """
    model = adapt_variant(pretrained, variant, targets, rank, seed=seed)
    return fit_measured(
        model,
        task,
        "b",
        1000 + seed,
        training,
        trainable=trainable_count(model),
        refresh_gap=loqt_gap if VARIANTS[variant][0] == "loqt" else None,
        eval_every=eval_every,
    )


def fit_measured(
    model: torch.nn.Module,
    task: Task,
    part: str,
    batch_seed: int,
    training: TrainingParams,
    *,
    trainable: int,
    refresh_gap: int | None,
    eval_every: int,
) -> dict[str, Any]:
    """Train on ``part``'s batches (LoQT refreshes if ``refresh_gap``); curves and sizes.

    Returns
    -------
    dict
        ``steps`` (the evaluated steps), ``{val,test}_{loss,accuracy}`` and ``train_loss``
        over them, ``trainable``, ``weight_bytes`` (:func:`model_bytes` after training),
        ``optimizer_bytes`` and ``step_seconds`` (mean time of an update).
    """
    from solvers.steps import batch_loss, fit, optimizer_state_bytes
    from tensorsim.nn.adapters import refresh_loqt, refresh_steps

    steps = training.steps
    hook_steps: list[int] = []
    before = None
    if refresh_gap is not None:
        hook_steps = refresh_steps("exponential", refresh_gap, steps - 1)

        def before(step: int, closure: Callable[[], torch.Tensor]) -> None:
            refresh_loqt(model, closure)

    result = fit(
        model,
        batches=task.batches(part, batch_seed),
        loss=batch_loss,
        evaluate=_evaluate(task, part),
        steps=steps,
        lr=training.lr,
        warmup=training.warmup,
        eval_every=eval_every,
        before_step=before,
        hook_steps=hook_steps,
    )
    assert result.optimizer is not None
    return {
        "steps": np.asarray(result.steps),
        **{k: np.asarray(v) for k, v in result.evals.items()},
        "train_loss": np.asarray(result.train_loss),
        "trainable": trainable,
        "weight_bytes": model_bytes(model),
        "optimizer_bytes": optimizer_state_bytes(result.optimizer),
        "step_seconds": result.seconds / max(1, steps),
    }


def pretrain_run(
    task: Task, mode: str, loqt: LoQTPretrainParams, training: TrainingParams, *, seed: int
) -> dict[str, Any]:
    """Train a fresh model on part A in full (``"full"``) or under LoQT-nq / LoQT.

    Under LoQT the linear layers of ``loqt.targets`` hold a frozen base (NF4 for
    ``"loqt"``) and a trainable ``B`` re-projected on the exponential schedule (first gap
    ``loqt.gap``, growth 1.2); every other parameter (embedding, norms) trains in full.
    Weights and batches come from ``seed``; returns :func:`fit_measured`'s results.
    """
    import torch

    from tensorsim.nn.adapters import LoQTLinear, adapt

    if mode not in PRETRAIN_MODES:
        raise ValueError(f"mode: expected one of {PRETRAIN_MODES}, got {mode!r}")
    model = task.build(torch.Generator().manual_seed(seed))
    if mode != "full":
        adapt(
            model,
            "loqt",
            list(loqt.targets),
            loqt.rank,
            alpha=loqt.alpha,
            quantize=mode == "loqt",
            compensation=loqt.compensation,
        )
        frozen = [name + "." for name, m in model.named_modules() if isinstance(m, LoQTLinear)]
        for name, p in model.named_parameters():
            if not name.startswith(tuple(frozen)):
                p.requires_grad_(True)
    return fit_measured(
        model,
        task,
        "a",
        seed,
        training,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        refresh_gap=None if mode == "full" else loqt.gap,
        eval_every=loqt.eval_every,
    )
