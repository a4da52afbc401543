"""Communities of weighted graphs and NMI scores (the graph steps of arXiv 2402.14102)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.metrics import normalized_mutual_info_score

from solvers.communities import detect_communities, epoch_scores, partition_nmi


def _block_graph(rng, labels, inside=1.0, outside=0.1, noise=0.05):
    same = labels[:, None] == labels[None, :]
    w = np.where(same, inside, outside) + noise * rng.random((labels.size, labels.size))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    return w


def test_louvain_recovers_a_planted_block_graph(rng):
    planted = rng.permutation(np.repeat(np.arange(4), 6))
    w = _block_graph(rng, planted)
    labels = detect_communities(w, seed=3)
    assert normalized_mutual_info_score(planted, labels) == 1.0
    # canonical labels: 0, 1, ... in the order of each community's first neuron
    firsts = [int(np.nonzero(labels == c)[0][0]) for c in range(labels.max() + 1)]
    assert firsts == sorted(firsts) and labels[0] == 0
    np.testing.assert_array_equal(detect_communities(w, seed=3), labels)
    # a neuron without edges is its own community
    w[5, :] = w[:, 5] = 0.0
    labels = detect_communities(w)
    assert np.sum(labels == labels[5]) == 1


@pytest.mark.parametrize(
    ("change", "kwargs", "match"),
    [
        (lambda w: w[:, :-1], {}, "weights: expected a square matrix"),
        (lambda w: w - 1.0, {}, "weights: expected nonnegative weights"),
        (lambda w: np.where(np.eye(len(w)) > 0, np.nan, w), {}, "weights: expected finite"),
        (lambda w: w + np.triu(np.ones_like(w)), {}, "weights: expected a symmetric matrix"),
        (lambda w: w, {"method": "leiden"}, "method: expected 'louvain' or 'sbm'"),
        (lambda w: w, {"resolution": 0.0}, "resolution: expected a number > 0"),
        (lambda w: w, {"seed": -1}, "seed: expected an integer >= 0"),
    ],
)
def test_community_bad_arguments(rng, change, kwargs, match):
    w = _block_graph(rng, np.repeat(np.arange(2), 4))
    with pytest.raises(ValueError, match=match):
        detect_communities(change(w), **kwargs)


@pytest.mark.skipif(importlib.util.find_spec("graph_tool") is not None, reason="has graph-tool")
def test_sbm_without_graph_tool_says_so(rng):
    with pytest.raises(ImportError, match="method='sbm' needs graph-tool"):
        detect_communities(_block_graph(rng, np.repeat(np.arange(2), 4)), method="sbm")


def test_nmi_and_epoch_scores():
    planted = np.array([[0, 0, 1, 1, 2, 2], [0, 1, 0, 1, 0, 1]])
    found = np.array([[5, 5, 3, 3, 4, 4], [0, 0, 0, 1, 1, 1], [1, 0, 1, 0, 1, 0]])
    nmi = partition_nmi(found, planted)
    want = [[normalized_mutual_info_score(p, f) for p in planted] for f in found]
    np.testing.assert_allclose(nmi, want, rtol=0, atol=0)
    assert nmi[0, 0] == nmi[2, 1] == 1.0
    best, component = epoch_scores(nmi, np.array([1, 1, 0]))
    assert nmi[1, 1] > nmi[0, 1] == 0.0
    np.testing.assert_array_equal(component, [2, 1])
    np.testing.assert_allclose(best, [nmi[2, 0], nmi[1, 1]])
    best, component = epoch_scores(nmi, np.array([1, 1, 1]))
    assert best[0] == 0.0 and component[0] == -1
    with pytest.raises(ValueError, match="labels, partitions: expected the same number"):
        partition_nmi(found[:, :5], planted)
