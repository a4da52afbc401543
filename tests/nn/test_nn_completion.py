"""Completion models and the influence pieces of DAIN (importance, entities, sampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

from tensorsim.decomp import cp_to_dense, tucker_to_dense  # noqa: E402
from tensorsim.nn.completion import (  # noqa: E402
    TracInAccumulator,
    cell_key_tensor,
    entity_importance,
    entity_weights,
    last_layer_gradients,
    normalize_importance,
    sample_cells,
    tracin_scores,
)
from tensorsim.nn.models.completion import MODELS, build_model  # noqa: E402

SHAPE = (6, 5, 4)


def _cells(n, seed, shape=SHAPE):
    g = np.random.default_rng(seed)
    keys = g.choice(math.prod(shape), size=n, replace=False)
    idx = np.stack(np.unravel_index(keys, shape), axis=1)
    return torch.from_numpy(idx), torch.from_numpy(g.standard_normal(n).astype(np.float32))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_predict_one_value_per_cell_and_are_seeded(name):
    idx, _ = _cells(20, 0)
    a = build_model(name, SHAPE, seed=3)
    b = build_model(name, SHAPE, seed=3)
    pa, h = a.forward_with_features(idx)
    assert pa.shape == (20,) and h.shape == (20, a.feature_size)
    torch.testing.assert_close(pa, a(idx))
    torch.testing.assert_close(pa, b(idx), rtol=0, atol=0)
    assert not torch.equal(pa, build_model(name, SHAPE, seed=4)(idx))
    # the head is linear in the features: prediction = h @ w + b
    torch.testing.assert_close(pa, h @ a.head.weight[0] + a.head.bias[0])


def test_cp_and_tucker_models_equal_their_dense_tensors():
    idx, _ = _cells(30, 1)
    cp = build_model("cp", SHAPE, seed=0, rank=3)
    with torch.no_grad():
        cp.head.bias.fill_(0.25)
    dense = cp_to_dense(cp.to_cp())
    torch.testing.assert_close(cp(idx).detach(), dense[tuple(idx.T)] + 0.25)
    tk = build_model("tucker", SHAPE, seed=0, ranks=(2, 3, 2))
    dense = tucker_to_dense(tk.to_tucker())
    torch.testing.assert_close(tk(idx).detach(), dense[tuple(idx.T)] + tk.head.bias.detach())


def test_model_arguments_are_checked():
    with pytest.raises(ValueError, match="name: expected one of"):
        build_model("ntf", SHAPE)
    with pytest.raises(ValueError, match="mode 1 is empty"):
        build_model("dain_mlp", (3, 0, 2))
    with pytest.raises(ValueError, match="rank: expected a positive integer"):
        build_model("cp", SHAPE, rank=0)
    with pytest.raises(ValueError, match="ranks: expected 3 ranks"):
        build_model("tucker", SHAPE, ranks=(2, 2))
    model = build_model("dain_mlp", SHAPE)
    with pytest.raises(ValueError, match=r"mode 2 holds indices in \[4, 4\], expected \[0, 3\]"):
        model.check_indices(torch.tensor([[0, 0, 4]]))
    with pytest.raises(TypeError, match="integers"):
        model.check_indices(torch.zeros((1, 3)))


@pytest.mark.parametrize("name", ["dain_mlp", "costco", "cp"])
def test_last_layer_gradients_equal_autograd(name):
    model = build_model(name, SHAPE, seed=2)
    idx, y = _cells(7, 2)
    got = last_layer_gradients(model, idx, y, batch_size=3)
    for c in range(7):
        model.zero_grad()
        loss = 0.5 * (model(idx[c : c + 1])[0] - y[c]) ** 2
        loss.backward()
        ref = torch.cat([model.head.weight.grad[0], model.head.bias.grad])
        torch.testing.assert_close(got[c], ref, rtol=1e-5, atol=1e-6)


def test_streamed_tracin_equals_stored_per_example_gradients():
    model = build_model("dain_mlp", SHAPE, seed=5)
    train, val = _cells(40, 3), _cells(15, 4)
    scores = tracin_scores(model, train, val, batch_size=8)
    g_train = last_layer_gradients(model, *train).double()
    g_val = last_layer_gradients(model, *val).double()
    ref = (g_train @ g_val.T).sum(dim=1)  # sum over validation cells of <g_c, g_v>
    torch.testing.assert_close(scores, ref, rtol=1e-6, atol=1e-9)


def test_accumulator_sums_epochs_up_to_the_best_and_normalizes():
    acc = TracInAccumulator(4)
    rows = ([1.0, -2.0, 0.5, 0.0], [0.5, 1.0, -3.0, 0.1], [9.0, 9.0, 9.0, 9.0])
    e1, e2, e3 = (torch.tensor(v, dtype=torch.float64) for v in rows)
    acc.add(e1)
    acc.add(e2)
    acc.mark_best()
    acc.add(e3)  # after the best epoch: not counted
    imp = acc.importance()
    raw = (e1 + e2).abs()
    torch.testing.assert_close(imp, raw / raw.max())
    assert imp.shape == (4,) and float(imp.max()) == 1.0 and float(imp.min()) >= 0
    assert (acc.epochs, acc.best_epoch, acc.nbytes) == (3, 2, 2 * 4 * 8)
    arrays, attrs = acc.state()
    other = TracInAccumulator(4)
    other.load_state(arrays, attrs)
    torch.testing.assert_close(other.importance(), imp)
    with pytest.raises(ValueError, match=r"expected shape \(4,\)"):
        acc.add(torch.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        normalize_importance(torch.tensor([1.0, math.nan]))
    torch.testing.assert_close(normalize_importance(torch.zeros(3)), torch.zeros(3).double())


def test_entity_importance_sums_cell_importance_per_mode():
    idx, _ = _cells(50, 6)
    imp = torch.rand(50, generator=torch.Generator().manual_seed(0)).double()
    probs = entity_importance(idx, imp, SHAPE)
    for m, p in enumerate(probs):
        ref = np.zeros(SHAPE[m])
        np.add.at(ref, idx[:, m].numpy(), imp.numpy())
        np.testing.assert_allclose(p.numpy(), ref / ref.sum())
        assert p.shape == (SHAPE[m],) and math.isclose(float(p.sum()), 1.0)
    freq = entity_weights("frequency", idx, SHAPE)
    np.testing.assert_allclose(freq[0].numpy(), np.bincount(idx[:, 0].numpy(), minlength=6) / 50)
    uni = entity_weights("uniform", idx, SHAPE)
    for u, n in zip(uni, SHAPE, strict=True):
        torch.testing.assert_close(u, torch.full_like(u, 1 / n))
    zero = entity_importance(idx, torch.zeros(50, dtype=torch.float64), SHAPE)
    torch.testing.assert_close(zero[1], torch.full((5,), 0.2, dtype=torch.float64))
    with pytest.raises(ValueError, match="nonnegative"):
        entity_importance(idx, -imp, SHAPE)
    with pytest.raises(ValueError, match="required by method 'dain'"):
        entity_weights("dain", idx, SHAPE)
    with pytest.raises(ValueError, match="method: expected"):
        entity_weights("random", idx, SHAPE)


def test_sampling_follows_entity_distributions_chi_square():
    shape = (40, 60, 80)  # 192 000 cells; the draw is 3 % of them, few repeats to reject
    g = torch.Generator().manual_seed(11)
    probs = [torch.rand(n, generator=g).double() + 0.1 for n in shape]
    probs = [p / p.sum() for p in probs]
    n = 6000
    cells = sample_cells(probs, n, generator=torch.Generator().manual_seed(1))
    assert cells.shape == (n, 3)
    for m, p in enumerate(probs):
        observed = np.bincount(cells[:, m].numpy(), minlength=shape[m])
        expected = n * p.numpy()
        assert expected.min() >= 5  # the chi-square approximation holds
        assert stats.chisquare(observed, expected).pvalue > 1e-3, m
    # a mode with a very different distribution is rejected by the same test
    wrong = np.bincount(cells[:, 0].numpy(), minlength=shape[0])
    flat = np.full(shape[0], n / shape[0])
    assert stats.chisquare(wrong, flat).pvalue < 1e-6


def test_sampled_cells_are_new_distinct_and_exactly_counted():
    shape = (8, 7, 6)  # 336 cells
    excl_idx, _ = _cells(200, 7, shape)
    exclude = cell_key_tensor(excl_idx, shape)
    probs = [torch.full((n,), 1.0 / n, dtype=torch.float64) for n in shape]
    cells = sample_cells(probs, 136, exclude=exclude, generator=torch.Generator().manual_seed(0))
    keys = cell_key_tensor(cells, shape)
    assert cells.shape == (136, 3) and keys.unique().numel() == 136
    assert not torch.isin(keys, exclude).any()  # every free cell, none excluded
    with pytest.raises(ValueError, match="only 136 cells"):
        sample_cells(probs, 137, exclude=exclude)
    # entities with probability 0 are never drawn
    p0 = torch.tensor([0.0, 0.5, 0.5, 0, 0, 0, 0, 0], dtype=torch.float64)
    some = sample_cells([p0, *probs[1:]], 40, generator=torch.Generator().manual_seed(0))
    assert set(some[:, 0].tolist()) <= {1, 2}
    with pytest.raises(ValueError, match="n: expected an integer >= 0"):
        sample_cells(probs, -1)
    with pytest.raises(ValueError, match=r"probs\[1\]: expected probabilities summing to 1"):
        sample_cells([probs[0], 2 * probs[1]], 3)
    assert sample_cells(probs, 0).shape == (0, 3)


def test_cell_keys_are_row_major():
    idx = torch.tensor([[0, 0, 0], [1, 2, 3], [5, 4, 3]])
    np.testing.assert_array_equal(
        cell_key_tensor(idx, SHAPE).numpy(), np.ravel_multi_index(tuple(idx.numpy().T), SHAPE)
    )
    with pytest.raises(ValueError, match="outside shape"):
        cell_key_tensor(torch.tensor([[6, 0, 0]]), SHAPE)
