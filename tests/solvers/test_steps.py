"""solvers.steps: the step-based AdamW loop, its schedule and its byte counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solvers.steps import cosine_schedule, fit, optimizer_state_bytes, tensor_bytes  # noqa: E402


def _regression(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 4, generator=g, dtype=torch.float64)
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    return x, x @ w.T


def _mse(model, batch):
    return torch.mean((model(batch[0]) - batch[1]) ** 2)


def test_fit_solves_least_squares_and_records_evaluations():
    x, y = _regression()
    model = torch.nn.Linear(4, 1, bias=False).double()
    result = fit(
        model,
        batches=lambda step: (x[(step * 32) % 256 :][:32], y[(step * 32) % 256 :][:32]),
        loss=_mse,
        evaluate=lambda m: {"mse": float(_mse(m, (x, y)))},
        steps=400,
        lr=0.1,
        warmup=10,
        eval_every=100,
    )
    assert result.steps == [0, 100, 200, 300, 400]
    assert math.isnan(result.train_loss[0]) and result.evals["mse"][-1] < 1e-8
    np.testing.assert_allclose(model.weight.detach().numpy(), [[1.0, -2.0, 0.5, 3.0]], atol=1e-4)
    # AdamW: two float64 moments of the 4 weights + a float32 step counter
    assert optimizer_state_bytes(result.optimizer) == 2 * 4 * 8 + 4


def test_cosine_schedule_values():
    assert [cosine_schedule(s, 10, 2) for s in (0, 1)] == [0.5, 1.0]
    assert cosine_schedule(2, 10, 2) == 1.0
    assert cosine_schedule(6, 10, 2) == pytest.approx(0.5)
    assert cosine_schedule(10, 10, 2) == pytest.approx(0.0)


def test_hook_runs_before_the_chosen_steps_with_that_steps_batch():
    x, y = _regression()
    model = torch.nn.Linear(4, 1).double()
    seen = []

    def before(step, closure):
        seen.append((step, float(closure().detach())))

    fit(
        model,
        batches=lambda step: (x[step : step + 8], y[step : step + 8]),
        loss=_mse,
        evaluate=lambda m: {},
        steps=5,
        lr=1e-3,
        before_step=before,
        hook_steps={0, 3},
    )
    assert [s for s, _ in seen] == [0, 3]


def test_only_trainable_parameters_move():
    x, y = _regression()
    model = torch.nn.Linear(4, 1).double()
    model.bias.requires_grad_(False)
    bias = model.bias.detach().clone()
    fit(model, batches=lambda s: (x, y), loss=_mse, evaluate=lambda m: {}, steps=3, lr=0.1)
    assert torch.equal(model.bias, bias)


def test_tensor_bytes_counts_nested_tensors():
    state = {"a": torch.zeros(3, dtype=torch.float64), "b": [torch.zeros(2, dtype=torch.uint8), 1]}
    assert tensor_bytes(state) == 26


def test_non_finite_loss_stops_before_the_update():
    model = torch.nn.Linear(1, 1)
    weight = model.weight.detach().clone()
    with pytest.raises(FloatingPointError, match="step 0"):
        fit(
            model,
            batches=lambda s: (torch.ones(1, 1), torch.ones(1, 1)),
            loss=lambda m, b: m(b[0]).sum() * float("nan"),
            evaluate=lambda m: {},
            steps=2,
            lr=0.1,
        )
    assert torch.equal(model.weight, weight)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": -1}, "steps"),
        ({"steps": 2, "warmup": 3}, "warmup"),
        ({"lr": 0.0}, "lr"),
        ({"eval_every": 0}, "eval_every"),
    ],
)
def test_bad_arguments(kwargs, message):
    model = torch.nn.Linear(1, 1)
    options = {"steps": 2, "lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=message):
        fit(model, batches=None, loss=None, evaluate=None, **options)


def test_model_without_trainable_parameters():
    model = torch.nn.Linear(1, 1).requires_grad_(False)
    with pytest.raises(ValueError, match="requires grad"):
        fit(model, batches=None, loss=None, evaluate=None, steps=1, lr=0.1)


def test_optimizer_factory_is_used_with_the_peak_lr_and_the_schedule():
    x, y = _regression()
    model = torch.nn.Linear(4, 1, bias=False).double()
    seen = {}

    def sgd(params, lr):
        seen["lr"], seen["n"] = lr, len(params)
        return torch.optim.SGD(params, lr=lr)

    result = fit(
        model,
        batches=lambda s: (x, y),
        loss=_mse,
        evaluate=lambda m: {"mse": float(_mse(m, (x, y)))},
        steps=200,
        lr=0.1,
        warmup=2,
        optimizer=sgd,
    )
    assert seen == {"lr": 0.1, "n": 1}
    assert isinstance(result.optimizer, torch.optim.SGD)
    assert result.optimizer.param_groups[0]["lr"] == pytest.approx(0.0)  # cosine decayed to 0
    assert result.evals["mse"][-1] < 1e-6
    assert optimizer_state_bytes(result.optimizer) == 0  # plain SGD keeps no state


def test_optimizer_factory_bad_input():
    x, y = _regression()
    common = dict(batches=lambda s: (x, y), loss=_mse, evaluate=lambda m: {}, steps=1, lr=0.1)
    model = torch.nn.Linear(4, 1).double()
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, optimizer="adam", **common)
    with pytest.raises(TypeError, match="optimizer: the factory returned"):
        fit(model, optimizer=lambda ps, lr: None, **common)
    with pytest.raises(ValueError, match="weight_decay"):
        fit(model, optimizer=torch.optim.Adam, weight_decay=0.1, **common)
