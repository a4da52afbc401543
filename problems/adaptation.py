"""Pretrain-then-adapt tasks for the adapter experiments, all offline.

- Digits: scikit-learn's bundled 8 x 8 handwritten digits (1797 images, 10 classes).
  Task A is the digits as they are; task B is the same images with their 64 pixels in a
  fixed random order, so the features a network learned on task A must be re-wired. One
  stratified train/test split serves both tasks.
- Characters: next-character prediction on Python's own text (:mod:`problems.language`):
  task A is standard-library source code, task B the English help topics.

:func:`build_mlp` is the MLP of the digits experiment: an input layer, ``depth`` hidden
layers of one shape (so LoTR shares its factors across all of them, arXiv 2402.01376) and a
classifier head. The transformer of the character experiment is
:class:`tensorsim.nn.transformer.Decoder`.

Problems are declarative: this module builds data and models and imports neither MPI nor
HDF5; torch and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["DigitsTask", "build_mlp", "digits_tasks"]


class DigitsTask(NamedTuple):
    """One digits classification task (float32 pixels in [0, 1], int64 labels).

    Attributes
    ----------
    x_train, y_train, x_test, y_test
        Images ``(n, 64)`` and labels ``(n,)`` of the training and test parts.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def digits_tasks(
    seed: int = 0, *, test_fraction: float = 0.3
) -> tuple[DigitsTask, DigitsTask, np.ndarray]:
    """Task A (digits) and task B (pixel-permuted digits) on one stratified split.

    Parameters
    ----------
    seed
        Seed of the split and of the pixel permutation.
    test_fraction
        Fraction of the 1797 images held out for testing, in (0, 1).

    Returns
    -------
    task_a, task_b, permutation
        The two tasks and the permutation of the 64 pixels (``x_b = x_a[:, permutation]``).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: expected a number in (0, 1), got {test_fraction}")
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    permutation = np.random.default_rng([seed, 1]).permutation(x.shape[1])
    task_a = DigitsTask(x_train, y_train, x_test, y_test)
    task_b = DigitsTask(x_train[:, permutation], y_train, x_test[:, permutation], y_test)
    return task_a, task_b, permutation


def build_mlp(
    *,
    in_features: int = 64,
    width: int = 128,
    depth: int = 6,
    classes: int = 10,
    generator: torch.Generator | None = None,
) -> torch.nn.Sequential:
    r"""The MLP of the digits experiment: ``input``, ``hidden1`` ... ``hidden{depth}``, ``head``.

    Linear layers with biases and ReLU between them; the hidden layers are all
    ``width x width``, the targets of the adapters (pattern ``r"hidden\d+"``).

    Parameters
    ----------
    in_features, width, classes
        Input size, hidden width and number of classes.
    depth
        Number of hidden ``width x width`` layers (at least 1).
    generator
        Generator of the initial weights (``None``: torch's global one).

    Returns
    -------
    torch.nn.Sequential
    """
    import torch

    for label, value in (("in_features", in_features), ("width", width), ("classes", classes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label}: expected a positive integer, got {value!r}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth: expected an integer >= 1, got {depth!r}")
    layers: OrderedDict[str, torch.nn.Module] = OrderedDict()
    layers["input"] = torch.nn.Linear(in_features, width)
    layers["act0"] = torch.nn.ReLU()
    for i in range(1, depth + 1):
        layers[f"hidden{i}"] = torch.nn.Linear(width, width)
        layers[f"act{i}"] = torch.nn.ReLU()
    layers["head"] = torch.nn.Linear(width, classes)
    model = torch.nn.Sequential(layers)
    if generator is not None:
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.Linear):
                    bound = 1.0 / m.in_features**0.5
                    m.weight.uniform_(-bound, bound, generator=generator)
                    m.bias.uniform_(-bound, bound, generator=generator)
    return model
