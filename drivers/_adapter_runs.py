"""The tasks of ``drivers.adapters``: data on torch, models, pretraining, one adaptation run.

A :class:`Task` puts one pretrain/adapt pair of :mod:`problems.adaptation` on torch tensors:
the batch of every step (a function of the step only), the evaluation of a split, the loss.
:func:`pretrain` fits a fresh model on task A; :func:`adapt_variant` puts one method's
adapters (ours or peft's) on a copy of it; :func:`adapt_run` trains them on task B and
returns curves, final metrics, parameter counts and bytes.
"""

from __future__ import annotations

import copy
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from drivers._tasks import (
    Batch,
    batch_loss,
    digits_split,
    evaluate_splits,
    spaced_windows,
    windows,
)
from problems.adaptation import build_mlp, digits_tasks
from problems.language import VOCAB, load_corpus
from solvers.steps import fit, optimizer_state_bytes, tensor_bytes
from tensorsim.nn.adapters import (
    LoQTLinear,
    adapt,
    refresh_loqt,
    refresh_steps,
    trainable_parameters,
)

__all__ = [
    "VARIANTS",
    "Task",
    "adapt_run",
    "adapt_variant",
    "char_task",
    "digits_task",
    "model_bytes",
    "pretrain",
    "pretrain_run",
]

logger = logging.getLogger("drivers.adapters")

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


@dataclass
class Task:
    """One pretrain (A) / adapt (B) pair on torch tensors.

    Attributes
    ----------
    data
        ``"a"``/``"b"`` -> evaluation split (``"val"``, ``"test"``) -> ``(x, y)``.
    sample
        ``sample(part, seed, step)`` -> the training batch of that step.
    build
        ``build(generator)`` -> a fresh model for task A.
    """

    data: dict[str, dict[str, Batch]]
    sample: Callable[[str, int, int], Batch]
    build: Callable[[torch.Generator], torch.nn.Module]

    def batches(self, part: str, seed: int) -> Callable[[int], Batch]:
        """``batches(step)``: the training batch of that step of ``part`` (``"a"``/``"b"``)."""
        return lambda step: self.sample(part, seed, step)

    def evaluate(self, part: str, splits: Sequence[str]) -> Callable[[torch.nn.Module], dict]:
        """``evaluate(model)`` -> ``{split}_loss`` and ``{split}_accuracy`` for ``splits``."""
        return lambda model: evaluate_splits(model, {s: self.data[part][s] for s in splits})


def digits_task(
    *, width: int, depth: int, batch_size: int, seed: int, val_fraction: float
) -> Task:
    """Digits (A) and pixel-permuted digits (B) for :func:`problems.adaptation.build_mlp`.

    A stratified ``val_fraction`` of each training split is held out for validation.
    """
    data, samplers = {}, {}
    for part, task in zip("ab", digits_tasks(seed)[:2], strict=True):
        data[part], samplers[part] = digits_split(
            task, val_fraction=val_fraction, seed=seed, batch_size=batch_size
        )

    def sample(part: str, batch_seed: int, step: int) -> Batch:
        return samplers[part](batch_seed, step)

    return Task(data, sample, lambda g: build_mlp(width=width, depth=depth, generator=g))


def char_task(
    *,
    d_model: int,
    n_layers: int,
    n_heads: int,
    seq_len: int,
    batch_size: int,
    eval_windows: int,
    max_chars: int | None,
) -> Task:
    """Python source (A) and Python's help topics (B) for a decoder language model.

    The model is :class:`tensorsim.nn.transformer.Decoder`.

    Training windows are random; validation and test are ``eval_windows`` evenly spaced
    windows from the two halves of each corpus's held-out tail.
    """
    from tensorsim.nn.transformer import Decoder

    train, data = {}, {}
    for part, name in (("a", "python_source"), ("b", "python_docs")):
        corpus = load_corpus(name, max_chars=max_chars)
        half = corpus.val.size // 2
        train[part] = corpus.train
        data[part] = {
            "val": spaced_windows(corpus.val[:half], seq_len, eval_windows),
            "test": spaced_windows(corpus.val[half:], seq_len, eval_windows),
        }

    def sample(part: str, batch_seed: int, step: int) -> Batch:
        ids = train[part]
        rng = np.random.default_rng([batch_seed, step])
        return windows(ids, rng.integers(0, ids.size - seq_len - 1, size=batch_size), seq_len)

    def build(generator: torch.Generator) -> torch.nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            return Decoder(
                len(VOCAB),
                d_model=d_model,
                n_layers=n_layers,
                n_heads=n_heads,
                max_seq_len=seq_len,
            )

    return Task(data, sample, build)


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of every parameter and buffer of ``model`` (frozen, trainable, quantized)."""
    return tensor_bytes(list(model.parameters())) + tensor_bytes(list(model.buffers()))


def pretrain(task: Task, *, steps: int, lr: float, warmup: int, seed: int) -> tuple[Any, dict]:
    """Fit a fresh model on task A; return it and its final validation/test metrics."""
    model = task.build(torch.Generator().manual_seed(seed))
    result = fit(
        model,
        batches=task.batches("a", seed),
        loss=batch_loss,
        evaluate=task.evaluate("a", ("val", "test")),
        steps=steps,
        lr=lr,
        warmup=warmup,
        eval_every=max(1, steps),
    )
    return model, {k: v[-1] for k, v in result.evals.items()}


def _peft_pattern(targets: Sequence[str]) -> str:
    """The ``target_modules`` of peft regex (full match) for our suffix-or-regex patterns."""
    return "|".join(f"(?:.*\\.)?(?:{p})" for p in targets)


def adapt_variant(
    pretrained: torch.nn.Module,
    variant: str,
    targets: Sequence[str],
    rank: int,
    *,
    seed: int,
) -> torch.nn.Module:
    """A copy of ``pretrained`` with the adapters of ``variant`` (a key of :data:`VARIANTS`)."""
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
    *,
    steps: int,
    lr: float,
    warmup: int,
    eval_every: int,
    seed: int,
    loqt_gap: int,
) -> dict[str, Any]:
    """Adapt ``pretrained`` to task B with one variant; return curves, metrics and sizes."""
    model = adapt_variant(pretrained, variant, targets, rank, seed=seed)
    return _fit_measured(
        model,
        task,
        "b",
        1000 + seed,
        trainable=_counts(model),
        refresh_gap=loqt_gap if VARIANTS[variant][0] == "loqt" else None,
        steps=steps,
        lr=lr,
        warmup=warmup,
        eval_every=eval_every,
    )


def _fit_measured(
    model: torch.nn.Module,
    task: Task,
    part: str,
    batch_seed: int,
    *,
    trainable: int,
    refresh_gap: int | None,
    steps: int,
    lr: float,
    warmup: int,
    eval_every: int,
) -> dict[str, Any]:
    """Train on ``part``'s batches (LoQT refreshes if ``refresh_gap``); curves and sizes."""
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
        evaluate=task.evaluate(part, ("val", "test")),
        steps=steps,
        lr=lr,
        warmup=warmup,
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


def _counts(model: torch.nn.Module) -> int:
    if hasattr(model, "get_nb_trainable_parameters"):
        return int(model.get_nb_trainable_parameters()[0])
    if any(hasattr(m, "own_parameters") for m in model.modules()):
        return trainable_parameters(model).trainable
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: Modes of the LoQT pretraining comparison.
PRETRAIN_MODES = ("full", "loqt_nq", "loqt")


def pretrain_run(
    task: Task,
    mode: str,
    *,
    targets: Sequence[str],
    rank: int,
    gap: int,
    alpha: float,
    compensation: int,
    steps: int,
    lr: float,
    warmup: int,
    eval_every: int,
    seed: int,
) -> dict[str, Any]:
    """Train a fresh model on task A in full (``"full"``) or under LoQT-nq / LoQT.

    Under LoQT the targeted linear layers hold a frozen base (NF4 for ``"loqt"``) and a
    trainable ``B`` re-projected on the exponential schedule (first gap ``gap``, growth 1.2);
    every other parameter (embedding, norms) trains in full.
    """
    if mode not in PRETRAIN_MODES:
        raise ValueError(f"mode: expected one of {PRETRAIN_MODES}, got {mode!r}")
    model = task.build(torch.Generator().manual_seed(seed))
    if mode != "full":
        adapt(
            model,
            "loqt",
            list(targets),
            rank,
            alpha=alpha,
            quantize=mode == "loqt",
            compensation=compensation,
        )
        frozen = [name + "." for name, m in model.named_modules() if isinstance(m, LoQTLinear)]
        for name, p in model.named_parameters():
            if not name.startswith(tuple(frozen)):
                p.requires_grad_(True)
    return _fit_measured(
        model,
        task,
        "a",
        seed,
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        refresh_gap=None if mode == "full" else gap,
        steps=steps,
        lr=lr,
        warmup=warmup,
        eval_every=eval_every,
    )
