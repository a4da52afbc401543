"""Training data of :mod:`problems.language`: the decoder LM data and the character task."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from problems.language import (  # noqa: E402
    IGNORE_INDEX,
    VOCAB,
    LMDataParams,
    char_model_task,
    decode,
    lm_data,
    load_corpus,
)
from tensorsim.config import ConfigError  # noqa: E402


def test_recall_data():
    d = LMDataParams(batch_size=5, eval_size=7, n_keys=6, n_values=4, n_pairs=3, seed=2)
    vocab, batches, (x, y) = lm_data("recall", d)
    assert vocab == 6 + 4 + 1 and x.shape == y.shape == (7, 8) and x.dtype == torch.int64
    assert torch.all(y[:, :-1] == IGNORE_INDEX) and torch.all(y[:, -1] >= 6)
    a, b = batches(4), batches(4)
    assert a[0].shape == (5, 8) and torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], batches(5)[0])
    _, _, (x2, _) = lm_data("recall", LMDataParams(eval_size=7, n_keys=6, n_values=4, n_pairs=3))
    assert not torch.equal(x, x2)  # the validation set follows the seed


def test_chars_data_windows_of_the_corpus():
    d = LMDataParams(corpus="python_docs", seq_len=12, batch_size=3, eval_size=4, max_chars=3000)
    vocab, batches, (x, y) = lm_data("chars", d)
    corpus = load_corpus("python_docs", max_chars=3000)
    assert vocab == len(VOCAB) and x.shape == y.shape == (4, 12)
    # evenly spaced windows of the held-out tail, the first at its start, targets shifted
    np.testing.assert_array_equal(x[0].numpy(), corpus.val[:12])
    np.testing.assert_array_equal(y[:, :-1].numpy(), x[:, 1:].numpy())
    xb, yb = batches(0)
    assert xb.shape == (3, 12) and decode(xb[0].numpy()) in decode(corpus.train)
    with pytest.raises(ConfigError, match="data.max_chars"):
        lm_data("chars", LMDataParams(seq_len=64, max_chars=300))
    with pytest.raises(ValueError, match="task"):
        lm_data("words", d)


def test_char_model_task():
    task = char_model_task(
        corpus="python_source", max_chars=5000, context=8, batch_size=4, eval_windows=3,
        width=16, layers=1, heads=2,
    )  # fmt: skip
    assert set(task.data) == {"val", "test"}
    assert task.data["val"][0].shape == task.data["test"][1].shape == (3, 8)
    x, y = task.sample(1, 2)
    assert x.shape == (4, 8) and torch.equal(x, task.sample(1, 2)[0])
    assert torch.equal(x[:, 1:], y[:, :-1])
    model = task.build(0)
    assert model(x).shape == (4, 8, len(VOCAB))
    with pytest.raises(ValueError, match="max_chars"):
        char_model_task(
            corpus="python_source", max_chars=100, context=8, batch_size=4, eval_windows=3,
            width=16, layers=1, heads=2,
        )  # fmt: skip
