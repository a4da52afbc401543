"""LoRA (and PiSSA init) and LoTR adapters through adapt / merge / save / load / count."""

from __future__ import annotations

import importlib.util

import pytest

torch = pytest.importorskip("torch")

from tensorsim.decomp import hosvd  # noqa: E402
from tensorsim.linalg import Truncation  # noqa: E402
from tensorsim.nn import (  # noqa: E402
    adapt,
    adapter_state_dict,
    load_adapter,
    merge,
    trainable_parameters,
)
from tensorsim.nn.adapters import LoRALinear, LoTRLinear, tucker2  # noqa: E402

D, LAYERS, IN, OUT = 16, 3, 5, 4


class Block(torch.nn.Module):
    def __init__(self, d):
        super().__init__()
        self.q_proj = torch.nn.Linear(d, d)
        self.v_proj = torch.nn.Linear(d, d, bias=False)
        self.up = torch.nn.Linear(d, 2 * d)
        self.down = torch.nn.Linear(2 * d, d)

    def forward(self, x):
        h = x + self.v_proj(torch.tanh(self.q_proj(x)))
        return h + self.down(torch.relu(self.up(h)))


class Net(torch.nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.embed = torch.nn.Linear(IN, d)
        self.layers = torch.nn.ModuleList(Block(d) for _ in range(LAYERS))
        self.head = torch.nn.Linear(d, OUT)

    def forward(self, x):
        h = self.embed(x)
        for block in self.layers:
            h = block(h)
        return self.head(h)


def _net(seed=0, d=D):
    torch.manual_seed(seed)
    return Net(d)


def _inputs(n=32, seed=1):
    return torch.randn(n, IN, generator=torch.Generator().manual_seed(seed))


def _perturb(model, seed=2, std=0.1):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(std * torch.randn(p.shape, generator=gen))


def _gen(seed=3):
    return torch.Generator().manual_seed(seed)


CASES = [
    pytest.param("lora", "zero", id="lora-zero"),
    pytest.param("lora", "pissa", id="lora-pissa"),
    pytest.param("lotr", "zero", id="lotr-zero"),
    pytest.param("lotr", "tucker", id="lotr-tucker"),
]
TARGET = ["q_proj", "v_proj", "up"]


# --- exact identities ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["lora", "lotr"])
def test_zero_init_leaves_output_unchanged_exactly(method):
    model, x = _net(), _inputs()
    before = model(x)
    adapt(model, method, TARGET, 4, generator=_gen(), alpha=8.0)
    assert torch.equal(model(x), before)


@pytest.mark.parametrize(("method", "init"), CASES)
def test_every_init_keeps_the_output_at_step_zero(method, init):
    model, x = _net(), _inputs()
    before = model(x)
    adapt(model, method, TARGET, 4, generator=_gen(), init=init, alpha=2.0)
    torch.testing.assert_close(model(x), before, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("method", "init"), CASES)
def test_merged_forward_equals_adapter_forward(method, init):
    model, x = _net(), _inputs()
    adapt(model, method, TARGET, 4, generator=_gen(), init=init)
    _perturb(model)
    adapted = model(x)
    merge(model)
    assert not any(isinstance(m, LoRALinear | LoTRLinear) for m in model.modules())
    assert all(type(m) is torch.nn.Linear for m in model.layers[0].children())
    torch.testing.assert_close(model(x), adapted, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("method", "init"), CASES)
def test_bfloat16_models(method, init):
    model, x = _net().to(torch.bfloat16), _inputs().to(torch.bfloat16)
    before = model(x)
    adapt(model, method, TARGET, 4, generator=_gen(), init=init)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())
    adapted = model(x)
    torch.testing.assert_close(adapted, before, rtol=0, atol=0.05)  # measured <= 0.012
    torch.testing.assert_close(merge(model)(x), adapted, rtol=0, atol=0.05)


def test_pissa_adapter_holds_the_principal_part():
    model = _net()
    w = model.layers[1].q_proj.weight.detach().clone()
    adapt(model, "lora", "q_proj", 3, init="pissa", alpha=6.0)
    layer = model.layers[1].q_proj
    u, s, vh = torch.linalg.svd(w.double())
    principal = (u[:, :3] * s[:3]) @ vh[:3]
    torch.testing.assert_close(layer.delta_weight().double(), principal, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        layer.base_layer.weight.double(), w.double() - principal, rtol=0, atol=1e-5
    )


def test_tucker2_at_full_rank_reconstructs_the_stack():
    gen = torch.Generator().manual_seed(0)
    stack = torch.randn(5, 6, 6, generator=gen, dtype=torch.float64)
    a, cores, b = tucker2(stack, 6)
    torch.testing.assert_close(a @ cores @ b.mT, stack, rtol=0, atol=1e-12)
    # a non-square stack whose weight modes have multilinear rank 3
    left, right = torch.randn(7, 3, generator=gen), torch.randn(9, 3, generator=gen)
    stack = left @ torch.randn(4, 3, 3, generator=gen) @ right.mT
    a, cores, b = tucker2(stack, 3)
    torch.testing.assert_close(a @ cores @ b.mT, stack, rtol=0, atol=1e-5)
    # the factors span the HOSVD factors of the same modes
    ref = hosvd(stack, [Truncation(), Truncation(max_rank=3), Truncation(max_rank=3)])
    for mine, theirs in zip((a, b), ref.factors[1:], strict=True):
        torch.testing.assert_close(mine @ mine.mT, theirs @ theirs.mT, rtol=0, atol=1e-5)


def test_lotr_tucker_init_at_full_rank_moves_all_weight_into_the_adapter():
    model = _net()
    weights = [blk.q_proj.weight.detach().clone() for blk in model.layers]
    adapt(model, "lotr", "q_proj", D, init="tucker", alpha=4.0)
    for blk, w in zip(model.layers, weights, strict=True):
        torch.testing.assert_close(blk.q_proj.delta_weight(), w, rtol=0, atol=1e-5)
        assert blk.q_proj.base_layer.weight.abs().max() < 1e-5


# --- structure, counts, gradients ------------------------------------------------------------


def test_lotr_groups_share_factors_per_pattern_and_shape():
    model = adapt(_net(), "lotr", ["q_proj", "v_proj", "up"], 2)
    q = [blk.q_proj for blk in model.layers]
    v = [blk.v_proj for blk in model.layers]
    assert all(layer.factors is q[0].factors for layer in q)
    assert all(layer.factors is v[0].factors for layer in v)
    assert q[0].factors is not v[0].factors
    assert q[0].lotr_core is not q[1].lotr_core
    a = q[0].factors.lotr_A
    torch.testing.assert_close(a.mT @ a, torch.eye(2), rtol=0, atol=1e-6)


def test_target_by_regex_and_suffix():
    model = adapt(_net(), "lora", r"layers\.[01]\.(q|v)_proj", 2)
    adapted = [n for n, m in model.named_modules() if isinstance(m, LoRALinear)]
    assert adapted == [f"layers.{i}.{p}_proj" for i in (0, 1) for p in ("q", "v")]
    model = adapt(_net(), "lora", "0.up", 2)
    assert isinstance(model.layers[0].up, LoRALinear)
    assert not isinstance(model.layers[1].up, LoRALinear)


def test_parameter_counts_follow_the_formulas():
    r = 3
    dense = sum(p.numel() for p in _net().parameters())
    lora = trainable_parameters(adapt(_net(), "lora", TARGET, r))
    per_block = r * (D + D) + r * (D + D) + r * (D + 2 * D)
    assert lora.trainable == LAYERS * per_block
    assert lora.total == dense + lora.trainable
    assert lora.per_layer["layers.2.up"] == r * (D + 2 * D)
    assert lora.shared == {}
    lotr = trainable_parameters(adapt(_net(), "lotr", TARGET, r))
    groups = 2 * (r * (D + D) + LAYERS * r * r) + r * (2 * D + D) + LAYERS * r * r
    assert lotr.trainable == groups
    assert lotr.shared == {
        "q_proj (16x16)": 2 * r * D,
        "v_proj (16x16)": 2 * r * D,
        "up (32x16)": 3 * r * D,
    }
    assert set(lotr.per_layer.values()) == {r * r}
    assert lotr.total == dense + lotr.trainable
    assert 0 < lotr.fraction < lora.fraction < 1


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs peft")
@pytest.mark.parametrize("target", [["q_proj", "v_proj"], TARGET])
def test_lora_counts_equal_peft(target):
    from peft import LoraConfig, get_peft_model

    ours = trainable_parameters(adapt(_net(), "lora", target, 4))
    theirs = get_peft_model(_net(), LoraConfig(r=4, lora_alpha=8, target_modules=target))
    assert (ours.trainable, ours.total) == theirs.get_nb_trainable_parameters()


@pytest.mark.parametrize(("method", "init"), CASES)
def test_gradients_reach_only_adapter_parameters(method, init):
    model = adapt(_net(), method, TARGET, 2, generator=_gen(), init=init)
    _perturb(model)
    model(_inputs()).square().sum().backward()
    adapter_names = set(adapter_state_dict(model))
    for name, p in model.named_parameters():
        if name in adapter_names:
            assert p.requires_grad and p.grad is not None and p.grad.abs().max() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


@pytest.mark.parametrize(("method", "init"), CASES)
def test_adapter_state_round_trip(method, init):
    x = _inputs()
    trained = adapt(_net(), method, TARGET, 3, generator=_gen(), init=init)
    _perturb(trained)
    state = adapter_state_dict(trained)
    assert all(
        ("lora_" in n or "lotr_" in n) and not n.endswith("base_layer.weight") for n in state
    )
    fresh = adapt(_net(), method, TARGET, 3, generator=_gen(9), init=init)
    load_adapter(fresh, state)
    torch.testing.assert_close(fresh(x), trained(x), rtol=0, atol=1e-6)
    name = next(iter(state))
    state[name] += 1  # the state holds copies
    assert not torch.equal(state[name], dict(trained.named_parameters())[name])


@pytest.mark.parametrize("method", ["lora", "lotr"])
def test_a_few_steps_reduce_the_loss(method):
    teacher, x = _net(seed=5), _inputs(64)
    with torch.no_grad():
        y = teacher(x)
    model = adapt(_net(), method, TARGET, 4, generator=_gen())
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]  # measured 0.04 (LoRA), 0.1 (LoTR)


# --- bad input -----------------------------------------------------------------------------


def test_bad_targets_and_ranks_are_named():
    with pytest.raises(ValueError, match="'k_proj' matches no torch.nn.Linear"):
        adapt(_net(), "lora", ["q_proj", "k_proj"], 2)
    with pytest.raises(ValueError, match="not a valid regex"):
        adapt(_net(), "lora", "q_proj(", 2)
    with pytest.raises(ValueError, match="target"):
        adapt(_net(), "lora", [], 2)
    with pytest.raises(ValueError, match="layer 'embed' allows.*rank <= 5"):
        adapt(_net(), "lotr", ["q_proj", "embed"], 6)
    model = _net()
    with pytest.raises(ValueError, match="rank: expected an integer >= 1"):
        adapt(model, "lora", "q_proj", 0)
    assert all(p.requires_grad for p in model.parameters())  # nothing changed on error


def test_bad_method_options_and_state():
    with pytest.raises(ValueError, match="method: expected one of"):
        adapt(_net(), "lokr", "q_proj", 2)
    with pytest.raises(TypeError, match="unknown option.*'dropout'"):
        adapt(_net(), "lora", "q_proj", 2, dropout=0.1)
    with pytest.raises(ValueError, match="init: expected one of"):
        adapt(_net(), "lotr", "q_proj", 2, init="pissa")
    with pytest.raises(ValueError, match="alpha"):
        adapt(_net(), "lora", "q_proj", 2, alpha=-1.0)
    model = adapt(_net(), "lora", "q_proj", 2)
    with pytest.raises(ValueError, match="already has adapters"):
        adapt(model, "lora", "v_proj", 2)
    with pytest.raises(ValueError, match="no adapters to merge"):
        merge(_net())
    with pytest.raises(ValueError, match="has no adapters"):
        adapter_state_dict(_net())
    with pytest.raises(ValueError, match="has no adapters"):
        load_adapter(_net(), {})


def test_loading_into_another_shape_names_the_layer():
    state = adapter_state_dict(adapt(_net(), "lotr", TARGET, 2))
    wider = adapt(_net(d=2 * D), "lotr", TARGET, 2)
    with pytest.raises(ValueError, match="layer 'layers.0.q_proj.factors' expects lotr_A"):
        load_adapter(wider, state)
    other = adapt(_net(), "lotr", ["q_proj"], 2)
    with pytest.raises(ValueError, match="unexpected: \\['layers.0.up"):
        load_adapter(other, state)
    lora = adapt(_net(), "lora", TARGET, 2)
    bad = dict(adapter_state_dict(lora), **{"layers.0.up.lora_A": "x"})
    with pytest.raises(TypeError, match="expected a torch.Tensor"):
        load_adapter(lora, bad)


@pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs peft")
def test_lora_forward_equals_peft_with_the_same_factors():
    from peft import LoraConfig, get_peft_model

    x = _inputs()
    ours = adapt(_net(), "lora", TARGET, 4, alpha=8.0)
    _perturb(ours)
    theirs = get_peft_model(_net(), LoraConfig(r=4, lora_alpha=8, target_modules=TARGET))
    inner = theirs.base_model.model
    with torch.no_grad():
        for name, layer in ours.named_modules():
            if isinstance(layer, LoRALinear):
                peft_layer = inner.get_submodule(name)
                peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
                peft_layer.lora_B["default"].weight.copy_(layer.lora_B)
    torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-6)
