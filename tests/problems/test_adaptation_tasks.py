"""problems.adaptation: the pretrain/adapt tasks of the adapter experiments."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from problems.adaptation import (  # noqa: E402
    UNUSED_FIELDS,
    AdaptationDataParams,
    AdaptationModelParams,
    adaptation_task,
    char_adaptation_task,
    digits_adaptation_task,
    digits_tasks,
)
from problems.language import VOCAB, load_corpus  # noqa: E402


def test_digits_task_parts_batches_and_model():
    task = digits_adaptation_task(width=8, depth=2, batch_size=5, seed=0, val_fraction=0.2)
    a, b, perm = digits_tasks(0)
    assert set(task.data) == {"a", "b"} and set(task.data["a"]) == {"val", "test"}
    # task B is task A with the pixels permuted; both keep the tasks' test sets
    np.testing.assert_array_equal(task.data["a"]["test"][0].numpy(), a.x_test)
    np.testing.assert_array_equal(task.data["b"]["test"][0].numpy(), b.x_test)
    np.testing.assert_array_equal(task.data["b"]["val"][0], task.data["a"]["val"][0][:, perm])
    assert task.data["a"]["val"][0].shape == (252, 64)  # ceil(0.2 * 1257), stratified
    # a batch is a function of (seed, step) only; the two parts draw the same rows
    x, y = task.batches("a", 3)(4)
    x2, y2 = task.sample("a", 3, 4)
    assert x.shape == (5, 64) and torch.equal(x, x2) and torch.equal(y, y2)
    xb, yb = task.batches("b", 3)(4)
    assert torch.equal(xb, x[:, perm]) and torch.equal(yb, y)
    assert not torch.equal(task.batches("a", 3)(5)[0], x)
    m1, m2 = (task.build(torch.Generator().manual_seed(1)) for _ in range(2))
    assert m1.hidden2.weight.shape == (8, 8) and torch.equal(m1.head.weight, m2.head.weight)


def test_char_task_windows_and_decoder():
    task = char_adaptation_task(
        d_model=8, n_layers=1, n_heads=2, seq_len=6, batch_size=3, eval_windows=4, max_chars=2000
    )
    corpus = load_corpus("python_docs", max_chars=2000)
    half = corpus.val.size // 2
    x, y = task.data["b"]["test"]
    assert x.shape == (4, 6) and torch.equal(x[:, 1:], y[:, :-1])
    # the last test window ends at the end of the corpus, the first starts at the second half
    np.testing.assert_array_equal(x[0].numpy(), corpus.val[half : half + 6])
    np.testing.assert_array_equal(y[-1].numpy(), corpus.val[-6:])
    xa, ya = task.batches("a", 0)(0)
    assert xa.shape == (3, 6) and torch.equal(xa[:, 1:], ya[:, :-1])
    model = task.build(torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    again = task.build(torch.Generator().manual_seed(0))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator untouched
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    assert model(xa).shape == (3, 6, len(VOCAB))


def test_adaptation_task_dispatches_on_kind():
    model, data = AdaptationModelParams(width=8, depth=1), AdaptationDataParams(batch_size=2)
    task = adaptation_task("digits", model, data)
    assert task.build(torch.Generator().manual_seed(0)).hidden1.weight.shape == (8, 8)
    with pytest.raises(ValueError, match="kind"):
        adaptation_task("images", model, data)
    assert set(UNUSED_FIELDS) == {"digits", "chars"}
    assert "data.val_fraction" in UNUSED_FIELDS["chars"]
