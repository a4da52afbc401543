"""Boxes and linear interpolation of 1D lines and 2D planes (``grid_sample`` semantics).

The factor grids of TensoRF and Strivec (arXiv 2203.09517, 2307.13226) are stored channel-last:
a line is ``(G, C)``, a plane ``(H, W, C)``. A coordinate ``u`` in ``[-1, 1]`` maps to the
grid position ``(u + 1) / 2 * (G - 1)`` (``align_corners=True``): ``-1`` is the first node and
``+1`` the last. :func:`interp_line` and :func:`interp_plane` gather the two (four) taps of each
point only, and equal ``torch.nn.functional.grid_sample(..., mode="bilinear",
align_corners=True)`` on the same data (tested).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "Box",
    "check_rank",
    "check_resolution",
    "interp_line",
    "interp_plane",
    "upsample_line",
    "upsample_plane",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box ``[low, high]`` in 3D (scene units).

    Attributes
    ----------
    low, high
        Corners, three floats each, with ``high > low`` on every axis.
    """

    low: tuple[float, float, float]
    high: tuple[float, float, float]

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not (isinstance(value, Sequence) and len(value) == 3):
                raise ValueError(f"{name}: expected three numbers, got {value!r}")
            try:
                floats = tuple(float(v) for v in value)
            except (TypeError, ValueError) as err:
                raise TypeError(f"{name}: expected three numbers, got {value!r}") from err
            if not all(math.isfinite(v) for v in floats):
                raise ValueError(f"{name}: expected finite numbers, got {value!r}")
            object.__setattr__(self, name, floats)
        sizes = self.size
        if min(sizes) <= 0:
            raise ValueError(
                f"box: expected high > low on every axis (a box of positive size), got "
                f"low={self.low}, high={self.high} (sizes {sizes})"
            )

    @classmethod
    def cube(cls, half: float, centre: Sequence[float] = (0.0, 0.0, 0.0)) -> Box:
        """The cube of half-width ``half`` around ``centre``."""
        c = tuple(float(v) for v in centre)
        return cls(tuple(v - half for v in c), tuple(v + half for v in c))  # type: ignore[arg-type]

    @property
    def size(self) -> tuple[float, float, float]:
        """Edge lengths ``high - low``."""
        return tuple(h - lo for lo, h in zip(self.low, self.high, strict=True))  # type: ignore[return-value]

    def tensors(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``low`` and ``high`` as tensors of the dtype and device of ``like``."""
        kw = {"dtype": like.dtype, "device": like.device}
        return torch.tensor(self.low, **kw), torch.tensor(self.high, **kw)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map points ``(..., 3)`` to ``[-1, 1]^3`` (corners of the box to +-1), clamped."""
        low, high = self.tensors(x)
        return (2.0 * (x - low) / (high - low) - 1.0).clamp(-1.0, 1.0)

    def contains(self, x: torch.Tensor) -> torch.Tensor:
        """Whether each point ``(..., 3)`` lies in the closed box."""
        low, high = self.tensors(x)
        return ((x >= low) & (x <= high)).all(dim=-1)


def check_rank(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 1, else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer >= 1, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected an integer >= 1 (a rank), got {value}")
    return value


def check_resolution(value: object, name: str) -> int:
    """Return ``value`` if it is an integer >= 2 (grid nodes), else raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}: expected an integer >= 2, got {value!r}")
    if value < 2:
        raise ValueError(f"{name}: expected at least 2 grid nodes, got {value}")
    return value


def _taps(u: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left node index and weight of the right node for coordinates ``u`` on ``n`` nodes."""
    pos = (u.clamp(-1.0, 1.0) + 1.0) * (0.5 * (n - 1))
    i0 = pos.detach().floor().clamp(0, n - 2).long()
    return i0, pos - i0.to(pos.dtype)


def interp_line(line: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of a line ``(G, C)`` at coordinates ``u`` ``(N,)`` in ``[-1, 1]``.

    Returns ``(N, C)``; coordinates outside ``[-1, 1]`` are clamped (border padding).
    """
    i0, w = _taps(u, line.shape[0])
    w = w.unsqueeze(-1)
    # index_select: much faster than advanced indexing (line[i0]) on CPU
    return line.index_select(0, i0) * (1.0 - w) + line.index_select(0, i0 + 1) * w


def interp_plane(plane: torch.Tensor, ux: torch.Tensor, uy: torch.Tensor) -> torch.Tensor:
    """Bilinear interpolation of a plane ``(H, W, C)``: ``ux`` indexes W, ``uy`` indexes H.

    Returns ``(N, C)``, as ``grid_sample(plane.permute(2, 0, 1)[None], grid)`` with
    ``grid[..., 0] = ux`` and ``grid[..., 1] = uy`` (``align_corners=True``).
    """
    h, w_, c = plane.shape
    ix, wx = _taps(ux, w_)
    iy, wy = _taps(uy, h)
    flat = plane.reshape(h * w_, c)
    base = iy * w_ + ix
    wx, wy = wx.unsqueeze(-1), wy.unsqueeze(-1)
    take = flat.index_select
    top = take(0, base) * (1.0 - wx) + take(0, base + 1) * wx
    bottom = take(0, base + w_) * (1.0 - wx) + take(0, base + w_ + 1) * wx
    return top * (1.0 - wy) + bottom * wy


def upsample_line(line: torch.Tensor, n: int) -> torch.Tensor:
    """Resample a line ``(..., G, C)`` to ``n`` nodes by linear interpolation (same end nodes)."""
    check_resolution(n, "n")
    lead, (g, c) = line.shape[:-2], line.shape[-2:]
    x = line.reshape(-1, g, c).transpose(1, 2)
    y = torch.nn.functional.interpolate(x, size=n, mode="linear", align_corners=True)
    return y.transpose(1, 2).reshape(*lead, n, c).contiguous()


def upsample_plane(plane: torch.Tensor, n: int) -> torch.Tensor:
    """Resample a plane ``(H, W, C)`` to ``(n, n, C)`` by bilinear interpolation."""
    check_resolution(n, "n")
    x = plane.permute(2, 0, 1).unsqueeze(0)
    y = torch.nn.functional.interpolate(x, size=(n, n), mode="bilinear", align_corners=True)
    return y[0].permute(1, 2, 0).contiguous()
