"""Multi-grid patching: stitch(patch) is the identity, coarse levels are subsampled windows."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.patching import (  # noqa: E402
    padding_widths,
    patch,
    stitch,
    window_indices,
)


@pytest.mark.parametrize(
    ("shape", "levels", "pads"),
    [((2, 3, 16, 16), 1, (4, 4)), ((1, 2, 32, 16), 2, (3, 2)), ((2, 1, 24), 3, (5,))],
)
def test_patch_then_stitch_is_the_identity(shape, levels, pads):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    patches = patch(x, levels, pads)
    d, (b, c) = len(shape) - 2, shape[:2]
    n_patch = 2**levels
    assert patches.shape == (
        b * n_patch**d,
        c * (levels + 1),
        *(n // n_patch + 2 * p for n, p in zip(shape[2:], pads, strict=True)),
    )
    fine = patches[:, :c]
    torch.testing.assert_close(stitch(fine, levels, pads), x, rtol=0, atol=0)


def test_fine_patches_carry_circular_context():
    x = torch.arange(64.0).reshape(1, 1, 8, 8)
    p = patch(x, 1, (2, 2))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="circular")
    # patch (1, 0): rows 4..7 and columns 0..3 with 2 points of context
    torch.testing.assert_close(p[2, 0], padded[0, 0, 4:12, 0:8])


@pytest.mark.parametrize(("levels", "pads"), [(1, (4, 2)), (2, (2, 3))])
def test_coarse_channels_are_the_subsampled_padded_field(levels, pads):
    b, c, n1, n2 = 2, 2, 32, 32
    x = torch.randn(b, c, n1, n2, generator=torch.Generator().manual_seed(1))
    patches = patch(x, levels, pads)
    n_patch = 2**levels
    h1, h2 = n1 // n_patch, n2 // n_patch
    w1, w2 = h1 + 2 * pads[0], h2 + 2 * pads[1]
    for level in range(levels + 1):
        s = 2**level
        sub = x[:, :, ::s, ::s]
        m1, m2 = sub.shape[2:]
        # the periodic extension (circular padding by two periods on every side)
        big = sub.repeat(1, 1, 5, 5)
        for j1 in range(n_patch):
            for j2 in range(n_patch):
                # window centred on the patch centre ((j + 1/2) h) / s in subsampled points
                r0 = ((2 * j1 + 1) * h1 - s * w1) // (2 * s) + 2 * m1
                c0 = ((2 * j2 + 1) * h2 - s * w2) // (2 * s) + 2 * m2
                expected = big[:, :, r0 : r0 + w1, c0 : c0 + w2]
                got = patches[j1 * n_patch + j2 :: n_patch**2, level * c : (level + 1) * c]
                torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_windows_are_centred_and_wrap():
    idx = window_indices(16, 1, 1, 2)  # 2 patches of 8 (+2+2) on the half grid of 8 points
    # centre of patch 0 is at 4 on the fine grid, 2 on the coarse grid: window 2 - 6 .. 2 + 5
    assert idx[0].tolist() == [4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7]
    assert idx[1].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3]
    assert window_indices(16, 1, 0, 2)[1].tolist() == list(range(6, 16)) + [0, 1]


def test_levels_zero_and_padding_widths():
    x = torch.randn(1, 1, 8, 8)
    assert patch(x, 0, (0, 0)) is x and stitch(x, 0, (0, 0)) is x
    assert padding_widths((64, 32), 0.0625) == (4, 2)


def test_bad_input():
    x = torch.randn(1, 1, 12, 16)
    with pytest.raises(ValueError, match="divisible"):
        patch(x, 3, (1, 1))
    with pytest.raises(ValueError, match="padding"):
        patch(x, 1, (1,))
    with pytest.raises(ValueError, match="levels"):
        patch(x, -1, (1, 1))
    with pytest.raises(ValueError, match="padding_fraction"):
        padding_widths((8, 8), -0.1)
    with pytest.raises(ValueError, match="batch"):
        stitch(torch.randn(3, 1, 10, 10), 1, (1, 1))
    with pytest.raises(ValueError, match="padding"):
        stitch(torch.randn(4, 1, 10, 10), 1, (5, 5))
