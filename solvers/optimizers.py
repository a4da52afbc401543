"""Optimizer comparisons: Adam, AdamW, Adafactor, CAME, SM3 and SMMF on one small model.

:class:`OptimParams` holds every optimizer's default learning rate and weight decay
(:class:`OptimizerParams`), the learning-rate grid and SMMF's ``decay_rate``;
:func:`make_optimizer` builds one of :data:`OPTIMIZERS` over a model's parameters;
:func:`predicted_state_bytes` and :func:`tensor_table` give the optimizer-state bytes by
formula; :func:`train_run` trains a fresh model with one optimizer and learning rate through
:func:`solvers.steps.fit` and returns the curves, the measured optimizer-state bytes and
their prediction.

The task a run trains on is passed in (this module imports no problem): any object with
``data`` (``"val"``, ``"test"`` -> ``(inputs, targets)``), ``sample(seed, step)`` (the
training batch of that step) and ``build(seed)`` (a fresh model), e.g.
:class:`problems.adaptation.ModelTask`.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from solvers.steps import batch_loss, evaluate_splits, fit
from tensorsim.config import ConfigError, Params, param
from tensorsim.optim import SMMF, smmf_matrix_shape, smmf_state_bytes, state_bytes

__all__ = [
    "CURVES",
    "OPTIMIZERS",
    "STEP_COSTS",
    "TENSOR_COLUMNS",
    "OptimParams",
    "OptimizerParams",
    "make_optimizer",
    "predicted_state_bytes",
    "tensor_table",
    "train_run",
]

logger = logging.getLogger(__name__)

#: The compared optimizers (config names), in table order.
OPTIMIZERS = ("adam", "adamw", "adafactor", "came", "sm3", "smmf")

#: Curves of :func:`train_run` over the evaluated steps: name -> long name.
CURVES = {
    "train_loss": "mean training loss since the previous evaluation (nats)",
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy",
    "test_loss": "test cross entropy (nats)",
    "test_accuracy": "test accuracy",
}

#: Columns of :func:`tensor_table`: name -> (units, long name).
TENSOR_COLUMNS = {
    "size": (None, "entries of the tensor"),
    "rows": (None, "rows n of SMMF's n x m matricization"),
    "cols": (None, "columns m of SMMF's n x m matricization"),
    "smmf_bytes": ("B", "SMMF state bytes by formula (smmf_state_bytes)"),
    "adam_bytes": ("B", "Adam state bytes by formula (two moments + step counter)"),
}

#: Relative cost of a step per optimizer (for spreading runs over ranks).
STEP_COSTS = {"adam": 1.0, "adamw": 1.0, "adafactor": 1.2, "came": 1.4, "sm3": 1.0, "smmf": 1.3}


@dataclass(frozen=True)
class OptimizerParams(Params):
    """One optimizer's default learning rate and weight decay.

    Attributes
    ----------
    lr
        The library's (or paper's) default peak learning rate; the sweep tries it times
        each of ``optim.lr_factors``.
    weight_decay
        Weight decay (decoupled for AdamW and SMMF, L2 for Adam, as each library does it).
    """

    lr: float = param(1e-3, "default peak learning rate", gt=0.0)
    weight_decay: float = param(0.0, "weight decay", ge=0.0)


@dataclass(frozen=True)
class OptimParams(Params):
    """The optimizers' defaults and the learning-rate grid.

    Attributes
    ----------
    adam, adamw, adafactor, came, sm3, smmf
        One table each (:class:`OptimizerParams`).
    lr_factors
        Each optimizer runs at its default ``lr`` times each of these factors; the factor
        with the best mean final validation metric is selected per optimizer.
    decay_rate
        SMMF's second-moment decay exponent (``b2_t = 1 - t**decay_rate``).
    """

    adam: OptimizerParams = param(OptimizerParams(), "torch.optim.Adam")
    adamw: OptimizerParams = param(OptimizerParams(weight_decay=1e-2), "torch.optim.AdamW")
    adafactor: OptimizerParams = param(OptimizerParams(lr=1e-2), "torch.optim.Adafactor")
    came: OptimizerParams = param(OptimizerParams(lr=2e-4), "pytorch_optimizer.CAME")
    sm3: OptimizerParams = param(OptimizerParams(lr=0.1), "pytorch_optimizer.SM3 (no decay)")
    smmf: OptimizerParams = param(OptimizerParams(weight_decay=5e-4), "tensorsim.optim.SMMF")
    lr_factors: tuple[float, ...] = param(
        (1.0, 3.0, 10.0, 30.0, 100.0), "learning-rate grid: factors of each default", gt=0.0
    )
    decay_rate: float = param(-0.5, "SMMF decay_rate (-0.5 CNN, -0.8 transformer)", lt=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_factors:
            raise ConfigError("config key 'lr_factors': expected at least one factor")
        if len(set(self.lr_factors)) != len(self.lr_factors):
            raise ConfigError(f"config key 'lr_factors': repeated factors in {self.lr_factors}")
        if self.sm3.weight_decay != 0:
            raise ConfigError(
                f"config key 'sm3.weight_decay': SM3 takes no weight decay, got "
                f"{self.sm3.weight_decay}"
            )

    def lrs(self, name: str) -> list[float]:
        """The learning rates tried for optimizer ``name``."""
        base = getattr(self, name).lr
        return [float(f"{base * f:.12g}") for f in self.lr_factors]


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


def _adam_bytes(p: torch.Tensor) -> int:
    """Adam's state of one parameter: two moments and torch's float32 step counter."""
    return 2 * p.numel() * p.element_size() + 4


def predicted_state_bytes(name: str, params: Sequence[torch.Tensor]) -> float:
    """Optimizer-state bytes predicted by formula, NaN where no formula is kept here.

    SMMF: :func:`tensorsim.optim.smmf_state_bytes` per parameter (``2 (n + m)`` floats and
    ``ceil(n m / 8)`` sign bytes for its ``n x m`` matricization); Adam and AdamW: two
    moments of every entry plus torch's float32 step counter per parameter.
    """
    if name == "smmf":
        return float(sum(smmf_state_bytes(p.shape, float_bytes=p.element_size()) for p in params))
    if name in ("adam", "adamw"):
        return float(sum(_adam_bytes(p) for p in params))
    return math.nan


def tensor_table(model: torch.nn.Module) -> dict[str, Any]:
    """Per trainable tensor: name, size, SMMF matricization and SMMF / Adam state bytes.

    Returns
    -------
    dict
        ``names`` (list of str) and int64 arrays ``size``, ``rows``, ``cols`` (SMMF's
        ``n x m``), ``smmf_bytes`` and ``adam_bytes``.
    """
    names: list[str] = []
    columns: dict[str, list[int]] = {k: [] for k in TENSOR_COLUMNS}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        n, m = smmf_matrix_shape(tuple(p.shape))
        names.append(name)
        for key, value in (
            ("size", p.numel()),
            ("rows", n),
            ("cols", m),
            ("smmf_bytes", smmf_state_bytes(p.shape, float_bytes=p.element_size())),
            ("adam_bytes", _adam_bytes(p)),
        ):
            columns[key].append(value)
    return {"names": names, **{k: np.asarray(v, dtype=np.int64) for k, v in columns.items()}}


def train_run(
    task: Any,
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
    optimizers); ``{split}_loss`` and ``{split}_accuracy`` on every split of ``task.data``
    every ``eval_every`` steps.

    Parameters
    ----------
    task
        ``task.build(seed)`` -> a fresh model, ``task.sample(seed, step)`` -> the training
        batch of that step, ``task.data``: split -> ``(inputs, targets)``.
    optimizer, lr
        One of :data:`OPTIMIZERS` and its peak learning rate.
    seed
        Seed of the initial weights and the batches.
    steps, warmup, eval_every
        Updates, warm-up updates, updates between evaluations.
    weight_decay, decay_rate
        As :func:`make_optimizer`.

    Returns
    -------
    dict
        The curves over the evaluated steps (``steps``, ``train_loss``, ``{split}_loss``,
        ``{split}_accuracy``), ``state_bytes`` (measured with
        :func:`tensorsim.optim.state_bytes` after training), ``formula_bytes``
        (:func:`predicted_state_bytes`), ``parameters``, ``step_seconds`` (mean wall time of
        one update, batch and backward included) and ``diverged``: a run whose training
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
            evaluate=lambda m: evaluate_splits(m, task.data),
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
