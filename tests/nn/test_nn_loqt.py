"""LoQT adapters (arXiv 2405.16528): NF4 / full-precision base, gradient projector, refresh."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn import adapt, merge, trainable_parameters  # noqa: E402
from tensorsim.nn.adapters import (  # noqa: E402
    LoQTConfig,
    LoQTLinear,
    refresh_loqt,
    refresh_steps,
)
from tensorsim.nn.quant import nf4_error_bound  # noqa: E402

TARGET = ["q_proj", "up", "down"]
BOUND = nf4_error_bound()


class Net(torch.nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.embed = torch.nn.Linear(5, d)
        self.q_proj = torch.nn.Linear(d, d)
        self.up = torch.nn.Linear(d, 2 * d)
        self.down = torch.nn.Linear(2 * d, d, bias=False)
        self.head = torch.nn.Linear(d, 3)

    def forward(self, x):
        h = torch.tanh(self.q_proj(self.embed(x)))
        return self.head(h + self.down(torch.relu(self.up(h))))


def _net(seed=0):
    torch.manual_seed(seed)
    return Net()


def _inputs(n=32, seed=1):
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed))


def _layers(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, LoQTLinear)}


def _perturb(model, seed=2, std=0.1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def _effective(layer):
    with torch.no_grad():
        return layer.base_weight() + layer.delta_weight()


def _loss(model, x, seed=3):
    y = torch.randn(x.shape[0], 3, generator=torch.Generator().manual_seed(seed))
    return lambda: torch.mean((model(x) - y) ** 2)


# --- step 0 ---------------------------------------------------------------------------------


def test_nq_forward_unchanged_at_step_zero():
    model, x = _net(), _inputs()
    before = model(x)
    adapt(model, "loqt", TARGET, rank=4, quantize=False)
    assert torch.equal(model(x), before)


def test_nf4_weight_within_bound_at_step_zero():
    model = _net()
    weights = {n: model.get_submodule(n).weight.detach().clone() for n in TARGET}
    adapt(model, "loqt", TARGET, rank=4)
    for name, layer in _layers(model).items():
        assert layer.base_layer.weight is None
        err = (layer.base_weight() - weights[name]).abs().max()
        assert err <= BOUND * weights[name].abs().max() + 1e-7
    layer = model.q_proj
    x = torch.randn(8, 16, generator=torch.Generator().manual_seed(5))
    ref = torch.nn.functional.linear(x, weights["q_proj"], layer.base_layer.bias)
    bound = BOUND * weights["q_proj"].abs().max() * x.abs().sum(-1).max()
    assert (layer(x) - ref).abs().max() <= bound


# --- refresh --------------------------------------------------------------------------------


def test_refresh_keeps_nq_forward():
    model, x = _net(), _inputs()
    adapt(model, "loqt", TARGET, rank=4, quantize=False)
    _perturb(model)
    before = model(x).detach()
    refresh_loqt(model, _loss(model, x))
    assert (model(x) - before).abs().max() < 1e-5
    for layer in _layers(model).values():
        assert torch.count_nonzero(layer.loqt_B) == 0
        assert layer.loqt_B.grad is None


@pytest.mark.parametrize("compensation", [0, 3])
def test_refresh_keeps_nf4_weight_within_bound(compensation):
    model, x = _net(), _inputs()
    adapt(model, "loqt", TARGET, rank=4, compensation=compensation)
    _perturb(model)
    before = {n: _effective(m) for n, m in _layers(model).items()}
    out = model(x).detach()
    refresh_loqt(model, _loss(model, x))
    gen = torch.Generator().manual_seed(6)
    for name, layer in _layers(model).items():
        tol = BOUND * float(before[name].abs().max())
        assert (_effective(layer) - before[name]).abs().max() <= tol + 1e-6
        z = torch.randn(8, layer.in_features, generator=gen)
        ref = torch.nn.functional.linear(z, before[name], layer.base_layer.bias)
        assert (layer(z) - ref).abs().max() <= tol * z.abs().sum(-1).max() + 1e-5, name
    assert (model(x) - out).abs().max() > 0  # quantization really changed something


def test_compensation_lowers_the_error():
    errors = []
    for iterations in (0, 1, 5):
        torch.manual_seed(0)
        layer = LoQTLinear(torch.nn.Linear(64, 48), 8, LoQTConfig(compensation=iterations))
        _perturb(layer)  # a trained B: W + P B is off the NF4 grid
        before = _effective(layer)
        grad = torch.randn(48, 64, generator=torch.Generator().manual_seed(1))
        errors.append(layer.refresh(grad))
        assert errors[-1] == pytest.approx(float(torch.linalg.norm(_effective(layer) - before)))
    assert errors[1] < errors[0] and errors[2] <= errors[1]


def test_projector_is_top_left_singular_subspace_of_gradient():
    model = _net()
    adapt(model, "loqt", TARGET, rank=3, quantize=False)
    layer = model.up
    grad = torch.randn(32, 16, generator=torch.Generator().manual_seed(7))
    layer.refresh(grad)
    u = torch.linalg.svd(grad, full_matrices=False).U[:, :3]
    p = layer.projector
    assert torch.allclose(p.T @ p, torch.eye(3), atol=1e-6)
    cosines = torch.linalg.svdvals(u.T @ p)  # cosines of the principal angles
    assert cosines.min() > 1 - 1e-6


def test_refresh_uses_the_full_weight_gradient():
    model, x = _net(), _inputs()
    adapt(model, "loqt", "q_proj", rank=2, quantize=False)
    _perturb(model)
    reference = _net()
    with torch.no_grad():
        reference.q_proj.weight.copy_(_effective(model.q_proj))
    _loss(reference, x)().backward()
    grad = reference.q_proj.weight.grad
    refresh_loqt(model, _loss(model, x))
    u = torch.linalg.svd(grad, full_matrices=False).U[:, :2]
    assert torch.linalg.svdvals(u.T @ model.q_proj.projector).min() > 1 - 1e-5


def test_refresh_rejects_a_gradient_of_another_shape():
    model = adapt(_net(), "loqt", TARGET, rank=2)
    with pytest.raises(ValueError, match="layer 'up'.*\\(32, 16\\)"):
        model.up.refresh(torch.zeros(16, 32))


def test_state_dict_round_trip_and_dtype_change():
    model, x = _net(), _inputs()
    adapt(model, "loqt", TARGET, rank=4)
    _perturb(model)
    refresh_loqt(model, _loss(model, x))
    _perturb(model, seed=4)
    state = model.state_dict()
    assert state["up.weight_packed"].dtype == torch.uint8 and "up.base_layer.weight" not in state
    other = adapt(_net(seed=5), "loqt", TARGET, rank=4)
    other.load_state_dict(state)
    assert torch.equal(other(x), model(x))
    out = model(x).detach().double()
    assert (model.double()(x.double()) - out).abs().max() < 1e-5


# --- merge, counts, gradients -----------------------------------------------------------------


@pytest.mark.parametrize("quantize", [False, True])
def test_merged_equals_unmerged(quantize):
    model, x = _net(), _inputs()
    adapt(model, "loqt", TARGET, rank=4, quantize=quantize)
    _perturb(model)
    refresh_loqt(model, _loss(model, x))
    _perturb(model, seed=4)
    before = model(x).detach()
    merge(model)
    assert all(type(model.get_submodule(n)) is torch.nn.Linear for n in TARGET)
    assert not any(p.requires_grad for p in model.parameters())
    assert (model(x) - before).abs().max() < 1e-5


@pytest.mark.parametrize("rank", [1, 4, 8])
def test_trainable_counts(rank):
    model = adapt(_net(), "loqt", TARGET, rank=rank, quantize=False)
    report = trainable_parameters(model)
    assert report.per_layer == {"q_proj": rank * 16, "up": rank * 16, "down": rank * 32}
    assert report.trainable == rank * (16 + 16 + 32)


def test_gradients_reach_only_b():
    model, x = _net(), _inputs()
    adapt(model, "loqt", TARGET, rank=4)
    _loss(model, x)().backward()
    for name, p in model.named_parameters():
        if name.endswith("loqt_B"):
            assert p.grad is not None and torch.count_nonzero(p.grad) > 0
        else:
            assert p.grad is None, name
    assert all(not b.requires_grad for b in model.buffers())


# --- schedules ----------------------------------------------------------------------------------


def test_refresh_steps_static():
    assert refresh_steps("static", 50, 200) == [0, 50, 100, 150, 200]
    assert refresh_steps("static", 50, 49) == [0]


def test_refresh_steps_linear():
    # gaps 10, 15, 20, 25
    assert refresh_steps("linear", 10, 70, increment=5) == [0, 10, 25, 45, 70]
    # gaps 3, 4.5 -> 4, 6, 7.5 -> 7
    assert refresh_steps("linear", 3, 20, increment=1.5) == [0, 3, 7, 13, 20]


def test_refresh_steps_exponential():
    # gaps 10, 10 + floor(1.2) = 11, 10 + floor(1.44) = 11, 10 + floor(1.728) = 11,
    # 10 + floor(2.0736) = 12, 10 + floor(2.48832) = 12
    assert refresh_steps("exponential", 10, 70) == [0, 10, 21, 32, 43, 55, 67]
    # gaps 5, 5 + 2, 5 + 4, 5 + 8 capped at 10, 5 + 16 capped at 10
    assert refresh_steps("exponential", 5, 40, increment=2, max_gap=10) == [0, 5, 12, 21, 31]


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("weekly", 10, 100), {}, "schedule"),
        (("static", 0, 100), {}, "first"),
        (("static", 10, -1), {}, "total"),
        (("exponential", 10, 100), {"increment": 0.5}, "increment"),
        (("linear", 10, 100), {"increment": math.nan}, "increment"),
        (("static", 10, 100), {"max_gap": 5}, "max_gap"),
    ],
)
def test_refresh_steps_rejects_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        refresh_steps(*args, **kwargs)


# --- bad input ----------------------------------------------------------------------------------


def test_rank_above_layer_limit_names_the_layer():
    model = _net()
    with pytest.raises(ValueError, match="layer 'q_proj'.*rank <= 16"):
        adapt(model, "loqt", TARGET, rank=17)
    assert all(p.requires_grad for p in model.parameters())  # nothing changed


@pytest.mark.parametrize("quantize", [True, False])
def test_non_float_weight_names_the_layer(quantize):
    model = _net()
    model.up.weight = torch.nn.Parameter(torch.ones(32, 16, dtype=torch.int32), False)
    with pytest.raises(TypeError, match="^up: .*int32"):
        adapt(model, "loqt", TARGET, rank=2, quantize=quantize)
    assert isinstance(model.q_proj.weight, torch.nn.Parameter)  # no layer was changed


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"alpha": 0}, "alpha"),
        ({"quantize": 1}, "quantize"),
        ({"compensation": -1}, "compensation"),
        ({"block_size": 0}, "block_size"),
    ],
)
def test_bad_options(options, match):
    with pytest.raises(ValueError, match=match):
        adapt(_net(), "loqt", TARGET, rank=2, **options)


def test_refresh_without_loqt_layers():
    with pytest.raises(ValueError, match="no LoQT layers"):
        refresh_loqt(_net(), lambda: torch.zeros(()))


# --- smoke --------------------------------------------------------------------------------------


@pytest.mark.parametrize("quantize", [False, True])
def test_smoke_training_with_a_refresh_lowers_the_loss(quantize):
    model, x = _net(), _inputs(64)
    teacher = _net(seed=9)
    with torch.no_grad():
        y = teacher(x)
    adapt(model, "loqt", TARGET, rank=4, quantize=quantize, compensation=2)
    loss = lambda: torch.mean((model(x) - y) ** 2)  # noqa: E731
    b = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(b, lr=1e-2)
    steps = refresh_steps("static", 10, 20)
    start = None
    for step in range(21):
        if step in steps:
            value = refresh_loqt(model, loss)
            start = value if start is None else start
            continue
        opt.zero_grad()
        loss().backward()
        opt.step()
    with torch.no_grad():
        assert float(loss()) < 0.5 * start
