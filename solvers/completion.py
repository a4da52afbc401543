"""Training of tensor-completion models and the DAIN augmentation pipeline.

:func:`train_completion` fits a :class:`tensorsim.nn.completion.CompletionModel` to the
training cells with Adam on the mean squared error, one epoch at a time (cells shuffled by a
generator seeded with ``(seed, epoch)``), evaluates the validation RMSE after every epoch,
keeps the best epoch's weights and stops ``patience`` epochs after the last improvement. With
``influence=True`` it also accumulates the TracIn scores of the training cells after every
epoch (:class:`tensorsim.nn.completion.TracInAccumulator`, memory ``O(n_train)``). With a
``writer`` (record dimension: the epoch) it appends the series of :data:`SERIES` and writes a
checkpoint after every epoch (model, optimizer, best weights, influence sums, early-stopping
counters; pickle-free through :mod:`tensorsim.nn.state`); ``resume`` continues from such a
checkpoint to the same result as an uninterrupted run.

:func:`augment` draws new cells with a method of
:data:`tensorsim.nn.completion.AUGMENTATIONS` (never an observed, validation or test cell)
and labels them with a value predictor (the trained model); :func:`run_pipeline` runs DAIN
end to end for one model and seed: train with influence, then for every augmentation method
retrain a fresh model (same initial weights) on train + augmented cells, and report test
RMSE / MAE. A non-finite training loss stops training with ``FloatingPointError``.

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

from tensorsim.config import Params, param
from tensorsim.io.sparse import SparseTensor, Split
from tensorsim.nn.completion import (
    AUGMENTATIONS,
    CompletionModel,
    TracInAccumulator,
    build_model,
    cell_key_tensor,
    entity_weights,
    sample_cells,
    tracin_scores,
)
from tensorsim.nn.state import state_from_arrays, state_to_arrays

__all__ = [
    "CHECKPOINT_FORMAT",
    "CPWOPTResult",
    "cp_wopt",
    "SERIES",
    "CompletionParams",
    "TrainOutcome",
    "augment",
    "evaluate",
    "predict",
    "run_pipeline",
    "to_torch",
    "train_completion",
]

logger = logging.getLogger(__name__)

#: Value of the checkpoint attribute ``format`` written by :func:`train_completion`.
CHECKPOINT_FORMAT = "tensorsim.completion-training.v1"

#: The writer series of :func:`train_completion`: name -> (units, long name).
SERIES = {
    "train_loss": ("1", "training mean squared error over the epoch's batches"),
    "val_rmse": ("1", "validation root mean squared error after the epoch"),
    "epoch_seconds": ("s", "wall time of the epoch (influence pass included)"),
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


def _state(
    model: CompletionModel,
    optimizer: torch.optim.Optimizer,
    best: Mapping[str, torch.Tensor],
    acc: TracInAccumulator | None,
    info: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    state: dict[str, Any] = {}
    attrs: dict[str, Any] = {"format": CHECKPOINT_FORMAT, **info}
    for name, obj in (("model", model.state_dict()), ("optimizer", optimizer.state_dict())):
        state[name], attrs[f"{name}_layout"] = state_to_arrays(obj)
    state["best"], attrs["best_layout"] = state_to_arrays(dict(best))
    if acc is not None:
        state["influence"], extra = acc.state()
        attrs.update({f"influence_{k}": v for k, v in extra.items()})
    return state, attrs


def _restore(
    checkpoint: Any,
    model: CompletionModel,
    optimizer: torch.optim.Optimizer,
    acc: TracInAccumulator | None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    attrs = getattr(checkpoint, "attrs", None)
    arrays = getattr(checkpoint, "arrays", None)
    if not isinstance(attrs, dict) or attrs.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"resume: not a checkpoint of this trainer (format {CHECKPOINT_FORMAT})")

    def group(name: str) -> dict[str, Any]:
        return {k[len(name) + 1 :]: v for k, v in arrays.items() if k.startswith(name + "/")}

    try:
        model.load_state_dict(state_from_arrays(group("model"), attrs["model_layout"]))
        optimizer.load_state_dict(state_from_arrays(group("optimizer"), attrs["optimizer_layout"]))
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"resume: the checkpoint does not fit the model: {err}") from err
    best = state_from_arrays(group("best"), attrs["best_layout"])
    if acc is not None:
        if "influence_epochs" not in attrs:
            raise ValueError("resume: the checkpoint holds no influence sums")
        acc.load_state(
            group("influence"),
            {"epochs": attrs["influence_epochs"], "best_epoch": attrs["influence_best_epoch"]},
        )
    return best, attrs


def train_completion(
    model: CompletionModel,
    train: Any,
    val: Any,
    params: CompletionParams | None = None,
    *,
    seed: int = 0,
    influence: bool = False,
    writer: Any = None,
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
    writer
        A :class:`tensorsim.io.Writer` with record dimension ``epoch``: series
        :data:`SERIES` (defined here unless resuming) and a checkpoint per epoch.
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
    acc = TracInAccumulator(n) if influence else None
    out = TrainOutcome()
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    since = 0
    done = 0
    if resume is not None:
        best, attrs = _restore(resume, model, optimizer, acc)
        done, since = int(attrs["epoch"]), int(attrs["since"])
        out.best_epoch, out.best_val_rmse = int(attrs["best_epoch"]), float(attrs["best_val"])
    elif writer is not None:
        for name, (units, long_name) in SERIES.items():
            writer.define_series(name, units=units, long_name=long_name)
    stop = params.epochs if max_epochs is None else min(params.epochs, done + max_epochs)
    stopped_early = params.patience and since >= params.patience
    epoch = done
    for epoch in range(done + 1, stop + 1):
        if stopped_early:
            break
        start = time.perf_counter()
        model.train()
        order = torch.randperm(
            n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        )
        total = 0.0
        for first in range(0, n, params.batch_size):
            batch = order[first : first + params.batch_size]
            loss = torch.mean((model(ti[batch]) - ty[batch]) ** 2)
            if not bool(torch.isfinite(loss)):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch}, cell {first}: stopped; the "
                    f"last checkpoint (after epoch {epoch - 1}) is kept"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * batch.numel()
        out.train_seconds += time.perf_counter() - start
        val_rmse = evaluate(model, (vi, vy), batch_size=params.eval_batch_size)["rmse"]
        if acc is not None:
            t0 = time.perf_counter()
            acc.add(tracin_scores(model, (ti, ty), (vi, vy), batch_size=params.eval_batch_size))
            out.influence_seconds += time.perf_counter() - t0
        if val_rmse < out.best_val_rmse:
            out.best_epoch, out.best_val_rmse, since = epoch, val_rmse, 0
            best = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if acc is not None:
                acc.mark_best()
        else:
            since += 1
        out.train_loss.append(total / n)
        out.val_rmse.append(val_rmse)
        seconds = time.perf_counter() - start
        if writer is not None:
            writer.append(epoch, train_loss=total / n, val_rmse=val_rmse, epoch_seconds=seconds)
            info = {
                "epoch": epoch,
                "since": since,
                "best_epoch": out.best_epoch,
                "best_val": out.best_val_rmse,
            }
            writer.checkpoint(*_state(model, optimizer, best, acc, info))
        logger.debug(
            "epoch %d: train mse %.4e, val rmse %.4e (best %.4e at %d), %.2f s",
            epoch, total / n, val_rmse, out.best_val_rmse, out.best_epoch, seconds,
        )  # fmt: skip
        if callback is not None:
            callback(epoch, total / n, val_rmse)
        stopped_early = bool(params.patience) and since >= params.patience
    out.epochs = epoch
    finished = stopped_early or epoch >= params.epochs
    if finished:
        model.load_state_dict(best)
    if acc is not None:
        out.importance = acc.importance()
        out.influence_bytes = acc.nbytes
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
        A key of :data:`tensorsim.nn.completion.MODELS`.
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
        ``augment_seconds``, ``influence_bytes``; ``"none"`` always included.

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
