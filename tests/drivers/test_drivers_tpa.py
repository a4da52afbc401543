"""End-to-end tests of ``python -m drivers.tpa`` (TPA vs MHA/GQA/MQA, arXiv 2501.06425)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
xr = pytest.importorskip("xarray")

import drivers.tpa as driver  # noqa: E402
from tensorsim.config import ConfigError  # noqa: E402
from tensorsim.nn.kv_cache import solve_heads  # noqa: E402
from tensorsim.testing import load_dataset  # noqa: E402

#: A tiny character LM: d = 48, 1 layer, d_h = 8 (MHA 6 heads), 4 steps on 5000 characters.
TINY = [
    "--set", "experiment.model.d_model=48",
    "--set", "experiment.model.n_layers=1",
    "--set", "experiment.model.head_dim=8",
    "--set", "experiment.model.mha_heads=6",
    "--set", "experiment.data.seq_len=16",
    "--set", "experiment.data.batch_size=4",
    "--set", "experiment.data.eval_size=4",
    "--set", "experiment.data.max_chars=5000",
    "--set", "experiment.training.steps=4",
    "--set", "experiment.training.warmup=1",
    "--set", "experiment.training.eval_every=2",
    "--set", "experiment.decode.prompt=4",
    "--set", "experiment.decode.new_tokens=4",
]  # fmt: skip


def test_tiny_run_file_counts_and_cache_bytes(tmp_path):
    out = tmp_path / "tpa.nc"
    summary = driver.main([*TINY, "--set", f"output.path={out}"])
    ds = load_dataset(out)
    assert ds.attrs["finished"] == 1 and ds.attrs["task"] == "chars"
    assert dict(ds.sizes) == {"attention": 5, "eval_step": 3}
    assert [str(k) for k in ds["kind"].values] == list(driver.KINDS)
    np.testing.assert_array_equal(ds["eval_step"], [0, 2, 4])
    assert ds["val_loss"].dims == ("attention", "eval_step")
    assert np.all(np.isfinite(ds["val_loss"])) and np.all(np.isfinite(ds["final_val_loss"]))
    np.testing.assert_array_equal(ds["final_val_loss"], ds["val_loss"][:, -1])
    # the cache tensors hold what the formula says, factor and materialized caches alike
    np.testing.assert_array_equal(ds["cache_bytes"], ds["cache_bytes_formula"])
    np.testing.assert_array_equal(
        ds["cache_bytes_materialized"], ds["cache_bytes_materialized_formula"]
    )
    # float32: MHA 2 h d_h = 96 numbers; GQA 2 * 2 * 8; MQA 2 * 8; TPA (2 + 2)(h + 8)
    heads = ds["n_heads"].values
    assert heads.tolist() == [
        6,
        solve_heads("gqa", d_model=48, head_dim=8, n_kv_heads=2),
        solve_heads("mqa", d_model=48, head_dim=8),
        solve_heads("tpa", d_model=48, head_dim=8),
        solve_heads("tpa_kvonly", d_model=48, head_dim=8),
    ]
    expected = [4 * 96, 4 * 32, 4 * 16, 4 * 4 * (heads[3] + 8), 4 * 4 * (heads[4] + 8)]
    np.testing.assert_array_equal(ds["cache_bytes"], expected)
    np.testing.assert_array_equal(ds["cache_bytes_materialized"][3:], 4 * 2 * heads[3:] * 8)
    # matched parameters: attention weights within param_tolerance (5 %) of MHA's 4 d^2,
    # and the rest of the model identical, so whole models differ by as much
    attn = ds["attention_params"].values
    assert attn[0] == 4 * 48 * 48
    assert np.all(np.abs(attn - attn[0]) <= 0.05 * attn[0])
    rest = ds["total_params"].values - attn  # one layer
    assert np.all(rest == rest[0])
    assert np.all(ds["decode_tokens_per_s"] > 0) and np.all(ds["n_kv_heads"][:3] == [6, 2, 1])
    assert summary["table"]["mha"]["cache_ratio"] == 1.0
    assert summary["table"]["tpa"]["n_heads"] == heads[3]
    assert "1.00x smaller" in driver.TPASweep().summarize(summary)
    paths = driver.main.__self__.plot(str(out))
    assert [p.name for p in paths] == ["tpa_tpa.png"] and all(p.exists() for p in paths)


def test_recall_kind_scores_the_answer_only():
    """One kind of the recall preset, a few steps: the answer-only loss and accuracy."""
    cfg = driver.TPASweep().load(
        None,
        [
            "preset=recall",
            "experiment.model.d_model=32",
            "experiment.model.head_dim=8",
            "experiment.model.mha_heads=4",
            "experiment.model.n_layers=1",
            "experiment.data.eval_size=32",
            "experiment.training.steps=3",
            "experiment.training.warmup=1",
        ],
    )
    assert cfg.experiment.max_seq_len == 18
    r = driver.run_kind(cfg.experiment, "tpa")
    # untrained: near-uniform logits over the 33 tokens of the recall vocabulary
    assert abs(r["val_loss"][0] - np.log(33)) < 1.0
    assert 0.0 <= r["val_accuracy"][-1] <= 1.0
    assert r["cache_bytes"] == r["cache_bytes_formula"]


def test_t6_code_init_bounds():
    from tensorsim.nn.models.decoder import Decoder

    def attn(init):
        torch.manual_seed(0)
        opts = {} if init is None else {"init": init}
        return (
            Decoder(20, 48, 1, 6, attention="tpa", head_dim=8, max_seq_len=8, **opts)
            .layers[0]
            .attn
        )

    code, paper = attn(None), attn("xavier")
    for name, rank in code.ranks.items():
        a = getattr(code, f"{name}_a_proj").weight.abs().max()
        b = getattr(code, f"{name}_b_proj").weight.abs().max()
        bound_a, bound_b = np.sqrt(6 / (rank * (6 + 48))), np.sqrt(6 / (8 * (rank + 48)))
        assert 0.9 * bound_a < a <= bound_a and 0.9 * bound_b < b <= bound_b
        xavier_a = np.sqrt(6 / (48 + 6 * rank))
        assert 0.9 * xavier_a < getattr(paper, f"{name}_a_proj").weight.abs().max() <= xavier_a
    with pytest.raises(ValueError, match="init"):
        attn("kaiming")


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (["experiment.kinds=['mha', 'mla']"], "kinds"),
        (["experiment.kinds=['mha', 'mha']"], "distinct"),
        (["experiment.model.param_tolerance=0.001"], "param_tolerance.*tpa"),
        (["experiment.model.head_dim=15"], "even"),
        (["experiment.decode.new_tokens=60"], "decode.new_tokens"),
        (["experiment.training.warmup=2000"], "training.warmup"),
        (["preset=recall", "experiment.data.n_pairs=20"], "n_pairs"),
        (["experiment.model.gqa_kv_heads=9"], "gqa"),
        (["experiment.model.d_modle=64"], "d_model"),
        (["experiment.model.tpa_init=he"], "tpa_init"),
        # options a run would not use are refused, not ignored
        (["experiment.data.n_pairs=4"], "data.n_pairs.*recall"),
        (["preset=recall", "experiment.data.corpus=python_source"], "data.corpus.*chars"),
        (["preset=recall", "experiment.data.seq_len=32"], "data.seq_len"),
        (["experiment.kinds=['mha', 'mqa']", "experiment.model.gqa_kv_heads=4"], "gqa_kv_heads"),
        (["experiment.kinds=['mha', 'gqa']", "experiment.model.k_rank=3"], "model.k_rank"),
        (["experiment.kinds=['mha', 'tpa_kvonly']", "experiment.model.q_rank=4"], "q_rank"),
    ],
)
def test_bad_config(overrides, match):
    with pytest.raises(ConfigError, match=match):
        driver.TPASweep().load(None, overrides)


def test_restart_needs_the_journal(tmp_path):
    """A sweep keeps its finished cases in a journal; --restart needs that journal."""
    with pytest.raises(FileNotFoundError, match="no journal x.nc.cases"):
        driver.main(["--restart", str(tmp_path / "x.nc")])


@pytest.mark.slow  # default run kept under 10 min on 2 cores
@pytest.mark.mpi
def test_two_ranks_match_one(tmp_path, two_ranks):
    serial, parallel = tmp_path / "serial.nc", tmp_path / "parallel.nc"
    tiny = [*TINY, "--set", "experiment.kinds=['mha', 'tpa']"]
    driver.main([*tiny, "--set", f"output.path={serial}"])
    two_ranks(["-m", "drivers.tpa", *tiny, "--set", f"output.path={parallel}"])
    a, b = load_dataset(serial), load_dataset(parallel)
    assert b.attrs["mpi_size"] == 2
    for name in ("val_loss", "train_loss", "total_params", "cache_bytes"):
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
