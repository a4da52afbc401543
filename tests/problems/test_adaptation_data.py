"""problems.language and problems.adaptation: offline corpora, digits tasks."""

from __future__ import annotations

import numpy as np
import pytest

from problems.language import CORPORA, VOCAB, decode, encode, load_corpus, sample_batch


def test_vocab_round_trip_and_replacements():
    text = "def f(x):\n    return x ~ 1"
    np.testing.assert_array_equal(encode(text), [VOCAB.index(c) for c in text])
    assert decode(encode(text)) == text
    assert decode(encode("a\tb\u00e9c")) == "a b?c"
    assert len(VOCAB) == 96
    with pytest.raises(ValueError, match="ids"):
        decode(np.array([96]))


@pytest.mark.parametrize("name", CORPORA)
def test_corpora_split_and_content(name):
    corpus = load_corpus(name, val_fraction=0.1)
    n = corpus.train.size + corpus.val.size
    assert corpus.val.size == round(0.1 * n) and n > 300_000
    assert corpus.train.dtype == np.int64 and corpus.train.max() < corpus.vocab_size
    text = decode(corpus.train[:5000])
    assert ("def " in text) == (name == "python_source")
    short = load_corpus(name, max_chars=1000)
    np.testing.assert_array_equal(np.concatenate([short.train, short.val]), corpus.train[:1000])


def test_sample_batch_targets_are_the_next_tokens():
    ids = np.arange(50)
    x, y = sample_batch(ids, 4, 7, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 7)
    np.testing.assert_array_equal(y, x + 1)
    with pytest.raises(ValueError, match="longer than seq_len"):
        sample_batch(ids[:7], 1, 7, np.random.default_rng(0))


def test_load_corpus_rejects_bad_arguments():
    with pytest.raises(ValueError, match="name"):
        load_corpus("shakespeare")
    with pytest.raises(ValueError, match="val_fraction"):
        load_corpus("python_docs", val_fraction=1.0)


def test_digits_tasks_share_a_split_and_permute_pixels():
    pytest.importorskip("sklearn")
    from problems.adaptation import digits_tasks

    a, b, perm = digits_tasks(0)
    assert a.x_train.shape == (1257, 64) and a.x_test.shape == (540, 64)
    np.testing.assert_array_equal(b.x_train, a.x_train[:, perm])
    np.testing.assert_array_equal(b.y_test, a.y_test)
    assert sorted(perm) == list(range(64)) and np.any(perm != np.arange(64))
    assert 0.0 <= a.x_train.min() and a.x_train.max() == 1.0
    # stratified: every class in the test split
    assert np.bincount(a.y_test).min() >= 50
