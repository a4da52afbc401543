"""Relative L2 and H1 losses of fields on periodic grids (operator learning).

Both losses compare a prediction with a target sample by sample, over all channels and grid
points, and relative to the target's norm:

- relative L2: ``||u - v|| / ||v||`` with the Euclidean norm of the grid values (on a
  uniform grid the ratio equals that of the L2 norms);
- relative H1: the same with the Sobolev norm of the periodic unit cell ``[0, 1)^d``,
  computed exactly from the Fourier coefficients (Parseval, ``fftn`` with
  ``norm="forward"``):  ``||f||_{H1}^2 = sum_k (1 + 4 pi^2 |k|^2) |f_k|^2`` over the integer
  wave vectors ``k`` of the grid.

``reduction="mean"`` (default) averages over the samples, ``"sum"`` adds them up,
``"none"`` returns one value per sample.

References
----------
J. Kossaifi, N. Kovachki, K. Azizzadenesheli, A. Anandkumar, "Multi-Grid Tensorized Fourier
Neural Operator for High-Resolution PDEs", arXiv 2310.00120 (TMLR 2024).
"""

from __future__ import annotations

import logging
import math

import torch

__all__ = ["relative_h1", "relative_l2", "sobolev_weights"]

logger = logging.getLogger(__name__)

_REDUCTIONS = ("mean", "sum", "none")


def _check(pred: torch.Tensor, target: torch.Tensor, reduction: str, spatial: bool) -> None:
    if not isinstance(pred, torch.Tensor) or not isinstance(target, torch.Tensor):
        raise ValueError("pred, target: expected torch tensors")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred: shape {tuple(pred.shape)} differs from target's {tuple(target.shape)}"
        )
    if pred.ndim < (3 if spatial else 2):
        raise ValueError(
            f"pred: expected (samples, channels, n_1, ...), got shape {tuple(pred.shape)}"
        )
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction: expected one of {_REDUCTIONS}, got {reduction!r}")


def _reduce(values: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    return values


def relative_l2(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Relative L2 error ``||pred - target|| / ||target||`` per sample.

    Parameters
    ----------
    pred, target
        Tensors ``(samples, ...)`` of the same shape.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"``.

    Returns
    -------
    torch.Tensor
        A scalar, or ``(samples,)`` for ``reduction="none"``.
    """
    _check(pred, target, reduction, spatial=False)
    diff = torch.linalg.vector_norm((pred - target).flatten(1), dim=1)
    return _reduce(diff / torch.linalg.vector_norm(target.flatten(1), dim=1), reduction)


def sobolev_weights(sizes: tuple[int, ...], *, dtype=torch.float32, device=None) -> torch.Tensor:
    """``1 + 4 pi^2 |k|^2`` on the full FFT grid of spatial shape ``sizes`` (unit cell)."""
    total = torch.ones(sizes, dtype=dtype, device=device)
    for axis, n in enumerate(sizes):
        k = torch.fft.fftfreq(n, d=1.0 / n, dtype=dtype, device=device)
        shape = [1] * len(sizes)
        shape[axis] = n
        total = total + (4 * math.pi**2) * k.reshape(shape) ** 2
    return total


def relative_h1(pred: torch.Tensor, target: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Relative H1 error ``||pred - target||_{H1} / ||target||_{H1}`` per sample.

    The fields live on the periodic unit cell; the norm is evaluated spectrally (module
    docstring), over every channel.

    Parameters
    ----------
    pred, target
        Real tensors ``(samples, channels, n_1, ..., n_d)`` of the same shape.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"``.

    Returns
    -------
    torch.Tensor
        A scalar, or ``(samples,)`` for ``reduction="none"``.
    """
    _check(pred, target, reduction, spatial=True)
    sizes = tuple(pred.shape[2:])
    dims = tuple(range(2, pred.ndim))
    scale = torch.sqrt(sobolev_weights(sizes, dtype=pred.dtype, device=pred.device))[..., None]

    def norm(f: torch.Tensor) -> torch.Tensor:
        coeffs = torch.view_as_real(torch.fft.fftn(f, dim=dims, norm="forward"))
        return torch.linalg.vector_norm((scale * coeffs).flatten(1), dim=1)

    return _reduce(norm(pred - target) / norm(target), reduction)
