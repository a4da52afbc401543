"""Multi-grid domain decomposition of periodic fields (MG patching of MG-TFNO).

A field of shape ``(B, C, n_1, ..., n_d)`` is split into ``2^L`` equal patches per axis.
Each patch is widened by ``p_k`` points of periodic (circular) context on both sides of axis
``k``, so the model sees windows of ``P_k = n_k / 2^L + 2 p_k`` points. For each coarser level
``l = 1, ..., L`` the *whole* field is subsampled by ``2^l`` and a window of the same
``P_k`` points of the subsampled field, centred on the patch's centre and wrapped
periodically, is added as further channels: the fine patch plus progressively coarser, wider
views of its surroundings, ``C (L + 1)`` channels in all. The patches are stacked in the
batch axis (sample-major: patch ``(j_1, ..., j_d)`` of sample ``b`` is entry
``b * 2^(L d) + j_1 2^(L (d - 1)) + ... + j_d``). :func:`stitch` cuts the context off the
model's outputs and puts the patches back together.

Window of level ``l`` (subsampling ``s = 2^l``, fine patch size ``h = n / 2^L``) for patch
``j``: subsampled points ``start + t`` (mod ``n / s``) for ``t = 0, ..., P - 1``, with
``start = floor(((j + 1/2) h / s) - P / 2)``; at ``l = 0`` this is the fine patch with its
padding, ``start = j h - p``.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024), Sec. 3.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch

__all__ = ["check_levels", "padding_widths", "patch", "stitch", "window_indices"]

logger = logging.getLogger(__name__)


def check_levels(levels: int, sizes: Sequence[int], name: str = "x") -> None:
    """Raise ``ValueError`` unless every grid size is divisible by ``2^levels``."""
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise ValueError(f"levels: expected an integer >= 0, got {levels!r}")
    if any(n % 2**levels for n in sizes):
        raise ValueError(
            f"{name}: every grid size must be divisible by 2**levels = {2**levels} "
            f"for {levels} multi-grid levels, got spatial shape {tuple(sizes)}"
        )


def padding_widths(sizes: Sequence[int], fraction: float) -> tuple[int, ...]:
    """Context widths ``p_k = round(fraction * n_k)`` of the patches (half-to-even rounding).

    Raises
    ------
    ValueError
        If ``fraction`` is negative or not a number.
    """
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not fraction >= 0:
        raise ValueError(f"padding_fraction: expected a number >= 0, got {fraction!r}")
    return tuple(round(fraction * n) for n in sizes)


def window_indices(n: int, levels: int, level: int, pad: int, device=None) -> torch.Tensor:
    """Indices into the axis of length ``n / 2^level`` of the windows of every patch.

    Parameters
    ----------
    n
        Grid size of the axis (divisible by ``2^levels``).
    levels
        Number of levels ``L`` (``2^L`` patches on the axis).
    level
        The level ``l`` in ``0..L`` (subsampling ``2^l``).
    pad
        Context width ``p`` of the fine patches.
    device
        Device of the result.

    Returns
    -------
    torch.Tensor
        ``int64`` of shape ``(2^L, n / 2^L + 2 p)``: row ``j`` holds the (periodically
        wrapped) indices of patch ``j``'s window.
    """
    h = n // 2**levels
    step = 2**level
    width = h + 2 * pad
    starts = torch.tensor(
        [((2 * j + 1) * h - step * width) // (2 * step) for j in range(2**levels)],
        dtype=torch.int64,
        device=device,
    )
    offsets = torch.arange(width, dtype=torch.int64, device=device)
    return (starts[:, None] + offsets[None, :]) % (n // step)


def patch(x: torch.Tensor, levels: int, padding: Sequence[int]) -> torch.Tensor:
    """Split fields into multi-grid patches stacked in the batch axis.

    Parameters
    ----------
    x
        Tensor ``(B, C, n_1, ..., n_d)`` of periodic fields.
    levels
        ``L >= 0``; ``2^L`` patches per axis. ``L = 0`` returns ``x`` unchanged.
    padding
        Context width ``p_k`` per spatial axis (e.g. from :func:`padding_widths`).

    Returns
    -------
    torch.Tensor
        ``(B * 2^(L d), C (L + 1), n_1 / 2^L + 2 p_1, ...)``: channels ``[l C, (l + 1) C)``
        hold level ``l`` (``l = 0`` the fine patch).

    Raises
    ------
    ValueError
        If the grid is not divisible by ``2^L`` or ``padding`` has the wrong length.
    """
    d = x.ndim - 2
    sizes = tuple(x.shape[2:])
    check_levels(levels, sizes)
    pads = tuple(int(p) for p in padding)
    if len(pads) != d or any(p < 0 for p in pads):
        raise ValueError(f"padding: expected {d} widths >= 0, got {tuple(padding)}")
    if levels == 0:
        return x
    n_patch = 2**levels
    b, c = x.shape[:2]
    views = []
    for level in range(levels + 1):
        view = x[(Ellipsis, *[slice(None, None, 2**level)] * d)]
        for axis, (n, p) in enumerate(zip(sizes, pads, strict=True)):
            idx = window_indices(n, levels, level, p, device=x.device)
            ax = 2 + 2 * axis  # axes before it were already split into (patch, window)
            view = torch.index_select(view, ax, idx.reshape(-1))
            view = view.unflatten(ax, idx.shape)
        # (B, C, j_1, t_1, ..., j_d, t_d) -> (B, j_1, ..., j_d, C, t_1, ..., t_d)
        order = (0, *range(2, 2 + 2 * d, 2), 1, *range(3, 3 + 2 * d, 2))
        view = view.permute(order).reshape(b * n_patch**d, c, *view.shape[3::2])
        views.append(view)
    return torch.cat(views, dim=1)


def stitch(y: torch.Tensor, levels: int, padding: Sequence[int]) -> torch.Tensor:
    """Put patched outputs back together: the inverse of :func:`patch` on the fine level.

    Parameters
    ----------
    y
        ``(B * 2^(L d), C, h_1 + 2 p_1, ...)``, the model's output on the patches.
    levels
        ``L`` as given to :func:`patch` (``0``: ``y`` is returned unchanged).
    padding
        The context widths given to :func:`patch`.

    Returns
    -------
    torch.Tensor
        ``(B, C, 2^L h_1, ...)``: the centres of the patches (without context) in place.

    Raises
    ------
    ValueError
        If the batch is not a multiple of ``2^(L d)`` or the shapes do not fit ``padding``.
    """
    d = y.ndim - 2
    pads = tuple(int(p) for p in padding)
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 0:
        raise ValueError(f"levels: expected an integer >= 0, got {levels!r}")
    if levels == 0:
        return y
    n_patch = 2**levels
    if len(pads) != d or any(s <= 2 * p for s, p in zip(y.shape[2:], pads, strict=True)):
        raise ValueError(f"padding: widths {pads} do not fit patches of shape {tuple(y.shape)}")
    if y.shape[0] % n_patch**d:
        raise ValueError(
            f"y: batch {y.shape[0]} is not a multiple of the {n_patch**d} patches per sample"
        )
    core = y[(Ellipsis, *[slice(p, s - p) for s, p in zip(y.shape[2:], pads, strict=True)])]
    b, c, h = y.shape[0] // n_patch**d, y.shape[1], core.shape[2:]
    core = core.reshape(b, *[n_patch] * d, c, *h)
    # (B, j_1, ..., j_d, C, t_1, ..., t_d) -> (B, C, j_1, t_1, ..., j_d, t_d)
    order = [0, d + 1]
    for axis in range(d):
        order += [1 + axis, d + 2 + axis]
    return core.permute(order).reshape(b, c, *[n_patch * s for s in h])
