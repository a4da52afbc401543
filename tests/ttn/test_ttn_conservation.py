"""Product functionals kept through truncation (tensorsim.ttn.conservation)."""

from __future__ import annotations

import numpy as np
import pytest

from tensorsim import Truncation
from tensorsim.ttn import Tree, inner, random_ttn, truncate
from tensorsim.ttn.conservation import functional_network, restore_functional


def test_restore_functional_after_truncation(rng):
    tree = Tree.from_nested(((0, 1), (2, 3)), [5, 4, 6, 3])
    y = random_ttn(tree, 4, rng=rng)
    weights = [rng.standard_normal(n) for n in tree.dims]
    w = functional_network(y, weights)
    dense_w = np.einsum("a,b,c,d->abcd", *weights)
    assert float(inner(w, y)) == pytest.approx(np.sum(dense_w * y.to_dense()), rel=1e-12)
    cut, discarded = truncate(y, Truncation(max_rank=2))
    fixed = restore_functional(cut, w, inner(w, y))
    assert float(inner(w, fixed)) == pytest.approx(float(inner(w, y)), rel=1e-12)
    # the correction is no larger than the truncation error, and ranks grow by one at most
    error_cut = np.linalg.norm(cut.to_dense() - y.to_dense())
    assert np.linalg.norm(fixed.to_dense() - cut.to_dense()) <= error_cut * (1 + 1e-12)
    assert all(fixed.ranks()[e] <= cut.ranks()[e] + 1 for e in cut.ranks())


def test_functional_network_bad_input(rng):
    tree = Tree.from_nested((0, 1), [3, 2])
    y = random_ttn(tree, 2, rng=rng)
    with pytest.raises(ValueError, match="weights"):
        functional_network(y, [np.ones(3)])
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        functional_network(y, [np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match="zero vector"):
        functional_network(y, [np.zeros(3), np.ones(2)])
