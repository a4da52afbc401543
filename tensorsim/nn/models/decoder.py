"""A small pre-norm decoder-only transformer (LLaMA / T6 layout) with KV-cached decoding.

``Decoder(vocab, d_model, n_layers, n_heads, attention=...)``: token embedding (tied with
the output projection), ``n_layers`` blocks ``x + attn(norm(x))``, ``x + mlp(norm(x))``
with :class:`RMSNorm` and a :class:`SwiGLU` MLP, a final norm and the logits. The attention
is one of :data:`~tensorsim.nn.attention.ATTENTION_KINDS`: ``"mha"``, ``"gqa"``, ``"mqa"``
(:class:`~tensorsim.nn.attention.MultiHeadAttention`), ``"tpa"``, ``"tpa_kvonly"``
(:class:`~tensorsim.nn.attention.TensorProductAttention`).

Decoding: :meth:`Decoder.new_cache` gives a :class:`DecoderCache` (one per-layer cache:
keys/values, or TPA factors), ``Decoder(ids, cache=cache)`` appends the new tokens and
returns their logits, and :meth:`Decoder.generate` decodes greedily or by sampling.

:func:`count_parameters` counts weights; :func:`solve_d_ff` picks the MLP width that brings
a model's total to a target (the heads are matched by
:func:`~tensorsim.nn.attention.solve_heads`).

References
----------
Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425 (the T6 model).
H. Touvron et al., "LLaMA: Open and Efficient Foundation Language Models", arXiv 2302.13971.
N. Shazeer, "GLU Variants Improve Transformer", arXiv 2002.05202 (SwiGLU).
B. Zhang, R. Sennrich, "Root Mean Square Layer Normalization", arXiv 1910.07467.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from tensorsim._checks import check_int
from tensorsim.nn.attention import MultiHeadAttention, TensorProductAttention
from tensorsim.nn.kv_cache import AttentionCache, check_kind, kv_head_count

__all__ = [
    "Decoder",
    "DecoderBlock",
    "DecoderCache",
    "RMSNorm",
    "SwiGLU",
    "count_parameters",
    "solve_d_ff",
]

logger = logging.getLogger(__name__)

_TPA_OPTIONS = {"q_rank", "k_rank", "v_rank", "contextual_heads", "init", "generator"}


def count_parameters(module: torch.nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameter entries of ``module`` (shared/tied parameters counted once)."""
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class RMSNorm(torch.nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight`` over the last axis.

    Parameters
    ----------
    dim
        Normalized width.
    eps
        Added to the mean square.
    weight
        Learn a per-channel scale (initialized to 1); the T6 code has none.
    dtype, device
        Of the weight.

    References
    ----------
    arXiv 1910.07467.
    """

    def __init__(
        self,
        dim: int,
        eps: float = 1e-6,
        *,
        weight: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.dim = check_int("dim", dim)
        if not eps > 0:
            raise ValueError(f"eps: expected a positive number, got {eps!r}")
        self.eps = float(eps)
        self.weight = (
            torch.nn.Parameter(torch.ones(dim, dtype=dtype, device=device)) if weight else None
        )

    def extra_repr(self) -> str:
        """Sizes shown by ``repr``."""
        return f"{self.dim}, eps={self.eps:g}, weight={self.weight is not None}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize the last axis of ``x``."""
        out = x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return out if self.weight is None else out * self.weight


class SwiGLU(torch.nn.Module):
    """``down_proj(silu(gate_proj(x)) * up_proj(x))``, bias-free.

    Parameters
    ----------
    d_model
        Input and output width.
    d_ff
        Hidden width; default ``floor(8 d_model / 3)`` (as T6).
    dtype, device
        Of the parameters.

    References
    ----------
    arXiv 2002.05202.
    """

    def __init__(
        self,
        d_model: int,
        d_ff: int | None = None,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        check_int("d_model", d_model)
        self.d_ff = (8 * d_model) // 3 if d_ff is None else check_int("d_ff", d_ff)
        kw = {"bias": False, "dtype": dtype, "device": device}
        self.gate_proj = torch.nn.Linear(d_model, self.d_ff, **kw)
        self.up_proj = torch.nn.Linear(d_model, self.d_ff, **kw)
        self.down_proj = torch.nn.Linear(self.d_ff, d_model, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the gated MLP."""
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderBlock(torch.nn.Module):
    """Pre-norm block: ``x + attn(attn_norm(x))``, then ``x + mlp(mlp_norm(x))``."""

    def __init__(self, attn: torch.nn.Module, mlp: torch.nn.Module, d_model: int, **kw) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(d_model, **kw)
        self.attn = attn
        self.mlp_norm = RMSNorm(d_model, **kw)
        self.mlp = mlp

    def forward(
        self, x: torch.Tensor, cache: AttentionCache | None = None, **kw: Any
    ) -> torch.Tensor:
        """Apply the block (``cache`` and ``positions`` go to the attention)."""
        x = x + self.attn(self.attn_norm(x), cache, **kw)
        return x + self.mlp(self.mlp_norm(x))


class DecoderCache:
    """Per-layer KV caches of one :class:`Decoder` for one batch.

    Attributes
    ----------
    layers
        One cache per layer (:class:`~tensorsim.nn.attention.KVCache` or
        :class:`~tensorsim.nn.attention.TPAFactorCache`).
    """

    def __init__(self, owner: Decoder, layers: list[AttentionCache]) -> None:
        self.owner_id = id(owner)
        self.layers = layers

    @property
    def length(self) -> int:
        """Number of cached tokens."""
        return self.layers[0].length

    @property
    def batch_size(self) -> int:
        """Batch size the cache was made for."""
        return self.layers[0].batch_size

    def nbytes(self) -> int:
        """Bytes held by all cache tensors."""
        return sum(c.nbytes() for c in self.layers)

    def bytes_per_token_per_layer(self) -> float:
        """Measured bytes per token per layer (per sequence of the batch)."""
        if not self.length:
            raise ValueError("cache: empty, no bytes per token to measure")
        return self.nbytes() / (self.batch_size * self.length * len(self.layers))

    def __repr__(self) -> str:
        return f"DecoderCache(layers={len(self.layers)}, length={self.length})"


class Decoder(torch.nn.Module):
    """Decoder-only language model with MHA, GQA, MQA, TPA or TPA-KVonly attention.

    Parameters
    ----------
    vocab_size
        Number of token ids.
    d_model
        Residual width.
    n_layers
        Number of blocks (``self.layers``; each has ``attn`` and ``mlp``).
    n_heads
        Query heads (TPA: heads ``h``).
    attention
        ``"mha"``, ``"gqa"``, ``"mqa"``, ``"tpa"`` or ``"tpa_kvonly"``.
    max_seq_len
        Longest sequence, prompt plus generated tokens.
    d_ff
        SwiGLU hidden width (default ``floor(8 d_model / 3)``).
    head_dim
        ``d_h``; default ``d_model // n_heads``.
    n_kv_heads
        Key/value heads for ``"gqa"`` (default 2, or 1 if ``n_heads`` is odd); fixed to
        ``n_heads`` for ``"mha"`` and to 1 for ``"mqa"``.
    rope
        Rotary position embedding in the attention.
    dtype, device
        Of the parameters.
    **attention_options
        For TPA: ``q_rank`` (6), ``k_rank`` (2), ``v_rank`` (2), ``contextual_heads``,
        ``generator``; ``rope_base`` for every kind.

    Notes
    -----
    The embedding is initialized ``N(0, 0.02^2)`` and reused as the output projection (tied
    weights); linear layers keep their modules' initializations.

    Raises
    ------
    ValueError
        On an unknown attention kind or option, or an invalid size.

    References
    ----------
    arXiv 2501.06425 (T6), 2302.13971 (LLaMA).
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_layers: int = 4,
        n_heads: int = 4,
        attention: str = "mha",
        max_seq_len: int = 1024,
        *,
        d_ff: int | None = None,
        head_dim: int | None = None,
        n_kv_heads: int | None = None,
        rope: bool = True,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        **attention_options: Any,
    ) -> None:
        super().__init__()
        self.vocab_size = check_int("vocab_size", vocab_size)
        self.d_model = check_int("d_model", d_model)
        check_int("n_layers", n_layers)
        check_int("n_heads", n_heads)
        self.attention = check_kind(attention)
        self.max_seq_len = check_int("max_seq_len", max_seq_len)
        allowed = {"rope_base"} | (_TPA_OPTIONS if attention.startswith("tpa") else set())
        unknown = set(attention_options) - allowed
        if unknown:
            raise ValueError(
                f"attention_options: unknown for attention={attention!r}: {sorted(unknown)}; "
                f"expected a subset of {sorted(allowed)}"
            )
        head_dim = d_model // n_heads if head_dim is None else head_dim
        check_int("head_dim", head_dim)
        kw = {"dtype": dtype, "device": device}
        if attention.startswith("tpa"):
            if n_kv_heads is not None:
                raise ValueError(f"n_kv_heads: not an option of {attention!r}")

            def make_attn() -> torch.nn.Module:
                return TensorProductAttention(
                    d_model,
                    n_heads,
                    head_dim,
                    rope=rope,
                    kv_only=attention == "tpa_kvonly",
                    max_seq_len=max_seq_len,
                    **attention_options,
                    **kw,
                )
        else:
            if attention == "gqa" and n_kv_heads is None:
                n_kv_heads = 2 if n_heads % 2 == 0 else 1
            kv = kv_head_count(attention, n_heads, n_kv_heads)

            def make_attn() -> torch.nn.Module:
                return MultiHeadAttention(
                    d_model,
                    n_heads,
                    head_dim,
                    kv,
                    rope=rope,
                    max_seq_len=max_seq_len,
                    **attention_options,
                    **kw,
                )

        self.embed = torch.nn.Embedding(vocab_size, d_model, **kw)
        torch.nn.init.normal_(self.embed.weight, std=0.02)
        self.layers = torch.nn.ModuleList(
            DecoderBlock(make_attn(), SwiGLU(d_model, d_ff, **kw), d_model, **kw)
            for _ in range(n_layers)
        )
        self.norm = RMSNorm(d_model, **kw)

    def extra_repr(self) -> str:
        """Sizes shown by ``repr``."""
        return f"attention={self.attention!r}, max_seq_len={self.max_seq_len}"

    def new_cache(self, batch_size: int, *, materialize: bool = False) -> DecoderCache:
        """An empty cache for decoding ``batch_size`` sequences.

        ``materialize=True`` makes TPA layers cache keys and values instead of factors
        (ignored by MHA/GQA/MQA, which always cache keys and values).
        """
        return DecoderCache(
            self, [blk.attn.new_cache(batch_size, materialize=materialize) for blk in self.layers]
        )

    def cache_bytes_per_token_per_layer(self, *, materialize: bool = False) -> int:
        """KV-cache bytes per token per layer, by formula."""
        attn = self.layers[0].attn
        if isinstance(attn, TensorProductAttention):
            return attn.cache_bytes_per_token(materialize=materialize)
        return attn.cache_bytes_per_token()

    def forward(
        self,
        ids: torch.Tensor,
        cache: DecoderCache | None = None,
        *,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits ``(batch, seq, vocab)`` of token ids ``(batch, seq)``.

        With ``cache`` the tokens continue the cached sequence and are appended to it.
        ``positions`` (without a cache) sets the RoPE positions.

        Raises
        ------
        TypeError, ValueError
            If ``ids`` is not a 2-D integer tensor of ids below ``vocab_size``, the
            sequence is too long, or ``cache`` belongs to another model.
        """
        if not isinstance(ids, torch.Tensor) or ids.dtype not in (torch.int64, torch.int32):
            raise TypeError("ids: expected an int64 or int32 torch.Tensor of token ids")
        if ids.ndim != 2 or ids.shape[1] == 0:
            raise ValueError(f"ids: expected shape (batch, seq >= 1), got {tuple(ids.shape)}")
        if int(ids.min()) < 0 or int(ids.max()) >= self.vocab_size:
            raise ValueError(f"ids: expected values in [0, {self.vocab_size}) (vocab_size)")
        if cache is not None:
            if not isinstance(cache, DecoderCache):
                raise TypeError(f"cache: expected a DecoderCache, got {type(cache).__name__}")
            if cache.owner_id != id(self) or len(cache.layers) != len(self.layers):
                raise ValueError("cache: made by another Decoder (use this model's new_cache)")
        h = self.embed(ids)
        for i, blk in enumerate(self.layers):
            h = blk(h, None if cache is None else cache.layers[i], positions=positions)
        return F.linear(self.norm(h), self.embed.weight)

    @torch.no_grad()
    def generate(
        self,
        ids: torch.Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        cache: DecoderCache | None = None,
        materialize: bool = False,
    ) -> torch.Tensor:
        """Continue ``ids (batch, seq)`` by ``max_new_tokens`` tokens with a KV cache.

        Parameters
        ----------
        ids
            Prompt token ids.
        max_new_tokens
            Tokens to add (``>= 0``).
        temperature
            0 (greedy, the default) or the softmax temperature of sampling.
        generator
            Random generator of sampling.
        cache
            An empty cache from :meth:`new_cache` (to inspect it afterwards); default a new
            one.
        materialize
            With a new cache: TPA layers cache keys/values instead of factors.

        Returns
        -------
        torch.Tensor
            ``(batch, seq + max_new_tokens)``: the prompt and the new tokens.

        Raises
        ------
        ValueError
            If the total length exceeds ``max_seq_len``, ``temperature < 0`` or ``cache`` is
            not empty.
        """
        n = check_int("max_new_tokens", max_new_tokens, 0)
        if not temperature >= 0:
            raise ValueError(f"temperature: expected a number >= 0, got {temperature!r}")
        if ids.ndim == 2 and ids.shape[1] + n > self.max_seq_len:
            raise ValueError(
                f"max_new_tokens: prompt {ids.shape[1]} + {n} tokens exceed max_seq_len="
                f"{self.max_seq_len}"
            )
        if cache is None:
            cache = self.new_cache(ids.shape[0], materialize=materialize)
        elif not isinstance(cache, DecoderCache) or cache.length:
            raise ValueError("cache: expected an empty DecoderCache of this model")
        out = [ids]
        nxt = ids
        for _ in range(n):
            logits = self(nxt, cache)[:, -1]
            if temperature == 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                nxt = torch.multinomial(probs, 1, generator=generator)
            out.append(nxt.to(ids.dtype))
        return torch.cat(out, dim=1)


def solve_d_ff(target: int, **decoder_options: Any) -> int:
    """SwiGLU width ``d_ff`` that brings a :class:`Decoder`'s parameters nearest ``target``.

    The count is ``fixed + 3 d_model n_layers d_ff``; it is evaluated by formula from two
    meta-device models (no memory), so any ``Decoder`` options apply.

    Raises
    ------
    ValueError
        If the target cannot be reached with ``d_ff >= 1``.
    """
    check_int("target", target)
    opts = {k: v for k, v in decoder_options.items() if k not in ("d_ff", "device")}
    if "vocab_size" not in opts:
        raise ValueError("decoder_options: vocab_size is required")
    p1 = count_parameters(Decoder(**opts, d_ff=1, device="meta"))
    p2 = count_parameters(Decoder(**opts, d_ff=2, device="meta"))
    slope = p2 - p1
    d_ff = round((target - (p1 - slope)) / slope)
    if d_ff < 1:
        raise ValueError(
            f"target: {target} parameters are fewer than the model without MLP width needs "
            f"({p1} at d_ff=1)"
        )
    return d_ff
