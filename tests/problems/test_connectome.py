"""Synthetic calcium traces with planted communities (arXiv 2402.14102)."""

from __future__ import annotations

import numpy as np
import pytest

from problems.connectome import (
    ConnectomeParams,
    make_dataset,
    planted_partitions,
    simulate_animal,
)


def test_params_validation():
    with pytest.raises(ValueError, match="blocks: expected at most n_neurons = 4"):
        ConnectomeParams(n_neurons=4, blocks=(2, 5))
    with pytest.raises(ValueError, match="n_steps: expected at least 2 steps per epoch"):
        ConnectomeParams(n_steps=5, blocks=(2, 2, 2))
    with pytest.raises(ValueError, match="noise"):
        ConnectomeParams(noise=-0.1)
    with pytest.raises(TypeError, match="params: expected a ConnectomeParams"):
        planted_partitions({"n_neurons": 3})
    p = ConnectomeParams(n_neurons=6, n_steps=30, blocks=(2, 3))
    with pytest.raises(ValueError, match=r"partitions: expected shape \(2, 6\)"):
        simulate_animal(p, np.zeros((3, 6), dtype=int))


def test_planted_partitions_are_balanced_and_seeded():
    p = ConnectomeParams(n_neurons=17, blocks=(3, 1, 5))
    labels = planted_partitions(p, 4)
    assert labels.shape == (3, 17)
    for e, k in enumerate(p.blocks):
        sizes = np.bincount(labels[e])
        assert sizes.size == k and sizes.max() - sizes.min() <= 1
    np.testing.assert_array_equal(labels, planted_partitions(p, 4))
    assert not np.array_equal(labels, planted_partitions(p, 5))


def test_synthetic_traces_follow_the_planted_partitions():
    p = ConnectomeParams(n_animals=2)
    data = make_dataset(p, seed=2)
    assert data.traces.shape == (2, 30, 900) and np.all(data.traces > 0)
    assert np.all((data.gains >= 0.7) & (data.gains <= 1.0))
    one, gain = simulate_animal(p, data.partitions, [2, 1, 1])
    np.testing.assert_array_equal(one, data.traces[1])
    assert gain == data.gains[1]
    bounds = p.epoch_bounds()
    for e in range(p.n_epochs):
        d = np.diff(data.traces[0, :, bounds[e] : bounds[e + 1]], axis=-1)
        corr = np.corrcoef(d)
        same = data.partitions[e][:, None] == data.partitions[e][None, :]
        off = ~np.eye(30, dtype=bool)
        assert corr[same & off].mean() > 0.6 and abs(corr[~same].mean()) < 0.1
