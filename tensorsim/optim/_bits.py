"""One-bit packing of boolean masks and of float sign bits (SMMF's first-moment signs).

Eight entries go to one ``uint8``, the first of each group of eight to the most significant
bit (as the first value goes to the high nibble in :func:`tensorsim.nn.quant.pack_4bit`). A
size that is not a multiple of 8 is padded with zero bits. Packing gathers the eight bits of
a group with one 64-bit multiplication (on little-endian machines; a plain weighted sum
otherwise), so it costs a few passes over one byte per entry.

References
----------
K. Park, S. Lee, "SMMF: Square-Matricized Momentum Factorization for Memory-Efficient
Optimization", arXiv 2412.08894 (AAAI 2025).
"""

from __future__ import annotations

import logging
import sys

import torch

__all__ = ["pack_bits", "pack_signbits", "packed_size", "sign_table", "unpack_bits"]

logger = logging.getLogger(__name__)

_LITTLE = sys.byteorder == "little"
# Byte j of a little-endian int64 (value 0 or 1, at bit 8 j) times this constant lands on
# bit 63 - j, and no two products overlap: the top byte is then the packed group.
_GATHER = 0x8040201008040201 - (1 << 64)
_LOW_BITS = 0x0101010101010101
_TABLES: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}


def packed_size(n: int) -> int:
    """Bytes that hold ``n`` bits: ``ceil(n / 8)``."""
    return -(-n // 8)


def _weights(device: torch.device) -> torch.Tensor:
    return torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8, device=device)


def _pack_bytes(flags: torch.Tensor) -> torch.Tensor:
    """Pack a fresh contiguous ``uint8`` tensor ``(..., 8 b)`` of 0/1 values into ``(..., b)``."""
    if _LITTLE:
        words = flags.view(torch.int64)
        words *= _GATHER
        words >>= 56
        return words.to(torch.uint8)
    groups = flags.reshape(*flags.shape[:-1], -1, 8)  # pragma: no cover (big-endian)
    return (groups * _weights(flags.device)).sum(-1, dtype=torch.uint8)  # pragma: no cover


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean tensor along its last axis, 8 entries per ``uint8``.

    Parameters
    ----------
    mask
        Boolean tensor of shape ``(..., n)``.

    Returns
    -------
    torch.Tensor
        ``uint8`` tensor of shape ``(..., ceil(n / 8))``; bit 7 of byte ``j`` holds
        ``mask[..., 8 j]``, bit 0 holds ``mask[..., 8 j + 7]``.
    """
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"mask: expected a bool tensor, got {getattr(mask, 'dtype', mask)!r}")
    if mask.ndim == 0:
        raise ValueError("mask: expected at least one axis")
    n = mask.shape[-1]
    flags = mask.to(torch.uint8, copy=True)
    pad = packed_size(n) * 8 - n
    if pad:
        flags = torch.nn.functional.pad(flags, (0, pad))
    return _pack_bytes(flags.contiguous())


def pack_signbits(x: torch.Tensor) -> torch.Tensor:
    """Pack the sign bits of a float tensor ``(..., n)`` (``torch.signbit``) along its last axis.

    Equals ``pack_bits(torch.signbit(x))`` (bit set: negative or ``-0.0``) but reads the
    sign bits straight from the float representation, 2 to 4 times faster.
    """
    if not x.is_floating_point() or x.ndim == 0:
        raise TypeError(f"x: expected a float tensor with at least one axis, got {x.dtype}")
    n = x.shape[-1]
    size = x.element_size()
    if not _LITTLE or n % 8 or not x.is_contiguous() or size == 1:
        return pack_bits(torch.signbit(x))
    top = x.view(torch.uint8).unflatten(-1, (n, size)).select(-1, size - 1).clone()
    words = top.view(torch.int64)
    words >>= 7
    words &= _LOW_BITS
    return _pack_bytes(top)


def unpack_bits(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_bits`: the first ``n`` bits of the last axis as ``bool``.

    Parameters
    ----------
    packed
        ``uint8`` tensor of shape ``(..., b)``.
    n
        Number of bits wanted, ``0 <= n <= 8 b``.

    Returns
    -------
    torch.Tensor
        Boolean tensor of shape ``(..., n)``.
    """
    if not isinstance(packed, torch.Tensor) or packed.dtype != torch.uint8:
        raise TypeError(
            f"packed: expected a uint8 tensor, got {getattr(packed, 'dtype', packed)!r}"
        )
    if packed.ndim == 0:
        raise ValueError("packed: expected at least one axis")
    if not 0 <= n <= 8 * packed.shape[-1]:
        raise ValueError(f"n: expected 0 <= n <= {8 * packed.shape[-1]}, got {n}")
    bits = torch.bitwise_and(packed.unsqueeze(-1), _weights(packed.device)) != 0
    return bits.reshape(*packed.shape[:-1], -1)[..., :n]


def sign_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """The ``(256, 8)`` table of signs of every byte value: ``-1`` for a set bit, else ``+1``.

    Row ``b`` is byte ``b`` unpacked (most significant bit first) as in :func:`pack_signbits`:
    looking packed sign bits up in it (``torch.nn.functional.embedding``) restores the signs
    in one gather. Tables are cached per device and dtype.
    """
    key = (torch.device(device), dtype)
    table = _TABLES.get(key)
    if table is None:
        byte = torch.arange(256, dtype=torch.uint8, device=device)
        table = 1 - 2 * unpack_bits(byte.unsqueeze(-1), 8).to(dtype)
        _TABLES[key] = table
    return table
