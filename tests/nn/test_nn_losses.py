"""Relative L2 and H1 losses against hand computations."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.losses import relative_h1, relative_l2, sobolev_weights  # noqa: E402


def _sine(n: int) -> torch.Tensor:
    x = torch.arange(n, dtype=torch.float64) / n
    return torch.sin(2 * math.pi * x)[:, None].expand(n, n).reshape(1, 1, n, n)


def test_relative_l2_by_hand():
    target = torch.tensor([[3.0, 4.0], [1.0, 0.0]], dtype=torch.float64).reshape(2, 1, 2)
    pred = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64).reshape(2, 1, 2)
    pred[0, 0, 0] += 1.0  # error 1 against norm 5
    per = relative_l2(pred, target, "none")
    torch.testing.assert_close(per, torch.tensor([0.2, 1.0], dtype=torch.float64))
    assert relative_l2(pred, target).item() == pytest.approx(0.6)
    assert relative_l2(pred, target, "sum").item() == pytest.approx(1.2)
    assert relative_l2(2 * target, target).item() == pytest.approx(1.0)


def test_relative_h1_by_hand():
    # y = sin(2 pi x): |y_{+-1}|^2 = 1/4 each, weight 1 + 4 pi^2: ||y||_H1^2 = (1 + 4 pi^2) / 2
    # an error of a constant c lives in the mode k = 0 (weight 1): ||e||_H1 = |c|
    y = _sine(16)
    c = 0.3
    expected = c / math.sqrt((1 + 4 * math.pi**2) / 2)
    assert relative_h1(y + c, y).item() == pytest.approx(expected, rel=1e-12)
    # an error proportional to the target gives the same ratio in any norm
    assert relative_h1(1.5 * y, y).item() == pytest.approx(0.5, rel=1e-12)
    # an error of cos(2 pi 2 y) (wave number 2 along the second axis): weight 1 + 16 pi^2
    k = torch.arange(16, dtype=torch.float64) / 16
    e = torch.cos(4 * math.pi * k)[None, :].expand(16, 16).reshape(1, 1, 16, 16)
    ratio = math.sqrt((1 + 16 * math.pi**2) / (1 + 4 * math.pi**2))
    assert relative_h1(y + e, y).item() == pytest.approx(ratio, rel=1e-12)


def test_h1_weights_and_reductions():
    w = sobolev_weights((4, 3), dtype=torch.float64)
    assert w[0, 0] == 1.0
    assert w[2, 1].item() == pytest.approx(1 + 4 * math.pi**2 * (4 + 1))  # k = (-2, 1)
    y = torch.randn(3, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    pred = y + 0.1
    per = relative_h1(pred, y, "none")
    assert per.shape == (3,)
    torch.testing.assert_close(relative_h1(pred, y), per.mean())


def test_gradients_are_finite_at_zero_error():
    y = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    pred = y.clone().requires_grad_(True)
    for loss in (relative_h1, relative_l2):
        pred.grad = None
        loss(pred, y).backward()
        assert torch.isfinite(pred.grad).all()


def test_bad_input():
    y = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="pred"):
        relative_l2(torch.zeros(2, 1, 4, 5), y)
    with pytest.raises(ValueError, match="pred"):
        relative_h1(torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction"):
        relative_l2(y, y + 1, "max")
