"""Strivec: a sparse set of local tri-vector (CP) tensors on a multi-scale lattice.

Each scale ``s`` has a cubic lattice of spacing ``h_s`` over the box; a local tensor sits on
every lattice node whose cube ``[c - e_s, c + e_s]^3`` (half-extent ``e_s``, with
``h_s / 2 <= e_s <= h_s`` so that the cubes overlap and cover the occupied region) meets an
occupied cell of a coarse occupancy grid. A local tensor is a CP "tri-vector": ``R`` components,
each three lines of ``G_s`` nodes over its own cube (local coordinates in ``[-1, 1]``), for
density (summed over components) and for appearance (per-component values).

A point's features at scale ``s`` combine the ``top_k`` nearest local tensors whose cube covers
it, with inverse-distance weights normalised by their sum; density features of the scales are
summed, appearance features go through a per-scale basis matrix and are summed.

Covering lookup. Since ``e_s <= h_s``, only the 8 lattice nodes at the corners of the point's
lattice cell can cover it: their ids come from a dense ``node -> tensor id`` table (``-1`` for
empty nodes), the non-covering ones are dropped, the ``top_k`` nearest kept, and for each of the
remaining (point, tensor) pairs only the two interpolation taps of each line are gathered. No
``[points, K, R, G]`` array is formed; the memory is ``O(P R)`` for ``P <= 8 N`` pairs.
:meth:`LocalCPField.density` with ``method="dense"`` evaluates every tensor at every point
(``O(N T R)``): the reference of the tests and the benchmark.

References
----------
Q. Gao, Q. Xu, H. Su, U. Neumann, Z. Xu, "Strivec: Sparse Tri-Vector Radiance Fields",
arXiv 2307.13226 (ICCV 2023).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from tensorsim.nn.fields._grid import Box, _taps, check_rank, check_resolution, upsample_line
from tensorsim.nn.fields.tensorf import FeatureField, _check_points, _init, _replace

__all__ = ["Covering", "LocalCPField", "LocalScale", "occupancy_from_density"]

logger = logging.getLogger(__name__)

Weighting = Literal["inverse", "inverse_square", "uniform"]

_CORNERS = ((0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1))


@dataclass(frozen=True)
class LocalScale:
    """One scale of local tensors.

    Attributes
    ----------
    spacing
        Lattice spacing ``h`` (scene units, > 0).
    half_extent
        Half-width ``e`` of each local cube, ``h / 2 <= e <= h``.
    resolution
        Nodes per local line (>= 2).
    density_rank, app_rank
        Density and appearance components per local tensor (>= 1).
    """

    spacing: float
    half_extent: float
    resolution: int
    density_rank: int
    app_rank: int

    def __post_init__(self) -> None:
        if not (isinstance(self.spacing, int | float) and self.spacing > 0):
            raise ValueError(f"spacing: expected a number > 0, got {self.spacing!r}")
        h, e = float(self.spacing), self.half_extent
        if not (isinstance(e, int | float) and 0.5 * h <= e <= h):
            raise ValueError(
                f"half_extent: expected spacing/2 <= half_extent <= spacing = {h}, got {e!r}"
            )
        check_resolution(self.resolution, "resolution")
        check_rank(self.density_rank, "density_rank")
        check_rank(self.app_rank, "app_rank")


@dataclass(frozen=True)
class Covering:
    """The (point, local tensor) pairs of one scale from the covering lookup.

    Attributes
    ----------
    point
        Point index of each pair ``(P,)``.
    tensor
        Local tensor id of each pair ``(P,)``.
    local
        Point in the tensor's local coordinates, ``(P, 3)`` in ``[-1, 1]``.
    weight
        Aggregation weight, normalised to sum 1 over the pairs of each covered point.
    """

    point: torch.Tensor
    tensor: torch.Tensor
    local: torch.Tensor
    weight: torch.Tensor


def occupancy_from_density(
    density: Callable[[torch.Tensor], torch.Tensor],
    box: Box,
    resolution: int,
    threshold: float,
    *,
    dilate: int = 1,
    dtype: torch.dtype = torch.float32,
    chunk: int = 65536,
) -> torch.Tensor:
    """Coarse occupancy: the cells of a ``resolution^3`` grid with centre density > ``threshold``.

    Parameters
    ----------
    density
        ``density(points (N, 3)) -> (N,)`` (e.g. a trained coarse field's activated density).
    box
        The box the grid covers.
    resolution
        Cells per axis (>= 2).
    threshold
        Cells with ``density(centre) > threshold`` are occupied.
    dilate
        Grow the occupied set by this many cells (>= 0), to cover the structures' margins.
    dtype, chunk
        Dtype of the points and points per call of ``density``.

    Returns
    -------
    torch.Tensor
        Bool ``(resolution, resolution, resolution)``, axes x, y, z.
    """
    if not isinstance(box, Box):
        raise TypeError(f"box: expected a Box, got {type(box).__name__}")
    n = check_resolution(resolution, "resolution")
    if isinstance(dilate, bool) or not isinstance(dilate, int) or dilate < 0:
        raise ValueError(f"dilate: expected an integer >= 0, got {dilate!r}")
    axes = [
        torch.linspace(lo + (hi - lo) / (2 * n), hi - (hi - lo) / (2 * n), n, dtype=dtype)
        for lo, hi in zip(box.low, box.high, strict=True)
    ]
    pts = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)
    with torch.no_grad():
        values = torch.cat([density(pts[i : i + chunk]) for i in range(0, pts.shape[0], chunk)])
    occ = (values > threshold).reshape(n, n, n)
    if dilate:
        k = 2 * dilate + 1
        occ = torch.nn.functional.max_pool3d(
            occ[None, None].to(dtype), kernel_size=k, stride=1, padding=dilate
        )[0, 0].bool()
    return occ


class _Scale(torch.nn.Module):
    """Lattice, node table, centres and lines of one scale."""

    def __init__(
        self,
        scale: LocalScale,
        box: Box,
        occupancy: torch.Tensor,
        app_dim: int,
        init_scale: float,
        generator: torch.Generator | None,
        dtype: torch.dtype,
    ) -> None:
        super().__init__()
        self.spec = scale
        h, e = float(scale.spacing), float(scale.half_extent)
        counts = [int(math.ceil(s / h - 1e-9)) + 1 for s in box.size]  # nodes per axis
        low = torch.tensor(box.low, dtype=torch.float64)
        grids = torch.meshgrid(*[torch.arange(c) for c in counts], indexing="ij")
        nodes = torch.stack(grids, dim=-1).reshape(-1, 3)
        centres = low + h * nodes.to(torch.float64)
        # occupied cells as boxes; a node is kept if its cube meets one of them
        n_occ = occupancy.shape
        cell = torch.tensor(
            [s / n for s, n in zip(box.size, n_occ, strict=True)], dtype=torch.float64
        )
        occ_idx = torch.nonzero(occupancy).to(torch.float64)
        occ_centres = low + (occ_idx + 0.5) * cell
        reach = e + 0.5 * cell
        keep = torch.zeros(centres.shape[0], dtype=torch.bool)
        for i in range(0, centres.shape[0], 512):
            diff = (centres[i : i + 512, None, :] - occ_centres[None]).abs()
            keep[i : i + 512] = (diff < reach).all(dim=-1).any(dim=1)
        table = torch.full((centres.shape[0],), -1, dtype=torch.int64)
        table[keep] = torch.arange(int(keep.sum()))
        self.register_buffer("table", table.reshape(counts))
        self.register_buffer("centres", centres[keep].to(dtype))
        t, g = int(keep.sum()), scale.resolution
        self.density_lines = _init((3, t, g, scale.density_rank), init_scale, generator, dtype)
        self.app_lines = _init((3, t, g, scale.app_rank), init_scale, generator, dtype)
        self.basis = torch.nn.Linear(scale.app_rank, app_dim, bias=False, dtype=dtype)
        with torch.no_grad():
            bound = 1.0 / scale.app_rank**0.5
            w = 2 * torch.rand(app_dim, scale.app_rank, generator=generator, dtype=dtype) - 1
            self.basis.weight.copy_(w * bound)

    @property
    def n_tensors(self) -> int:
        return int(self.centres.shape[0])


class LocalCPField(FeatureField):
    """Strivec: sparse multi-scale local tri-vector tensors with top-K inverse-distance blending.

    Parameters
    ----------
    box
        The scene box (lattices start at ``box.low``).
    scales
        One :class:`LocalScale` per scale (coarse to fine).
    occupancy
        Bool grid ``(n_x, n_y, n_z)`` of occupied cells over ``box`` (a coarse occupancy pass,
        e.g. :func:`occupancy_from_density`); local tensors are placed only near them.
    top_k
        Local tensors blended per point and scale (1 to 8).
    weighting
        ``"inverse"`` (1/d), ``"inverse_square"`` (1/d^2) or ``"uniform"``.
    app_dim
        Appearance features.
    init_scale, generator, dtype
        Gaussian initial line values (standard deviation), their generator, the dtype.

    Raises
    ------
    ValueError, TypeError
        On an empty ``scales`` list, a bad occupancy grid, ``top_k`` outside 1..8, an unknown
        ``weighting``, or an occupancy grid with no local tensor at some scale.

    References
    ----------
    arXiv 2307.13226 (Strivec), section 3.
    """

    def __init__(
        self,
        box: Box,
        scales: Sequence[LocalScale],
        occupancy: torch.Tensor,
        *,
        top_k: int = 4,
        weighting: Weighting = "inverse",
        app_dim: int = 27,
        init_scale: float = 0.3,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(box, app_dim)
        if not scales or not all(isinstance(s, LocalScale) for s in scales):
            raise ValueError(
                f"scales: expected a non-empty sequence of LocalScale, got {scales!r}"
            )
        if not isinstance(occupancy, torch.Tensor) or occupancy.dtype != torch.bool:
            raise TypeError("occupancy: expected a bool torch.Tensor (n_x, n_y, n_z)")
        if occupancy.ndim != 3 or min(occupancy.shape) < 1:
            raise ValueError(f"occupancy: expected a 3D grid, got shape {tuple(occupancy.shape)}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= 8:
            raise ValueError(f"top_k: expected an integer in 1..8, got {top_k!r}")
        if weighting not in ("inverse", "inverse_square", "uniform"):
            raise ValueError(
                f"weighting: expected 'inverse', 'inverse_square' or 'uniform', got {weighting!r}"
            )
        self.top_k = top_k
        self.weighting = weighting
        self.scales = torch.nn.ModuleList(
            [
                _Scale(s, box, occupancy.cpu(), app_dim, init_scale, generator, dtype)
                for s in scales
            ]
        )
        for i, s in enumerate(self.scales):
            if s.n_tensors == 0:
                raise ValueError(f"occupancy: no occupied cell near the lattice of scale {i}")

    @property
    def n_tensors(self) -> tuple[int, ...]:
        """Local tensors per scale."""
        return tuple(s.n_tensors for s in self.scales)

    @property
    def resolution(self) -> tuple[int, ...]:
        """Nodes per local line, per scale."""
        return tuple(int(s.density_lines.shape[2]) for s in self.scales)

    def upsample(self, resolution: int | tuple[int, ...]) -> None:
        """Resample the local lines of each scale to ``resolution[s]`` nodes."""
        res = (resolution,) * len(self.scales) if isinstance(resolution, int) else resolution
        if len(res) != len(self.scales):
            raise ValueError(f"resolution: expected {len(self.scales)} values, got {resolution!r}")
        for g in res:
            check_resolution(g, "resolution")
        for s, g in zip(self.scales, res, strict=True):
            for name in ("density_lines", "app_lines"):
                _replace(s, name, upsample_line(getattr(s, name).detach(), g))

    # ----------------------------------------------------------------- lookup

    def _weights(self, d: torch.Tensor) -> torch.Tensor:
        if self.weighting == "inverse":
            return 1.0 / (d + 1e-6)
        if self.weighting == "inverse_square":
            return 1.0 / (d * d + 1e-12)
        return torch.ones_like(d)

    def covering(self, x: torch.Tensor, scale: int) -> Covering:
        """The top-K covering local tensors of each point at ``scale`` (lattice-cell lookup)."""
        _check_points(x)
        s = self.scales[scale]
        h, e = float(s.spec.spacing), float(s.spec.half_extent)
        x = x.detach()
        low = torch.tensor(self.box.low, dtype=x.dtype, device=x.device)
        counts = torch.tensor(s.table.shape, device=x.device)
        rel = (x - low) / h
        cell = torch.minimum(rel.floor().long().clamp(min=0), counts - 2)
        corners = torch.tensor(_CORNERS, device=x.device)
        nodes = cell[:, None, :] + corners  # (N, 8, 3)
        strides = torch.tensor(s.table.stride(), device=x.device)
        ids = s.table.reshape(-1).index_select(0, (nodes * strides).sum(-1).reshape(-1))
        ids = ids.reshape(-1, 8)
        diff = x[:, None, :] - (low + h * nodes.to(x.dtype))
        ok = (ids >= 0) & (diff.abs().amax(dim=-1) <= e)
        dist = diff.norm(dim=-1)
        if self.top_k < 8:
            masked = torch.where(ok, dist, torch.full_like(dist, math.inf))
            sel = torch.topk(masked, self.top_k, dim=1, largest=False).indices
            ids, diff, ok, dist = (
                ids.gather(1, sel),
                diff.gather(1, sel[..., None].expand(-1, -1, 3)),
                ok.gather(1, sel),
                dist.gather(1, sel),
            )
        k = ids.shape[1]
        flat = torch.nonzero(ok.reshape(-1))[:, 0]  # pair = point * k + slot
        point = torch.div(flat, k, rounding_mode="floor")
        w = self._weights(dist.reshape(-1).index_select(0, flat))
        total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device).index_add_(0, point, w)
        tensor = ids.reshape(-1).index_select(0, flat)
        local = diff.reshape(-1, 3).index_select(0, flat) / e
        return Covering(point, tensor, local, w / total.index_select(0, point))

    @staticmethod
    def _tri_vector(
        lines: torch.Tensor, tensor: torch.Tensor, local: torch.Tensor
    ) -> torch.Tensor:
        """Per-component products of the lines ``(3, T, G, R)`` of ``tensor`` at ``local``."""
        _, t, g, r = lines.shape
        out = None
        for m in range(3):
            i0, a = _taps(local[:, m], g)
            flat = lines[m].reshape(t * g, r)
            idx = tensor * g + i0
            a = a.unsqueeze(-1)
            v = flat.index_select(0, idx) * (1.0 - a) + flat.index_select(0, idx + 1) * a
            out = v if out is None else out * v
        return out

    def _aggregate(self, x: torch.Tensor, kind: str) -> list[torch.Tensor]:
        per_scale = []
        for i, s in enumerate(self.scales):
            cov = self.covering(x, i)
            lines = s.density_lines if kind == "density" else s.app_lines
            values = self._tri_vector(lines, cov.tensor, cov.local) * cov.weight[:, None]
            acc = torch.zeros(x.shape[0], values.shape[1], dtype=values.dtype, device=x.device)
            per_scale.append(acc.index_add(0, cov.point, values))
        return per_scale

    def density(
        self, x: torch.Tensor, *, method: Literal["lookup", "dense"] = "lookup"
    ) -> torch.Tensor:
        """Density feature at points ``(N, 3)``: sum over scales of the blended local densities.

        ``method="dense"`` evaluates every local tensor at every point (the all-pairs reference).
        """
        if method == "dense":
            return sum(v.sum(dim=1) for v in self._dense(x, "density"))
        if method != "lookup":
            raise ValueError(f"method: expected 'lookup' or 'dense', got {method!r}")
        return sum(v.sum(dim=1) for v in self._aggregate(x, "density"))

    def appearance(
        self, x: torch.Tensor, *, method: Literal["lookup", "dense"] = "lookup"
    ) -> torch.Tensor:
        """Appearance features ``(N, app_dim)``: per-scale basis matrices, summed over scales."""
        if method not in ("lookup", "dense"):
            raise ValueError(f"method: expected 'lookup' or 'dense', got {method!r}")
        parts = self._dense(x, "app") if method == "dense" else self._aggregate(x, "app")
        return sum(s.basis(v) for s, v in zip(self.scales, parts, strict=True))

    def _dense(self, x: torch.Tensor, kind: str) -> list[torch.Tensor]:
        """All-pairs evaluation: every tensor at every point, then top-K by distance."""
        _check_points(x)
        out = []
        for s in self.scales:
            e = float(s.spec.half_extent)
            diff = x.detach()[:, None, :] - s.centres[None]  # (N, T, 3)
            dist = diff.norm(dim=-1)
            ok = diff.abs().amax(dim=-1) <= e
            masked = torch.where(ok, dist, torch.full_like(dist, math.inf))
            k = min(self.top_k, masked.shape[1])
            sel = torch.topk(masked, k, dim=1, largest=False).indices
            keep = torch.zeros_like(ok).scatter_(1, sel, True) & ok
            w = torch.where(keep, self._weights(dist), torch.zeros_like(dist))
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-30)
            lines = s.density_lines if kind == "density" else s.app_lines
            _, t, g, r = lines.shape
            u = (diff / e).clamp(-1.0, 1.0)
            prod = None
            for m in range(3):
                i0, a = _taps(u[..., m], g)  # (N, T)
                ar = torch.arange(t, device=x.device)
                v = lines[m][ar, i0] * (1.0 - a[..., None]) + lines[m][ar, i0 + 1] * a[..., None]
                prod = v if prod is None else prod * v  # (N, T, R)
            out.append((prod * w[..., None]).sum(dim=1))
        return out
