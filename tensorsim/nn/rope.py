"""Rotary position embedding (RoPE) with precomputed cos/sin tables and explicit positions.

A vector ``x`` of even length ``d`` at position ``p`` is rotated pairwise: with the
split-half pairing (GPT-NeoX / LLaMA / T6), component ``i < d/2`` is paired with
``i + d/2`` and the pair is turned by the angle ``p * theta_i``,
``theta_i = base^(-2 i / d)``::

    y[i]       = x[i] cos(p theta_i) - x[i + d/2] sin(p theta_i)
    y[i + d/2] = x[i] sin(p theta_i) + x[i + d/2] cos(p theta_i)

so that ``<R_p q, R_s k> = <q, R_{s-p} k>`` depends on ``s - p`` only. The rotation acts on
the last axis of a tensor laid out ``(batch, seq, n, d)`` (``n`` heads, or the rank of a
Tensor Product Attention factor); ``positions`` name the sequence entries explicitly, which
is what incremental decoding needs (the new tokens sit after the cached ones).

The tables are computed in float64 and stored (non-persistent buffers) in the module's
dtype, up to ``max_seq_len`` positions.

References
----------
J. Su, Y. Lu, S. Pan, A. Murtadha, B. Wen, Y. Liu, "RoFormer: Enhanced Transformer with
Rotary Position Embedding", arXiv 2104.09864.
"""

from __future__ import annotations

import logging

import torch

from tensorsim._checks import check_int

__all__ = ["RotaryEmbedding", "apply_rotary", "rotary_tables"]

logger = logging.getLogger(__name__)


def rotary_tables(
    dim: int,
    max_seq_len: int,
    *,
    base: float = 10000.0,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cos and sin of the rotation angles ``p * base^(-2 i / dim)``.

    Parameters
    ----------
    dim
        Rotated vector length (even).
    max_seq_len
        Number of positions ``0, ..., max_seq_len - 1``.
    base
        Frequency base (positive).
    dtype, device
        Of the returned tables (computed in float64).

    Returns
    -------
    tuple of torch.Tensor
        ``cos``, ``sin``, each ``(max_seq_len, dim // 2)``.

    Raises
    ------
    ValueError
        If ``dim`` is not a positive even integer, ``max_seq_len`` not a positive integer or
        ``base`` not positive.
    """
    check_int("dim", dim)
    if dim % 2:
        raise ValueError(f"dim: rotary embedding needs an even head dimension, got {dim}")
    check_int("max_seq_len", max_seq_len)
    if not base > 0:
        raise ValueError(f"base: expected a positive number, got {base!r}")
    half = dim // 2
    inv_freq = base ** (-torch.arange(half, dtype=torch.float64, device=device) * 2.0 / dim)
    pos = torch.arange(max_seq_len, dtype=torch.float64, device=device)
    angle = pos[:, None] * inv_freq[None, :]
    return torch.cos(angle).to(dtype), torch.sin(angle).to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` of layout ``(batch, seq, n, d)`` by per-position tables.

    Parameters
    ----------
    x
        Tensor ``(batch, seq, n, d)``, ``d`` even.
    cos, sin
        ``(seq, d // 2)``: the table rows of the positions of ``x``'s sequence entries.

    Returns
    -------
    torch.Tensor
        The rotated tensor, same shape and dtype as ``x``.
    """
    half = x.shape[-1] // 2
    c = cos.to(x.dtype)[None, :, None, :]
    s = sin.to(x.dtype)[None, :, None, :]
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


class RotaryEmbedding(torch.nn.Module):
    """Rotary position embedding of the last axis of ``(batch, seq, n, dim)`` tensors.

    Parameters
    ----------
    dim
        Rotated length (the head dimension); must be even.
    max_seq_len
        Largest position plus one that can be rotated.
    base
        Frequency base ``theta_i = base^(-2 i / dim)``.
    dtype, device
        Of the cos/sin tables.

    Raises
    ------
    ValueError
        If ``dim`` is odd or not positive, or ``max_seq_len`` is not a positive integer.

    References
    ----------
    RoFormer, arXiv 2104.09864.
    """

    def __init__(
        self,
        dim: int,
        max_seq_len: int = 2048,
        *,
        base: float = 10000.0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        cos, sin = rotary_tables(dim, max_seq_len, base=base, dtype=dtype, device=device)
        self.dim, self.max_seq_len, self.base = dim, max_seq_len, float(base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def extra_repr(self) -> str:
        """Sizes shown by ``repr``."""
        return f"dim={self.dim}, max_seq_len={self.max_seq_len}, base={self.base:g}"

    def positions(
        self, seq_len: int, *, offset: int = 0, device: torch.device | None = None
    ) -> torch.Tensor:
        """Positions ``offset, ..., offset + seq_len - 1``, checked against the maximum.

        Raises
        ------
        ValueError
            If ``offset < 0`` or ``offset + seq_len > max_seq_len``.
        """
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset: expected a non-negative integer, got {offset!r}")
        if offset + seq_len > self.max_seq_len:
            raise ValueError(
                f"sequence: positions up to {offset + seq_len - 1} (offset {offset} + "
                f"length {seq_len}) exceed max_seq_len={self.max_seq_len}"
            )
        return torch.arange(offset, offset + seq_len, device=device or self.cos.device)

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, *, offset: int = 0
    ) -> torch.Tensor:
        """Rotate ``x`` ``(batch, seq, n, dim)``.

        Parameters
        ----------
        x
            Tensor to rotate.
        positions
            Integer positions ``(seq,)`` of the sequence entries; default
            ``offset, ..., offset + seq - 1``.
        offset
            Position of the first entry when ``positions`` is not given.

        Raises
        ------
        TypeError
            If ``x`` is not a floating tensor or ``positions`` not an integer tensor.
        ValueError
            If ``x`` is not 4-D with last axis ``dim``, or a position is negative or not
            below ``max_seq_len``.
        """
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[-1] != self.dim:
            raise ValueError(
                f"x: expected shape (batch, seq, n, {self.dim}), got {tuple(x.shape)}"
            )
        seq = x.shape[1]
        if positions is None:
            positions = self.positions(seq, offset=offset, device=x.device)
        else:
            if not isinstance(positions, torch.Tensor) or positions.is_floating_point():
                raise TypeError("positions: expected an integer torch.Tensor")
            if positions.shape != (seq,):
                raise ValueError(
                    f"positions: expected shape ({seq},), got {tuple(positions.shape)}"
                )
            if seq and (int(positions.min()) < 0 or int(positions.max()) >= self.max_seq_len):
                raise ValueError(
                    f"positions: expected values in [0, {self.max_seq_len}) (max_seq_len), "
                    f"got [{int(positions.min())}, {int(positions.max())}]"
                )
        positions = positions.to(self.cos.device)
        return apply_rotary(x, self.cos[positions], self.sin[positions])
