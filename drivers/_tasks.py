"""Data of the small-model experiments on torch tensors, shared by the ML sweep drivers.

The digits split with its validation part and its batches, evenly spaced evaluation windows
of a character corpus, the cross-entropy loss and the per-split evaluation that
``drivers.adapters`` and ``drivers.smmf`` both use. Batches are a function of
``(seed, step)`` only, so runs that differ in method or optimizer see the same data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from problems.adaptation import DigitsTask

__all__ = [
    "Batch",
    "batch_loss",
    "cross_entropy",
    "digits_split",
    "evaluate_splits",
    "spaced_windows",
    "windows",
]

Batch = tuple[torch.Tensor, torch.Tensor]


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


def digits_split(
    task: DigitsTask, *, val_fraction: float, seed: int, batch_size: int
) -> tuple[dict[str, Batch], Callable[[int, int], Batch]]:
    """Validation/test tensors of a digits task and the sampler of its training batches.

    A stratified ``val_fraction`` of the training images is held out for validation
    (scikit-learn's ``train_test_split`` with ``random_state=seed``); the test images are
    the task's.

    Returns
    -------
    data, sample
        ``{"val": (x, y), "test": (x, y)}`` and ``sample(seed, step)``, ``batch_size``
        training images drawn with replacement by a generator seeded ``[seed, step]``.
    """
    from sklearn.model_selection import train_test_split

    x_tr, x_val, y_tr, y_val = train_test_split(
        task.x_train,
        task.y_train,
        test_size=val_fraction,
        random_state=seed,
        stratify=task.y_train,
    )
    x, y = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    data = {
        "val": (torch.from_numpy(x_val), torch.from_numpy(y_val)),
        "test": (torch.from_numpy(task.x_test), torch.from_numpy(task.y_test)),
    }

    def sample(batch_seed: int, step: int) -> Batch:
        rng = np.random.default_rng([batch_seed, step])
        idx = torch.from_numpy(rng.integers(0, x.shape[0], size=batch_size))
        return x[idx], y[idx]

    return data, sample


def windows(ids: np.ndarray, starts: np.ndarray, length: int) -> Batch:
    """Windows of ``length`` tokens of ``ids`` at ``starts`` and their next-token targets."""
    tokens = torch.from_numpy(ids[starts[:, None] + np.arange(length + 1)])
    return tokens[:, :-1], tokens[:, 1:]


def spaced_windows(ids: np.ndarray, length: int, count: int) -> Batch:
    """``count`` evenly spaced windows of ``ids`` (an evaluation set)."""
    starts = np.linspace(0, ids.size - length - 1, count).astype(np.int64)
    return windows(ids, starts, length)
