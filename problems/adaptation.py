"""Pretrain-then-adapt tasks for the adapter experiments, all offline.

- Digits: scikit-learn's bundled 8 x 8 handwritten digits (1797 images, 10 classes).
  Task A is the digits as they are; task B is the same images with their 64 pixels in a
  fixed random order, so the features a network learned on task A must be re-wired. One
  stratified train/test split serves both tasks.
- Characters: next-character prediction on Python's own text (:mod:`problems.language`):
  task A is standard-library source code, task B the English help topics.

The adapter experiments (``drivers.adapters``) pretrain on task A and adapt to task B of an
:class:`AdaptationTask` (the evaluation sets and training batches of both parts and the
builder of the pretrained model), made by :func:`adaptation_task` from
:class:`AdaptationModelParams` and :class:`AdaptationDataParams`: the digits pair with
:func:`tensorsim.nn.models.mlp.build_mlp` (:func:`digits_adaptation_task`) or the characters
pair with :class:`tensorsim.nn.models.decoder.Decoder` (:func:`char_adaptation_task`).

The optimizer comparisons train small models on a :class:`ModelTask` (a model builder, the
training batch of every step and the evaluation sets): :func:`digits_model_task` on the
digits and :func:`problems.language.char_model_task` on the characters, configured by
:class:`TaskDataParams`.

Problems are declarative: this module builds data and models and imports neither MPI nor
HDF5; torch and scikit-learn are imported inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import numpy as np

from tensorsim.config import Params, param

if TYPE_CHECKING:
    import torch

__all__ = [
    "AdaptationDataParams",
    "AdaptationModelParams",
    "AdaptationTask",
    "DigitsTask",
    "ModelTask",
    "TaskDataParams",
    "UNUSED_FIELDS",
    "adaptation_task",
    "char_adaptation_task",
    "digits_adaptation_task",
    "digits_model_task",
    "digits_split",
    "digits_tasks",
]


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


def digits_split(
    task: DigitsTask, *, val_fraction: float, seed: int, batch_size: int
) -> tuple[dict[str, Any], Callable[[int, int], Any]]:
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
    import torch
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

    def sample(batch_seed: int, step: int) -> tuple[Any, Any]:
        rng = np.random.default_rng([batch_seed, step])
        idx = torch.from_numpy(rng.integers(0, x.shape[0], size=batch_size))
        return x[idx], y[idx]

    return data, sample


@dataclass(frozen=True)
class TaskDataParams(Params):
    """Batches and evaluation sets of the optimizer comparisons' tasks.

    Attributes
    ----------
    batch_size
        Samples (windows) per step.
    val_fraction
        Digits: fraction of the training split held out for validation.
    seed
        Digits: seed of the split (the run seeds set weights and batches).
    corpus
        Characters: ``"python_source"`` or ``"python_docs"``.
    max_chars
        Characters: keep the first this many characters of the corpus (0: all).
    context
        Characters: characters per window.
    eval_windows
        Characters: windows in each of the validation and test sets.
    """

    batch_size: int = param(64, "samples per step", ge=1)
    val_fraction: float = param(0.2, "digits: validation fraction", gt=0.0, lt=1.0)
    seed: int = param(0, "seed of the digits split", ge=0)
    corpus: Literal["python_source", "python_docs"] = param("python_source", "transformer: corpus")
    max_chars: int = param(300_000, "transformer: corpus prefix (0: all)", ge=0)
    context: int = param(32, "transformer: characters per window", ge=2)
    eval_windows: int = param(128, "transformer: windows per evaluation set", ge=1)


@dataclass
class ModelTask:
    """A model builder with its data (the task of :func:`solvers.optimizers.train_run`).

    Attributes
    ----------
    data
        ``"val"``, ``"test"`` -> ``(inputs, targets)`` torch tensors.
    sample
        ``sample(seed, step)`` -> the training batch of that step (a function of the seed
        and the step only, so every optimizer sees the same data).
    build
        ``build(seed)`` -> a fresh model, initial weights from ``seed``.
    """

    data: dict[str, tuple[Any, Any]]
    sample: Callable[[int, int], tuple[Any, Any]]
    build: Callable[[int], Any]


def digits_model_task(
    model: str, *, batch_size: int, val_fraction: float, data_seed: int
) -> ModelTask:
    """Digits (:func:`digits_tasks`, task A) for the digits CNN or MLP.

    The test set is that function's (30%); a stratified ``val_fraction`` of the training
    part is held out for validation (learning-rate selection, :func:`digits_split`).
    Batches are drawn with replacement from the rest. The models are
    :func:`tensorsim.nn.models.small.build_digits_cnn` and ``build_digits_mlp``.

    Parameters
    ----------
    model
        ``"cnn"`` or ``"mlp"``.
    batch_size, val_fraction
        Images per step; fraction held out for validation.
    data_seed
        Seed of the test and validation splits.
    """
    if model not in ("cnn", "mlp"):
        raise ValueError(f"model: expected 'cnn' or 'mlp', got {model!r}")
    from tensorsim.nn.models.small import build_digits_cnn, build_digits_mlp

    task = digits_tasks(data_seed)[0]
    data, sample = digits_split(
        task, val_fraction=val_fraction, seed=data_seed, batch_size=batch_size
    )
    builder = build_digits_cnn if model == "cnn" else build_digits_mlp
    return ModelTask(data, sample, lambda seed: builder(seed=seed))


@dataclass(frozen=True)
class AdaptationModelParams(Params):
    """The pretrained model of an :class:`AdaptationTask` (an MLP or a decoder)."""

    width: int = param(128, "MLP hidden width, or the decoder's d_model", ge=2)
    depth: int = param(8, "MLP hidden layers, or decoder blocks", ge=1)
    heads: int = param(4, "decoder: attention heads", ge=1)
    seq_len: int = param(64, "decoder: characters per window", ge=2)


@dataclass(frozen=True)
class AdaptationDataParams(Params):
    """Batches and evaluation sets of an :class:`AdaptationTask`."""

    batch_size: int = param(64, "samples (windows) per step", ge=1)
    val_fraction: float = param(
        0.2, "digits: fraction of the training split held out for validation", gt=0.0, lt=1.0
    )
    eval_windows: int = param(64, "characters: windows in each evaluation set", ge=1)
    max_chars: int = param(0, "characters: keep the first this many of each corpus (0: all)", ge=0)
    seed: int = param(0, "seed of the split, permutation, pretrained weights and batches", ge=0)


#: The fields of :class:`AdaptationModelParams` (``model.``) and :class:`AdaptationDataParams`
#: (``data.``) that a task does not use.
UNUSED_FIELDS = {
    "digits": ("model.heads", "model.seq_len", "data.eval_windows", "data.max_chars"),
    "chars": ("data.val_fraction",),
}


@dataclass
class AdaptationTask:
    """One pretrain (A) / adapt (B) pair on torch tensors.

    Attributes
    ----------
    data
        ``"a"``/``"b"`` -> evaluation split (``"val"``, ``"test"``) -> ``(inputs, targets)``.
    sample
        ``sample(part, seed, step)`` -> the training batch of that step of ``part`` (a
        function of the seed and the step only: every method sees the same data).
    build
        ``build(generator)`` -> a fresh model for task A, initial weights from
        ``generator`` (a ``torch.Generator``).
    """

    data: dict[str, dict[str, tuple[Any, Any]]]
    sample: Callable[[str, int, int], tuple[Any, Any]]
    build: Callable[[Any], Any]

    def batches(self, part: str, seed: int) -> Callable[[int], tuple[Any, Any]]:
        """``batches(step)``: the training batch of that step of ``part`` (``"a"``/``"b"``)."""
        return lambda step: self.sample(part, seed, step)


def digits_adaptation_task(
    *, width: int, depth: int, batch_size: int, seed: int, val_fraction: float
) -> AdaptationTask:
    """Digits (A) and pixel-permuted digits (B) for :func:`tensorsim.nn.models.mlp.build_mlp`.

    :func:`digits_tasks` (split and permutation from ``seed``); a stratified
    ``val_fraction`` of each training split is held out for validation (:func:`digits_split`).
    """
    from tensorsim.nn.models.mlp import build_mlp

    data, samplers = {}, {}
    for part, task in zip("ab", digits_tasks(seed)[:2], strict=True):
        data[part], samplers[part] = digits_split(
            task, val_fraction=val_fraction, seed=seed, batch_size=batch_size
        )

    def sample(part: str, batch_seed: int, step: int) -> tuple[Any, Any]:
        return samplers[part](batch_seed, step)

    return AdaptationTask(data, sample, lambda g: build_mlp(width=width, depth=depth, generator=g))


def char_adaptation_task(
    *,
    d_model: int,
    n_layers: int,
    n_heads: int,
    seq_len: int,
    batch_size: int,
    eval_windows: int,
    max_chars: int | None,
) -> AdaptationTask:
    """Python source (A) and Python's help topics (B) for a decoder language model.

    The model is :class:`tensorsim.nn.models.decoder.Decoder` over
    :data:`problems.language.VOCAB`, its weights drawn from torch's generator seeded by one
    draw from the given generator. Training windows start at random positions (a generator
    seeded ``[seed, step]``); validation and test are ``eval_windows`` evenly spaced windows
    from the two halves of each corpus's held-out tail (:func:`problems.language.load_corpus`,
    the first ``max_chars`` characters; None: all).
    """
    from problems.language import VOCAB, load_corpus, spaced_windows, windows

    train, data = {}, {}
    for part, name in (("a", "python_source"), ("b", "python_docs")):
        corpus = load_corpus(name, max_chars=max_chars)
        half = corpus.val.size // 2
        train[part] = corpus.train
        data[part] = {
            "val": spaced_windows(corpus.val[:half], seq_len, eval_windows),
            "test": spaced_windows(corpus.val[half:], seq_len, eval_windows),
        }

    def sample(part: str, batch_seed: int, step: int) -> tuple[Any, Any]:
        ids = train[part]
        rng = np.random.default_rng([batch_seed, step])
        return windows(ids, rng.integers(0, ids.size - seq_len - 1, size=batch_size), seq_len)

    def build(generator: torch.Generator) -> torch.nn.Module:
        import torch

        from tensorsim.nn.models.decoder import Decoder

        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
            return Decoder(
                len(VOCAB), d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                max_seq_len=seq_len,
            )  # fmt: skip

    return AdaptationTask(data, sample, build)


def adaptation_task(
    kind: str, model: AdaptationModelParams, data: AdaptationDataParams
) -> AdaptationTask:
    """The ``"digits"`` (MLP) or ``"chars"`` (decoder) task of the given parameters.

    Digits use ``model.width``, ``model.depth`` and every field of ``data`` but
    ``eval_windows`` and ``max_chars``; characters every field of ``model`` (width = d_model,
    depth = blocks) and of ``data`` but ``val_fraction`` (``seed`` seeds the weights and
    the batches of the caller, not the data).
    """
    if kind == "digits":
        return digits_adaptation_task(
            width=model.width, depth=model.depth, batch_size=data.batch_size,
            seed=data.seed, val_fraction=data.val_fraction,
        )  # fmt: skip
    if kind == "chars":
        return char_adaptation_task(
            d_model=model.width, n_layers=model.depth, n_heads=model.heads,
            seq_len=model.seq_len, batch_size=data.batch_size,
            eval_windows=data.eval_windows, max_chars=data.max_chars or None,
        )  # fmt: skip
    raise ValueError(f"kind: expected 'digits' or 'chars', got {kind!r}")
