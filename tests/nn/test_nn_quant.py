"""Blockwise NF4 quantizer (arXiv 2305.14314, as used by LoQT arXiv 2405.16528)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.quant import (  # noqa: E402
    NF4_CODE,
    dequantize_nf4,
    nf4_error_bound,
    pack_4bit,
    quantize_nf4,
    unpack_4bit,
)


def _randn(*shape, seed=0, dtype=torch.float32):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def test_code_book():
    assert len(NF4_CODE) == 16
    assert list(NF4_CODE) == sorted(NF4_CODE)
    assert NF4_CODE[0] == -1.0 and NF4_CODE[7] == 0.0 and NF4_CODE[15] == 1.0
    assert nf4_error_bound() == pytest.approx((1.0 - 0.6961928009986877) / 2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("shape", [(64, 48), (5, 13, 7), (1000,)])
def test_round_trip_error_within_the_code_book_bound(shape, dtype):
    x = (_randn(*shape) * torch.logspace(-3, 2, shape[-1])).to(dtype)  # blocks of all scales
    q = quantize_nf4(x)
    y = dequantize_nf4(q)
    assert y.shape == x.shape and y.dtype == x.dtype
    n = x.numel()
    flat = x.reshape(-1).float()
    blocks = torch.nn.functional.pad(flat, (0, q.scales.numel() * 64 - n)).reshape(-1, 64)
    torch.testing.assert_close(q.scales, blocks.abs().amax(dim=1), rtol=0, atol=0)
    bound = nf4_error_bound() * torch.repeat_interleave(q.scales, 64)[:n]
    err = (y.reshape(-1).float() - flat).abs()
    slack = 0.0 if dtype != torch.bfloat16 else 2**-8 * flat.abs()  # bfloat16 output rounding
    assert bool((err <= bound * (1 + 1e-6) + slack).all())


def test_code_book_values_are_exact():
    scales = torch.tensor([1.0, 2.5, 1e-3, 300.0])
    x = (torch.tensor(NF4_CODE * 4).reshape(4, 16).repeat(1, 4) * scales[:, None]).reshape(-1)
    q = quantize_nf4(x)
    assert torch.equal(dequantize_nf4(q), x)
    assert torch.equal(q.scales, scales)
    codes = unpack_4bit(q.packed, x.numel())
    assert torch.equal(codes, torch.arange(16).repeat(16))


def test_zero_blocks_and_last_partial_block():
    x = torch.zeros(130)
    x[128:] = torch.tensor([0.5, -2.0])
    q = quantize_nf4(x)
    assert q.scales.tolist() == [0.0, 0.0, 2.0]
    expected = torch.tensor([0.0] * 128 + [NF4_CODE[10] * 2.0, -2.0])  # 0.5 / 2 -> 0.2461
    assert torch.equal(dequantize_nf4(q), expected)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 129])
def test_packing_round_trip(n):
    codes = torch.randint(0, 16, (n,), generator=torch.Generator().manual_seed(n))
    packed = pack_4bit(codes)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(n / 2)
    assert torch.equal(unpack_4bit(packed, n), codes)
    assert pack_4bit(torch.tensor([1, 15])).tolist() == [0x1F]  # first value in the high nibble


@pytest.mark.parametrize(("n", "block"), [(64 * 48, 64), (1000, 64), (999, 64), (100, 10)])
def test_bytes_are_half_the_values_plus_the_scales(n, block):
    q = quantize_nf4(_randn(n), block)
    assert q.nbytes == math.ceil(n / 2) + 4 * math.ceil(n / block)
    assert q.packed.numel() + 4 * q.scales.numel() == q.nbytes


def test_bad_input():
    with pytest.raises(TypeError, match="layers.0.q_proj: NF4 quantizes floating-point"):
        quantize_nf4(torch.ones(8, dtype=torch.int64), name="layers.0.q_proj")
    with pytest.raises(TypeError, match="floating-point tensors only, got list"):
        quantize_nf4([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        quantize_nf4(torch.ones(8, dtype=torch.complex64))
    with pytest.raises(ValueError, match="non-finite"):
        quantize_nf4(torch.tensor([1.0, float("nan")]))
    with pytest.raises(ValueError, match="empty"):
        quantize_nf4(torch.ones(0))
    with pytest.raises(ValueError, match="block_size"):
        quantize_nf4(torch.ones(8), 0)
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        pack_4bit(torch.tensor([16]))
    with pytest.raises(TypeError, match="integer tensor"):
        pack_4bit(torch.tensor([1.0]))
    with pytest.raises(TypeError, match="uint8"):
        unpack_4bit(torch.tensor([1]), 1)
    with pytest.raises(ValueError, match="n: expected"):
        unpack_4bit(torch.tensor([1], dtype=torch.uint8), 3)
