"""The attention-kind comparison runs (:mod:`solvers.attention_runs`) on synthetic tokens."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from solvers.attention_runs import (  # noqa: E402
    KINDS,
    DecodeParams,
    ModelParams,
    TrainingParams,
    build_decoder,
    head_counts,
    run_kind,
)
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.kv_cache import solve_heads  # noqa: E402

SMALL = ModelParams(d_model=48, n_layers=1, head_dim=8, mha_heads=6)


def test_head_counts_match_mha_weights():
    counts = head_counts(SMALL)
    assert list(counts) == list(KINDS)
    target = 4 * 48 * 48  # MHA: four d x (h d_h) maps with h d_h = d
    assert counts["mha"] == {"n_heads": 6, "n_kv_heads": 6, "attention_params": target}
    assert counts["gqa"]["n_heads"] == solve_heads("gqa", d_model=48, head_dim=8, n_kv_heads=2)
    assert counts["gqa"]["n_kv_heads"] == 2 and counts["mqa"]["n_kv_heads"] == 1
    assert counts["tpa"]["n_kv_heads"] == counts["tpa_kvonly"]["n_kv_heads"] == 0
    for kind, c in counts.items():
        assert abs(c["attention_params"] - target) <= 0.05 * target, kind
    with pytest.raises(ConfigError, match="param_tolerance.*tpa"):
        head_counts(ModelParams(d_model=48, head_dim=8, mha_heads=6, param_tolerance=1e-4))
    with pytest.raises(ConfigError, match="gqa"):
        head_counts(ModelParams(gqa_kv_heads=9), ("gqa",))


def test_build_decoder_is_seeded_and_leaves_the_global_generator():
    state = torch.random.get_rng_state()
    a = build_decoder(SMALL, "tpa", 20, max_seq_len=8, seed=3)
    b = build_decoder(SMALL, "tpa", 20, max_seq_len=8, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    c = build_decoder(SMALL, "tpa", 20, max_seq_len=8, seed=4)
    assert not torch.equal(next(a.parameters()), next(c.parameters()))
    assert a.layers[0].attn.ranks == {"q": 6, "k": 2, "v": 2}
    kvonly = build_decoder(SMALL, "tpa_kvonly", 20, max_seq_len=8, seed=0).layers[0].attn
    assert kvonly.ranks == {"q": None, "k": 2, "v": 2}


def test_run_kind_learns_a_constant_next_token_and_measures_the_cache():
    """Every target is token 3: a few AdamW steps bring the loss well below log(vocab)."""

    def batches(step):
        g = torch.Generator().manual_seed(step)
        return torch.randint(0, 10, (8, 8), generator=g), torch.full((8, 8), 3)

    x_val = torch.randint(0, 10, (4, 8), generator=torch.Generator().manual_seed(99))
    r = run_kind(
        "gqa",
        SMALL,
        TrainingParams(steps=20, lr=1e-2, warmup=2, eval_every=10),
        DecodeParams(prompt=3, new_tokens=4, batch_size=6),
        vocab_size=10,
        batches=batches,
        validation=(x_val, torch.full((4, 8), 3)),
        max_seq_len=8,
        seed=0,
    )
    np.testing.assert_array_equal(r["steps"], [0, 10, 20])
    assert abs(r["val_loss"][0] - np.log(10)) < 1.0 and r["val_loss"][-1] < 0.1
    assert r["val_accuracy"][-1] == 1.0 and np.isnan(r["train_loss"][0])
    # GQA caches 2 key/value heads of width 8 for keys and values, float32
    assert r["cache_bytes"] == r["cache_bytes_formula"] == 4 * 2 * 2 * 8
    assert r["cache_bytes_materialized"] == r["cache_bytes"]
    assert r["n_heads"] == head_counts(SMALL, ("gqa",))["gqa"]["n_heads"]
    assert r["decode_tokens_per_s"] > 0 and r["train_seconds"] > 0
