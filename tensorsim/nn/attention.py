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
``B_V``, ``(R_K + R_V)(h + d_h)`` numbers per token per layer, and the decode path contracts
the query with the cached factors directly (:func:`tpa_factor_attention`); past keys and
values are never formed. A materialized cache (``new_cache(..., materialize=True)``) stores
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

from tensorsim.einsum import einsum
from tensorsim.nn.rope import RotaryEmbedding

__all__ = [
    "ATTENTION_KINDS",
    "KVCache",
    "MultiHeadAttention",
    "TPAFactorCache",
    "TensorProductAttention",
    "attention_parameters",
    "kv_cache_bytes_per_token",
    "solve_heads",
    "tpa_factor_attention",
    "tpa_materialize",
]

logger = logging.getLogger(__name__)

ATTENTION_KINDS = ("mha", "gqa", "mqa", "tpa", "tpa_kvonly")


def _check_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def _dtype_size(dtype: torch.dtype) -> int:
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype: expected a torch.dtype, got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------- formulas


def kv_cache_bytes_per_token(
    attention: str,
    *,
    n_heads: int,
    head_dim: int,
    n_kv_heads: int | None = None,
    k_rank: int = 2,
    v_rank: int = 2,
    dtype: torch.dtype = torch.float32,
) -> int:
    """KV-cache bytes per token per layer, by formula.

    ``(R_K + R_V)(h + d_h)`` numbers for ``"tpa"`` and ``"tpa_kvonly"``, ``2 n_kv_heads d_h``
    for ``"mha"`` (``n_kv_heads = h``), ``"gqa"`` and ``"mqa"`` (``n_kv_heads = 1``), times
    the size of ``dtype``.

    Raises
    ------
    ValueError
        If ``attention`` is unknown, a size is not a positive integer, or ``"gqa"`` has no
        ``n_kv_heads``.
    """
    kind = _check_kind(attention)
    _check_int("n_heads", n_heads)
    _check_int("head_dim", head_dim)
    size = _dtype_size(dtype)
    if kind in ("tpa", "tpa_kvonly"):
        _check_int("k_rank", k_rank)
        _check_int("v_rank", v_rank)
        return (k_rank + v_rank) * (n_heads + head_dim) * size
    kv = _kv_heads(kind, n_heads, n_kv_heads)
    return 2 * kv * head_dim * size


def attention_parameters(
    attention: str,
    *,
    d_model: int,
    n_heads: int,
    head_dim: int,
    n_kv_heads: int | None = None,
    q_rank: int = 6,
    k_rank: int = 2,
    v_rank: int = 2,
) -> int:
    """Weights of one attention layer (bias-free), by formula.

    ``d (R_Q + R_K + R_V)(h + d_h) + d h d_h`` for TPA, ``d (R_K + R_V)(h + d_h) + 2 d h d_h``
    for TPA-KVonly, ``2 d h d_h + 2 d n_kv d_h`` for MHA / GQA / MQA. Equals
    :func:`~tensorsim.nn.transformer.count_parameters` of the module built with the same
    options (contextual head factors).
    """
    kind = _check_kind(attention)
    d, h, dh = d_model, n_heads, head_dim
    for name, value in (("d_model", d), ("n_heads", h), ("head_dim", dh)):
        _check_int(name, value)
    if kind == "tpa":
        return d * (q_rank + k_rank + v_rank) * (h + dh) + d * h * dh
    if kind == "tpa_kvonly":
        return d * (k_rank + v_rank) * (h + dh) + 2 * d * h * dh
    kv = _kv_heads(kind, h, n_kv_heads)
    return 2 * d * h * dh + 2 * d * kv * dh


def solve_heads(
    attention: str,
    *,
    d_model: int,
    head_dim: int,
    target: int | None = None,
    n_kv_heads: int | None = None,
    q_rank: int = 6,
    k_rank: int = 2,
    v_rank: int = 2,
) -> int:
    """Head count whose attention parameters are nearest to ``target`` (matched parameters).

    The paper (arXiv 2501.06425, section 4) matches every variant to MHA's ``4 d^2``
    attention weights (the default ``target``); the count is linear in ``h``, so the solution
    is rounded to the nearest integer (at least 1). At ``d_h = 64``, ``R = (6, 2, 2)`` this
    gives the paper's TPA heads 47, 61, 78 and KVonly heads 29, 37, 47 for ``d`` = 1024,
    1280, 1600 (the paper lists 34 and 22 at ``d = 768``, where the equation gives 32.9 and
    21.3).

    Raises
    ------
    ValueError
        If an argument is invalid or no positive head count gets within the target.
    """
    kind = _check_kind(attention)
    _check_int("d_model", d_model)
    _check_int("head_dim", head_dim)
    target = 4 * d_model * d_model if target is None else _check_int("target", target)

    d, dh = d_model, head_dim
    # attention_parameters(h) = p0 + p1 h
    if kind == "tpa":
        r = (
            _check_int("q_rank", q_rank)
            + _check_int("k_rank", k_rank)
            + _check_int("v_rank", v_rank)
        )
        p0, p1 = d * r * dh, d * (r + dh)
    elif kind == "tpa_kvonly":
        r = _check_int("k_rank", k_rank) + _check_int("v_rank", v_rank)
        p0, p1 = d * r * dh, d * (r + 2 * dh)
    elif kind == "mha":
        p0, p1 = 0, 4 * d * dh
    else:
        kv = 1 if kind == "mqa" else _check_int("n_kv_heads", n_kv_heads)
        p0, p1 = 2 * d * kv * dh, 2 * d * dh
    h = max(1, round((target - p0) / p1))
    if kind == "gqa":
        h = max(n_kv_heads, n_kv_heads * round(h / n_kv_heads))
    return h


def _check_kind(attention: object) -> str:
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention: expected one of {ATTENTION_KINDS}, got {attention!r}")
    return attention  # type: ignore[return-value]


def _kv_heads(kind: str, n_heads: int, n_kv_heads: int | None) -> int:
    if kind == "mha":
        if n_kv_heads not in (None, n_heads):
            raise ValueError(f"n_kv_heads: MHA has n_kv_heads = n_heads, got {n_kv_heads!r}")
        return n_heads
    if kind == "mqa":
        if n_kv_heads not in (None, 1):
            raise ValueError(f"n_kv_heads: MQA has one KV head, got {n_kv_heads!r}")
        return 1
    if n_kv_heads is None:
        raise ValueError("n_kv_heads: GQA needs the number of key/value heads")
    _check_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads: expected a divisor of n_heads={n_heads}, got {n_kv_heads}")
    return n_kv_heads


# ----------------------------------------------------------------------------- caches


class _Cache:
    """Growing per-layer cache: tensors ``(batch, tokens, ...)`` concatenated along tokens.

    Tensors are exactly as long as the cached sequence, so ``nbytes`` is what the cache
    holds (no preallocated slack).
    """

    names: tuple[str, ...] = ()

    def __init__(self, owner: torch.nn.Module, batch_size: int, signature: tuple) -> None:
        self.owner_id = id(owner)
        self.batch_size = _check_int("batch_size", batch_size)
        self.signature = signature
        self.tensors: dict[str, torch.Tensor] = {}

    @property
    def length(self) -> int:
        """Number of cached tokens."""
        return next(iter(self.tensors.values())).shape[1] if self.tensors else 0

    def nbytes(self) -> int:
        """Bytes held by the cache tensors."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def bytes_per_token(self) -> float:
        """Measured bytes per cached token (per sequence of the batch)."""
        if not self.length:
            raise ValueError("cache: empty, no bytes per token to measure")
        return self.nbytes() / (self.batch_size * self.length)

    def append(self, **new: torch.Tensor) -> dict[str, torch.Tensor]:
        """Append new tokens' tensors and return the full cached tensors."""
        if self.tensors:
            self.tensors = {n: torch.cat((self.tensors[n], new[n]), dim=1) for n in self.names}
        else:
            self.tensors = {n: new[n].contiguous() for n in self.names}
        return self.tensors

    def check(self, owner: torch.nn.Module, signature: tuple, batch: int) -> None:
        """Raise ``ValueError`` unless this cache belongs to ``owner`` and fits the batch."""
        if self.signature != signature:
            raise ValueError(f"cache: built for {self.signature}, this layer expects {signature}")
        if self.owner_id != id(owner):
            raise ValueError("cache: built by another attention module (another model?)")
        if batch != self.batch_size:
            raise ValueError(
                f"cache: holds batch size {self.batch_size}, input has batch size {batch}"
            )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(length={self.length}, nbytes={self.nbytes()})"


class KVCache(_Cache):
    """Materialized cache: rotated keys ``k`` and values ``v``, ``(batch, T, heads, d_h)``."""

    names = ("k", "v")


class TPAFactorCache(_Cache):
    """TPA factor cache: ``a_k``, rotated ``b_k``, ``a_v``, ``b_v`` of the past tokens.

    ``a_k (B, T, h, R_K)``, ``b_k (B, T, R_K, d_h)``, ``a_v``, ``b_v`` likewise:
    ``(R_K + R_V)(h + d_h)`` numbers per token.
    """

    names = ("a_k", "b_k", "a_v", "b_v")


# ----------------------------------------------------------------------------- kernels


def _causal_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, past: int) -> torch.Tensor:
    """Causal attention of ``q (B, T, H, d)`` on ``k, v (B, past + T, H_kv, d)``."""
    n_heads, n_kv = q.shape[2], k.shape[2]
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    if n_kv != n_heads:
        k = k.repeat_interleave(n_heads // n_kv, dim=1)
        v = v.repeat_interleave(n_heads // n_kv, dim=1)
    t = q.shape[2]
    if past == 0:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=t > 1)
    else:
        mask = _causal_mask(t, past, q.device) if t > 1 else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
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
        self.max_seq_len = _check_int("max_seq_len", max_seq_len)
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
        self, x: torch.Tensor, cache: _Cache | None, positions: torch.Tensor | None
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
            if not isinstance(cache, _Cache):
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

    def new_cache(self, batch_size: int, *, materialize: bool = False) -> _Cache:
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
        self.d_model = _check_int("d_model", d_model)
        self.n_heads = _check_int("n_heads", n_heads)
        self.head_dim = d_model // n_heads if head_dim is None else head_dim
        _check_int("head_dim", self.head_dim)
        self.n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
        _kv_heads("gqa", n_heads, self.n_kv_heads)
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
        return 2 * self.n_kv_heads * self.head_dim * _dtype_size(self.dtype)

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
    Initialization: every factor weight is Xavier-uniform over its 2-D map as applied,
    ``U(-a, a)``, ``a = sqrt(6 / (d_model + R h))`` for ``W_A`` and
    ``sqrt(6 / (d_model + R d_h))`` for ``W_B``: the paper's choice. The reference code's
    3-D view ``(d_model, h, R)`` gives torch's fan-in ``h R`` and fan-out ``d_model R``,
    a bound that depends on how the weight happens to be viewed rather than on the linear
    map, so it is not reproduced. Fixed head factors (``contextual_heads=False``) are
    Xavier-uniform ``(h, R)`` matrices.

    The full-sequence forward pass forms ``Q, K, V`` (``(1/R) A^T B``, one batched
    contraction) and calls scaled dot-product attention; with a factor cache it uses
    :func:`tpa_factor_attention` instead, on the cached factors.

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
        rope_base: float = 10000.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.d_model = _check_int("d_model", d_model)
        self.n_heads = _check_int("n_heads", n_heads)
        self.head_dim = _check_int("head_dim", head_dim)
        self.kv_only, self.contextual_heads = bool(kv_only), bool(contextual_heads)
        self.kind = "tpa_kvonly" if kv_only else "tpa"
        self.ranks = {
            "q": None if kv_only else _check_int("q_rank", q_rank),
            "k": _check_int("k_rank", k_rank),
            "v": _check_int("v_rank", v_rank),
        }
        kw = {"dtype": dtype, "device": device}
        h, dh = n_heads, head_dim
        for name, rank in self.ranks.items():
            if rank is None:
                continue
            if contextual_heads:
                a = torch.nn.Linear(d_model, h * rank, bias=False, **kw)
                setattr(self, f"{name}_a_proj", a)
                _xavier(a.weight, generator)
            else:
                a = torch.nn.Parameter(torch.empty(h, rank, **kw))
                setattr(self, f"{name}_a", a)
                _xavier(a, generator)
            b = torch.nn.Linear(d_model, rank * dh, bias=False, **kw)
            setattr(self, f"{name}_b_proj", b)
            _xavier(b.weight, generator)
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
        size = _dtype_size(self.dtype)
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
        if isinstance(cache, TPAFactorCache):
            full = cache.append(a_k=a_k, b_k=b_k, a_v=a_v, b_v=b_v)
            out = tpa_factor_attention(
                q, (full["a_k"], full["b_k"]), (full["a_v"], full["b_v"]), past=past
            )
        else:
            if isinstance(q, tuple):
                q = tpa_materialize(*q)
            k, v = tpa_materialize(a_k, b_k), tpa_materialize(a_v, b_v)
            if cache is not None:
                full = cache.append(k=k, v=v)
                k, v = full["k"], full["v"]
            out = _causal_sdpa(q, k, v, past)
        return self.o_proj(out.reshape(b, t, h * dh))


def _xavier(weight: torch.Tensor, generator: torch.Generator | None) -> None:
    """Xavier-uniform over the 2-D map ``(fan_out, fan_in) = weight.shape``."""
    fan_out, fan_in = weight.shape
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    with torch.no_grad():
        weight.uniform_(-bound, bound, generator=generator)
