"""Causal self-attention: MHA / GQA / MQA and Tensor Product Attention, with KV caches.

:class:`MultiHeadAttention` projects ``x`` to ``n_heads`` query heads and ``n_kv_heads`` key
and value heads (MHA: ``n_kv_heads = n_heads``; GQA: a divisor; MQA: 1), rotates queries
and keys (RoPE) and runs causal scaled dot-product attention. Its cache
(:class:`KVCache`) holds the rotated keys and the values of past tokens:
``2 n_kv_heads d_h`` numbers per token per layer.

:class:`TensorProductAttention` (T6, arXiv 2501.06425) builds each token's query, key and
value slices (``h x d_h`` matrices) as sums of contextual rank-one terms,

    ``Q_t = (1/R_Q) sum_r a^Q_r(x_t) b^Q_r(x_t)^T = (1/R_Q) A_Q(x_t)^T B_Q(x_t)``,

with ``A(x) = W_A x`` reshaped ``(h, R)`` and ``B(x) = W_B x`` reshaped ``(R, d_h)``, and
the same for ``K`` (rank ``R_K``) and ``V`` (rank ``R_V``). RoPE is applied to the rows of
``B_Q`` and ``B_K`` (``RoPE_t(Q_t) = (1/R) A^T RoPE_t(B)``, the rotation acts on ``d_h``).
``kv_only=True`` is TPA-KVonly: the query is an ordinary linear projection ``q_proj``. The
factor cache (:class:`TPAFactorCache`) holds ``A_K``, the rotated ``B_K``, ``A_V`` and
``B_V``, ``(R_K + R_V)(h + d_h)`` numbers per token per layer, and a one-token decode step
contracts the query with the cached factors directly (:func:`tpa_factor_attention`); past
keys and values are never formed (a multi-token prompt forms them transiently, for the
fused attention kernel). A materialized cache (``new_cache(..., materialize=True)``) stores
``K`` and ``V`` instead, for comparison.

Contractions go through :func:`tensorsim.einsum` (opt_einsum contraction order, batched
``matmul`` steps, autograd intact on torch tensors), except the factor attention, whose
order is written by hand (:func:`tpa_factor_attention`: no re-planning as the cache grows).

References
----------
Y. Zhang, Y. Liu, H. Yuan, Z. Qin, Y. Yuan, Q. Gu, A. C. Yao, "Tensor Product Attention Is
All You Need", arXiv 2501.06425.
A. Vaswani et al., "Attention Is All You Need", arXiv 1706.03762.
J. Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models from Multi-Head
Checkpoints", arXiv 2305.13245. N. Shazeer, "Fast Transformer Decoding: One Write-Head is All
You Need", arXiv 1911.02150.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from tensorsim._checks import check_int
from tensorsim.einsum import einsum
from tensorsim.nn.kv_cache import (
    AttentionCache,
    KVCache,
    TPAFactorCache,
    dtype_size,
    kv_head_count,
)
from tensorsim.nn.rope import RotaryEmbedding

__all__ = [
    "MultiHeadAttention",
    "TensorProductAttention",
    "tpa_factor_attention",
    "tpa_materialize",
]

logger = logging.getLogger(__name__)

#: Initializations of :class:`TensorProductAttention` (``init``).
TPA_INITS = ("t6_code", "xavier")

# ----------------------------------------------------------------------------- kernels


def _causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int) -> torch.Tensor:
    """Causal attention of ``q (B, T, H, d)`` on ``k, v (B, past + T, H_kv, d)``.

    Query heads ``h`` use key/value head ``h // (H / H_kv)`` (GQA, MQA) without copying the
    keys and values per query head: one new token (decoding) folds each group's query heads
    into the query axis of a single attention per key/value head; longer inputs use
    ``scaled_dot_product_attention(..., enable_gqa=True)``.
    """
    b, t, n_heads, d = q.shape
    n_kv = k.shape[2]
    q, k, v = (x.transpose(1, 2) for x in (q, k, v))
    grouped = n_kv != n_heads
    if grouped and t == 1:
        out = F.scaled_dot_product_attention(q.reshape(b, n_kv, n_heads // n_kv, d), k, v)
        return out.reshape(b, n_heads, 1, d).transpose(1, 2)
    if past == 0:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1, enable_gqa=grouped)
    else:
        mask = _causal_mask(t, past, q.device) if t > 1 else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=grouped)
    return out.transpose(1, 2)


def _causal_mask(t: int, past: int, device: torch.device) -> torch.Tensor:
    """``(t, past + t)`` boolean, True where key ``s`` may be seen by query ``i``."""
    keys = torch.arange(past + t, device=device)
    return keys[None, :] <= past + torch.arange(t, device=device)[:, None]


def tpa_materialize(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``(1/R) A^T B`` per token: ``a (B, T, h, R)``, ``b (B, T, R, d)`` -> ``(B, T, h, d)``."""
    return einsum("zthr,ztrd->zthd", a, b) / a.shape[-1]


def tpa_factor_attention(
    q: torch.Tensor | tuple[torch.Tensor, torch.Tensor],
    k_factors: tuple[torch.Tensor, torch.Tensor],
    v_factors: tuple[torch.Tensor, torch.Tensor],
    *,
    past: int = 0,
) -> torch.Tensor:
    """Causal attention from TPA factors, without forming the keys and values.

    Parameters
    ----------
    q
        Query factors ``(a_q (B, T, h, R_Q), b_q (B, T, R_Q, d))`` (``b_q`` rotated), or a
        materialized query ``(B, T, h, d)`` (TPA-KVonly).
    k_factors
        ``(a_k (B, S, h, R_K), b_k (B, S, R_K, d))``, ``b_k`` rotated, ``S = past + T``.
    v_factors
        ``(a_v (B, S, h, R_V), b_v (B, S, R_V, d))``.
    past
        Number of cached tokens before the ``T`` queries (query ``i`` sees keys
        ``0, ..., past + i``).

    Returns
    -------
    torch.Tensor
        ``(B, T, h, d)``: ``softmax(Q K^T / sqrt(d)) V`` per head, where
        ``Q K^T = (1 / (R_Q R_K)) sum a_q a_k (b_q . b_k)`` is contracted factor-wise and
        ``P V = (1/R_V) sum_s P_s a_v(s) b_v(s)``.

    Notes
    -----
    The contraction order is fixed by hand, because in decoding the key length ``S`` grows
    by one every step and an order planned per shape (opt_einsum) would be re-planned at
    every token. Counting multiply-adds per (query, key) pair:

    1. ``G[t, h, s, k] = q_t[h] . b_k(s)[k]`` (the query against the key token factors),
       one ``matmul`` over ``d`` with the cached ``b_k`` as the long operand. With query
       factors, either the query is formed first (``h R_Q d`` per query, then
       ``h R_K d`` per pair) or ``b_q . b_k`` is contracted first (``R_Q R_K d``) and then
       ``a_q`` (``h R_Q R_K``); the cheaper of ``h d`` and ``R_Q (d + h)`` per ``R_K`` is
       taken.
    2. ``S[t, h, s] = sum_k a_k(s)[h, k] G[t, h, s, k]``: ``h R_K``, elementwise.
    3. ``W[t, h, s, v] = P[t, h, s] a_v(s)[h, v]`` (``h R_V``), then
       ``O[t, h] = sum_{s, v} W[t, h, s, v] b_v(s)[v]``: one ``matmul`` over ``(s, v)``
       (``h R_V d``).

    The cached factors are read once each, in their stored layout; no past key or value
    is formed.

    References
    ----------
    Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425.
    """
    a_k, b_k = k_factors
    a_v, b_v = v_factors
    z, s, h, r_k = a_k.shape
    d = b_k.shape[-1]
    r_v = a_v.shape[-1]
    bk_flat = b_k.reshape(z, s * r_k, d).transpose(1, 2)  # (B, d, S R_K)
    if isinstance(q, tuple):
        a_q, b_q = q
        t, r_q = a_q.shape[1], a_q.shape[-1]
        if r_q * (d + h) < h * d:
            # b_q . b_k first: (B, T R_Q, S R_K), then a_q over R_Q -> (B, T, h, S R_K)
            g = torch.matmul(b_q.reshape(z, t * r_q, d), bk_flat).view(z, t, r_q, s * r_k)
            g = torch.matmul(a_q, g)
        else:
            q_full = torch.matmul(a_q, b_q).reshape(z, t * h, d)
            g = torch.matmul(q_full, bk_flat)
        scale = r_q * r_k * math.sqrt(d)
    else:
        t = q.shape[1]
        g = torch.matmul(q.reshape(z, t * h, d), bk_flat)
        scale = r_k * math.sqrt(d)
    g = g.view(z, t, h, s, r_k)
    scores = (g * a_k.permute(0, 2, 1, 3).unsqueeze(1)).sum(dim=-1) / scale  # (B, T, h, S)
    if t > 1:
        mask = _causal_mask(t, past, scores.device)[:, None, :]
        scores = scores.masked_fill(~mask, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    w = probs.unsqueeze(-1) * a_v.permute(0, 2, 1, 3).unsqueeze(1)  # (B, T, h, S, R_V)
    out = torch.matmul(w.reshape(z, t * h, s * r_v), b_v.reshape(z, s * r_v, d))
    return out.view(z, t, h, d) / r_v


# ----------------------------------------------------------------------------- modules


class _Attention(torch.nn.Module):
    """Shared checks: input shape/dtype, positions, cache ownership."""

    d_model: int
    n_heads: int
    head_dim: int
    max_seq_len: int
    kind: str

    def _init_rope(self, rope: bool, head_dim: int, max_seq_len: int, base: float, **kw):
        self.max_seq_len = check_int("max_seq_len", max_seq_len)
        if rope and head_dim % 2:
            raise ValueError(f"head_dim: RoPE needs an even head dimension, got {head_dim}")
        self.rotary = RotaryEmbedding(head_dim, max_seq_len, base=base, **kw) if rope else None

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters (and of inputs and caches)."""
        return next(self.parameters()).dtype

    def _signature(self, materialize: bool) -> tuple:
        raise NotImplementedError

    def _check_input(
        self, x: torch.Tensor, cache: AttentionCache | None, positions: torch.Tensor | None
    ) -> tuple[int, torch.Tensor]:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point torch.Tensor, got {type(x).__name__}")
        if x.ndim != 3 or x.shape[-1] != self.d_model:
            raise ValueError(
                f"x: expected shape (batch, seq, {self.d_model}), got {tuple(x.shape)}"
            )
        if x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype}, got {x.dtype}")
        t = x.shape[1]
        past = 0
        if cache is not None:
            if not isinstance(cache, AttentionCache):
                raise TypeError(f"cache: expected a KV cache, got {type(cache).__name__}")
            cache.check(self, self._signature(isinstance(cache, KVCache)), x.shape[0])
            if positions is not None:
                raise ValueError("positions: not allowed with a cache (it sets the positions)")
            past = cache.length
        if positions is None:
            if past + t > self.max_seq_len:
                raise ValueError(
                    f"sequence: {past} cached + {t} new tokens exceed max_seq_len="
                    f"{self.max_seq_len}"
                )
            positions = torch.arange(past, past + t, device=x.device)
        return past, positions

    def _rotate(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        return x if self.rotary is None else self.rotary(x, positions)

    def new_cache(self, batch_size: int, *, materialize: bool = False) -> AttentionCache:
        """An empty cache for this module (``materialize``: keys/values, TPA only)."""
        cls = KVCache if materialize or not isinstance(self, TensorProductAttention) else None
        cls = cls or TPAFactorCache
        return cls(self, batch_size, self._signature(cls is KVCache))


class MultiHeadAttention(_Attention):
    """Causal multi-head attention with ``n_kv_heads`` shared key/value heads (MHA/GQA/MQA).

    Parameters
    ----------
    d_model
        Width of the input and output.
    n_heads
        Query heads ``h``.
    head_dim
        ``d_h``; default ``d_model // n_heads``.
    n_kv_heads
        Key/value heads, a divisor of ``n_heads``; default ``n_heads`` (MHA); 1 is MQA.
    rope
        Rotate queries and keys (RoPE) by position.
    max_seq_len
        Longest sequence (cached plus new tokens).
    rope_base
        RoPE frequency base.
    dtype, device
        Of the parameters.

    Attributes
    ----------
    q_proj, k_proj, v_proj, o_proj
        Bias-free ``torch.nn.Linear``: ``d_model -> h d_h``, ``d_model -> n_kv d_h`` (twice),
        ``h d_h -> d_model`` (torch's default initialization).

    Raises
    ------
    ValueError
        If a size is not a positive integer, ``n_kv_heads`` does not divide ``n_heads``, or
        ``head_dim`` is odd with RoPE.

    References
    ----------
    arXiv 1706.03762 (MHA), 2305.13245 (GQA), 1911.02150 (MQA), 2104.09864 (RoPE).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        head_dim: int | None = None,
        n_kv_heads: int | None = None,
        rope: bool = True,
        max_seq_len: int = 2048,
        *,
        rope_base: float = 10000.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d_model = check_int("d_model", d_model)
        self.n_heads = check_int("n_heads", n_heads)
        self.head_dim = d_model // n_heads if head_dim is None else head_dim
        check_int("head_dim", self.head_dim)
        self.n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        kv_head_count("gqa", n_heads, self.n_kv_heads)
        self.kind = (
            "mha" if self.n_kv_heads == n_heads else "mqa" if self.n_kv_heads == 1 else "gqa"
        )
        kw = {"dtype": dtype, "device": device}
        hd, kvd = n_heads * self.head_dim, self.n_kv_heads * self.head_dim
        self.q_proj = torch.nn.Linear(d_model, hd, bias=False, **kw)
        self.k_proj = torch.nn.Linear(d_model, kvd, bias=False, **kw)
        self.v_proj = torch.nn.Linear(d_model, kvd, bias=False, **kw)
        self.o_proj = torch.nn.Linear(hd, d_model, bias=False, **kw)
        self._init_rope(rope, self.head_dim, max_seq_len, rope_base, **kw)

    def extra_repr(self) -> str:
        """Sizes shown by ``repr``."""
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, n_kv_heads={self.n_kv_heads}, "
            f"head_dim={self.head_dim}"
        )

    def _signature(self, materialize: bool) -> tuple:
        return ("kv", self.n_kv_heads, self.head_dim, self.dtype)

    def cache_bytes_per_token(self) -> int:
        """KV-cache bytes per token of this layer, by formula (``2 n_kv d_h`` numbers)."""
        return 2 * self.n_kv_heads * self.head_dim * dtype_size(self.dtype)

    def forward(
        self,
        x: torch.Tensor,
        cache: KVCache | None = None,
        *,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend causally; with ``cache``, the new tokens follow the cached ones.

        Parameters
        ----------
        x
            ``(batch, seq, d_model)``.
        cache
            From :meth:`new_cache`; the new rotated keys and values are appended to it.
        positions
            RoPE positions ``(seq,)`` without a cache (default ``0, ..., seq - 1``).

        Returns
        -------
        torch.Tensor
            ``(batch, seq, d_model)``.

        Raises
        ------
        TypeError, ValueError
            On a wrong input shape/dtype, too long a sequence, or a cache of another module.
        """
        past, pos = self._check_input(x, cache, positions)
        b, t, _ = x.shape
        q = self._rotate(self.q_proj(x).view(b, t, self.n_heads, self.head_dim), pos)
        k = self._rotate(self.k_proj(x).view(b, t, self.n_kv_heads, self.head_dim), pos)
        v = self.v_proj(x).view(b, t, self.n_kv_heads, self.head_dim)
        if cache is not None:
            full = cache.append(k=k, v=v)
            k, v = full["k"], full["v"]
        out = _causal_sdpa(q, k, v, past)
        return self.o_proj(out.reshape(b, t, self.n_heads * self.head_dim))


class TensorProductAttention(_Attention):
    """Tensor Product Attention (T6): contextual rank-``R`` factorized Q, K, V.

    Parameters
    ----------
    d_model
        Width of the input and output.
    n_heads
        Heads ``h``.
    head_dim
        ``d_h`` (even with RoPE).
    q_rank, k_rank, v_rank
        ``R_Q``, ``R_K``, ``R_V`` (``q_rank`` unused with ``kv_only``).
    rope
        Rotate the ``B_Q`` and ``B_K`` factors (RoPE) by position.
    kv_only
        TPA-KVonly: the query is a plain projection ``q_proj`` (``d_model -> h d_h``).
    max_seq_len
        Longest sequence (cached plus new tokens).
    contextual_heads
        ``False``: the head factors ``A_Q``, ``A_K``, ``A_V`` are parameters ``(h, R)``
        independent of the token (the paper's non-contextual-A variant; with suitable
        values MHA, MQA and GQA are special cases, section 3.4 of the paper).
    init
        ``"t6_code"`` or ``"xavier"``: the bounds of the factor weights (Notes).
    rope_base
        RoPE frequency base.
    generator
        Random generator of the Xavier initialization (``None``: torch's global one).
    dtype, device
        Of the parameters.

    Attributes
    ----------
    q_a_proj, k_a_proj, v_a_proj
        Bias-free ``Linear(d_model, h R)``, output viewed ``(h, R)`` (``A``); absent without
        ``contextual_heads``, where ``q_a``, ``k_a``, ``v_a`` are ``(h, R)`` parameters.
    q_b_proj, k_b_proj, v_b_proj
        Bias-free ``Linear(d_model, R d_h)``, output viewed ``(R, d_h)`` (``B``).
    q_proj
        With ``kv_only`` only, instead of ``q_a_proj``/``q_b_proj``.
    o_proj
        ``Linear(h d_h, d_model)``, bias-free (torch's default initialization).

    Notes
    -----
    Initialization (``init``), ``U(-a, a)`` for every factor weight:

    - ``"t6_code"`` (default): the bounds of the reference code, which applies
      Xavier-uniform to ``W_A`` viewed ``(d_model, h, R)`` (torch's fan-in ``h R``, fan-out
      ``d_model R``): ``a = sqrt(6 / (R (h + d_model)))``, and likewise to ``W_B`` viewed
      ``(d_model, R, d_h)``: ``a = sqrt(6 / (d_h (R + d_model)))``;
    - ``"xavier"``: the paper's Xavier-uniform over each 2-D map as applied,
      ``a = sqrt(6 / (d_model + R h))`` for ``W_A`` and ``sqrt(6 / (d_model + R d_h))``
      for ``W_B``.

    The first bounds are smaller, so the initial queries and keys are; on the character
    LM of ``drivers.tpa`` the paper's bounds stall TPA 0.20 nats above MHA where the
    reference code's reach MHA's loss (docs/tpa.md). Fixed head factors
    (``contextual_heads=False``) are Xavier-uniform ``(h, R)`` matrices either way.

    The full-sequence forward pass forms ``Q, K, V`` (``(1/R) A^T B``, one batched
    contraction) and calls scaled dot-product attention. With a factor cache, the new
    factors are appended to it; a single new token (decoding) then attends through
    :func:`tpa_factor_attention` on the cached factors, without forming past keys or
    values, while several new tokens (a prompt or a chunk) form the keys and values of the
    whole cached sequence transiently and use scaled dot-product attention: the factor
    contraction's ``(T, h, S, R)`` intermediates grow like ``T S`` (quadratic in a prompt),
    where torch's fused kernel does not. The cache holds factors either way.

    References
    ----------
    Y. Zhang et al., "Tensor Product Attention Is All You Need", arXiv 2501.06425.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        head_dim: int,
        q_rank: int = 6,
        k_rank: int = 2,
        v_rank: int = 2,
        rope: bool = True,
        kv_only: bool = False,
        max_seq_len: int = 2048,
        *,
        contextual_heads: bool = True,
        init: str = "t6_code",
        rope_base: float = 10000.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d_model = check_int("d_model", d_model)
        self.n_heads = check_int("n_heads", n_heads)
        self.head_dim = check_int("head_dim", head_dim)
        self.kv_only, self.contextual_heads = bool(kv_only), bool(contextual_heads)
        self.kind = "tpa_kvonly" if kv_only else "tpa"
        self.ranks = {
            "q": None if kv_only else check_int("q_rank", q_rank),
            "k": check_int("k_rank", k_rank),
            "v": check_int("v_rank", v_rank),
        }
        if init not in TPA_INITS:
            raise ValueError(f"init: expected one of {TPA_INITS}, got {init!r}")
        kw = {"dtype": dtype, "device": device}
        h, dh, d = n_heads, head_dim, d_model
        code = init == "t6_code"
        for name, rank in self.ranks.items():
            if rank is None:
                continue
            if contextual_heads:
                a = torch.nn.Linear(d, h * rank, bias=False, **kw)
                setattr(self, f"{name}_a_proj", a)
                _uniform(a.weight, 6.0 / (rank * (h + d)) if code else None, generator)
            else:
                a = torch.nn.Parameter(torch.empty(h, rank, **kw))
                setattr(self, f"{name}_a", a)
                _uniform(a, None, generator)
            b = torch.nn.Linear(d, rank * dh, bias=False, **kw)
            setattr(self, f"{name}_b_proj", b)
            _uniform(b.weight, 6.0 / (dh * (rank + d)) if code else None, generator)
        if kv_only:
            self.q_proj = torch.nn.Linear(d_model, h * dh, bias=False, **kw)
        self.o_proj = torch.nn.Linear(h * dh, d_model, bias=False, **kw)
        self._init_rope(rope, dh, max_seq_len, rope_base, **kw)

    @property
    def q_rank(self) -> int | None:
        """``R_Q`` (``None`` with ``kv_only``)."""
        return self.ranks["q"]

    @property
    def k_rank(self) -> int:
        """``R_K``."""
        return self.ranks["k"]

    @property
    def v_rank(self) -> int:
        """``R_V``."""
        return self.ranks["v"]

    def extra_repr(self) -> str:
        """Sizes shown by ``repr``."""
        ranks = ", ".join(f"{n}_rank={r}" for n, r in self.ranks.items() if r is not None)
        return (
            f"d_model={self.d_model}, n_heads={self.n_heads}, head_dim={self.head_dim}, "
            f"{ranks}, kv_only={self.kv_only}, contextual_heads={self.contextual_heads}"
        )

    def _signature(self, materialize: bool) -> tuple:
        dtype = self.dtype
        if materialize:
            return ("kv", self.n_heads, self.head_dim, dtype)
        return ("tpa", self.n_heads, self.head_dim, self.k_rank, self.v_rank, dtype)

    def cache_bytes_per_token(self, *, materialize: bool = False) -> int:
        """Cache bytes per token of this layer, by formula.

        ``(R_K + R_V)(h + d_h)`` numbers for the factor cache, ``2 h d_h`` materialized.
        """
        size = dtype_size(self.dtype)
        if materialize:
            return 2 * self.n_heads * self.head_dim * size
        return (self.k_rank + self.v_rank) * (self.n_heads + self.head_dim) * size

    def head_factor(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``A`` of ``"q"``, ``"k"`` or ``"v"`` for ``x (B, T, d_model)``: ``(B, T, h, R)``."""
        b, t, _ = x.shape
        rank = self.ranks[name]
        if self.contextual_heads:
            return getattr(self, f"{name}_a_proj")(x).view(b, t, self.n_heads, rank)
        return getattr(self, f"{name}_a").expand(b, t, self.n_heads, rank)

    def token_factor(
        self, name: str, x: torch.Tensor, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``B`` of ``"q"``, ``"k"`` or ``"v"``: ``(B, T, R, d_h)``, rotated for q and k.

        ``positions`` (default ``0, ..., T - 1``) are the RoPE positions.
        """
        b, t, _ = x.shape
        out = getattr(self, f"{name}_b_proj")(x).view(b, t, self.ranks[name], self.head_dim)
        if name != "v":
            if positions is None:
                positions = torch.arange(t, device=x.device)
            out = self._rotate(out, positions)
        return out

    def forward(
        self,
        x: torch.Tensor,
        cache: TPAFactorCache | KVCache | None = None,
        *,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attend causally; with ``cache``, the new tokens follow the cached ones.

        Parameters
        ----------
        x
            ``(batch, seq, d_model)``.
        cache
            From :meth:`new_cache`: a :class:`TPAFactorCache` (factors appended, attention
            contracted factor-wise) or, with ``materialize=True``, a :class:`KVCache` (keys
            and values formed and appended).
        positions
            RoPE positions ``(seq,)`` without a cache (default ``0, ..., seq - 1``).

        Returns
        -------
        torch.Tensor
            ``(batch, seq, d_model)``.

        Raises
        ------
        TypeError, ValueError
            On a wrong input shape/dtype, too long a sequence, or a cache of another module.
        """
        past, pos = self._check_input(x, cache, positions)
        b, t, _ = x.shape
        h, dh = self.n_heads, self.head_dim
        if self.kv_only:
            q: torch.Tensor | tuple = self._rotate(self.q_proj(x).view(b, t, h, dh), pos)
        else:
            q = (self.head_factor("q", x), self.token_factor("q", x, pos))
        a_k, b_k = self.head_factor("k", x), self.token_factor("k", x, pos)
        a_v, b_v = self.head_factor("v", x), self.token_factor("v", x)
        if isinstance(cache, TPAFactorCache) and t == 1:
            full = cache.append(a_k=a_k, b_k=b_k, a_v=a_v, b_v=b_v)
            out = tpa_factor_attention(
                q, (full["a_k"], full["b_k"]), (full["a_v"], full["b_v"]), past=past
            )
        elif isinstance(cache, TPAFactorCache):
            # prefill / chunk: store the factors, attend through formed keys and values
            full = cache.append(a_k=a_k, b_k=b_k, a_v=a_v, b_v=b_v)
            if isinstance(q, tuple):
                q = tpa_materialize(*q)
            k = tpa_materialize(full["a_k"], full["b_k"])
            v = tpa_materialize(full["a_v"], full["b_v"])
            out = _causal_sdpa(q, k, v, past)
        else:
            if isinstance(q, tuple):
                q = tpa_materialize(*q)
            k, v = tpa_materialize(a_k, b_k), tpa_materialize(a_v, b_v)
            if cache is not None:
                full = cache.append(k=k, v=v)
                k, v = full["k"], full["v"]
            out = _causal_sdpa(q, k, v, past)
        return self.o_proj(out.reshape(b, t, h * dh))


def _uniform(
    weight: torch.Tensor, bound2: float | None, generator: torch.Generator | None
) -> None:
    """``U(-a, a)`` with ``a^2 = bound2``; ``None``: Xavier over ``(fan_out, fan_in)``."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out) if bound2 is None else bound2)
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)
