"""The associative-recall generator of :mod:`problems.language`: invariants and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from problems.language import IGNORE_INDEX, RecallTask, recall_batch


def test_recall_batch_invariants():
    task = RecallTask(n_keys=10, n_values=7, n_pairs=6)
    x, y = recall_batch(task, 500, np.random.default_rng(0))
    assert x.shape == y.shape == (500, task.seq_len) == (500, 14)
    assert x.dtype == y.dtype == np.int64
    assert task.vocab_size == 18 and task.query_token == 17
    keys, values = x[:, 0:12:2], x[:, 1:12:2]
    assert keys.min() >= 0 and keys.max() < 10
    assert values.min() >= 10 and values.max() < 17
    assert all(len(set(row)) == 6 for row in keys.tolist())  # distinct keys per sequence
    assert np.all(x[:, -2] == task.query_token)
    assert np.all(y[:, :-1] == IGNORE_INDEX)
    for row in range(500):
        (where,) = np.nonzero(keys[row] == x[row, -1])
        assert where.size == 1  # the query key is one of the pairs
        assert y[row, -1] == values[row, where[0]]  # and the target is its value
    # every pair position is queried, every key and value occurs
    positions = [int(np.nonzero(keys[r] == x[r, -1])[0][0]) for r in range(500)]
    assert set(positions) == set(range(6))
    assert set(np.unique(keys)) == set(range(10)) and set(np.unique(values)) == set(range(10, 17))


def test_recall_batch_is_a_function_of_the_generator():
    task = RecallTask()
    a = recall_batch(task, 8, np.random.default_rng([3, 4]))
    b = recall_batch(task, 8, np.random.default_rng([3, 4]))
    c = recall_batch(task, 8, np.random.default_rng([3, 5]))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_recall_bad_input():
    with pytest.raises(ValueError, match="n_pairs: expected at most n_keys=4"):
        RecallTask(n_keys=4, n_values=4, n_pairs=5)
    with pytest.raises(ValueError, match="n_values"):
        RecallTask(n_values=0)
    with pytest.raises(ValueError, match="batch"):
        recall_batch(RecallTask(), 0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="task"):
        recall_batch((16, 16, 8), 2, np.random.default_rng(0))
