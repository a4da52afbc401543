"""Blockwise 4-bit NormalFloat (NF4) quantization in plain PyTorch (runs on CPU).

A tensor is cut, in row-major order, into blocks of ``block_size`` (64) values; each block is
scaled by its largest absolute value (absmax) into ``[-1, 1]`` and every value is replaced by
the index of the nearest of the 16 NF4 levels :data:`NF4_CODE`. Two 4-bit indices are packed
into one ``uint8`` (the first in the high nibble); the scales are kept in float32 (no double
quantization). Round trip error per element is at most half the widest gap between
neighbouring levels times the block's absmax (:func:`nf4_error_bound`).

References
----------
T. Dettmers, A. Pagnoni, A. Holtzman, L. Zettlemoyer, "QLoRA: Efficient Finetuning of
Quantized LLMs", arXiv 2305.14314 (the NF4 data type and its code book).
S. Loeschcke et al., "LoQT: Low-Rank Adapters for Quantized Pretraining", arXiv 2405.16528
(which quantizes its frozen weights this way).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

__all__ = [
    "NF4_CODE",
    "NF4Tensor",
    "dequantize_nf4",
    "nf4_error_bound",
    "pack_4bit",
    "quantize_nf4",
    "unpack_4bit",
]

logger = logging.getLogger(__name__)

#: The 16 NF4 levels of QLoRA (arXiv 2305.14314), ascending; index 7 is exactly zero.
NF4_CODE: tuple[float, ...] = (
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
)


@dataclass(frozen=True)
class NF4Tensor:
    """A tensor stored as packed NF4 indices plus one float32 absmax scale per block.

    Attributes
    ----------
    packed
        ``uint8`` tensor of ``ceil(n / 2)`` bytes, two 4-bit level indices each.
    scales
        float32 absmax of each block, ``ceil(n / block_size)`` values.
    shape
        Shape of the original tensor (``n`` = its number of elements).
    dtype
        Dtype of the original tensor, restored by :meth:`dequantize`.
    block_size
        Values per block.
    """

    packed: torch.Tensor
    scales: torch.Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    block_size: int

    @property
    def numel(self) -> int:
        """Number of quantized values."""
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of storage: ``ceil(n / 2)`` packed indices plus 4 per block scale."""
        return self.packed.numel() + self.scales.numel() * self.scales.element_size()

    def dequantize(self) -> torch.Tensor:
        """Return the dequantized tensor (see :func:`dequantize_nf4`)."""
        return dequantize_nf4(self)


def _code(device: torch.device) -> torch.Tensor:
    return torch.tensor(NF4_CODE, dtype=torch.float32, device=device)


def nf4_error_bound() -> float:
    """Half the widest gap between neighbouring NF4 levels (about 0.152).

    The round-trip error of an element is at most this times its block's absmax.
    """
    return max(b - a for a, b in zip(NF4_CODE, NF4_CODE[1:], strict=False)) / 2


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """Pack integers in ``[0, 16)`` two per byte, the first in the high nibble.

    Parameters
    ----------
    codes
        Integer tensor of any shape; it is flattened (an odd count is padded with a 0
        nibble).

    Returns
    -------
    torch.Tensor
        ``uint8`` tensor of ``ceil(codes.numel() / 2)`` bytes.
    """
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise TypeError(f"codes: expected an integer tensor, got {codes.dtype}")
    flat = codes.reshape(-1).to(torch.uint8)
    if flat.numel() and (int(codes.min()) < 0 or int(codes.max()) > 15):
        raise ValueError("codes: expected values in [0, 16)")
    if flat.numel() % 2:
        flat = torch.cat([flat, flat.new_zeros(1)])
    pairs = flat.reshape(-1, 2)
    return (pairs[:, 0] << 4) | pairs[:, 1]


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`pack_4bit`: the first ``n`` 4-bit values as ``int64``.

    Parameters
    ----------
    packed
        ``uint8`` tensor from :func:`pack_4bit`.
    n
        Number of values packed, ``<= 2 * packed.numel()``.
    """
    if packed.dtype != torch.uint8:
        raise TypeError(f"packed: expected a uint8 tensor, got {packed.dtype}")
    if not 0 <= n <= 2 * packed.numel():
        raise ValueError(f"n: expected 0 <= n <= {2 * packed.numel()}, got {n}")
    flat = packed.reshape(-1)
    both = torch.stack([flat >> 4, flat & 0x0F], dim=1).reshape(-1)
    return both[:n].to(torch.int64)


def quantize_nf4(x: torch.Tensor, block_size: int = 64, *, name: str = "x") -> NF4Tensor:
    """Quantize a floating-point tensor to blockwise NF4 (absmax scaling per block).

    Parameters
    ----------
    x
        Floating-point tensor (float16, bfloat16, float32 or float64), finite.
    block_size
        Values per block in row-major order (the last block may be shorter); 64 as QLoRA.
    name
        Name of the tensor in error messages (e.g. the layer's qualified name).

    Returns
    -------
    NF4Tensor
        Packed indices, scales, and what :func:`dequantize_nf4` needs to restore ``x``.

    Raises
    ------
    TypeError
        A non-floating-point (or complex) tensor.
    ValueError
        A bad ``block_size``, an empty tensor, or non-finite values.

    References
    ----------
    arXiv 2305.14314 (QLoRA, NF4).
    """
    if not isinstance(x, torch.Tensor) or not x.dtype.is_floating_point:
        kind = x.dtype if isinstance(x, torch.Tensor) else type(x).__name__
        raise TypeError(f"{name}: NF4 quantizes floating-point tensors only, got {kind}")
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size: expected an integer >= 1, got {block_size!r}")
    n = x.numel()
    if n == 0:
        raise ValueError(f"{name}: cannot quantize an empty tensor")
    flat = x.detach().reshape(-1).to(torch.float32)
    if not bool(torch.isfinite(flat).all()):
        raise ValueError(f"{name}: cannot quantize non-finite values (inf or nan)")
    blocks = math.ceil(n / block_size)
    padded = torch.cat([flat, flat.new_zeros(blocks * block_size - n)]).reshape(blocks, -1)
    scales = padded.abs().amax(dim=1)
    normalized = padded / torch.where(scales > 0, scales, 1.0)[:, None]
    code = _code(x.device)
    codes = torch.bucketize(normalized, (code[1:] + code[:-1]) / 2).reshape(-1)[:n]
    logger.debug("quantize_nf4: %s, %d values in %d blocks", name, n, blocks)
    return NF4Tensor(pack_4bit(codes), scales, tuple(x.shape), x.dtype, block_size)


def dequantize_nf4(q: NF4Tensor) -> torch.Tensor:
    """Return ``NF4_CODE[index] * absmax`` of each value, in the original shape and dtype.

    References
    ----------
    arXiv 2305.14314 (QLoRA, NF4).
    """
    n = q.numel
    codes = unpack_4bit(q.packed, n)
    scales = torch.repeat_interleave(q.scales, q.block_size)[:n]
    return (_code(q.packed.device)[codes] * scales).reshape(q.shape).to(q.dtype)
