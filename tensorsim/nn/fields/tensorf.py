"""TensoRF feature fields: a global CP (lines) or VM (plane x line) factorization over a box.

A field maps points ``x`` in its :class:`~tensorsim.nn.fields.Box` to a density feature
(a scalar, before the renderer's softplus) and appearance features (``app_dim`` values that the
shader turns into colour). Both are low-rank 4D tensors (3D grid x channels):

- **CP**: ``sigma(x) = sum_r X_r(x) Y_r(y) Z_r(z)``; appearance: the ``R_c`` per-component
  products ``X_r(x) Y_r(y) Z_r(z)`` times a basis matrix ``B`` (``R_c x app_dim``, no bias).
  The point values are those of :class:`tensorsim.decomp.CP` with the interpolated line values
  as factor rows; :meth:`CPField.density_cp` gives the CP tensor of the density at the grid
  nodes, which :func:`tensorsim.decomp.cp_to_dense` multiplies out.
- **VM**: for each axis ``m`` a plane over the two other axes times a line along ``m``:
  ``sigma(x) = sum_m sum_r P_{m,r}(x_a, x_b) L_{m,r}(x_m)``; appearance: the ``3 R_c``
  products of the three axes concatenated, then ``B``.

Lines and planes are sampled by linear interpolation (``align_corners=True``) and can be
upsampled during training (:meth:`FeatureField.upsample`).

References
----------
A. Chen, Z. Xu, A. Geiger, J. Yu, H. Su, "TensoRF: Tensorial Radiance Fields",
arXiv 2203.09517 (ECCV 2022).
"""

from __future__ import annotations

import logging

import torch

from tensorsim.decomp import CP
from tensorsim.decomp._cpkernels import hadamard
from tensorsim.nn.fields._grid import (
    Box,
    check_rank,
    check_resolution,
    interp_line,
    interp_plane,
    upsample_line,
    upsample_plane,
)

__all__ = ["CPField", "FeatureField", "VMField"]

logger = logging.getLogger(__name__)

#: For axis m of a VM field: the plane's axes (W, H) and the line's axis (TensoRF's modes).
VM_MODES = (((0, 1), 2), ((0, 2), 1), ((1, 2), 0))


class FeatureField(torch.nn.Module):
    """Base class of the factorized feature fields (density feature + appearance features).

    Subclasses implement :meth:`density`, :meth:`appearance_components`, :meth:`upsample` and
    :attr:`resolution`; the appearance features are the components times the basis matrix.

    Attributes
    ----------
    box
        The scene box the field lives in.
    app_dim
        Number of appearance features (the basis matrix's output size).
    """

    box: Box
    app_dim: int

    def __init__(self, box: Box, app_dim: int) -> None:
        super().__init__()
        if not isinstance(box, Box):
            raise TypeError(f"box: expected a Box, got {type(box).__name__}")
        self.box = box
        self.app_dim = check_rank(app_dim, "app_dim")

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Density feature ``(N,)`` at points ``x`` ``(N, 3)`` (before the activation)."""
        raise NotImplementedError

    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """Appearance features ``(N, app_dim)`` at points ``x`` ``(N, 3)``."""
        raise NotImplementedError

    def upsample(self, resolution: int | tuple[int, ...]) -> None:
        """Resample every factor grid to ``resolution`` nodes per line (planes: per side).

        The grids become new Parameter objects (in the order of :meth:`grid_parameters`), so
        an optimizer over the old ones must swap them in and drop their state.
        """
        raise NotImplementedError

    @property
    def resolution(self) -> int | tuple[int, ...]:
        """Current number of grid nodes per line."""
        raise NotImplementedError

    def grid_parameters(self) -> list[torch.nn.Parameter]:
        """The factor grids (lines, planes): trained with the larger learning rate."""
        return [p for name, p in self.named_parameters() if not name.startswith("basis")]

    def network_parameters(self) -> list[torch.nn.Parameter]:
        """The basis matrices (trained with the network learning rate)."""
        return [p for name, p in self.named_parameters() if name.startswith("basis")]

    def n_parameters(self) -> int:
        """Number of trainable values (factor grids and basis matrices)."""
        return sum(p.numel() for p in self.parameters())


def _check_points(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x: expected a torch.Tensor of points (N, 3), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"x: expected points of shape (N, 3), got {tuple(x.shape)}")


def _replace(module: torch.nn.Module, name: str, value: torch.Tensor) -> None:
    """Put a new Parameter holding ``value`` at the dotted ``name`` of ``module``.

    A new object (not new ``.data``): autograd caches the shape of a leaf it has seen, so a
    resampled grid must be a fresh Parameter; optimizers must be told (see
    :meth:`FeatureField.upsample`).
    """
    *path, leaf = name.split(".")
    parent = module
    for part in path:
        parent = getattr(parent, part)
    old = getattr(parent, leaf)
    setattr(
        parent, leaf, torch.nn.Parameter(value.detach().to(dtype=old.dtype, device=old.device))
    )


def _init(
    shape: tuple[int, ...], scale: float, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.nn.Parameter:
    """A Parameter of i.i.d. ``N(0, scale^2)`` values."""
    return torch.nn.Parameter(scale * torch.randn(shape, generator=generator, dtype=dtype))


class CPField(FeatureField):
    """TensoRF-CP: three lines per component for density and for appearance.

    Parameters
    ----------
    box
        The scene box.
    density_rank
        Density components ``R_sigma`` (>= 1).
    app_rank
        Appearance components ``R_c`` (>= 1).
    resolution
        Grid nodes per line (>= 2).
    app_dim
        Appearance features (the basis matrix's output size).
    init_scale
        Standard deviation of the Gaussian initial line values.
    generator
        Seeded generator of the initial values.
    dtype
        Parameter dtype.

    Raises
    ------
    ValueError, TypeError
        On a rank < 1, a resolution < 2 or a box that is not a :class:`Box`.

    References
    ----------
    arXiv 2203.09517 (TensoRF), section 3.2 (CP decomposition).
    """

    def __init__(
        self,
        box: Box,
        *,
        density_rank: int,
        app_rank: int,
        resolution: int,
        app_dim: int = 27,
        init_scale: float = 0.2,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(box, app_dim)
        self.density_rank = check_rank(density_rank, "density_rank")
        self.app_rank = check_rank(app_rank, "app_rank")
        g = check_resolution(resolution, "resolution")
        self.density_lines = torch.nn.ParameterList(
            [_init((g, density_rank), init_scale, generator, dtype) for _ in range(3)]
        )
        self.app_lines = torch.nn.ParameterList(
            [_init((g, app_rank), init_scale, generator, dtype) for _ in range(3)]
        )
        self.basis = torch.nn.Linear(app_rank, app_dim, bias=False, dtype=dtype)
        with torch.no_grad():
            bound = 1.0 / app_rank**0.5
            self.basis.weight.copy_(
                (2 * torch.rand(app_dim, app_rank, generator=generator, dtype=dtype) - 1) * bound
            )

    @property
    def resolution(self) -> int:
        """Grid nodes per line."""
        return int(self.density_lines[0].shape[0])

    def _rows(self, lines: torch.nn.ParameterList, x: torch.Tensor) -> list[torch.Tensor]:
        u = self.box.normalize(x)
        return [interp_line(lines[m], u[:, m]) for m in range(3)]

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Density feature ``sum_r X_r(x) Y_r(y) Z_r(z)`` at points ``(N, 3)``."""
        _check_points(x)
        return hadamard(self._rows(self.density_lines, x)).sum(dim=1)

    def appearance_components(self, x: torch.Tensor) -> torch.Tensor:
        """The ``R_c`` per-component products at points ``(N, 3)``."""
        _check_points(x)
        return hadamard(self._rows(self.app_lines, x))

    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """Appearance features: components times the basis matrix, ``(N, app_dim)``."""
        return self.basis(self.appearance_components(x))

    def density_cp(self) -> CP:
        """The density at the grid nodes as a :class:`tensorsim.decomp.CP` (unit weights)."""
        lines = [p.detach() for p in self.density_lines]
        weights = torch.ones(self.density_rank, dtype=lines[0].dtype, device=lines[0].device)
        return CP(weights, tuple(lines))

    def upsample(self, resolution: int) -> None:
        """Resample every line to ``resolution`` nodes (linear interpolation)."""
        check_resolution(resolution, "resolution")
        for name, p in list(self.named_parameters()):
            if "_lines" in name:
                _replace(self, name, upsample_line(p.detach(), resolution))


class VMField(FeatureField):
    """TensoRF-VM: per axis, planes over the other two axes times lines along it.

    Parameters
    ----------
    box
        The scene box.
    density_rank
        Density components per axis (>= 1).
    app_rank
        Appearance components per axis (>= 1).
    resolution
        Grid nodes per line and per plane side (>= 2).
    app_dim, init_scale, generator, dtype
        As for :class:`CPField`.

    References
    ----------
    arXiv 2203.09517 (TensoRF), section 3.2 (vector-matrix decomposition).
    """

    def __init__(
        self,
        box: Box,
        *,
        density_rank: int,
        app_rank: int,
        resolution: int,
        app_dim: int = 27,
        init_scale: float = 0.1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(box, app_dim)
        self.density_rank = check_rank(density_rank, "density_rank")
        self.app_rank = check_rank(app_rank, "app_rank")
        g = check_resolution(resolution, "resolution")

        def group(rank: int, shape: tuple[int, ...]) -> torch.nn.ParameterList:
            return torch.nn.ParameterList(
                [_init((*shape, rank), init_scale, generator, dtype) for _ in range(3)]
            )

        self.density_planes = group(density_rank, (g, g))
        self.density_lines = group(density_rank, (g,))
        self.app_planes = group(app_rank, (g, g))
        self.app_lines = group(app_rank, (g,))
        self.basis = torch.nn.Linear(3 * app_rank, app_dim, bias=False, dtype=dtype)
        with torch.no_grad():
            bound = 1.0 / (3 * app_rank) ** 0.5
            shape = (app_dim, 3 * app_rank)
            self.basis.weight.copy_(
                (2 * torch.rand(shape, generator=generator, dtype=dtype) - 1) * bound
            )

    @property
    def resolution(self) -> int:
        """Grid nodes per line and plane side."""
        return int(self.density_lines[0].shape[0])

    def _components(self, planes, lines, x: torch.Tensor) -> list[torch.Tensor]:
        _check_points(x)
        u = self.box.normalize(x)
        out = []
        for m, ((a, b), c) in enumerate(VM_MODES):
            out.append(interp_plane(planes[m], u[:, a], u[:, b]) * interp_line(lines[m], u[:, c]))
        return out

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Density feature ``sum_m sum_r P_{m,r} L_{m,r}`` at points ``(N, 3)``."""
        parts = self._components(self.density_planes, self.density_lines, x)
        return sum(p.sum(dim=1) for p in parts)

    def appearance_components(self, x: torch.Tensor) -> torch.Tensor:
        """The ``3 R_c`` plane x line products at points ``(N, 3)``."""
        return torch.cat(self._components(self.app_planes, self.app_lines, x), dim=1)

    def appearance(self, x: torch.Tensor) -> torch.Tensor:
        """Appearance features: components times the basis matrix, ``(N, app_dim)``."""
        return self.basis(self.appearance_components(x))

    def upsample(self, resolution: int) -> None:
        """Resample every plane and line to ``resolution`` nodes per side."""
        check_resolution(resolution, "resolution")
        for name, p in list(self.named_parameters()):
            if "_planes" in name:
                _replace(self, name, upsample_plane(p.detach(), resolution))
            elif "_lines" in name:
                _replace(self, name, upsample_line(p.detach(), resolution))
