"""Offline character-level corpora: text that ships with Python itself.

Two corpora, both read from the running interpreter's standard library, so no download is
ever needed (the text differs slightly between Python versions; the version is recorded in
:attr:`CharCorpus.source`):

- ``"python_docs"``: English prose, the help topics of ``pydoc_data.topics`` (the text
  ``help("if")`` shows; about 0.47 M characters on Python 3.11), keys in sorted order;
- ``"python_source"``: Python code, the source files of a fixed list of pure-Python
  standard-library modules (:data:`SOURCE_MODULES`, about 0.75 M characters).

Both are encoded over one fixed vocabulary (:data:`VOCAB`: newline and printable ASCII), so
a model pretrained on one corpus can be adapted to the other without touching its
embedding. Tabs become spaces; every other character outside the vocabulary becomes ``"?"``.

A synthetic associative-recall task (:class:`RecallTask`, :func:`recall_batch`: key-value
pairs, then a query key whose value the model must give) has its own small vocabulary.

Training tasks on torch tensors: :func:`char_model_task` (next-character prediction with
:func:`tensorsim.nn.models.small.build_char_transformer`, a
:class:`problems.adaptation.ModelTask`) and :func:`lm_data` (the batches and validation set
of a decoder language model on the characters or the recall task, :class:`LMDataParams`).

Problems are declarative: this module builds data and imports neither MPI nor torch (the
window helpers that return torch tensors import it when called).
"""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from tensorsim.config import ConfigError, Params, param

if TYPE_CHECKING:
    from problems.adaptation import ModelTask

__all__ = [
    "spaced_windows",
    "windows",
    "CORPORA",
    "IGNORE_INDEX",
    "SOURCE_MODULES",
    "VOCAB",
    "CharCorpus",
    "LMDataParams",
    "RecallTask",
    "char_model_task",
    "decode",
    "encode",
    "lm_data",
    "load_corpus",
    "recall_batch",
    "sample_batch",
]

#: The shared character vocabulary: newline, then ASCII 32 (space) to 126 (``~``).
VOCAB = "\n" + "".join(chr(c) for c in range(32, 127))

#: Standard-library modules whose source makes the ``"python_source"`` corpus.
SOURCE_MODULES = (
    "argparse",
    "ast",
    "calendar",
    "configparser",
    "dataclasses",
    "difflib",
    "fractions",
    "functools",
    "inspect",
    "pathlib",
    "shutil",
    "statistics",
    "textwrap",
)

#: Names of the corpora :func:`load_corpus` knows.
CORPORA = ("python_docs", "python_source")

_INDEX = np.full(128, VOCAB.index("?"), dtype=np.int64)
_INDEX[[ord(c) for c in VOCAB]] = np.arange(len(VOCAB))
_INDEX[ord("\t")] = VOCAB.index(" ")


@dataclass(frozen=True)
class CharCorpus:
    """A character corpus split into a training and a validation part.

    Attributes
    ----------
    name
        One of :data:`CORPORA`.
    train, val
        Token ids (int64) into :data:`VOCAB`; ``val`` is the last ``val_fraction`` of the text.
    source
        Where the text came from (with the Python version).
    """

    name: str
    train: np.ndarray
    val: np.ndarray
    source: str

    @property
    def vocab_size(self) -> int:
        """Number of distinct tokens, ``len(VOCAB)``."""
        return len(VOCAB)


def encode(text: str) -> np.ndarray:
    """Token ids of ``text`` over :data:`VOCAB` (tab -> space, other characters -> ``?``)."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    return _INDEX[np.minimum(codes, 127)]


def decode(ids: np.ndarray) -> str:
    """The text of token ids (inverse of :func:`encode` on text inside the vocabulary)."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= len(VOCAB)):
        raise ValueError(
            f"ids: expected token ids in [0, {len(VOCAB)}), got {ids.min()}..{ids.max()}"
        )
    return "".join(VOCAB[i] for i in ids.ravel().tolist())


def _python_docs() -> tuple[str, str]:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics)), "pydoc_data.topics"


def _python_source() -> tuple[str, str]:
    parts = []
    for name in SOURCE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise FileNotFoundError(f"the standard-library module {name!r} has no source file")
        parts.append(Path(spec.origin).read_text(encoding="utf-8"))
    return "\n\n".join(parts), "standard-library source of " + ", ".join(SOURCE_MODULES)


def load_corpus(
    name: str, *, max_chars: int | None = None, val_fraction: float = 0.1
) -> CharCorpus:
    """Load one of :data:`CORPORA`, encoded and split.

    Parameters
    ----------
    name
        ``"python_docs"`` or ``"python_source"``.
    max_chars
        Keep only the first this many characters (None: all).
    val_fraction
        Fraction of the (kept) text, taken from its end, used for validation.

    Returns
    -------
    CharCorpus
    """
    readers = {"python_docs": _python_docs, "python_source": _python_source}
    if name not in readers:
        raise ValueError(f"name: expected one of {CORPORA}, got {name!r}")
    if max_chars is not None and max_chars < 2:
        raise ValueError(f"max_chars: expected at least 2 characters or None, got {max_chars}")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction: expected a number in (0, 1), got {val_fraction}")
    text, origin = readers[name]()
    ids = encode(text[:max_chars] if max_chars is not None else text)
    n_val = max(1, int(round(val_fraction * ids.size)))
    source = f"{origin} (Python {platform.python_version()})"
    return CharCorpus(name=name, train=ids[:-n_val], val=ids[-n_val:], source=source)


def sample_batch(
    ids: np.ndarray, batch: int, seq_len: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random windows of ``ids`` and their next-token targets.

    Parameters
    ----------
    ids
        Token ids (1-D).
    batch, seq_len
        Number of windows and their length.
    rng
        Generator of the window starts.

    Returns
    -------
    inputs, targets
        int64 arrays of shape ``(batch, seq_len)``; ``targets`` is ``inputs`` shifted by one.
    """
    if batch < 1 or seq_len < 1:
        raise ValueError(f"batch, seq_len: expected positive integers, got {batch}, {seq_len}")
    if ids.ndim != 1 or ids.size < seq_len + 1:
        raise ValueError(
            f"ids: expected a 1-D array longer than seq_len={seq_len}, got shape {ids.shape}"
        )
    starts = rng.integers(0, ids.size - seq_len, size=batch)
    window = starts[:, None] + np.arange(seq_len + 1)
    tokens = ids[window]
    return tokens[:, :-1], tokens[:, 1:]


# ----------------------------------------------------------------------------- recall

#: Target value of the positions that carry no loss in :func:`recall_batch` (the default
#: ``ignore_index`` of ``torch.nn.functional.cross_entropy``).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class RecallTask:
    """Vocabulary of the synthetic associative-recall task (:func:`recall_batch`).

    The vocabulary is its own, not :data:`VOCAB`: ids ``0 .. n_keys - 1`` are keys,
    ``n_keys .. n_keys + n_values - 1`` are values, and ``n_keys + n_values`` is the query
    marker.

    Attributes
    ----------
    n_keys, n_values
        Number of distinct key and value tokens.
    n_pairs
        Key-value pairs per sequence (at most ``n_keys``: keys within a sequence are
        distinct).
    """

    n_keys: int = 16
    n_values: int = 16
    n_pairs: int = 8

    def __post_init__(self) -> None:
        for name in ("n_keys", "n_values", "n_pairs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        if self.n_pairs > self.n_keys:
            raise ValueError(
                f"n_pairs: expected at most n_keys={self.n_keys} (distinct keys per "
                f"sequence), got {self.n_pairs}"
            )

    @property
    def query_token(self) -> int:
        """Id of the query marker, ``n_keys + n_values``."""
        return self.n_keys + self.n_values

    @property
    def vocab_size(self) -> int:
        """``n_keys + n_values + 1``."""
        return self.n_keys + self.n_values + 1

    @property
    def seq_len(self) -> int:
        """Tokens per sequence, ``2 n_pairs + 2``."""
        return 2 * self.n_pairs + 2


def recall_batch(
    task: RecallTask, batch: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Sequences of the associative-recall task and their targets.

    Each sequence is ``k_1 v_1 k_2 v_2 ... k_N v_N Q k_q`` (``N = task.n_pairs``): ``N``
    distinct keys drawn uniformly, each followed by a value drawn uniformly (with
    repetition), then the query marker ``Q`` and one of the ``N`` keys, drawn uniformly. The
    model must answer the value paired with ``k_q`` at the last position. This is the
    synthetic recall task of the linear-attention and state-space literature (e.g. Zoology,
    arXiv 2312.04927), kept here to a single query.

    Parameters
    ----------
    task
        Vocabulary and number of pairs.
    batch
        Number of sequences.
    rng
        Generator of all draws.

    Returns
    -------
    inputs, targets
        int64 arrays ``(batch, task.seq_len)``. ``targets[:, -1]`` is the value paired with
        the query key ``inputs[:, -1]``; every other target is :data:`IGNORE_INDEX` (no
        loss), so ``cross_entropy(logits.flatten(0, 1), targets.flatten())`` with its default
        ``ignore_index`` scores the answer only.

    Raises
    ------
    TypeError
        If ``task`` is not a :class:`RecallTask`.
    ValueError
        If ``batch`` is not a positive integer.
    """
    if not isinstance(task, RecallTask):
        raise TypeError(f"task: expected a RecallTask, got {type(task).__name__}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ValueError(f"batch: expected an integer >= 1, got {batch!r}")
    n = task.n_pairs
    keys = np.argsort(rng.random((batch, task.n_keys)), axis=1)[:, :n]
    values = task.n_keys + rng.integers(0, task.n_values, size=(batch, n))
    which = rng.integers(0, n, size=batch)
    rows = np.arange(batch)
    inputs = np.empty((batch, task.seq_len), dtype=np.int64)
    inputs[:, 0 : 2 * n : 2] = keys
    inputs[:, 1 : 2 * n : 2] = values
    inputs[:, -2] = task.query_token
    inputs[:, -1] = keys[rows, which]
    targets = np.full_like(inputs, IGNORE_INDEX)
    targets[:, -1] = values[rows, which]
    return inputs, targets


def windows(ids: np.ndarray, starts: np.ndarray, length: int) -> tuple[Any, Any]:
    """Windows of ``length`` tokens of ``ids`` at ``starts`` and their next-token targets.

    Returns torch int64 tensors ``(inputs, targets)`` of shape ``(len(starts), length)``.
    """
    import torch

    tokens = torch.from_numpy(ids[starts[:, None] + np.arange(length + 1)])
    return tokens[:, :-1], tokens[:, 1:]


def spaced_windows(ids: np.ndarray, length: int, count: int) -> tuple[Any, Any]:
    """``count`` evenly spaced windows of ``ids`` (an evaluation set)."""
    starts = np.linspace(0, ids.size - length - 1, count).astype(np.int64)
    return windows(ids, starts, length)


# ----------------------------------------------------------------------------- training tasks


def char_model_task(
    *,
    corpus: str,
    max_chars: int | None,
    context: int,
    batch_size: int,
    eval_windows: int,
    width: int,
    layers: int,
    heads: int,
) -> ModelTask:
    """Next-character prediction on an offline corpus (:func:`load_corpus`).

    Training windows of ``context`` characters are drawn at random from the training text
    (generator seeded ``[seed, step]``); validation and test are ``eval_windows`` evenly
    spaced windows from the first and the second half of the held-out tail (the last 10% of
    the text). The model is :func:`tensorsim.nn.models.small.build_char_transformer`
    (``width``, ``layers``, ``heads``).

    Raises
    ------
    ValueError
        If a held-out half is shorter than a window (naming ``max_chars``).
    """
    import torch

    from problems.adaptation import ModelTask
    from tensorsim.nn.models.small import build_char_transformer

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

    def sample(seed: int, step: int) -> tuple[Any, Any]:
        x, y = sample_batch(train, batch_size, context, np.random.default_rng([seed, step]))
        return torch.from_numpy(x), torch.from_numpy(y)

    def build(seed: int) -> Any:
        return build_char_transformer(
            len(VOCAB), context, width=width, layers=layers, heads=heads, seed=seed
        )

    return ModelTask(data, sample, build)


@dataclass(frozen=True)
class LMDataParams(Params):
    """Batches and the validation set of a language model (:func:`lm_data`).

    Attributes
    ----------
    corpus
        ``chars``: :data:`CORPORA` entry.
    seq_len
        ``chars``: characters per window (``recall``: set by the pairs).
    batch_size
        Sequences per step.
    eval_size
        Validation windows (``chars``) or sequences (``recall``).
    max_chars
        ``chars``: keep only the first this many characters of the corpus (0: all).
    n_keys, n_values, n_pairs
        ``recall``: key and value vocabularies, pairs per sequence.
    seed
        Seed of the weights, the batches and the recall validation set.
    """

    corpus: Literal["python_docs", "python_source"] = param("python_docs", "chars: corpus")
    seq_len: int = param(64, "chars: characters per window", ge=2)
    batch_size: int = param(16, "sequences per step", ge=1)
    eval_size: int = param(64, "validation windows or sequences", ge=1)
    max_chars: int = param(0, "chars: corpus prefix (0: all)", ge=0)
    n_keys: int = param(16, "recall: key tokens", ge=1)
    n_values: int = param(16, "recall: value tokens", ge=1)
    n_pairs: int = param(8, "recall: key-value pairs per sequence", ge=1)
    seed: int = param(0, "seed of weights, batches and validation set", ge=0)


def lm_data(task: str, d: LMDataParams) -> tuple[int, Callable[[int], Any], tuple[Any, Any]]:
    """Vocabulary size, ``batches(step)`` and the validation ``(inputs, targets)``.

    ``task = "chars"``: random windows of ``d.seq_len`` characters of ``d.corpus`` (the
    first ``d.max_chars``), validation on ``d.eval_size`` evenly spaced windows of the
    held-out tail; ``"recall"``: :func:`recall_batch` sequences. The batch of a step comes
    from a generator seeded ``[d.seed, step]``, the recall validation set from
    ``[d.seed, 2**30]``. Torch int64 tensors.

    Raises
    ------
    ConfigError
        If a corpus split is shorter than a window (naming ``data.max_chars``).
    """
    import torch

    if task == "recall":
        recall = RecallTask(d.n_keys, d.n_values, d.n_pairs)

        def recall_batches(step: int) -> Any:
            x, y = recall_batch(recall, d.batch_size, np.random.default_rng([d.seed, step]))
            return torch.from_numpy(x), torch.from_numpy(y)

        x, y = recall_batch(recall, d.eval_size, np.random.default_rng([d.seed, 1 << 30]))
        return recall.vocab_size, recall_batches, (torch.from_numpy(x), torch.from_numpy(y))
    if task != "chars":
        raise ValueError(f"task: expected 'chars' or 'recall', got {task!r}")
    corpus = load_corpus(d.corpus, max_chars=d.max_chars or None)
    n = d.seq_len
    if corpus.val.size < n + 1 or corpus.train.size < n + 1:
        raise ConfigError(
            f"config key 'data.max_chars': the corpus split is shorter than data.seq_len={n}"
        )

    def chars(step: int) -> Any:
        x, y = sample_batch(corpus.train, d.batch_size, n, np.random.default_rng([d.seed, step]))
        return torch.from_numpy(x), torch.from_numpy(y)

    return corpus.vocab_size, chars, spaced_windows(corpus.val, n, d.eval_size)
