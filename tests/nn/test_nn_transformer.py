"""Decoder: cached decoding equals recomputation, parameter counts, norms, errors."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn import (  # noqa: E402
    Decoder,
    RMSNorm,
    SwiGLU,
    adapt,
    attention_parameters,
    count_parameters,
    kv_cache_bytes_per_token,
    solve_d_ff,
    solve_heads,
)

KINDS = ["mha", "gqa", "mqa", "tpa", "tpa_kvonly"]
VOCAB = 37


def _model(kind, seed=0, **kw):
    torch.manual_seed(seed)
    opts = {"d_model": 32, "n_layers": 2, "n_heads": 4, "max_seq_len": 24}
    if kind.startswith("tpa"):
        opts.update(head_dim=8, q_rank=3, k_rank=2, v_rank=2)
    opts.update(kw)
    return Decoder(VOCAB, attention=kind, **opts).eval()


def _ids(b, t, seed=1):
    return torch.randint(0, VOCAB, (b, t), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize(
    ("kind", "materialize"), [(k, False) for k in KINDS] + [("tpa", True), ("tpa_kvonly", True)]
)
def test_cached_decoding_equals_full_recomputation(kind, materialize):
    model = _model(kind)
    ids = _ids(2, 12)
    with torch.no_grad():
        full = model(ids)
        cache = model.new_cache(2, materialize=materialize)
        # prompt of 5, one chunk of 3 after it (masked multi-token step), then single tokens
        parts = [model(ids[:, :5], cache), model(ids[:, 5:8], cache)]
        parts += [model(ids[:, i : i + 1], cache) for i in range(8, 12)]
    err = (torch.cat(parts, dim=1) - full).abs().max().item()
    assert err < 1e-5, err
    assert cache.length == 12
    per_layer = cache.bytes_per_token_per_layer()
    assert per_layer == model.cache_bytes_per_token_per_layer(materialize=materialize)
    if kind.startswith("tpa") and not materialize:
        assert per_layer == kv_cache_bytes_per_token(kind, n_heads=4, head_dim=8)


@pytest.mark.parametrize("kind", ["gqa", "tpa"])
def test_generate_equals_greedy_recomputation(kind):
    model = _model(kind, seed=2)
    prompt = _ids(2, 4, seed=3)
    out = model.generate(prompt, 6)
    ref = prompt
    with torch.no_grad():
        for _ in range(6):
            ref = torch.cat((ref, model(ref)[:, -1].argmax(-1, keepdim=True)), dim=1)
    assert torch.equal(out, ref)
    factor = model.generate(prompt, 6, materialize=True)
    assert torch.equal(factor, ref)
    sampled = model.generate(prompt, 3, temperature=1.0, generator=torch.Generator())
    assert sampled.shape == (2, 7)


@pytest.mark.parametrize("kind", KINDS)
def test_parameter_count_formula_and_tied_embedding(kind):
    model = _model(kind)
    d, layers, d_ff = 32, 2, (8 * 32) // 3
    head_dim = 8
    n_kv = {"mha": 4, "gqa": 2, "mqa": 1}.get(kind)
    attn = attention_parameters(
        kind, d_model=d, n_heads=4, head_dim=head_dim, n_kv_heads=n_kv, q_rank=3
    )
    expected = VOCAB * d + layers * (attn + 3 * d * d_ff + 2 * d) + d
    assert count_parameters(model) == expected
    ids = _ids(1, 3)
    with torch.no_grad():
        h = model.embed(ids)
        for blk in model.layers:
            h = blk(h)
        ref = model.norm(h) @ model.embed.weight.T
    torch.testing.assert_close(model(ids), ref, rtol=0, atol=1e-6)


def test_solve_heads_and_d_ff_match_targets():
    # the spec's tiny setting: d = 128, d_h = 16, R = (6, 2, 2): 13.5 heads solve 4 d^2
    h = solve_heads("tpa", d_model=128, head_dim=16)
    miss = [
        abs(attention_parameters("tpa", d_model=128, n_heads=n, head_dim=16) - 4 * 128**2)
        for n in (h - 1, h, h + 1)
    ]
    assert h == 14 and miss[1] <= min(miss)
    opts = {"vocab_size": VOCAB, "d_model": 32, "n_layers": 2, "n_heads": 4}
    target = count_parameters(Decoder(**opts, attention="mha"))
    d_ff = solve_d_ff(target, **opts, attention="mqa")
    got = count_parameters(Decoder(**opts, attention="mqa", d_ff=d_ff))
    assert abs(got - target) <= 3 * 32 * 2 // 2
    with pytest.raises(ValueError, match="target"):
        solve_d_ff(10, **opts)


def test_norm_and_mlp_match_formulas():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(3, 5, 8, generator=g, dtype=torch.float64)
    norm = RMSNorm(8, eps=1e-5, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    ref = x / torch.sqrt((x**2).mean(-1, keepdim=True) + 1e-5) * torch.arange(1.0, 9.0)
    torch.testing.assert_close(norm(x), ref, rtol=0, atol=1e-14)
    mlp = SwiGLU(8, 12, dtype=torch.float64)
    a, b = x @ mlp.gate_proj.weight.T, x @ mlp.up_proj.weight.T
    ref = (a * torch.sigmoid(a) * b) @ mlp.down_proj.weight.T
    torch.testing.assert_close(mlp(x), ref, rtol=0, atol=1e-13)
    assert SwiGLU(96).d_ff == 256


def test_adapter_names_are_targetable():
    model = _model("tpa_kvonly")
    ids = _ids(1, 4)
    with torch.no_grad():
        before = model(ids)
    adapt(model, "lora", target=["q_proj", "o_proj", "gate_proj", "up_proj", "down_proj"], rank=2)
    with torch.no_grad():
        torch.testing.assert_close(model(ids), before, rtol=0, atol=1e-6)
    mha = _model("mha")
    names = {n.split(".")[-1] for n, _ in mha.named_modules()}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= names
    assert all(hasattr(blk, "attn") and hasattr(blk, "mlp") for blk in mha.layers)


def test_bad_input():
    with pytest.raises(ValueError, match="attention"):
        Decoder(VOCAB, attention="mla")
    with pytest.raises(ValueError, match="attention_options"):
        Decoder(VOCAB, attention="mha", q_rank=2)
    with pytest.raises(ValueError, match="n_kv_heads"):
        Decoder(VOCAB, n_heads=4, attention="gqa", n_kv_heads=3)
    with pytest.raises(ValueError, match="n_kv_heads"):
        Decoder(VOCAB, n_heads=4, attention="mqa", n_kv_heads=2)
    with pytest.raises(ValueError, match="k_rank"):
        Decoder(VOCAB, attention="tpa", k_rank=0)
    with pytest.raises(ValueError, match="even"):
        Decoder(VOCAB, d_model=12, n_heads=4, attention="tpa")  # head_dim 3 with RoPE
    model = _model("tpa")
    with pytest.raises(ValueError, match="max_seq_len"):
        model(_ids(1, 25))
    with pytest.raises(ValueError, match="max_new_tokens"):
        model.generate(_ids(1, 20), 5)
    with pytest.raises(ValueError, match="vocab_size"):
        model(torch.tensor([[0, VOCAB]]))
    with pytest.raises(TypeError, match="ids"):
        model(torch.zeros(1, 3))
    twin = _model("tpa")
    with pytest.raises(ValueError, match="another Decoder"):
        model(_ids(1, 2), twin.new_cache(1))
    cache = model.new_cache(1)
    model(_ids(1, 2), cache)
    with pytest.raises(ValueError, match="empty"):
        model.generate(_ids(1, 2), 1, cache=cache)
