"""Product functionals kept through truncation (tensorsim.ttn.conservation)."""

from __future__ import annotations

import numpy as np
import pytest

from tensorsim import Truncation
from tensorsim.ttn import Tree, inner, random_ttn, truncate
from tensorsim.ttn.conservation import (
    functional_network,
    include_functional,
    restore_functional,
)


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


def test_include_functional_keeps_the_state(rng):
    tree = Tree.from_nested(((0, 1), 2), [5, 4, 6])
    y = random_ttn(tree, 2, rng=rng)
    weights = [rng.standard_normal(n) for n in tree.dims]
    z = include_functional(y, weights)
    assert np.allclose(z.to_dense(), y.to_dense(), rtol=0, atol=1e-13)
    assert all(z.ranks()[e] <= y.ranks()[e] + 1 for e in y.ranks())
    # every leaf basis now holds its weight vector
    for site in range(tree.n_sites):
        u = z.tensors[site]
        assert np.allclose(u @ (u.T @ weights[site]), weights[site], atol=1e-12)
