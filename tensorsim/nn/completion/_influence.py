"""Influence-guided augmentation: TracIn cell importance, entity importance, new cells.

DAIN (arXiv 2108.10248) scores every training cell by how much its gradient agrees with the
validation gradient over training (TracIn, arXiv 2002.08484), restricted to the last layer:
with ``g_c(e) = (f_e(c) - y_c) [h_e(c), 1]`` the per-example gradient of the squared error
with respect to the head's weight and bias at epoch ``e`` (``h`` the head's input; the factor
2 is dropped), cell ``c`` gets

    ``I(c) = sum_{e <= e*} < g_c(e), sum_{v in val} g_v(e) >``

summed over the epochs up to the best validation epoch ``e*``, then ``|I| / max |I|``.

Memory: only ``sum_v g_v(e)`` (``k + 1`` numbers) is formed, then one dot product per
training cell, so an epoch adds ``O(n_train)`` to a running sum (float64) and nothing per
example is stored; :class:`TracInAccumulator` keeps the running sum and a copy taken at the
best epoch. The straightforward way, storing ``g_c(e)`` for every cell and epoch
(:func:`last_layer_gradients`), needs ``O(epochs n_train k)`` and gives the same scores
(``benchmarks/dain.py``).

Differences from the reference code, on purpose: the gradients of an epoch are taken with the
weights at the end of the epoch (TracIn-CP), not captured during the epoch's mini-batches;
the normalisation divides by the largest absolute score (the reference divides by the signed
maximum, then takes the absolute value, which can exceed 1); sampled cells never repeat an
observed, held-out or already sampled cell (the reference does not filter).

Entity importance of index ``i`` in mode ``m`` is the sum of the importances of the training
cells with ``i_m = i``, normalised per mode; :func:`sample_cells` draws each mode's index
independently from these distributions (as the reference does) and rejects cells that are
excluded or already drawn until exactly ``n`` new cells are found. The baselines' entity
weights (:func:`entity_weights`) are uniform over the entities of each mode, or proportional
to each entity's number of training cells.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "AUGMENTATIONS",
    "TracInAccumulator",
    "cell_key_tensor",
    "entity_importance",
    "entity_weights",
    "last_layer_gradients",
    "normalize_importance",
    "sample_cells",
    "tracin_scores",
]

logger = logging.getLogger(__name__)

#: Entity weighting methods of :func:`entity_weights` (``"none"``: no augmentation).
AUGMENTATIONS = ("none", "dain", "uniform", "frequency")


def _check_pair(indices: Any, values: Any, label: str) -> None:
    if not isinstance(indices, torch.Tensor) or not isinstance(values, torch.Tensor):
        raise TypeError(f"{label}: expected torch tensors (indices, values)")
    if indices.ndim != 2 or values.ndim != 1 or indices.shape[0] != values.shape[0]:
        raise ValueError(
            f"{label}: expected indices (n, d) and values (n,), got "
            f"{tuple(indices.shape)} and {tuple(values.shape)}"
        )


def _batches(n: int, batch_size: int) -> range:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive integer, got {batch_size!r}")
    return range(0, n, batch_size)


def last_layer_gradients(
    model: Any, indices: torch.Tensor, values: torch.Tensor, *, batch_size: int = 4096
) -> torch.Tensor:
    """Per-example gradients ``(f(c) - y_c) [h(c), 1]`` of the head, ``(n, k + 1)``.

    The gradient of ``(f(c) - y_c)**2 / 2`` with respect to the head's weight (first ``k``
    columns) and bias (last column), in the model's dtype, without autograd.

    Parameters
    ----------
    model
        A :class:`~tensorsim.nn.completion.CompletionModel`.
    indices, values
        The cells ``(n, d)`` and their values ``(n,)``.
    batch_size
        Cells per forward pass.
    """
    _check_pair(indices, values, "indices, values")
    out = []
    with torch.no_grad():
        for s in _batches(indices.shape[0], batch_size):
            pred, h = model.forward_with_features(indices[s : s + batch_size])
            r = (pred - values[s : s + batch_size].to(pred.dtype))[:, None]
            out.append(torch.cat([r * h, r], dim=1))
    return torch.cat(out)


def tracin_scores(
    model: Any,
    train: tuple[torch.Tensor, torch.Tensor],
    val: tuple[torch.Tensor, torch.Tensor],
    *,
    batch_size: int = 4096,
) -> torch.Tensor:
    """One epoch's TracIn scores ``< g_c, sum_v g_v >`` of the training cells (float64).

    Streams over batches: the validation gradient sum is ``k + 1`` numbers and each training
    cell's score is ``(f(c) - y_c) ([h(c), 1] . G)``, so no per-example gradient is kept.

    Parameters
    ----------
    model
        A :class:`~tensorsim.nn.completion.CompletionModel` (its current weights are used).
    train, val
        ``(indices, values)`` of the training and validation cells.
    batch_size
        Cells per forward pass.

    Returns
    -------
    torch.Tensor
        ``(n_train,)`` float64.
    """
    _check_pair(*train, "train")
    _check_pair(*val, "val")
    k = model.feature_size
    g_val = torch.zeros(k + 1, dtype=torch.float64)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            vi, vy = val
            for s in _batches(vi.shape[0], batch_size):
                pred, h = model.forward_with_features(vi[s : s + batch_size])
                r = (pred - vy[s : s + batch_size].to(pred.dtype)).double()
                g_val[:k] += r @ h.double()
                g_val[k] += r.sum()
            ti, ty = train
            scores = torch.empty(ti.shape[0], dtype=torch.float64)
            for s in _batches(ti.shape[0], batch_size):
                pred, h = model.forward_with_features(ti[s : s + batch_size])
                r = (pred - ty[s : s + batch_size].to(pred.dtype)).double()
                scores[s : s + batch_size] = r * (h.double() @ g_val[:k] + g_val[k])
    finally:
        model.train(was_training)
    return scores


class TracInAccumulator:
    """Running sum of per-epoch TracIn scores, with a copy at the best validation epoch.

    Parameters
    ----------
    n_train
        Number of training cells.

    Attributes
    ----------
    total
        Sum of the scores of the epochs added so far, ``(n_train,)`` float64.
    best
        ``total`` as it was at the last :meth:`mark_best` (None before).
    epochs, best_epoch
        Epochs added; epochs added at the last :meth:`mark_best`.
    """

    def __init__(self, n_train: int) -> None:
        if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
            raise ValueError(f"n_train: expected a positive integer, got {n_train!r}")
        self.total = torch.zeros(n_train, dtype=torch.float64)
        self.best: torch.Tensor | None = None
        self.epochs = 0
        self.best_epoch = 0

    def add(self, scores: torch.Tensor) -> None:
        """Add one epoch's scores (:func:`tracin_scores`)."""
        if not isinstance(scores, torch.Tensor) or scores.shape != self.total.shape:
            got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores)
            raise ValueError(f"scores: expected shape {tuple(self.total.shape)}, got {got}")
        self.total += scores.double()
        self.epochs += 1

    def mark_best(self) -> None:
        """Remember the current sum as the one up to the best epoch."""
        self.best = self.total.clone()
        self.best_epoch = self.epochs

    def importance(self) -> torch.Tensor:
        """Normalised importance (:func:`normalize_importance`) up to the best epoch."""
        return normalize_importance(self.total if self.best is None else self.best)

    @property
    def nbytes(self) -> int:
        """Bytes held (the running sum and the best copy)."""
        n = self.total.numel() * self.total.element_size()
        return n if self.best is None else 2 * n

    def state(self) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """Arrays and attributes for a checkpoint (:meth:`load_state` reads them)."""
        arrays = {"total": self.total.clone()}
        if self.best is not None:
            arrays["best"] = self.best.clone()
        return arrays, {"epochs": self.epochs, "best_epoch": self.best_epoch}

    def load_state(self, arrays: dict[str, Any], attrs: dict[str, Any]) -> None:
        """Restore what :meth:`state` returned."""
        total = torch.as_tensor(arrays["total"], dtype=torch.float64)
        if total.shape != self.total.shape:
            raise ValueError(
                f"checkpoint: influence sum has shape {tuple(total.shape)}, expected "
                f"{tuple(self.total.shape)}"
            )
        self.total = total.clone()
        best = arrays.get("best")
        self.best = None if best is None else torch.as_tensor(best, dtype=torch.float64).clone()
        self.epochs = int(attrs["epochs"])
        self.best_epoch = int(attrs["best_epoch"])


def normalize_importance(scores: torch.Tensor) -> torch.Tensor:
    """``|scores| / max |scores|`` (float64, in ``[0, 1]``, maximum 1; all zeros stay 0).

    Raises
    ------
    ValueError
        If ``scores`` is not a non-empty 1-D tensor of finite numbers.
    """
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1 or scores.numel() == 0:
        raise ValueError("scores: expected a non-empty 1-D torch tensor")
    if not bool(torch.isfinite(scores).all()):
        raise ValueError("scores: expected finite values (the training diverged?)")
    a = scores.double().abs()
    top = a.max()
    return a / top if top > 0 else a


def _check_indices(indices: Any, shape: Sequence[int], label: str = "indices") -> torch.Tensor:
    if not isinstance(indices, torch.Tensor) or indices.ndim != 2:
        raise ValueError(f"{label}: expected a (n, d) torch tensor of integers")
    if indices.shape[1] != len(shape):
        raise ValueError(f"{label}: expected {len(shape)} columns, got {indices.shape[1]}")
    if indices.dtype.is_floating_point or indices.dtype == torch.bool:
        raise TypeError(f"{label}: expected integers, got {indices.dtype}")
    if indices.numel():
        size = torch.tensor(tuple(shape))
        if bool((indices < 0).any()) or bool((indices >= size).any()):
            raise ValueError(f"{label}: an index is outside shape {tuple(shape)}")
    return indices.long()


def cell_key_tensor(indices: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """Row-major linear index (int64) of each cell of ``indices`` in a tensor of ``shape``."""
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) >= 2**63:
        raise ValueError(f"shape: {shape} has too many cells for int64 keys")
    indices = _check_indices(indices, shape)
    strides = [math.prod(shape[m + 1 :]) for m in range(len(shape))]
    return indices @ torch.tensor(strides, dtype=torch.int64)


def entity_importance(
    indices: torch.Tensor, importance: torch.Tensor, shape: Sequence[int]
) -> list[torch.Tensor]:
    """Per mode, the importance of each entity: sum over its training cells, normalised.

    Parameters
    ----------
    indices
        Training cells ``(n, d)``.
    importance
        Their importances ``(n,)`` (nonnegative, e.g. :func:`normalize_importance`).
    shape
        Size of each mode.

    Returns
    -------
    list of torch.Tensor
        ``d`` float64 probability vectors of lengths ``shape`` (a mode whose cells all have
        importance 0 gets the uniform distribution, with a log message).

    Raises
    ------
    ValueError
        On mismatched shapes or a negative or non-finite importance.
    """
    indices = _check_indices(indices, shape)
    if not isinstance(importance, torch.Tensor) or importance.shape != (indices.shape[0],):
        raise ValueError(f"importance: expected a tensor of shape ({indices.shape[0]},)")
    w = importance.double()
    if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
        raise ValueError("importance: expected finite nonnegative values")
    out = []
    for m, n in enumerate(shape):
        p = torch.bincount(indices[:, m], weights=w, minlength=int(n))
        total = p.sum()
        if total > 0:
            out.append(p / total)
        else:
            logger.info("mode %d: every cell has importance 0; sampling it uniformly", m)
            out.append(torch.full((int(n),), 1.0 / int(n), dtype=torch.float64))
    return out


def entity_weights(
    method: str,
    indices: torch.Tensor,
    shape: Sequence[int],
    importance: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Per-mode sampling distributions of an augmentation method.

    Parameters
    ----------
    method
        ``"dain"`` (entity importance from ``importance``), ``"uniform"`` (every entity of a
        mode equally likely) or ``"frequency"`` (proportional to its number of training cells).
    indices
        Training cells ``(n, d)``.
    shape
        Size of each mode.
    importance
        Cell importances, needed by ``"dain"``.

    Raises
    ------
    ValueError
        On an unknown method, or ``"dain"`` without ``importance``.
    """
    shape = tuple(int(s) for s in shape)
    if method == "dain":
        if importance is None:
            raise ValueError("importance: required by method 'dain'")
        return entity_importance(indices, importance, shape)
    if method == "uniform":
        return [torch.full((n,), 1.0 / n, dtype=torch.float64) for n in shape]
    if method == "frequency":
        ones = torch.ones(indices.shape[0], dtype=torch.float64)
        return entity_importance(indices, ones, shape)
    raise ValueError(f"method: expected 'dain', 'uniform' or 'frequency', got {method!r}")


def _first_occurrences(keys: torch.Tensor) -> torch.Tensor:
    """Positions of the first occurrence of each distinct key, in order of appearance."""
    uniq, inverse = torch.unique(keys, return_inverse=True)
    pos = torch.arange(keys.numel())
    first = torch.full((uniq.numel(),), keys.numel(), dtype=torch.int64)
    first = first.scatter_reduce(0, inverse, pos, reduce="amin")
    return torch.sort(first).values


def sample_cells(
    probs: Sequence[torch.Tensor],
    n: int,
    *,
    exclude: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    max_rounds: int = 1000,
) -> torch.Tensor:
    """Draw ``n`` distinct new cells, each mode's index from its distribution.

    Each round draws every mode's indices independently (with replacement) from ``probs``
    and keeps the cells that are not excluded and not drawn before, until ``n`` are found.

    Parameters
    ----------
    probs
        One probability vector per mode (nonnegative, sums to 1); its length is the mode size.
    n
        Number of cells to return (``>= 0``).
    exclude
        Keys (:func:`cell_key_tensor`) of cells that must not be drawn (observed, test).
    generator
        Seeds the draws.
    max_rounds
        Rounds before giving up.

    Returns
    -------
    torch.Tensor
        ``(n, d)`` int64 cells.

    Raises
    ------
    ValueError
        If ``n`` is negative, a distribution is invalid, or fewer than ``n`` cells with
        nonzero probability are left outside ``exclude``.
    RuntimeError
        If ``max_rounds`` rounds did not find ``n`` cells.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n: expected an integer >= 0, got {n!r}")
    shape = []
    for m, p in enumerate(probs):
        if not isinstance(p, torch.Tensor) or p.ndim != 1 or p.numel() == 0:
            raise ValueError(f"probs[{m}]: expected a non-empty 1-D tensor")
        if not bool(torch.isfinite(p).all()) or bool((p < 0).any()):
            raise ValueError(f"probs[{m}]: expected finite nonnegative probabilities")
        if abs(float(p.double().sum()) - 1.0) > 1e-6:
            raise ValueError(f"probs[{m}]: expected probabilities summing to 1")
        shape.append(int(p.numel()))
    if not shape:
        raise ValueError("probs: expected one distribution per mode, got none")
    d = len(shape)
    strides = torch.tensor([math.prod(shape[m + 1 :]) for m in range(d)], dtype=torch.int64)
    excluded = torch.empty(0, dtype=torch.int64) if exclude is None else exclude.long().unique()
    # cells with nonzero probability that are not excluded
    support = math.prod(int((p > 0).sum()) for p in probs)
    if excluded.numel():
        ex_idx = torch.stack([(excluded // strides[m]) % shape[m] for m in range(d)], dim=1)
        inside = torch.ones(excluded.numel(), dtype=torch.bool)
        for m, p in enumerate(probs):
            inside &= p[ex_idx[:, m]] > 0
        support -= int(inside.sum())
    if n > support:
        raise ValueError(
            f"n: asked for {n} new cells but only {support} cells with nonzero probability "
            "are not excluded"
        )
    found = torch.empty(0, dtype=torch.int64)
    for _ in range(max_rounds):
        need = n - found.numel()
        if need == 0:
            break
        draw = max(16, math.ceil(1.25 * need))
        cols = [
            torch.multinomial(p.double(), draw, replacement=True, generator=generator)
            for p in probs
        ]
        keys = torch.stack(cols, dim=1) @ strides
        keys = keys[_first_occurrences(keys)]
        keep = ~torch.isin(keys, excluded) & ~torch.isin(keys, found)
        found = torch.cat([found, keys[keep][:need]])
    else:
        if found.numel() < n:
            raise RuntimeError(
                f"sample_cells: found {found.numel()} of {n} new cells in {max_rounds} rounds"
            )
    return torch.stack([(found // strides[m]) % shape[m] for m in range(d)], dim=1)
