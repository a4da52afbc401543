"""RoPE, MHA/GQA/MQA and Tensor Product Attention against independent references."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn import (  # noqa: E402
    KVCache,
    MultiHeadAttention,
    RotaryEmbedding,
    TensorProductAttention,
    TPAFactorCache,
    attention_parameters,
    count_parameters,
    kv_cache_bytes_per_token,
    solve_heads,
)
from tensorsim.nn.attention import tpa_factor_attention, tpa_materialize  # noqa: E402

F64 = torch.float64


def _x(b, t, d, seed=0, dtype=F64):
    return torch.randn(b, t, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _ref_rotate(x, positions, base=10000.0):
    """RoPE as a complex rotation of (x[:d/2] + i x[d/2:]) by exp(i p theta); (B, T, n, d)."""
    d = x.shape[-1]
    half = d // 2
    theta = base ** (-2.0 * torch.arange(half, dtype=F64) / d)
    phase = torch.polar(torch.ones(len(positions), half, dtype=F64), positions[:, None] * theta)
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * phase[None, :, None, :]
    return torch.cat((z.real, z.imag), dim=-1).to(x.dtype)


def _ref_attention(q, k, v):
    """Causal softmax attention, q (B, T, H, d), k/v (B, T, Hkv, d), by explicit formulas."""
    b, t, h, d = q.shape
    group = h // k.shape[2]
    out = torch.zeros_like(q)
    for i in range(h):
        kk, vv = k[:, :, i // group], v[:, :, i // group]
        s = q[:, :, i] @ kk.transpose(1, 2) / math.sqrt(d)
        s = s + torch.triu(torch.full((t, t), -math.inf, dtype=q.dtype), diagonal=1)
        out[:, :, i] = torch.softmax(s, dim=-1) @ vv
    return out


def _tpa_reference(m, x):
    """TPA output from the module's weights, with explicit loops over ranks and heads."""
    b, t, _ = x.shape
    h, dh = m.n_heads, m.head_dim
    pos = torch.arange(t, dtype=F64)

    def part(name, rotate):
        rank = m.ranks[name]
        a = (x @ getattr(m, f"{name}_a_proj").weight.T).reshape(b, t, h, rank)
        bb = (x @ getattr(m, f"{name}_b_proj").weight.T).reshape(b, t, rank, dh)
        full = sum(a[..., r, None] * bb[:, :, r, None, :] for r in range(rank)) / rank
        return _ref_rotate(full, pos) if rotate else full

    q = _ref_rotate((x @ m.q_proj.weight.T).reshape(b, t, h, dh), pos) if m.kv_only else None
    q = part("q", True) if q is None else q
    out = _ref_attention(q, part("k", True), part("v", False))
    return out.reshape(b, t, h * dh) @ m.o_proj.weight.T


# ----------------------------------------------------------------------------- RoPE


def test_rope_equals_complex_rotation_and_is_relative():
    rope = RotaryEmbedding(8, 64, dtype=F64)
    x = _x(2, 5, 24, seed=1).reshape(2, 5, 3, 8)
    pos = torch.tensor([0, 3, 7, 20, 63])
    torch.testing.assert_close(rope(x, pos), _ref_rotate(x, pos.double()), rtol=0, atol=1e-13)
    torch.testing.assert_close(rope(x, offset=4), rope(x, torch.arange(4, 9)), rtol=0, atol=0)
    # <R_p q, R_s k> depends on s - p only
    q, k = x[:, :1], x[:, 1:2]
    dots = [
        (rope(q, torch.tensor([p])) * rope(k, torch.tensor([p + 5]))).sum(-1) for p in (0, 11, 40)
    ]
    torch.testing.assert_close(dots[0], dots[1], rtol=0, atol=1e-12)
    torch.testing.assert_close(dots[0], dots[2], rtol=0, atol=1e-12)


def test_rope_bad_input():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7, 16)
    rope = RotaryEmbedding(4, 8)
    x = torch.zeros(1, 3, 2, 4)
    with pytest.raises(ValueError, match="max_seq_len"):
        rope(x, offset=6)
    with pytest.raises(ValueError, match="max_seq_len"):
        rope(x, torch.tensor([0, 1, 8]))
    with pytest.raises(ValueError, match="x: expected shape"):
        rope(torch.zeros(1, 3, 2, 6))
    with pytest.raises(TypeError, match="positions"):
        rope(x, torch.tensor([0.0, 1.0, 2.0]))


# ----------------------------------------------------------------------------- MHA / GQA / MQA


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_mha_gqa_mqa_match_reference(n_kv):
    torch.manual_seed(0)
    m = MultiHeadAttention(16, 4, head_dim=6, n_kv_heads=n_kv, max_seq_len=32, dtype=F64)
    assert m.kind == {4: "mha", 2: "gqa", 1: "mqa"}[n_kv]
    x = _x(2, 7, 16)
    b, t, _ = x.shape
    pos = torch.arange(t, dtype=F64)
    q = _ref_rotate((x @ m.q_proj.weight.T).reshape(b, t, 4, 6), pos)
    k = _ref_rotate((x @ m.k_proj.weight.T).reshape(b, t, n_kv, 6), pos)
    v = (x @ m.v_proj.weight.T).reshape(b, t, n_kv, 6)
    ref = _ref_attention(q, k, v).reshape(b, t, 24) @ m.o_proj.weight.T
    torch.testing.assert_close(m(x), ref, rtol=0, atol=1e-12)
    assert count_parameters(m) == attention_parameters(
        m.kind, d_model=16, n_heads=4, head_dim=6, n_kv_heads=n_kv
    )


# ----------------------------------------------------------------------------- TPA


@pytest.mark.parametrize("kv_only", [False, True])
def test_tpa_factor_path_equals_materialized_and_reference(kv_only):
    torch.manual_seed(1)
    m = TensorProductAttention(
        12, 3, 4, q_rank=3, k_rank=2, v_rank=2, kv_only=kv_only, max_seq_len=16, dtype=F64
    )
    x = _x(2, 6, 12, seed=2)
    ref = _tpa_reference(m, x)
    materialized = m(x)
    factored = m(x, m.new_cache(2))  # empty factor cache: the whole sequence factor-wise
    torch.testing.assert_close(materialized, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(factored, ref, rtol=0, atol=1e-12)
    kind = "tpa_kvonly" if kv_only else "tpa"
    assert count_parameters(m) == attention_parameters(
        kind, d_model=12, n_heads=3, head_dim=4, q_rank=3, k_rank=2, v_rank=2
    )


def test_tpa_factor_attention_float32_close_to_materialized():
    g = torch.Generator().manual_seed(3)
    b, t, h, d, rq, rk, rv = 2, 5, 3, 8, 4, 2, 3
    aq, ak, av = (torch.randn(b, t, h, r, generator=g) for r in (rq, rk, rv))
    bq, bk, bv = (torch.randn(b, t, r, d, generator=g) for r in (rq, rk, rv))
    out = tpa_factor_attention((aq, bq), (ak, bk), (av, bv))
    ref = _ref_attention(*(tpa_materialize(a, bb) for a, bb in ((aq, bq), (ak, bk), (av, bv))))
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-5)


def test_rope_on_b_equals_rope_on_k():
    torch.manual_seed(4)
    m = TensorProductAttention(10, 3, 6, k_rank=2, max_seq_len=16, dtype=F64)
    x = _x(2, 5, 10, seed=5)
    pos = torch.arange(3, 8)
    a = m.head_factor("k", x)
    k_from_rotated_b = tpa_materialize(a, m.token_factor("k", x, pos))
    b_plain = m.k_b_proj(x).reshape(2, 5, 2, 6)
    k_rotated = _ref_rotate(tpa_materialize(a, b_plain), pos.double())
    torch.testing.assert_close(k_from_rotated_b, k_rotated, rtol=0, atol=1e-13)


@pytest.mark.parametrize("kind", ["mha", "tpa", "tpa_kvonly"])
def test_outputs_invariant_to_position_shift(kind):
    torch.manual_seed(6)
    if kind == "mha":
        m = MultiHeadAttention(12, 3, max_seq_len=64, dtype=F64)
    else:
        m = TensorProductAttention(
            12, 3, 4, kv_only=kind == "tpa_kvonly", max_seq_len=64, dtype=F64
        )
    x = _x(1, 6, 12, seed=7)
    base = m(x)
    for shift in (1, 17, 50):
        torch.testing.assert_close(
            m(x, positions=torch.arange(6) + shift), base, atol=1e-12, rtol=0
        )


@pytest.mark.parametrize("n_kv", [4, 2, 1])
def test_noncontextual_tpa_reproduces_mha_gqa_mqa(n_kv):
    """Paper section 3.4: R_Q = h, A_Q = h I; R_K = R_V = G groups, A = G * group mask."""
    h, d_model, dh = 4, 12, 6
    torch.manual_seed(8)
    mha = MultiHeadAttention(d_model, h, head_dim=dh, n_kv_heads=n_kv, max_seq_len=16, dtype=F64)
    tpa = TensorProductAttention(
        d_model,
        h,
        dh,
        q_rank=h,
        k_rank=n_kv,
        v_rank=n_kv,
        contextual_heads=False,
        max_seq_len=16,
        dtype=F64,
    )
    group_mask = torch.zeros(h, n_kv, dtype=F64)
    group_mask[torch.arange(h), torch.arange(h) // (h // n_kv)] = 1.0
    with torch.no_grad():
        tpa.q_a.copy_(h * torch.eye(h, dtype=F64))
        tpa.k_a.copy_(n_kv * group_mask)
        tpa.v_a.copy_(n_kv * group_mask)
        tpa.q_b_proj.weight.copy_(mha.q_proj.weight)
        tpa.k_b_proj.weight.copy_(mha.k_proj.weight)
        tpa.v_b_proj.weight.copy_(mha.v_proj.weight)
        tpa.o_proj.weight.copy_(mha.o_proj.weight)
    x = _x(2, 7, d_model, seed=9)
    ref = mha(x)
    torch.testing.assert_close(tpa(x), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(tpa(x, tpa.new_cache(2)), ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------- caches


def _fill(m, batch, t, seed, materialize=False):
    cache = m.new_cache(batch, materialize=materialize) if materialize else m.new_cache(batch)
    x = _x(batch, t, m.d_model, seed=seed, dtype=torch.float32)
    m(x[:, :2], cache)
    for i in range(2, t):
        m(x[:, i : i + 1], cache)
    return cache


def test_cache_bytes_measured_equal_formula_and_paper_ratio():
    torch.manual_seed(10)
    d, h, dh = 768, 12, 64
    tpa = TensorProductAttention(d, h, dh, q_rank=6, k_rank=2, v_rank=2, max_seq_len=8)
    mha = MultiHeadAttention(d, h, head_dim=dh, max_seq_len=8)
    tpa_cache, mha_cache = _fill(tpa, 2, 4, 11), _fill(mha, 2, 4, 11)
    assert isinstance(tpa_cache, TPAFactorCache) and isinstance(mha_cache, KVCache)
    assert tpa_cache.length == mha_cache.length == 4
    tpa_bytes = tpa_cache.bytes_per_token()
    mha_bytes = mha_cache.bytes_per_token()
    assert tpa_bytes == kv_cache_bytes_per_token("tpa", n_heads=h, head_dim=dh) == 4 * 76 * 4
    assert mha_bytes == kv_cache_bytes_per_token("mha", n_heads=h, head_dim=dh) == 2 * 768 * 4
    assert tpa_bytes == tpa.cache_bytes_per_token() and mha_bytes == mha.cache_bytes_per_token()
    ratio = tpa_bytes / mha_bytes
    assert ratio == pytest.approx(304 / 1536) and ratio < 0.30  # 19.8 % at 12 TPA heads
    # the paper's parameter-matched small model has 34 TPA heads: 392 / 1536 = 25.5 %
    matched = kv_cache_bytes_per_token("tpa", n_heads=34, head_dim=64) / mha_bytes
    assert matched == pytest.approx(392 / 1536) and matched < 0.30
    materialized = _fill(tpa, 2, 4, 11, materialize=True)
    assert materialized.bytes_per_token() == tpa.cache_bytes_per_token(materialize=True)


@pytest.mark.parametrize(
    ("kind", "n_kv", "expected"),
    [("mha", None, 2 * 4 * 6), ("gqa", 2, 2 * 2 * 6), ("mqa", None, 2 * 6)],
)
def test_kv_cache_formula_mha_family(kind, n_kv, expected):
    n = kv_cache_bytes_per_token(kind, n_heads=4, head_dim=6, n_kv_heads=n_kv, dtype=F64)
    assert n == expected * 8
    m = MultiHeadAttention(12, 4, head_dim=6, n_kv_heads={"mha": 4, "gqa": 2, "mqa": 1}[kind])
    assert _fill(m, 1, 3, 0).bytes_per_token() == expected * 4


def test_solve_heads_matches_paper_table():
    # arXiv 2501.06425: d_h = 64, R = (6, 2, 2); TPA heads 47/61/78, KVonly 29/37/47
    for d, tpa_h, kvonly_h in ((1024, 47, 29), (1280, 61, 37), (1600, 78, 47)):
        assert solve_heads("tpa", d_model=d, head_dim=64) == tpa_h
        assert solve_heads("tpa_kvonly", d_model=d, head_dim=64) == kvonly_h
    assert solve_heads("mha", d_model=768, head_dim=64) == 12
    assert solve_heads("gqa", d_model=128, head_dim=16, n_kv_heads=2) % 2 == 0


# ----------------------------------------------------------------------------- bad input


def test_bad_input():
    with pytest.raises(ValueError, match="head_dim.*even"):
        MultiHeadAttention(12, 4, head_dim=3)
    with pytest.raises(ValueError, match="head_dim.*even"):
        TensorProductAttention(12, 4, 5)
    TensorProductAttention(12, 4, 5, rope=False)  # odd is fine without RoPE
    for rank in ("q_rank", "k_rank", "v_rank"):
        with pytest.raises(ValueError, match=rank):
            TensorProductAttention(12, 4, 4, **{rank: 0})
    with pytest.raises(ValueError, match="n_kv_heads"):
        MultiHeadAttention(12, 4, n_kv_heads=3)
    with pytest.raises(ValueError, match="attention"):
        kv_cache_bytes_per_token("mla", n_heads=4, head_dim=8)
    m = TensorProductAttention(12, 3, 4, max_seq_len=5)
    with pytest.raises(ValueError, match="max_seq_len"):
        m(torch.zeros(1, 6, 12))
    cache = m.new_cache(1)
    m(torch.zeros(1, 4, 12), cache)
    with pytest.raises(ValueError, match="max_seq_len"):
        m(torch.zeros(1, 2, 12), cache)
    with pytest.raises(ValueError, match="batch size"):
        m(torch.zeros(2, 1, 12), cache)
    with pytest.raises(ValueError, match="x: expected shape"):
        m(torch.zeros(1, 2, 10))
    with pytest.raises(TypeError, match="dtype"):
        m(torch.zeros(1, 2, 12, dtype=F64))
    twin = TensorProductAttention(12, 3, 4, max_seq_len=5)  # same shape, another module
    with pytest.raises(ValueError, match="another attention module"):
        twin(torch.zeros(1, 1, 12), cache)
    other = TensorProductAttention(12, 3, 4, k_rank=3, max_seq_len=5)  # other shape
    with pytest.raises(ValueError, match="cache: built for"):
        other(torch.zeros(1, 1, 12), cache)
    mha = MultiHeadAttention(12, 3, max_seq_len=5)
    with pytest.raises(ValueError, match="cache: built for"):
        mha(torch.zeros(1, 1, 12), cache)
    with pytest.raises(ValueError, match="positions"):
        m(torch.zeros(1, 1, 12), cache, positions=torch.tensor([4]))


def test_factor_path_gradients_equal_materialized():
    """tensorsim.einsum keeps autograd: both paths give the same parameter gradients."""
    torch.manual_seed(12)
    m = TensorProductAttention(16, 4, 4, max_seq_len=8, dtype=F64)
    x = _x(2, 5, 16, seed=13)
    grads = []
    for cache in (None, m.new_cache(2)):
        m.zero_grad()
        m(x, cache).square().sum().backward()
        grads.append([p.grad.clone() for p in m.parameters()])
    for g1, g2 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g2, rtol=0, atol=1e-12)
