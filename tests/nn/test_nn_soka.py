"""SoKA adapters (arXiv 2506.15251): KPSVD init, Kronecker forward, rank rules, merge."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.kron import kpsvd  # noqa: E402
from tensorsim.nn import (  # noqa: E402
    adapt,
    adapter_state_dict,
    load_adapter,
    merge,
    trainable_parameters,
)
from tensorsim.nn.adapters import SoKALinear, elbow_rank, energy_rank  # noqa: E402
from tensorsim.nn.adapters.soka import kronecker_shapes  # noqa: E402

TARGET = ["q_proj", "up", "down"]


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


def _net(seed=0, dtype=torch.float32):
    torch.manual_seed(seed)
    return Net().to(dtype)


def _inputs(n=32, seed=1, dtype=torch.float32):
    return torch.randn(n, 5, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _perturb(model, seed=2, std=0.1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(std * torch.randn(p.shape, generator=gen, dtype=p.dtype))


# --- exact identities ---------------------------------------------------------------------


@pytest.mark.parametrize("select", ["fixed", "energy", "elbow", "energy_elbow"])
def test_output_unchanged_at_step_zero(select):
    model, x = _net(), _inputs()
    before = model(x)
    adapt(model, "soka", TARGET, 4, select=select, alpha=2.0)
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-5)


def test_full_kronecker_rank_reconstructs_the_weight():
    model = _net(dtype=torch.float64)
    w = model.up.weight.detach().clone()
    adapt(model, "soka", "up", 16)  # 32 x 16 = (8 x 4) ⊗ (4 x 4): Kronecker rank 16
    layer = model.up
    assert layer.rank == 16
    assert float(layer.base_layer.weight.abs().max()) < 1e-12  # residual ~ 0
    torch.testing.assert_close(layer.delta_weight(), w, rtol=0, atol=1e-12)


@pytest.mark.parametrize("vectors", [1, 7, 64])
def test_forward_matches_dense_kronecker_update(vectors):
    # 1 vector: factor by factor; 64: through the formed update (cheaper); both exact
    model = _net(dtype=torch.float64)
    adapt(model, "soka", "up", 3, alpha=6.0)
    _perturb(model)
    layer = model.up
    dense = sum(torch.kron(a, b) for a, b in zip(layer.soka_A, layer.soka_B, strict=True))
    h = torch.randn(vectors, 16, dtype=torch.float64)
    torch.testing.assert_close(layer.adapter_output(h), 2.0 * h @ dense.T, rtol=0, atol=1e-12)


def test_merged_forward_equals_adapter_forward():
    model, x = _net(), _inputs()
    adapt(model, "soka", TARGET, 4, select="energy", energy=0.8)
    _perturb(model)
    adapted = model(x)
    merge(model)
    assert all(type(getattr(model, n)) is torch.nn.Linear for n in TARGET)
    torch.testing.assert_close(model(x), adapted, rtol=0, atol=1e-5)


def test_adapter_holds_the_leading_kpsvd_terms():
    model = _net(dtype=torch.float64)
    w = model.q_proj.weight.detach().clone()
    adapt(model, "soka", "q_proj", 3)
    k = kpsvd(w, (4, 4))
    torch.testing.assert_close(model.q_proj.spectrum, k.s, rtol=0, atol=1e-12)
    residual = model.q_proj.base_layer.weight
    tail = float(torch.sqrt(torch.sum(k.s[3:] ** 2)))
    assert abs(float(torch.linalg.norm(residual)) - tail) < 1e-12  # Eckart-Young


# --- shapes, counts, gradients, state -----------------------------------------------------


@pytest.mark.parametrize(
    ("out", "inp", "expected"),
    [(24, 24, ((6, 4), (4, 6))), (32, 16, ((8, 4), (4, 4))), (16, 5, ((4, 1), (4, 5)))],
)
def test_kronecker_shapes(out, inp, expected):
    (m1, n1), (m2, n2) = shapes = kronecker_shapes(out, inp)
    assert shapes == expected
    assert (m1 * m2, n1 * n2) == (out, inp)


def test_parameter_counts_follow_the_formula():
    model = adapt(_net(), "soka", TARGET, 4)
    report = trainable_parameters(model)
    # r (m1 n1 + m2 n2): q_proj (4x4)(4x4), up (8x4)(4x4), down (4x4)(4x8)
    assert report.per_layer == {"q_proj": 4 * 32, "up": 4 * 48, "down": 4 * 48}
    assert report.trainable == sum(report.per_layer.values())
    assert report.shared == {}


def test_gradients_reach_only_adapter_parameters():
    model, x = _net(), _inputs()
    adapt(model, "soka", TARGET, 2)
    model(x).square().sum().backward()
    for name, p in model.named_parameters():
        if "soka_" in name:
            assert p.grad is not None and float(p.grad.abs().sum()) > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def test_adapter_state_round_trip():
    model = adapt(_net(), "soka", TARGET, 3)
    _perturb(model)
    state = adapter_state_dict(model)
    assert sorted(state) == sorted(f"{n}.soka_{f}" for n in TARGET for f in "AB")
    other = adapt(_net(), "soka", TARGET, 3)
    load_adapter(other, state)
    torch.testing.assert_close(other(_inputs()), model(_inputs()), rtol=0, atol=0)


# --- rank rules on hand-made spectra ------------------------------------------------------


def test_energy_rank():
    s = torch.tensor([3.0, 2.0, 1.0, 0.5, 0.0])  # energies 9, 4, 1, 0.25: total 14.25
    assert energy_rank(s, 0.5) == 1  # 9 / 14.25 = 0.63
    assert energy_rank(s, 0.9) == 2  # 13 / 14.25 = 0.91
    assert energy_rank(s, 0.95) == 3  # 14 / 14.25 = 0.98
    assert energy_rank(s, 1.0) == 4  # the zero adds nothing
    assert energy_rank(torch.zeros(3), 0.9) == 1


def test_elbow_rank():
    step = torch.tensor([10.0, 9.0, 8.0, 0.1, 0.09, 0.08])
    assert elbow_rank(step) == 3
    exact = torch.tensor([5.0, 4.0, 0.0, 0.0], dtype=torch.float64)
    assert elbow_rank(exact) == 2
    geometric = 0.5 ** torch.arange(8, dtype=torch.float64)
    assert elbow_rank(geometric) == 8  # no corner: nothing negligible
    assert elbow_rank(torch.ones(6)) == 6
    assert elbow_rank(torch.tensor([2.0, 1.0])) == 2


def test_layers_pick_their_own_ranks():
    torch.manual_seed(0)
    a, b = torch.randn(2, 4, 4), torch.randn(2, 4, 8)
    low = sum(torch.kron(a[k], b[k]) for k in range(2))  # Kronecker rank 2, 16 x 32
    model = _net(dtype=torch.float64)
    with torch.no_grad():
        model.down.weight.copy_(low)
    adapt(model, "soka", ["q_proj", "down"], 10, select="energy_elbow", energy=0.999)
    assert model.down.rank == 2  # elbow at the numerical rank
    assert model.q_proj.rank == min(10, energy_rank(model.q_proj.spectrum, 0.999))
    assert model.q_proj.rank > 2


# --- bad input -----------------------------------------------------------------------------


def test_rank_above_the_kronecker_rank_names_the_layer():
    model = _net()
    # embed is 16 x 5 = (4 x 1) ⊗ (4 x 5): Kronecker rank 4, though min(out, in) = 5
    with pytest.raises(ValueError, match=r"layer 'embed' allows.*\(4 x 1\).*<= 4"):
        adapt(model, "soka", ["q_proj", "embed"], 5)
    assert all(p.requires_grad for p in model.parameters())  # nothing changed on error
    wide = torch.nn.Sequential(torch.nn.Linear(64, 4))  # (2 x 8) ⊗ (2 x 8): rank 16 > 4
    assert adapt(wide, "soka", "0", 9)[0].rank == 9


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"select": "median"}, "select: expected one of"),
        ({"energy": 0.0}, "energy: expected a number in"),
        ({"energy": 1.5}, "energy: expected a number in"),
        ({"alpha": float("nan")}, "alpha"),
    ],
)
def test_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        adapt(_net(), "soka", "q_proj", 2, **options)


def test_isinstance_and_repr():
    model = adapt(_net(), "soka", "up", 2)
    assert isinstance(model.up, SoKALinear)
    assert "a=(8, 4), b=(4, 4)" in repr(model.up)


def test_bfloat16_model():
    model, x = _net(dtype=torch.bfloat16), _inputs(dtype=torch.bfloat16)
    before = model(x)
    adapt(model, "soka", TARGET, 4)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    adapted = model(x)
    torch.testing.assert_close(adapted, before, rtol=0, atol=0.05)
    torch.testing.assert_close(merge(model)(x), adapted, rtol=0, atol=0.05)


def test_a_few_steps_reduce_the_loss():
    teacher, x = _net(seed=5), _inputs(n=64)
    target = teacher(x).detach()
    model = adapt(_net(), "soka", TARGET, 4, select="energy", energy=0.95)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (model(x) - target).square().mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]  # measured 0.03 (LoRA zero init, same setup: 0.08)
