"""SpectralConv and FactorizedWeight: factorized == dense, conventions, from_dense, gradients."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.einsum import _path  # noqa: E402
from tensorsim.nn import spectral  # noqa: E402
from tensorsim.nn.factorized import FactorizedWeight  # noqa: E402
from tensorsim.nn.spectral import SpectralConv, kept_modes  # noqa: E402

KINDS = ["dense", "tucker", "cp", "tt"]


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _dense_twin(conv: SpectralConv) -> SpectralConv:
    """A dense layer holding ``conv``'s weight multiplied out, and its bias."""
    dense_w = conv.dense_weight().detach()
    twin = SpectralConv(
        conv.in_channels,
        conv.out_channels,
        conv.n_modes,
        dtype=conv.bias.dtype,
    )
    with torch.no_grad():
        twin.weight.weight.copy_(torch.view_as_real(dense_w))
        twin.bias.copy_(conv.bias)
    return twin


def _assert_close(out, ref, rel):
    scale = ref.abs().max().item()
    err = (out - ref).abs().max().item()
    assert err <= rel * scale, (err, scale)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("modes", "grid"), [((8, 8), (16, 16)), ((6,), (20,)), ((4, 6, 4), (8, 10, 6))]
)
def test_factorized_equals_dense_reconstruction_float32(kind, modes, grid):
    gen = torch.Generator().manual_seed(0)
    conv = SpectralConv(4, 5, modes, factorization=kind, rank=0.3, generator=gen)
    x = torch.randn(3, 4, *grid, generator=gen)
    _assert_close(conv(x), _dense_twin(conv)(x), 1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_joint_weight_equals_dense_reconstruction_float32(kind):
    gen = torch.Generator().manual_seed(1)
    modes = (8, 6)
    joint = FactorizedWeight((3, 4, 4, *kept_modes(modes)), kind, 0.2, generator=gen, std=0.5)
    x = torch.randn(2, 4, 12, 14, generator=gen)
    full = joint.to_dense()
    for layer in range(3):
        conv = SpectralConv(4, 4, modes, shared=(joint, layer), generator=gen)
        assert not list(conv.named_parameters(recurse=True))[1:]  # only the bias is its own
        _assert_close(conv(x), _dense_twin(conv)(x), 1e-5)
        torch.testing.assert_close(conv.dense_weight(), full[layer])


@pytest.mark.parametrize("kind", ["tucker", "cp", "tt"])
@pytest.mark.parametrize("batch", [1, 16, 256])
@pytest.mark.parametrize("joint", [False, True])
def test_contraction_never_builds_the_dense_weight(monkeypatch, kind, batch, joint):
    calls = []
    original = spectral.einsum

    def recording(expr, *ops):
        calls.append((expr, tuple(tuple(o.shape) for o in ops)))
        return original(expr, *ops)

    monkeypatch.setattr(spectral, "einsum", recording)
    if joint:
        weight = FactorizedWeight((4, 32, 32, 16, 9), kind, 0.1)
        conv = SpectralConv(32, 32, (16, 16), shared=(weight, 2))
    else:
        conv = SpectralConv(32, 32, (16, 16), factorization=kind, rank=0.1)
    conv(torch.zeros(batch, 32, 16, 16))
    assert len(calls) == 2
    for expr, shapes in calls:
        lhs, out = expr.split("->")
        terms = lhs.split(",")
        intermediates = [out]
        if len(terms) > 2:
            for group in _path(expr, shapes):
                rest = [t for k, t in enumerate(terms) if k not in group]
                keep = set(out).union(*map(set, rest))
                merged = "".join(sorted(set("".join(terms[k] for k in group)) & keep))
                intermediates.append(merged)
                terms = [*rest, merged]
        for sub in intermediates:
            assert not ({"i", "o", "a", "b"} <= set(sub) and "z" not in sub), (expr, sub)


def test_dense_layer_is_neuraloperators():
    nsc = pytest.importorskip("neuralop.layers.spectral_convolution").SpectralConv
    torch.manual_seed(0)
    for modes, grid in [((8, 8), (16, 16)), ((7, 7), (16, 14)), ((5, 4, 6), (8, 10, 10))]:
        ref = nsc(3, 4, modes)
        mine = SpectralConv(3, 4, modes)
        assert mine.weight.shape == tuple(ref.weight.shape)
        with torch.no_grad():
            mine.weight.weight.copy_(torch.view_as_real(ref.weight.to_tensor()))
            mine.bias.copy_(ref.bias.flatten())
        x = torch.randn(2, 3, *grid)
        torch.testing.assert_close(mine(x), ref(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("grid", [(15, 13), (16, 14), (9, 9)])
def test_layer_commutes_with_shifts_and_drops_high_modes(grid):
    gen = torch.Generator().manual_seed(2)
    conv = SpectralConv(2, 3, (6, 5), factorization="tucker", rank=0.5, dtype=torch.float64)
    x = torch.randn(2, 2, *grid, generator=gen, dtype=torch.float64)
    shifted = torch.roll(x, shifts=(3, -2), dims=(2, 3))
    torch.testing.assert_close(conv(shifted), torch.roll(conv(x), shifts=(3, -2), dims=(2, 3)))
    # frequency (4, 0) lies outside the kept band -3..2 of axis 0: only the bias survives
    i = torch.arange(grid[0], dtype=torch.float64)[:, None].expand(*grid)
    wave = torch.cos(2 * torch.pi * 4 * i / grid[0]).expand(1, 2, *grid)
    torch.testing.assert_close(conv(wave), conv.bias.view(1, 3, 1, 1).expand(1, 3, *grid))


@pytest.mark.parametrize(("kind", "ranks"), [("tucker", (3, 4, 6, 4)), ("tt", (3, 12, 4))])
def test_from_dense_full_rank_reproduces_the_layer(kind, ranks):
    gen = torch.Generator().manual_seed(3)
    dense = SpectralConv(3, 4, (6, 6), generator=gen)
    fact = SpectralConv.from_dense(dense, kind, ranks)
    assert fact.weight.ranks == ranks and fact.weight.factorization == kind
    x = torch.randn(2, 3, 12, 12, generator=gen)
    _assert_close(fact(x), dense(x), 1e-5)


def test_from_dense_cp_recovers_a_cp_weight():
    gen = torch.Generator().manual_seed(4)
    shape, r = (3, 4, 6, 4), 3
    factors = [torch.randn(s, r, generator=gen, dtype=torch.float64) for s in shape]
    weights = torch.complex(*torch.randn(2, r, generator=gen, dtype=torch.float64))
    dense = torch.einsum("r,ar,br,cr,dr->abcd", weights, *[f.to(weights.dtype) for f in factors])
    fit = FactorizedWeight.from_dense(dense, "cp", r, cp_max_iter=500, cp_tol=1e-14)
    err = torch.linalg.vector_norm(fit.to_dense() - dense) / torch.linalg.vector_norm(dense)
    assert err < 1e-6


@pytest.mark.parametrize("kind", ["tucker", "tt"])
def test_from_dense_truncates_to_the_fraction(kind):
    gen = torch.Generator().manual_seed(5)
    dense = torch.randn(8, 8, 6, 4, dtype=torch.complex64, generator=gen)
    fit = FactorizedWeight.from_dense(dense, kind, 0.3)
    twin = FactorizedWeight((8, 8, 6, 4), kind, 0.3)
    assert fit.ranks == twin.ranks and fit.size == twin.size
    err = torch.linalg.vector_norm(fit.to_dense() - dense) / torch.linalg.vector_norm(dense)
    assert 0 < err < 1


@pytest.mark.parametrize("kind", KINDS)
def test_gradients_reach_the_factors_gradcheck(kind):
    gen = torch.Generator().manual_seed(6)
    conv = SpectralConv(
        2, 2, (4, 4), factorization=kind, rank=0.5, dtype=torch.float64, generator=gen
    )
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    names = [n for n, _ in conv.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in conv.parameters())

    def fn(inp, *values):
        return torch.func.functional_call(conv, dict(zip(names, values, strict=True)), (inp,))

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6)
    conv(x).square().sum().backward()
    for name, p in conv.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_parameter_layout_is_real_pairs():
    conv = SpectralConv(4, 6, (8, 8), factorization="tucker", rank=0.2)
    assert all(not p.is_complex() for p in conv.parameters())
    assert conv.weight.core.shape[-1] == 2
    assert sum(p.numel() for p in conv.weight.parameters()) == 2 * conv.weight.size


def test_bad_input_names_the_argument():
    conv = SpectralConv(2, 3, (8, 8))
    with pytest.raises(ValueError, match="n_modes"):
        conv(torch.zeros(1, 2, 6, 16))  # 8 modes on 6 points
    with pytest.raises(ValueError, match="n_modes"):
        conv(torch.zeros(1, 2, 16, 6))  # last axis: 8 // 2 > 6 // 2
    with pytest.raises(ValueError, match="x: expected shape"):
        conv(torch.zeros(1, 3, 16, 16))
    with pytest.raises(ValueError, match="x: expected shape"):
        conv(torch.zeros(2, 16, 16))
    with pytest.raises(ValueError, match="x: expected dtype"):
        conv(torch.zeros(1, 2, 16, 16, dtype=torch.float64))
    with pytest.raises(ValueError, match="n_modes"):
        SpectralConv(2, 3, (8, 0))
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 3, (8, 8), factorization="tucker", rank=1.5)
    with pytest.raises(ValueError, match="rank"):
        SpectralConv(2, 3, (8, 8), factorization="cp", rank=0.0)
    with pytest.raises(ValueError, match="factorization"):
        SpectralConv(2, 3, (8, 8), factorization="svd")
    with pytest.raises(ValueError, match="in_channels"):
        SpectralConv(0, 3, (8, 8))
    joint = FactorizedWeight((2, 2, 3, 8, 5), "cp", 0.5)
    with pytest.raises(ValueError, match="shared"):
        SpectralConv(2, 3, (8, 8), shared=(joint, 2))
    with pytest.raises(ValueError, match="shared"):
        SpectralConv(2, 3, (6, 8), shared=(joint, 0))
    with pytest.raises(ValueError, match="tensor"):
        FactorizedWeight.from_dense(torch.zeros(3, 3, 3), "tucker", 0.5)
