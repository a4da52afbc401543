"""Training of tensor-completion models and the DAIN augmentation pipeline.

:func:`train_completion` fits a :class:`tensorsim.nn.models.completion.CompletionModel` to the
training cells with Adam on the mean squared error, one epoch at a time (cells shuffled by a
generator seeded with ``(seed, epoch)``), evaluates the validation RMSE after every epoch,
keeps the best epoch's weights and stops ``patience`` epochs after the last improvement. With
``influence=True`` it also accumulates the TracIn scores of the training cells after every
epoch (:class:`tensorsim.nn.completion.TracInAccumulator`, memory ``O(n_train)``). It writes
no file: after every epoch it hands the caller's ``record(epoch, values)`` the series of
:data:`SERIES` and ``save(arrays, attrs)`` a checkpoint (model, optimizer, best weights,
influence sums, early-stopping counters; pickle-free through :mod:`tensorsim.nn.state`);
``resume`` continues from such a checkpoint to the same result as an uninterrupted run.

:func:`augment` draws new cells with a method of
:data:`tensorsim.nn.completion.AUGMENTATIONS` (never an observed, validation or test cell)
and labels them with a value predictor (the trained model); :func:`run_pipeline` runs DAIN
end to end for one model and seed: train with influence, then for every augmentation method
retrain a fresh model (same initial weights) on train + augmented cells, and report test
RMSE / MAE (:data:`RESULTS`); :func:`time_pipeline` times the parts of one DAIN run. A
non-finite training loss stops training with ``FloatingPointError``.

:class:`ModelParams` (the hyperparameters and learning rate of every model of
:data:`tensorsim.nn.models.completion.MODELS`) and :class:`TrainingParams` (the settings
shared by the models) make the :class:`CompletionParams` and model options of one model
(:meth:`ModelParams.settings`); they are the ``model`` and ``training`` tables of
``drivers.dain``.

References
----------
H. Oh, S. Kim, R. A. Rossi, S. Kumar, "Influence-guided Data Augmentation for Neural Tensor
Completion", CIKM 2021, arXiv 2108.10248.
G. Pruthi, F. Liu, M. Sundararajan, S. Kale, arXiv 2002.08484 (TracIn).
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from solvers.callbacks import (
    Checkpoint,
    EarlyStopping,
    Evaluate,
    LambdaCallback,
    LossSum,
    TracIn,
)
from solvers.training import Trainer
from tensorsim.config import Params, param
from tensorsim.io.sparse import SparseTensor, Split
from tensorsim.nn.completion import (
    AUGMENTATIONS,
    cell_key_tensor,
    entity_weights,
    sample_cells,
    tracin_scores,
)
from tensorsim.nn.models.completion import CompletionModel, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "CPWOPTResult",
    "cp_wopt",
    "SERIES",
    "CompletionParams",
    "FACTOR_MODELS",
    "MODEL_FIELDS",
    "ModelParams",
    "RESULTS",
    "TIMED",
    "TrainOutcome",
    "TrainingParams",
    "augment",
    "evaluate",
    "predict",
    "run_pipeline",
    "time_pipeline",
    "to_torch",
    "train_completion",
]

logger = logging.getLogger(__name__)

#: Value of the checkpoint attribute ``format`` written by :func:`train_completion`.
CHECKPOINT_FORMAT = "tensorsim.completion-training.v1"

#: The series of :func:`train_completion`'s ``record``: name -> (units, long name).
SERIES = {
    "train_loss": ("1", "training mean squared error over the epoch's batches"),
    "val_rmse": ("1", "validation root mean squared error after the epoch"),
    "epoch_seconds": ("s", "wall time of the epoch (influence pass included)"),
}

#: The results of :func:`run_pipeline` per method: name -> (dtype, units, long name).
RESULTS = {
    "test_rmse": ("float64", "1", "test root mean squared error"),
    "test_mae": ("float64", "1", "test mean absolute error"),
    "val_rmse": ("float64", "1", "best validation root mean squared error"),
    "best_epoch": ("int64", None, "epoch of the best validation error"),
    "n_train": ("int64", None, "cells trained on (training + augmented)"),
    "n_aug": ("int64", None, "augmented cells"),
    "train_seconds": ("float64", "s", "wall time of the Adam updates"),
    "influence_seconds": ("float64", "s", "wall time of the influence passes"),
    "augment_seconds": ("float64", "s", "wall time of sampling and labelling new cells"),
    "influence_bytes": ("int64", "B", "bytes held by the influence accumulator"),
}


@dataclass(frozen=True)
class CompletionParams(Params):
    """Optimization settings of :func:`train_completion`.

    Attributes
    ----------
    epochs
        Largest number of epochs.
    batch_size
        Cells per Adam step.
    lr
        Adam learning rate.
    weight_decay
        Adam weight decay (L2 penalty).
    patience
        Stop after this many epochs without a better validation RMSE (0: never stop early).
    eval_batch_size
        Cells per forward pass in evaluations and the influence pass.
    """

    epochs: int = param(50, "largest number of epochs", ge=1)
    batch_size: int = param(256, "cells per Adam step", ge=1)
    lr: float = param(1e-3, "Adam learning rate", gt=0)
    weight_decay: float = param(0.0, "Adam weight decay", ge=0)
    patience: int = param(10, "epochs without improvement before stopping (0: never)", ge=0)
    eval_batch_size: int = param(8192, "cells per evaluation pass", ge=1)


#: Models trained with ``ModelParams.factor_epochs`` and ``factor_patience``.
FACTOR_MODELS = ("cp", "tucker")

#: Model name -> the fields of :class:`ModelParams` it reads.
MODEL_FIELDS = {
    "dain_mlp": ("embed_dim", "hidden", "mlp_lr"),
    "costco": ("costco_rank", "costco_channels", "costco_lr"),
    "cp": ("cp_rank", "cp_lr", "factor_epochs", "factor_patience"),
    "tucker": ("tucker_rank", "tucker_lr", "factor_epochs", "factor_patience"),
}


@dataclass(frozen=True)
class TrainingParams(Params):
    """Training of every model, as :class:`CompletionParams` (CP, Tucker: see ModelParams)."""

    epochs: int = param(50, "largest number of epochs", ge=1)
    batch_size: int = param(256, "cells per Adam step", ge=1)
    patience: int = param(10, "early-stopping patience (0: none)", ge=0)
    weight_decay: float = param(0.0, "Adam weight decay", ge=0)

    def unused(self, names: Sequence[str]) -> list[str]:
        """The fields that none of the models ``names`` reads (:meth:`ModelParams.schedule`)."""
        return ["epochs", "patience"] if set(names) <= set(FACTOR_MODELS) else []


@dataclass(frozen=True)
class ModelParams(Params):
    """The completion models (:data:`MODEL_FIELDS`) and their learning rates.

    The CP and Tucker models train for ``factor_epochs`` with patience ``factor_patience``
    instead of ``TrainingParams.epochs`` and ``patience``: from a small random start their
    loss has a plateau that a short patience mistakes for convergence.
    """

    embed_dim: int = param(16, "MLP: embedding size per mode", ge=1)
    hidden: tuple[int, ...] = param((256, 64), "MLP: hidden widths", ge=1)
    mlp_lr: float = param(3e-3, "MLP: learning rate", gt=0)
    costco_rank: int = param(16, "CoSTCo: embedding size", ge=1)
    costco_channels: int = param(32, "CoSTCo: channels", ge=1)
    costco_lr: float = param(3e-3, "CoSTCo: learning rate", gt=0)
    cp_rank: int = param(8, "CP: rank", ge=1)
    cp_lr: float = param(3e-2, "CP: learning rate", gt=0)
    tucker_rank: int = param(4, "Tucker: rank per mode", ge=1)
    tucker_lr: float = param(3e-2, "Tucker: learning rate", gt=0)
    factor_epochs: int = param(150, "CP and Tucker: largest number of epochs", ge=1)
    factor_patience: int = param(30, "CP and Tucker: early-stopping patience", ge=0)

    def schedule(self, name: str, training: TrainingParams) -> tuple[int, int]:
        """Largest number of epochs and patience of model ``name``."""
        if name in FACTOR_MODELS:
            return self.factor_epochs, self.factor_patience
        return training.epochs, training.patience

    def options(self, name: str) -> tuple[dict[str, Any], float]:
        """Options of :func:`~tensorsim.nn.models.completion.build_model`, learning rate."""
        return {
            "dain_mlp": ({"embed_dim": self.embed_dim, "hidden": self.hidden}, self.mlp_lr),
            "costco": (
                {"rank": self.costco_rank, "channels": self.costco_channels},
                self.costco_lr,
            ),
            "cp": ({"rank": self.cp_rank}, self.cp_lr),
            "tucker": ({"ranks": self.tucker_rank}, self.tucker_lr),
        }[name]

    def settings(
        self,
        name: str,
        training: TrainingParams,
        *,
        epochs: int | None = None,
        patience: int | None = None,
    ) -> tuple[dict[str, Any], CompletionParams]:
        """Model options and training settings of model ``name`` (for :func:`run_pipeline`).

        ``epochs`` and ``patience`` replace those of :meth:`schedule` when given.
        """
        if name not in MODEL_FIELDS:
            raise ValueError(f"name: expected one of {list(MODEL_FIELDS)}, got {name!r}")
        options, lr = self.options(name)
        default_epochs, default_patience = self.schedule(name, training)
        return options, CompletionParams(
            epochs=default_epochs if epochs is None else epochs,
            batch_size=training.batch_size,
            lr=lr,
            weight_decay=training.weight_decay,
            patience=default_patience if patience is None else patience,
        )

    def unused(self, names: Sequence[str]) -> list[str]:
        """The fields that none of the models ``names`` reads."""
        used = {f for name in names for f in MODEL_FIELDS[name]}
        every = dict.fromkeys(f for fields in MODEL_FIELDS.values() for f in fields)
        return [f for f in every if f not in used]


@dataclass
class TrainOutcome:
    """What :func:`train_completion` returns (the model holds the best weights).

    Attributes
    ----------
    best_epoch
        Epoch (from 1) with the lowest validation RMSE.
    best_val_rmse
        That RMSE.
    epochs
        Epochs run in total (over restarts).
    train_loss, val_rmse
        Per epoch run by this call.
    importance
        Normalised TracIn importance of the training cells up to the best epoch
        (``(n_train,)`` float64), or None without ``influence``.
    train_seconds
        Wall time of the Adam updates (this call).
    influence_seconds
        Wall time of the influence passes (this call).
    influence_bytes
        Bytes held by the influence accumulator.
    """

    best_epoch: int = 0
    best_val_rmse: float = math.inf
    epochs: int = 0
    train_loss: list[float] = field(default_factory=list)
    val_rmse: list[float] = field(default_factory=list)
    importance: torch.Tensor | None = None
    train_seconds: float = 0.0
    influence_seconds: float = 0.0
    influence_bytes: int = 0


@dataclass(frozen=True)
class CPWOPTResult:
    """What :func:`cp_wopt` returns.

    Attributes
    ----------
    cp
        The fitted :class:`tensorsim.decomp.CP` (unit weights, NumPy factors).
    loss
        Final ``0.5 * sum over observed cells of (x - x_hat)**2``.
    iterations
        L-BFGS iterations.
    converged
        Whether L-BFGS met its tolerance.
    """

    cp: Any
    loss: float
    iterations: int
    converged: bool


def cp_wopt(
    tensor: SparseTensor,
    rank: int,
    *,
    max_iter: int = 500,
    tol: float = 1e-10,
    seed: int = 0,
    init_scale: float = 0.5,
) -> CPWOPTResult:
    """CP-WOPT: fit a rank-``rank`` CP tensor to the observed cells by L-BFGS.

    Minimises ``f = 0.5 * sum_{observed c} (x_c - [[A_1, ..., A_d]]_c)**2`` over all factors at
    once. The values at the observed cells come from
    :func:`tensorsim.decomp._cpkernels.sparse_cp_values` and the gradient with respect to
    ``A_n`` is the sparse MTTKRP of the residual,
    ``mttkrp(SparseCOO(indices, x_hat - x), factors, n)`` (:func:`tensorsim.decomp._cpkernels.
    mttkrp`), so one evaluation costs ``O(nnz R d)`` and the full tensor is never formed.
    NumPy (float64) only.

    Parameters
    ----------
    tensor
        The observed cells.
    rank
        CP rank ``R``.
    max_iter, tol
        L-BFGS iteration limit and gradient tolerance (``scipy.optimize.minimize``).
    seed
        Seed of the random initial factors.
    init_scale
        Standard deviation of the initial factor entries.

    Returns
    -------
    CPWOPTResult

    References
    ----------
    E. Acar, D. M. Dunlavy, T. G. Kolda, M. Morup, "Scalable tensor factorizations for
    incomplete data", Chemometr. Intell. Lab. Syst. 106 (2011) 41, arXiv 1005.2197.
    """
    import scipy.optimize

    from tensorsim.decomp import CP
    from tensorsim.decomp._cpkernels import as_sparse, mttkrp, sparse_cp_values

    if not isinstance(tensor, SparseTensor):
        raise TypeError(f"tensor: expected a SparseTensor, got {type(tensor).__name__}")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(f"rank: expected a positive integer, got {rank!r}")
    coo = as_sparse((tensor.indices, tensor.values), tensor.shape)
    sizes = [n * rank for n in tensor.shape]
    splits = np.cumsum(sizes)[:-1]

    def unpack(z: np.ndarray) -> list[np.ndarray]:
        return [p.reshape(n, rank) for p, n in zip(np.split(z, splits), tensor.shape, strict=True)]

    def fun(z: np.ndarray) -> tuple[float, np.ndarray]:
        factors = unpack(z)
        resid = sparse_cp_values(coo, factors) - tensor.values
        r_coo = as_sparse((tensor.indices, resid), tensor.shape)
        grads = [mttkrp(r_coo, factors, n).ravel() for n in range(len(factors))]
        return 0.5 * float(resid @ resid), np.concatenate(grads)

    z0 = np.random.default_rng(seed).standard_normal(sum(sizes)) * init_scale
    res = scipy.optimize.minimize(
        fun, z0, jac=True, method="L-BFGS-B", options={"maxiter": max_iter, "gtol": tol}
    )
    factors = tuple(unpack(res.x))
    return CPWOPTResult(CP(np.ones(rank), factors), float(res.fun), int(res.nit), res.success)


def to_torch(tensor: SparseTensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(indices int64, values float32)`` torch tensors of a :class:`SparseTensor`."""
    if not isinstance(tensor, SparseTensor):
        raise TypeError(f"tensor: expected a SparseTensor, got {type(tensor).__name__}")
    return (
        torch.from_numpy(np.ascontiguousarray(tensor.indices)),
        torch.from_numpy(tensor.values.astype(np.float32)),
    )


def _cells(x: Any, label: str, model: CompletionModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Check a cell set (SparseTensor or (indices, values) pair) against the model."""
    if isinstance(x, SparseTensor):
        if x.shape != model.shape:
            raise ValueError(f"{label}: tensor shape {x.shape} differs from the model's")
        x = to_torch(x)
    if not (isinstance(x, tuple | list) and len(x) == 2):
        raise TypeError(f"{label}: expected a SparseTensor or an (indices, values) pair")
    idx, val = x
    idx = model.check_indices(idx)
    if not isinstance(val, torch.Tensor) or val.shape != (idx.shape[0],):
        raise ValueError(f"{label}: expected values of shape ({idx.shape[0]},)")
    if idx.shape[0] == 0:
        raise ValueError(f"{label}: expected at least one cell")
    if not bool(torch.isfinite(val).all()):
        raise ValueError(f"{label}: values must be finite (found NaN/Inf)")
    return idx, val.to(next(model.parameters()).dtype)


def predict(model: CompletionModel, indices: torch.Tensor, *, batch_size: int = 8192) -> Any:
    """The model's values at ``indices`` ``(n, d)``, in batches, without gradients."""
    indices = model.check_indices(indices)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            parts = [
                model(indices[s : s + batch_size]) for s in range(0, len(indices), batch_size)
            ]
    finally:
        model.train(was_training)
    return torch.cat(parts) if parts else torch.empty(0)


def evaluate(model: CompletionModel, cells: Any, *, batch_size: int = 8192) -> dict[str, float]:
    """Test errors: ``rmse`` (square root of the mean squared error) and ``mae``."""
    idx, val = _cells(cells, "cells", model)
    err = (predict(model, idx, batch_size=batch_size) - val).double()
    return {
        "rmse": float(torch.sqrt(torch.mean(err**2))),
        "mae": float(torch.mean(err.abs())),
    }


def train_completion(
    model: CompletionModel,
    train: Any,
    val: Any,
    params: CompletionParams | None = None,
    *,
    seed: int = 0,
    influence: bool = False,
    record: Callable[[int, dict[str, float]], Any] | None = None,
    save: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None,
    resume: Any = None,
    max_epochs: int | None = None,
    callback: Callable[[int, float, float], Any] | None = None,
) -> TrainOutcome:
    """Train a completion model with early stopping on validation RMSE (module docstring).

    Parameters
    ----------
    model
        Trained in place; holds the best epoch's weights on return (when training stopped
        by early stopping or reached ``params.epochs``).
    train, val
        Training and validation cells: :class:`~tensorsim.io.sparse.SparseTensor` or
        ``(indices (n, d) int, values (n,))`` torch tensors.
    params
        Optimization settings (default :class:`CompletionParams`).
    seed
        Seed of the per-epoch shuffling.
    influence
        Accumulate TracIn scores of the training cells (``TrainOutcome.importance``).
    record
        Called after every epoch as ``record(epoch, values)``, ``values`` mapping each name
        of :data:`SERIES` to the epoch's number (e.g. appended to a
        :class:`tensorsim.io.Writer` with these series).
    save
        Called after every epoch with the checkpoint ``(arrays, attrs)`` of
        :meth:`solvers.training.Trainer.state` (e.g. :meth:`tensorsim.io.Writer.checkpoint`).
    resume
        A :class:`tensorsim.io.Checkpoint` written by this function, to continue from.
    max_epochs
        Stop after this many epochs in this call (checkpointed), e.g. to test restarts.
    callback
        ``callback(epoch, train_loss, val_rmse)`` after every epoch.

    Returns
    -------
    TrainOutcome

    Raises
    ------
    ValueError
        On bad cells (out of range, NaN values, empty) or a checkpoint that does not fit.
    FloatingPointError
        If a training loss is not finite (the previous checkpoint is kept).
    """
    params = CompletionParams() if params is None else params
    if not isinstance(params, CompletionParams):
        raise TypeError(f"params: expected CompletionParams, got {type(params).__name__}")
    if not isinstance(model, CompletionModel):
        raise TypeError(f"model: expected a CompletionModel, got {type(model).__name__}")
    ti, ty = _cells(train, "train", model)
    vi, vy = _cells(val, "val", model)
    n = ti.shape[0]
    optimizer = torch.optim.Adam(
        model.parameters(), lr=params.lr, weight_decay=params.weight_decay
    )

    def loss(net: torch.nn.Module, batch: torch.Tensor) -> torch.Tensor:
        return torch.mean((net(ti[batch]) - ty[batch]) ** 2)

    def batches(epoch: int) -> Any:
        order = torch.randperm(
            n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        )
        return (
            order[first : first + params.batch_size] for first in range(0, n, params.batch_size)
        )

    total = LossSum(lambda batch, value, extra: float(value) * batch.numel())
    validation = Evaluate(
        lambda m: {"rmse": evaluate(m, (vi, vy), batch_size=params.eval_batch_size)["rmse"]},
        at_end=False,
    )
    tracin = None
    if influence:
        tracin = TracIn(
            lambda m: tracin_scores(m, (ti, ty), (vi, vy), batch_size=params.eval_batch_size), n
        )
    stopping = EarlyStopping(
        "rmse",
        patience=params.patience,
        on_improvement=None if tracin is None else tracin.mark_best,
    )
    out = TrainOutcome()
    started: dict[str, float] = {}

    def epoch_start(trainer: Trainer) -> None:
        started["time"] = time.perf_counter()

    def epoch_end(trainer: Trainer) -> None:
        val_rmse = trainer.metrics["rmse"]
        out.train_loss.append(total.total / n)
        out.val_rmse.append(val_rmse)
        started["seconds"] = time.perf_counter() - started["time"]
        if record is not None:
            values = {"train_loss": total.total / n, "val_rmse": val_rmse}
            record(trainer.epoch, {**values, "epoch_seconds": started["seconds"]})

    def report(trainer: Trainer) -> None:
        logger.debug(
            "epoch %d: train mse %.4e, val rmse %.4e (best %.4e at %d), %.2f s",
            trainer.epoch, total.total / n, trainer.metrics["rmse"], stopping.best_value,
            stopping.best_epoch, started["seconds"],
        )  # fmt: skip
        if callback is not None:
            callback(trainer.epoch, total.total / n, trainer.metrics["rmse"])

    callbacks: list[Any] = [total, validation, *([tracin] if tracin is not None else [])]
    callbacks += [stopping, LambdaCallback(on_epoch_start=epoch_start, on_epoch_end=epoch_end)]
    if save is not None:
        callbacks.append(Checkpoint(save))
    callbacks.append(LambdaCallback(on_epoch_end=report))
    trainer = Trainer(
        model, optimizer, loss, callbacks=callbacks, checkpoint_format=CHECKPOINT_FORMAT
    )
    if resume is not None:
        trainer.load_state(resume)
    trainer.fit(batches, epochs=params.epochs, max_epochs=max_epochs)
    out.best_epoch, out.best_val_rmse = stopping.best_epoch, stopping.best_value
    out.epochs = trainer.epoch
    out.train_seconds = trainer.seconds
    if tracin is not None:
        out.importance = tracin.accumulator.importance()
        out.influence_bytes = tracin.accumulator.nbytes
        out.influence_seconds = tracin.seconds
    return out


def augment(
    predictor: CompletionModel,
    split: Split,
    method: str,
    *,
    ratio: float = 0.5,
    importance: torch.Tensor | None = None,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """New training cells of one augmentation method, labelled by ``predictor``.

    ``round(ratio * n_train)`` distinct cells are drawn (:func:`tensorsim.nn.completion.
    sample_cells`) from the entity distributions of ``method``
    (:func:`tensorsim.nn.completion.entity_weights`), never one of the training, validation
    or test cells, and their values are ``predictor``'s predictions.

    Parameters
    ----------
    predictor
        The value predictor (DAIN: the model trained on the training cells).
    split
        Train, validation and test cells.
    method
        ``"dain"``, ``"uniform"``, ``"frequency"`` or ``"none"`` (no cells).
    ratio
        New cells per training cell (``>= 0``).
    importance
        Normalised TracIn importance of the training cells (``"dain"``).
    seed
        Seed of the draws.

    Returns
    -------
    tuple of torch.Tensor
        ``(indices (n_aug, d) int64, values (n_aug,) float32)``.

    Raises
    ------
    ValueError
        If ``ratio`` is negative or not finite, ``method`` is unknown, or too few free cells.
    """
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio >= 0:
        raise ValueError(f"ratio: expected a number >= 0, got {ratio!r}")
    if not math.isfinite(ratio):
        raise ValueError(f"ratio: expected a finite number, got {ratio!r}")
    if method not in AUGMENTATIONS:
        raise ValueError(f"method: expected one of {AUGMENTATIONS}, got {method!r}")
    shape = split.train.shape
    n_aug = round(ratio * split.train.nnz)
    if method == "none" or n_aug == 0:
        return torch.empty((0, len(shape)), dtype=torch.int64), torch.empty(0)
    train_idx = torch.from_numpy(split.train.indices)
    probs = entity_weights(method, train_idx, shape, importance)
    exclude = torch.cat([cell_key_tensor(torch.from_numpy(p.indices), shape) for p in split])
    generator = torch.Generator().manual_seed(int(seed))
    cells = sample_cells(probs, n_aug, exclude=exclude, generator=generator)
    return cells, predict(predictor, cells).float()


def _as_split(split: Any) -> Split:
    if not isinstance(split, Split):
        raise TypeError(f"split: expected a tensorsim.io.sparse.Split, got {type(split).__name__}")
    return split


def run_pipeline(
    model_name: str,
    split: Split,
    *,
    methods: Sequence[str] = AUGMENTATIONS,
    ratio: float = 0.5,
    seed: int = 0,
    params: CompletionParams | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """DAIN end to end for one model and seed; results per augmentation method.

    1. Build ``model_name`` with ``seed`` and train it on ``split.train`` (early stopping on
       ``split.val``), accumulating TracIn importance when ``"dain"`` is in ``methods``.
       Its test errors are those of ``"none"``.
    2. For every other method, :func:`augment` with the trained model as value predictor
       (draws seeded by ``seed``, so methods are paired), build the same initial model again
       and train it on the training plus augmented cells; report its test errors.

    Parameters
    ----------
    model_name
        A key of :data:`tensorsim.nn.models.completion.MODELS`.
    split
        Train, validation and test cells.
    methods
        Augmentation methods (:data:`tensorsim.nn.completion.AUGMENTATIONS`).
    ratio
        Augmented cells per training cell (``>= 0``).
    seed
        Seed of initial weights, shuffling and draws.
    params
        Training settings.
    model_options
        Options of the model class.

    Returns
    -------
    dict
        Method -> ``test_rmse``, ``test_mae``, ``val_rmse``, ``best_epoch``, ``n_train``
        (cells trained on), ``n_aug``, ``train_seconds``, ``influence_seconds``,
        ``augment_seconds``, ``influence_bytes`` (:data:`RESULTS`); ``"none"`` always
        included.

    Raises
    ------
    ValueError
        On an unknown method or model, or a negative ratio.
    """
    split = _as_split(split)
    methods = tuple(dict.fromkeys(("none", *methods)))
    unknown = [m for m in methods if m not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"methods: unknown {unknown}; expected some of {AUGMENTATIONS}")
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not ratio >= 0:
        raise ValueError(f"ratio: expected a number >= 0, got {ratio!r}")
    params = CompletionParams() if params is None else params
    options = dict(model_options or {})
    model = build_model(model_name, split.train.shape, seed=seed, **options)
    initial = copy.deepcopy(model.state_dict())
    base = train_completion(
        model, split.train, split.val, params, seed=seed, influence="dain" in methods
    )
    results: dict[str, dict[str, Any]] = {}
    test = evaluate(model, split.test, batch_size=params.eval_batch_size)
    results["none"] = {
        "test_rmse": test["rmse"],
        "test_mae": test["mae"],
        "val_rmse": base.best_val_rmse,
        "best_epoch": base.best_epoch,
        "n_train": split.train.nnz,
        "n_aug": 0,
        "train_seconds": base.train_seconds,
        "influence_seconds": base.influence_seconds,
        "augment_seconds": 0.0,
        "influence_bytes": base.influence_bytes,
    }
    ti, ty = to_torch(split.train)
    for method in methods[1:]:
        t0 = time.perf_counter()
        ai, ay = augment(model, split, method, ratio=ratio, importance=base.importance, seed=seed)
        augment_seconds = time.perf_counter() - t0
        fresh = build_model(model_name, split.train.shape, seed=seed, **options)
        fresh.load_state_dict(initial)
        out = train_completion(
            fresh, (torch.cat([ti, ai]), torch.cat([ty, ay])), split.val, params, seed=seed
        )
        test = evaluate(fresh, split.test, batch_size=params.eval_batch_size)
        results[method] = {
            "test_rmse": test["rmse"],
            "test_mae": test["mae"],
            "val_rmse": out.best_val_rmse,
            "best_epoch": out.best_epoch,
            "n_train": split.train.nnz + int(ai.shape[0]),
            "n_aug": int(ai.shape[0]),
            "train_seconds": out.train_seconds,
            "influence_seconds": base.influence_seconds if method == "dain" else 0.0,
            "augment_seconds": augment_seconds,
            "influence_bytes": base.influence_bytes if method == "dain" else 0,
        }
        logger.debug("%s %s seed %d: test rmse %.4f", model_name, method, seed, test["rmse"])
    return results


#: The results of :func:`time_pipeline`: name -> (dtype, units, long name).
TIMED = {
    "seconds": ("float64", "s", "wall time of the DAIN run"),
    "train_seconds": ("float64", "s", "wall time of the Adam updates of the training"),
    "influence_seconds": ("float64", "s", "wall time of the influence passes"),
    "augment_seconds": ("float64", "s", "wall time of sampling and labelling new cells"),
    "retrain_seconds": ("float64", "s", "wall time of the Adam updates of the retraining"),
    "test_rmse": ("float64", None, "test root mean squared error after retraining"),
}


def time_pipeline(
    model_name: str,
    split: Split,
    *,
    ratio: float = 0.5,
    seed: int = 0,
    params: CompletionParams | None = None,
    model_options: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Time one DAIN run (:func:`run_pipeline` with the method ``"dain"`` only).

    Parameters
    ----------
    model_name, split, ratio, seed, params, model_options
        As :func:`run_pipeline`.

    Returns
    -------
    dict
        ``seconds`` (the whole run), ``train_seconds`` and ``influence_seconds`` (training
        with influence), ``augment_seconds`` (sampling and labelling), ``retrain_seconds``
        (training on the augmented cells) and the final ``test_rmse`` (:data:`TIMED`).
    """
    start = time.perf_counter()
    out = run_pipeline(
        model_name, split, methods=("dain",), ratio=ratio, seed=seed, params=params,
        model_options=model_options,
    )  # fmt: skip
    return {
        "seconds": time.perf_counter() - start,
        "train_seconds": out["none"]["train_seconds"],
        "influence_seconds": out["none"]["influence_seconds"],
        "augment_seconds": out["dain"]["augment_seconds"],
        "retrain_seconds": out["dain"]["train_seconds"],
        "test_rmse": out["dain"]["test_rmse"],
    }
