"""Attention budgets and KV caches: bytes per token, parameter counts, head matching.

The formulas of arXiv 2501.06425 (T6) for a layer's KV cache, ``2 n_kv d_h`` numbers per
token for MHA / GQA / MQA and ``(R_K + R_V)(h + d_h)`` for TPA, and for its attention
parameters, which :func:`solve_heads` inverts to give every kind the same parameter budget.
The caches (:class:`KVCache`, :class:`TPAFactorCache`) grow by concatenation, so the bytes
they hold are exactly what :func:`kv_cache_bytes_per_token` predicts.

References
----------
Y. Zhang, Y. Liu, H. Yuan, Z. Qin, Y. Yuan, Q. Gu, A. C. Yao, "Tensor Product Attention Is
All You Need", arXiv 2501.06425.
"""

from __future__ import annotations

import torch

from tensorsim._checks import check_int

__all__ = [
    "ATTENTION_KINDS",
    "AttentionCache",
    "KVCache",
    "TPAFactorCache",
    "attention_parameters",
    "kv_cache_bytes_per_token",
    "solve_heads",
]

ATTENTION_KINDS = ("mha", "gqa", "mqa", "tpa", "tpa_kvonly")


def dtype_size(dtype: torch.dtype) -> int:
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
    kind = check_kind(attention)
    check_int("n_heads", n_heads)
    check_int("head_dim", head_dim)
    size = dtype_size(dtype)
    if kind in ("tpa", "tpa_kvonly"):
        check_int("k_rank", k_rank)
        check_int("v_rank", v_rank)
        return (k_rank + v_rank) * (n_heads + head_dim) * size
    kv = kv_head_count(kind, n_heads, n_kv_heads)
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
    :func:`~tensorsim.nn.models.decoder.count_parameters` of the module built with the same
    options (contextual head factors).
    """
    kind = check_kind(attention)
    d, h, dh = d_model, n_heads, head_dim
    for name, value in (("d_model", d), ("n_heads", h), ("head_dim", dh)):
        check_int(name, value)
    if kind == "tpa":
        return d * (q_rank + k_rank + v_rank) * (h + dh) + d * h * dh
    if kind == "tpa_kvonly":
        return d * (k_rank + v_rank) * (h + dh) + 2 * d * h * dh
    kv = kv_head_count(kind, h, n_kv_heads)
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
    kind = check_kind(attention)
    check_int("d_model", d_model)
    check_int("head_dim", head_dim)
    target = 4 * d_model * d_model if target is None else check_int("target", target)

    d, dh = d_model, head_dim
    # attention_parameters(h) = p0 + p1 h
    if kind == "tpa":
        r = check_int("q_rank", q_rank) + check_int("k_rank", k_rank) + check_int("v_rank", v_rank)
        p0, p1 = d * r * dh, d * (r + dh)
    elif kind == "tpa_kvonly":
        r = check_int("k_rank", k_rank) + check_int("v_rank", v_rank)
        p0, p1 = d * r * dh, d * (r + 2 * dh)
    elif kind == "mha":
        p0, p1 = 0, 4 * d * dh
    else:
        kv = 1 if kind == "mqa" else check_int("n_kv_heads", n_kv_heads)
        p0, p1 = 2 * d * kv * dh, 2 * d * dh
    h = max(1, round((target - p0) / p1))
    if kind == "gqa":
        h = max(n_kv_heads, n_kv_heads * round(h / n_kv_heads))
    return h


def check_kind(attention: object) -> str:
    if attention not in ATTENTION_KINDS:
        raise ValueError(f"attention: expected one of {ATTENTION_KINDS}, got {attention!r}")
    return attention  # type: ignore[return-value]


def kv_head_count(kind: str, n_heads: int, n_kv_heads: int | None) -> int:
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
    check_int("n_kv_heads", n_kv_heads)
    if n_heads % n_kv_heads:
        raise ValueError(f"n_kv_heads: expected a divisor of n_heads={n_heads}, got {n_kv_heads}")
    return n_kv_heads


# ----------------------------------------------------------------------------- caches


class AttentionCache:
    """Growing per-layer cache: tensors ``(batch, tokens, ...)`` concatenated along tokens.

    Tensors are exactly as long as the cached sequence, so ``nbytes`` is what the cache
    holds (no preallocated slack).
    """

    names: tuple[str, ...] = ()

    def __init__(self, owner: torch.nn.Module, batch_size: int, signature: tuple) -> None:
        self.owner_id = id(owner)
        self.batch_size = check_int("batch_size", batch_size)
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


class KVCache(AttentionCache):
    """Materialized cache: rotated keys ``k`` and values ``v``, ``(batch, T, heads, d_h)``."""

    names = ("k", "v")


class TPAFactorCache(AttentionCache):
    """TPA factor cache: ``a_k``, rotated ``b_k``, ``a_v``, ``b_v`` of the past tokens.

    ``a_k (B, T, h, R_K)``, ``b_k (B, T, R_K, d_h)``, ``a_v``, ``b_v`` likewise:
    ``(R_K + R_V)(h + d_h)`` numbers per token.
    """

    names = ("a_k", "b_k", "a_v", "b_v")
