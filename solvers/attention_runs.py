"""Attention kinds compared at matched parameters: build, train, measure caches and decoding.

One decoder language model (:class:`tensorsim.nn.models.decoder.Decoder`: pre-norm, RoPE,
SwiGLU, tied embedding) per attention kind of :data:`KINDS` (arXiv 2501.06425):

- :func:`head_counts`: MHA has ``ModelParams.mha_heads`` heads of width ``head_dim``; every
  other kind gets the head count :func:`tensorsim.nn.kv_cache.solve_heads` returns for MHA's
  attention weights ``4 d h d_h`` (GQA with ``gqa_kv_heads`` key/value heads, TPA with
  ranks ``(R_Q, R_K, R_V)``); a kind further than ``param_tolerance`` from MHA's weights is a
  configuration error;
- :func:`build_decoder`: the decoder of one kind, initialized from a seed;
- :func:`run_kind`: trains it with :func:`solvers.steps.fit` (AdamW, linear warm-up, cosine
  decay, :class:`TrainingParams`) on the batches passed in, then decodes greedily after a
  prompt (:class:`DecodeParams`), once with the default cache (TPA: the factor cache
  ``A_K, B_K, A_V, B_V``) and once with keys and values materialized, timing the one-token
  steps and measuring the bytes per token per layer the cache tensors hold, next to the
  formula (:func:`tensorsim.nn.kv_cache.kv_cache_bytes_per_token`).

The data are passed in (this module imports no problem), e.g. from
:func:`problems.language.lm_data`. Torch is imported when a model is built.

References
----------
Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425.
J. Ainslie et al., arXiv 2305.13245 (GQA); N. Shazeer, arXiv 1911.02150 (MQA).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tensorsim.config import ConfigError, Params, param

__all__ = [
    "CURVES",
    "KINDS",
    "SCALARS",
    "DecodeParams",
    "ModelParams",
    "TrainingParams",
    "attention_options",
    "build_decoder",
    "decode_speed",
    "head_counts",
    "run_kind",
]

logger = logging.getLogger(__name__)

#: The attention kinds, as :data:`tensorsim.nn.attention.ATTENTION_KINDS`.
KINDS = ("mha", "gqa", "mqa", "tpa", "tpa_kvonly")


@dataclass(frozen=True)
class ModelParams(Params):
    """The decoder and the matched head counts.

    Attributes
    ----------
    d_model
        Residual width ``d``.
    n_layers
        Decoder blocks.
    head_dim
        ``d_h`` of every kind (even: RoPE).
    mha_heads
        MHA's heads; its attention weights ``4 d h d_h`` are the target of the others.
    gqa_kv_heads
        Key/value heads of GQA.
    q_rank, k_rank, v_rank
        TPA ranks ``R_Q``, ``R_K``, ``R_V`` (``q_rank`` unused by TPA-KVonly).
    param_tolerance
        Largest allowed relative difference of a kind's attention weights from MHA's.
    tpa_init
        TPA factor weights (``init`` of
        :class:`~tensorsim.nn.attention.TensorProductAttention`): ``"t6_code"`` (the
        bounds of the reference code's 3-D views) or ``"xavier"`` (the paper's
        Xavier-uniform over each 2-D map). At the default learning rate the paper's larger
        initialization trains TPA markedly worse (docs/tpa.md).
    """

    d_model: int = param(128, "residual width d", ge=2)
    n_layers: int = param(2, "decoder blocks", ge=1)
    head_dim: int = param(16, "head width d_h (even)", ge=2)
    mha_heads: int = param(8, "MHA heads (the parameter target)", ge=1)
    gqa_kv_heads: int = param(2, "GQA key/value heads", ge=1)
    q_rank: int = param(6, "TPA query rank R_Q", ge=1)
    k_rank: int = param(2, "TPA key rank R_K", ge=1)
    v_rank: int = param(2, "TPA value rank R_V", ge=1)
    param_tolerance: float = param(0.05, "max relative attention-weight mismatch", gt=0.0)
    tpa_init: Literal["t6_code", "xavier"] = param("t6_code", "TPA factor initialization")


@dataclass(frozen=True)
class TrainingParams(Params):
    """AdamW with linear warm-up and cosine decay (:func:`solvers.steps.fit`)."""

    steps: int = param(1000, "optimizer steps", ge=0)
    lr: float = param(3e-3, "peak learning rate (the same for every kind)", gt=0.0)
    warmup: int = param(50, "warm-up steps", ge=0)
    weight_decay: float = param(0.0, "AdamW weight decay", ge=0.0)
    eval_every: int = param(100, "steps between evaluations", ge=1)


@dataclass(frozen=True)
class DecodeParams(Params):
    """The decode-speed measurement after training.

    Attributes
    ----------
    prompt
        Prompt tokens (from the validation set), prefilled before timing.
    new_tokens
        Tokens decoded one at a time (timed); prompt plus new tokens fit the model's
        ``max_seq_len``.
    batch_size
        Sequences decoded together.
    """

    prompt: int = param(16, "prompt tokens", ge=1)
    new_tokens: int = param(48, "timed one-token decode steps", ge=1)
    batch_size: int = param(1, "sequences decoded together", ge=1)


#: Per-kind scalars of :func:`run_kind` (and the final validation loss): name -> (dtype,
#: units, long name).
SCALARS = {
    "n_heads": ("int64", None, "attention heads (query heads)"),
    "n_kv_heads": ("int64", None, "key/value heads (0: TPA, factorized)"),
    "attention_params": ("int64", None, "attention weights per layer"),
    "total_params": ("int64", None, "weights of the whole model"),
    "final_val_loss": ("float64", "nats", "validation cross entropy after training"),
    "cache_bytes": ("float64", "B", "cache bytes per token per layer, measured (TPA: factors)"),
    "cache_bytes_formula": ("int64", "B", "cache bytes per token per layer, by formula"),
    "cache_bytes_materialized": (
        "float64",
        "B",
        "cache bytes per token per layer with keys and values materialized, measured",
    ),
    "cache_bytes_materialized_formula": (
        "int64",
        "B",
        "cache bytes per token per layer with keys and values materialized, by formula",
    ),
    "decode_tokens_per_s": ("float64", "1/s", "decode tokens per second (TPA: factor cache)"),
    "decode_tokens_per_s_materialized": (
        "float64",
        "1/s",
        "decode tokens per second with materialized keys and values",
    ),
    "train_seconds": ("float64", "s", "wall time of the optimizer steps"),
}

#: Curves of :func:`run_kind` over the evaluated steps: name -> long name.
CURVES = {
    "val_loss": "validation cross entropy (nats)",
    "val_accuracy": "validation accuracy of the next token (recall: of the answer)",
    "train_loss": "mean training loss since the previous evaluation (nats)",
}


def attention_options(m: ModelParams, kind: str) -> dict[str, int]:
    """Options of the attention formulas for ``kind`` (ranks, key/value heads)."""
    if kind == "gqa":
        return {"n_kv_heads": m.gqa_kv_heads}
    if kind.startswith("tpa"):
        return {"q_rank": m.q_rank, "k_rank": m.k_rank, "v_rank": m.v_rank}
    return {}


def head_counts(m: ModelParams, kinds: Sequence[str] = KINDS) -> dict[str, dict[str, int]]:
    """Per kind of ``kinds``: heads, key/value heads and attention weights per layer.

    Every kind is matched to MHA's attention weights with ``m.mha_heads`` heads.

    Raises
    ------
    ConfigError
        If a kind's attention weights differ from MHA's by more than
        ``m.param_tolerance`` (relative), or GQA's key/value heads do not fit.
    """
    from tensorsim.nn.kv_cache import attention_parameters, solve_heads

    common = {"d_model": m.d_model, "head_dim": m.head_dim}
    target = attention_parameters("mha", n_heads=m.mha_heads, **common)
    out = {}
    for kind in kinds:
        opts = attention_options(m, kind)
        try:
            h = (
                m.mha_heads
                if kind == "mha"
                else solve_heads(kind, target=target, **common, **opts)
            )
            weights = attention_parameters(kind, n_heads=h, **common, **opts)
        except ValueError as exc:
            raise ConfigError(f"config key 'model': {kind}: {exc}") from None
        mismatch = abs(weights - target) / target
        if mismatch > m.param_tolerance:
            raise ConfigError(
                f"config key 'model.param_tolerance': {kind} with {h} heads has {weights} "
                f"attention weights per layer, {100 * mismatch:.1f} % from MHA's {target} "
                f"(allowed {100 * m.param_tolerance:.1f} %)"
            )
        kv = {"mha": h, "mqa": 1, "gqa": m.gqa_kv_heads}.get(kind, 0)
        out[kind] = {"n_heads": h, "n_kv_heads": kv, "attention_params": weights}
    return out


def build_decoder(
    m: ModelParams, kind: str, vocab_size: int, *, max_seq_len: int, seed: int
) -> Any:
    """The decoder of ``kind`` with its matched head count, initialized from ``seed``.

    Torch's global generator is seeded with ``seed`` inside a forked state (the caller's
    state is left as it was).
    """
    import torch

    from tensorsim.nn.models.decoder import Decoder

    info = head_counts(m, (kind,))[kind]
    opts: dict[str, Any] = dict(attention_options(m, kind))
    if kind == "tpa_kvonly":
        opts.pop("q_rank")
    if kind.startswith("tpa"):
        opts["init"] = m.tpa_init
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Decoder(
            vocab_size,
            d_model=m.d_model,
            n_layers=m.n_layers,
            n_heads=info["n_heads"],
            attention=kind,
            max_seq_len=max_seq_len,
            head_dim=m.head_dim,
            **opts,
        )
    return model


def decode_speed(
    model: Any, prompt: Any, new_tokens: int, *, materialize: bool
) -> dict[str, float]:
    """Prefill ``prompt``, then time ``new_tokens`` greedy one-token steps.

    Returns ``tokens_per_s``, ``bytes_measured`` (what the cache tensors hold per token per
    layer) and ``bytes_formula`` (the model's formula).
    """
    import torch

    with torch.no_grad():
        cache = model.new_cache(prompt.shape[0], materialize=materialize)
        nxt = model(prompt, cache)[:, -1:].argmax(-1)
        start = time.perf_counter()
        for _ in range(new_tokens):
            nxt = model(nxt, cache)[:, -1:].argmax(-1)
        seconds = time.perf_counter() - start
    return {
        "tokens_per_s": prompt.shape[0] * new_tokens / seconds,
        "bytes_measured": cache.bytes_per_token_per_layer(),
        "bytes_formula": model.cache_bytes_per_token_per_layer(materialize=materialize),
    }


def run_kind(
    kind: str,
    model: ModelParams,
    training: TrainingParams,
    decode: DecodeParams,
    *,
    vocab_size: int,
    batches: Callable[[int], Any],
    validation: tuple[Any, Any],
    max_seq_len: int,
    seed: int,
) -> dict[str, Any]:
    """Train and measure the model of one attention kind; return its results.

    Parameters
    ----------
    kind
        One of :data:`KINDS`.
    model, training, decode
        The decoder, its training and the decode measurement.
    vocab_size
        Token ids of the data.
    batches
        ``batches(step)`` -> ``(inputs, targets)`` int64 tensors of that step.
    validation
        ``(inputs, targets)``: the validation set (targets ``-100`` carry no loss); the
        decode prompts are its first rows.
    max_seq_len
        Longest sequence of the model (RoPE tables and caches).
    seed
        Seed of the initial weights.

    Returns
    -------
    dict
        ``steps``, ``val_loss``, ``val_accuracy`` and ``train_loss`` curves, head and
        parameter counts (:func:`head_counts`, ``total_params``), cache bytes (measured and
        formula, factor and materialized), decode tokens/s and ``train_seconds``.
    """
    import torch.nn.functional as F

    from solvers.steps import fit
    from tensorsim.nn.models.decoder import count_parameters

    x_val, y_val = validation
    net = build_decoder(model, kind, vocab_size, max_seq_len=max_seq_len, seed=seed)

    def loss(net: Any, batch: Any) -> Any:
        x, y = batch
        return F.cross_entropy(net(x).flatten(0, 1), y.flatten())

    def evaluate(net: Any) -> dict[str, float]:
        logits = net(x_val)
        out = {"val_loss": float(F.cross_entropy(logits.flatten(0, 1), y_val.flatten()))}
        keep = y_val >= 0
        out["val_accuracy"] = float((logits.argmax(-1)[keep] == y_val[keep]).double().mean())
        return out

    t = training
    result = fit(
        net,
        batches=batches,
        loss=loss,
        evaluate=evaluate,
        steps=t.steps,
        lr=t.lr,
        warmup=t.warmup,
        weight_decay=t.weight_decay,
        eval_every=t.eval_every,
    )
    net.eval()
    prompt = x_val[: decode.batch_size, : decode.prompt]
    if prompt.shape[0] < decode.batch_size:
        repeats = math.ceil(decode.batch_size / prompt.shape[0])
        prompt = prompt.repeat(repeats, 1)[: decode.batch_size]
    decode_speed(net, prompt, 2, materialize=False)  # warm-up
    factor = decode_speed(net, prompt, decode.new_tokens, materialize=False)
    full = decode_speed(net, prompt, decode.new_tokens, materialize=True)
    logger.info(
        "%s: decode prompt=%d new_tokens=%d batch_size=%d: %.0f tokens/s (materialized %.0f)",
        *(kind, decode.prompt, decode.new_tokens, decode.batch_size),
        *(factor["tokens_per_s"], full["tokens_per_s"]),
    )
    return {
        "steps": np.asarray(result.steps, dtype=np.int64),
        "val_loss": np.asarray(result.evals["val_loss"]),
        "val_accuracy": np.asarray(result.evals["val_accuracy"]),
        "train_loss": np.asarray(result.train_loss),
        **head_counts(model, (kind,))[kind],
        "total_params": count_parameters(net),
        "cache_bytes": factor["bytes_measured"],
        "cache_bytes_formula": factor["bytes_formula"],
        "cache_bytes_materialized": full["bytes_measured"],
        "cache_bytes_materialized_formula": full["bytes_formula"],
        "decode_tokens_per_s": factor["tokens_per_s"],
        "decode_tokens_per_s_materialized": full["tokens_per_s"],
        "train_seconds": result.seconds,
    }
