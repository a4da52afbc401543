"""The runs of ``drivers.smmf``: tasks on torch tensors, the optimizers, one training run.

A :class:`Task` holds a model builder, the training batch of every step (a function of the
seed and the step only, so every optimizer sees the same data) and the validation and test
sets. :func:`make_optimizer` builds one of :data:`OPTIMIZERS`; :func:`train_run` trains a
fresh model with it through :func:`solvers.steps.fit` and returns the curves, the measured
optimizer-state bytes and their prediction (:func:`predicted_state_bytes`).

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from drivers._tasks import Batch, batch_loss, digits_split, evaluate_splits, spaced_windows
from problems.adaptation import digits_tasks
from problems.language import VOCAB, load_corpus, sample_batch
from problems.small_models import build_char_transformer, build_digits_cnn, build_digits_mlp
from solvers.steps import fit
from tensorsim.optim import SMMF, smmf_matrix_shape, smmf_state_bytes, state_bytes

__all__ = [
    "LABELS",
    "OPTIMIZERS",
    "Task",
    "char_task",
    "digits_task",
    "make_optimizer",
    "predicted_state_bytes",
    "tensor_table",
    "train_run",
]

logger = logging.getLogger("drivers.smmf")

#: The compared optimizers (config names), in table order.
OPTIMIZERS = ("adam", "adamw", "adafactor", "came", "sm3", "smmf")

#: Display names of :data:`OPTIMIZERS`.
LABELS = {
    "adam": "Adam",
    "adamw": "AdamW",
    "adafactor": "Adafactor (torch)",
    "came": "CAME",
    "sm3": "SM3",
    "smmf": "SMMF",
}


def make_optimizer(
    name: str,
    params: list[torch.nn.Parameter],
    lr: float,
    *,
    weight_decay: float = 0.0,
    decay_rate: float = -0.5,
) -> torch.optim.Optimizer:
    """One of :data:`OPTIMIZERS` over ``params``, every other option at its library default.

    ``adam``/``adamw``: ``torch.optim.Adam`` (L2 weight decay) / ``AdamW`` (decoupled);
    ``adafactor``: ``torch.optim.Adafactor`` (``lr`` is its relative step cap);
    ``came``, ``sm3``: ``pytorch_optimizer.CAME``, ``SM3`` (SM3 has no weight decay);
    ``smmf``: :class:`tensorsim.optim.SMMF` with ``decay_rate``.

    Raises
    ------
    ValueError
        On an unknown ``name`` or a non-zero ``weight_decay`` for SM3.
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"name: expected one of {OPTIMIZERS}, got {name!r}")
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "adafactor":
        return torch.optim.Adafactor(params, lr=lr, weight_decay=weight_decay)
    if name == "smmf":
        return SMMF(params, lr=lr, weight_decay=weight_decay, decay_rate=decay_rate)
    import pytorch_optimizer

    if name == "came":
        return pytorch_optimizer.CAME(params, lr=lr, weight_decay=weight_decay)
    if weight_decay != 0:
        raise ValueError(f"weight_decay: SM3 takes none, got {weight_decay!r}")
    return pytorch_optimizer.SM3(params, lr=lr)


def predicted_state_bytes(name: str, params: Sequence[torch.Tensor]) -> float:
    """Optimizer-state bytes predicted by formula, NaN where no formula is kept here.

    SMMF: :func:`tensorsim.optim.smmf_state_bytes` per parameter (``2 (n + m)`` floats and
    ``ceil(n m / 8)`` sign bytes for its ``n x m`` matricization); Adam and AdamW: two
    moments of every entry plus torch's float32 step counter per parameter.
    """
    if name == "smmf":
        return float(sum(smmf_state_bytes(p.shape, float_bytes=p.element_size()) for p in params))
    if name in ("adam", "adamw"):
        return float(sum(2 * p.numel() * p.element_size() + 4 for p in params))
    return math.nan


def tensor_table(model: torch.nn.Module) -> dict[str, Any]:
    """Per trainable tensor: name, size, SMMF matricization and SMMF / Adam state bytes."""
    names, size, rows, cols, smmf, adam = [], [], [], [], [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        n, m = smmf_matrix_shape(tuple(p.shape))
        names.append(name)
        size.append(p.numel())
        rows.append(n)
        cols.append(m)
        smmf.append(smmf_state_bytes(p.shape, float_bytes=p.element_size()))
        adam.append(2 * p.numel() * p.element_size() + 4)
    return {
        "names": names,
        **{
            k: np.asarray(v, dtype=np.int64)
            for k, v in (
                ("size", size),
                ("rows", rows),
                ("cols", cols),
                ("smmf_bytes", smmf),
                ("adam_bytes", adam),
            )
        },
    }


@dataclass
class Task:
    """A model with its data.

    Attributes
    ----------
    data
        ``"val"``, ``"test"`` -> ``(inputs, targets)``.
    sample
        ``sample(seed, step)`` -> the training batch of that step.
    build
        ``build(seed)`` -> a fresh model.
    """

    data: dict[str, Batch]
    sample: Callable[[int, int], Batch]
    build: Callable[[int], torch.nn.Module]

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        """``{split}_loss`` (mean cross entropy, nats) and ``{split}_accuracy`` per split."""
        return evaluate_splits(model, self.data)


def digits_task(model: str, *, batch_size: int, val_fraction: float, data_seed: int) -> Task:
    """Digits (:func:`problems.adaptation.digits_tasks`, task A) for the CNN or the MLP.

    The test set is that function's (30%); a stratified ``val_fraction`` of the training
    part is held out for validation (learning-rate selection). Batches are drawn with
    replacement from the rest.
    """
    if model not in ("cnn", "mlp"):
        raise ValueError(f"model: expected 'cnn' or 'mlp', got {model!r}")
    task = digits_tasks(data_seed)[0]
    data, sample = digits_split(
        task, val_fraction=val_fraction, seed=data_seed, batch_size=batch_size
    )
    builder = build_digits_cnn if model == "cnn" else build_digits_mlp
    return Task(data, sample, lambda seed: builder(seed=seed))


def char_task(
    *,
    corpus: str,
    max_chars: int | None,
    context: int,
    batch_size: int,
    eval_windows: int,
    width: int,
    layers: int,
    heads: int,
) -> Task:
    """Next-character prediction on an offline corpus (:func:`problems.language.load_corpus`).

    Training windows of ``context`` characters are drawn at random from the training text;
    validation and test are ``eval_windows`` evenly spaced windows from the first and the
    second half of the held-out tail (the last 10% of the text). The model is
    :func:`problems.small_models.build_char_transformer`.
    """
    text = load_corpus(corpus, max_chars=max_chars)
    half = text.val.size // 2
    data = {}
    for split, ids in (("val", text.val[:half]), ("test", text.val[half:])):
        if ids.size < context + 1:
            raise ValueError(
                f"max_chars: the held-out {split} text ({ids.size} characters) is shorter "
                f"than a window of context={context} + 1"
            )
        data[split] = spaced_windows(ids, context, eval_windows)
    train = text.train

    def sample(seed: int, step: int) -> Batch:
        x, y = sample_batch(train, batch_size, context, np.random.default_rng([seed, step]))
        return torch.from_numpy(x), torch.from_numpy(y)

    def build(seed: int) -> torch.nn.Module:
        return build_char_transformer(
            len(VOCAB), context, width=width, layers=layers, heads=heads, seed=seed
        )

    return Task(data, sample, build)


def train_run(
    task: Task,
    optimizer: str,
    lr: float,
    seed: int,
    *,
    steps: int,
    warmup: int,
    eval_every: int,
    weight_decay: float,
    decay_rate: float,
) -> dict[str, Any]:
    """Train a fresh model (initial weights from ``seed``) with one optimizer and lr.

    Linear warm-up over ``warmup`` steps, then cosine decay to 0 (the same schedule for all
    optimizers). Returns the curves over the evaluated steps, ``state_bytes`` (measured
    with :func:`tensorsim.optim.state_bytes` after training), ``formula_bytes``
    (:func:`predicted_state_bytes`), ``parameters``, ``step_seconds`` (mean wall time
    of one update, batch and backward included) and ``diverged``: a run whose training
    loss turns non-finite stops there, with NaN curves and step time (the sweep goes on).
    """
    model = task.build(seed)
    made: list[torch.optim.Optimizer] = []

    def factory(params: list[torch.nn.Parameter], peak: float) -> torch.optim.Optimizer:
        made.append(
            make_optimizer(
                optimizer, params, peak, weight_decay=weight_decay, decay_rate=decay_rate
            )
        )
        return made[-1]

    params = [p for p in model.parameters() if p.requires_grad]
    common = {
        "formula_bytes": predicted_state_bytes(optimizer, params),
        "parameters": sum(p.numel() for p in params),
    }
    try:
        result = fit(
            model,
            batches=lambda step: task.sample(seed, step),
            loss=batch_loss,
            evaluate=task.evaluate,
            steps=steps,
            lr=lr,
            warmup=warmup,
            eval_every=eval_every,
            optimizer=factory,
        )
    except FloatingPointError as exc:
        logger.warning("%s lr %.1e seed %d diverged: %s", optimizer, lr, seed, exc)
        evaluated = sorted({0, steps, *range(eval_every, steps + 1, eval_every)})
        nan = np.full(len(evaluated), np.nan)
        return {
            "steps": np.asarray(evaluated),
            **{f"{s}_{m}": nan for s in task.data for m in ("loss", "accuracy")},
            "train_loss": nan,
            "state_bytes": state_bytes(made[-1]),
            "step_seconds": math.nan,
            "diverged": True,
            **common,
        }
    assert result.optimizer is not None
    return {
        "steps": np.asarray(result.steps),
        **{k: np.asarray(v) for k, v in result.evals.items()},
        "train_loss": np.asarray(result.train_loss),
        "state_bytes": state_bytes(result.optimizer),
        "step_seconds": result.seconds / max(1, steps),
        "diverged": False,
        **common,
    }
