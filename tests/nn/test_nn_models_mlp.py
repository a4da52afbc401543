"""tensorsim.nn.models.mlp: the MLP of the adapter experiments."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.models.mlp import build_mlp  # noqa: E402


def test_mlp_layout_and_seeded_weights():
    model = build_mlp(width=8, depth=3, generator=torch.Generator().manual_seed(0))
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert names == ["input", "hidden1", "hidden2", "hidden3", "head"]
    assert model(torch.zeros(2, 64)).shape == (2, 10)
    again = build_mlp(width=8, depth=3, generator=torch.Generator().manual_seed(0))
    for p, q in zip(model.parameters(), again.parameters(), strict=True):
        assert torch.equal(p, q)
    assert model.hidden1.weight.abs().max() <= 8**-0.5
    with pytest.raises(ValueError, match="depth"):
        build_mlp(depth=0)


def test_seeded_weights_are_uniform_draws_in_layer_order():
    model = build_mlp(in_features=3, width=4, depth=1, classes=2,
                      generator=torch.Generator().manual_seed(7))  # fmt: skip
    g = torch.Generator().manual_seed(7)
    for layer in (model.input, model.hidden1, model.head):
        bound = 1.0 / layer.in_features**0.5
        w = torch.empty_like(layer.weight).uniform_(-bound, bound, generator=g)
        b = torch.empty_like(layer.bias).uniform_(-bound, bound, generator=g)
        assert torch.equal(layer.weight, w) and torch.equal(layer.bias, b)
    with pytest.raises(ValueError, match="width"):
        build_mlp(width=True)
