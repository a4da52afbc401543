"""Radiance-field models: TensoRF-CP, TensoRF-VM and Strivec, their settings and builder.

A :class:`ModelSpec` says everything about one model: the feature field (``cp``: lines of
:class:`~tensorsim.nn.fields.CPField`; ``vm``: plane x line per axis of
:class:`~tensorsim.nn.fields.VMField`; ``strivec``: multi-scale local tri-vector tensors of
:class:`~tensorsim.nn.fields.LocalCPField`), its density rank (the appearance has
``app_factor`` times as many components), its initial and final resolutions, and the shader
and ray sampling of the :class:`~tensorsim.nn.render.RadianceField` around it.
:func:`build_model` makes it from a seed. :class:`TensoRFParams` and :class:`StrivecParams`
are the configuration tables of a family of models (one per density rank of ``ranks``);
:func:`model_specs` lists the models of several families in order. Coarse-to-fine training
goes through the resolutions of :func:`resolution_schedule` (the training loop is
:func:`solvers.fields.train_model`).

Importing this module imports torch (``import tensorsim`` does not).

References
----------
A. Chen, Z. Xu, A. Geiger, J. Yu, H. Su, "TensoRF: Tensorial Radiance Fields",
arXiv 2203.09517 (ECCV 2022). Q. Gao, Q. Xu, H. Su, U. Neumann, Z. Xu, "Strivec: Sparse
Tri-Vector Radiance Fields", arXiv 2307.13226 (ICCV 2023).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from tensorsim.config import ConfigError, Params, param
from tensorsim.nn.fields import Box, CPField, LocalCPField, LocalScale, VMField
from tensorsim.nn.render import RadianceField, Shader

__all__ = [
    "MODELS",
    "ModelSpec",
    "StrivecParams",
    "TensoRFParams",
    "build_model",
    "model_specs",
    "resolution_schedule",
]

logger = logging.getLogger(__name__)

#: The model families.
MODELS = ("cp", "vm", "strivec")


@dataclass(frozen=True)
class ModelSpec:
    """One radiance-field model.

    Attributes
    ----------
    kind
        ``"cp"``, ``"vm"`` or ``"strivec"``.
    rank
        Density components (per axis for VM, per local tensor and scale for Strivec); the
        appearance has ``app_factor * rank``.
    app_factor
        Appearance components per density component.
    resolution, initial_resolution
        Final and initial nodes per line (per scale for Strivec).
    spacings, extent_ratio, top_k, weighting
        Strivec: lattice spacings per scale, half-extent / spacing, blended tensors, weights.
    app_dim, shader_hidden
        Appearance features and shader MLP width.
    n_samples
        Samples per ray.
    """

    kind: Literal["cp", "vm", "strivec"]
    rank: int
    app_factor: int
    resolution: tuple[int, ...]
    initial_resolution: tuple[int, ...]
    spacings: tuple[float, ...] = ()
    extent_ratio: float = 0.75
    top_k: int = 4
    weighting: str = "inverse"
    app_dim: int = 27
    shader_hidden: int = 64
    n_samples: int = 48


@dataclass(frozen=True)
class TensoRFParams(Params):
    """A family of global TensoRF models (CP or VM), one per density rank."""

    ranks: tuple[int, ...] = param((8, 24, 48), "density ranks", ge=1)
    app_factor: int = param(2, "appearance components per density component", ge=1)
    resolution: int = param(64, "final nodes per line", ge=2)
    initial_resolution: int = param(32, "initial nodes per line", ge=2)

    def specs(self, kind: str, **shading: int) -> list[ModelSpec]:
        """The models of ``kind`` (``"cp"`` or ``"vm"``), one per rank.

        ``shading`` sets the :class:`ModelSpec` fields ``app_dim``, ``shader_hidden`` and
        ``n_samples``.
        """
        if kind not in ("cp", "vm"):
            raise ValueError(f"kind: expected 'cp' or 'vm', got {kind!r}")
        res, init = (self.resolution,), (self.initial_resolution,)
        return [ModelSpec(kind, r, self.app_factor, res, init, **shading) for r in self.ranks]


@dataclass(frozen=True)
class StrivecParams(Params):
    """A family of Strivec models (local tensors on a multi-scale lattice), one per rank.

    Attributes
    ----------
    extent_ratio
        Half-extent of a local cube / spacing (0.5 to 1: a point is covered by the tensors
        of its lattice cell's corners only).
    weighting
        ``inverse``, ``inverse_square`` or ``uniform`` weights of the blended tensors.
    """

    ranks: tuple[int, ...] = param((2, 4, 8), "density components per local tensor", ge=1)
    app_factor: int = param(2, "appearance components per density component", ge=1)
    spacings: tuple[float, ...] = param((0.5, 0.25), "lattice spacing per scale", gt=0.0)
    extent_ratio: float = param(0.75, "half-extent / spacing", ge=0.5, le=1.0)
    resolutions: tuple[int, ...] = param((12, 8), "final nodes per local line", ge=2)
    initial_resolutions: tuple[int, ...] = param((6, 4), "initial nodes per local line", ge=2)
    top_k: int = param(4, "tensors blended per point", ge=1, le=8)
    weighting: Literal["inverse", "inverse_square", "uniform"] = param(
        "inverse", "aggregation weights"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (len(self.spacings) == len(self.resolutions) == len(self.initial_resolutions)):
            raise ConfigError(
                "config keys 'spacings', 'resolutions', 'initial_resolutions': expected one "
                "value per scale each, got "
                f"{len(self.spacings)}, {len(self.resolutions)}, {len(self.initial_resolutions)}"
            )

    def specs(self, kind: str = "strivec", **shading: int) -> list[ModelSpec]:
        """The Strivec models, one per rank; ``shading``: see :meth:`TensoRFParams.specs`."""
        if kind != "strivec":
            raise ValueError(f"kind: expected 'strivec', got {kind!r}")
        return [
            ModelSpec(
                "strivec", r, self.app_factor, self.resolutions, self.initial_resolutions,
                spacings=self.spacings, extent_ratio=self.extent_ratio, top_k=self.top_k,
                weighting=self.weighting, **shading,
            )
            for r in self.ranks
        ]  # fmt: skip


def model_specs(
    models: Sequence[str],
    tables: Mapping[str, TensoRFParams | StrivecParams],
    **shading: int,
) -> list[ModelSpec]:
    """The models of the families ``models`` in order, ``tables[kind]`` configuring each.

    ``shading`` (``app_dim``, ``shader_hidden``, ``n_samples``) is shared by every model.
    """
    return [spec for kind in models for spec in tables[kind].specs(kind, **shading)]


def build_model(
    spec: ModelSpec,
    box: Box,
    *,
    seed: int,
    occupancy: torch.Tensor | None = None,
    resolution: tuple[int, ...] | None = None,
) -> RadianceField:
    """A fresh model of ``spec`` over ``box`` at ``resolution`` (default: the initial one).

    The field's and then the shader's initial values are drawn from one generator seeded by
    ``seed``; the sample jitter of the :class:`~tensorsim.nn.render.RadianceField` is seeded
    by ``seed`` too. Rays that miss the box (through the image corners) see the background.
    Strivec needs the coarse ``occupancy`` grid (bool, ``(n, n, n)`` over ``box``).
    """
    g = torch.Generator().manual_seed(seed)
    res = spec.initial_resolution if resolution is None else resolution
    kw: dict[str, Any] = {"app_dim": spec.app_dim, "generator": g}
    app_rank = spec.app_factor * spec.rank
    if spec.kind == "cp":
        field: Any = CPField(
            box, density_rank=spec.rank, app_rank=app_rank, resolution=res[0], **kw
        )
    elif spec.kind == "vm":
        field = VMField(box, density_rank=spec.rank, app_rank=app_rank, resolution=res[0], **kw)
    elif spec.kind == "strivec":
        if occupancy is None:
            raise ValueError("occupancy: Strivec needs the coarse occupancy grid")
        scales = [
            LocalScale(h, spec.extent_ratio * h, r, spec.rank, app_rank)
            for h, r in zip(spec.spacings, res, strict=True)
        ]
        field = LocalCPField(
            box, scales, occupancy, top_k=spec.top_k, weighting=spec.weighting, **kw
        )
    else:
        raise ValueError(f"kind: expected 'cp', 'vm' or 'strivec', got {spec.kind!r}")
    shader = Shader(spec.app_dim, hidden=spec.shader_hidden, generator=g)
    return RadianceField(field, shader, n_samples=spec.n_samples, seed=seed, allow_miss=True)


def resolution_schedule(spec: ModelSpec, n_upsamples: int) -> list[tuple[int, ...]]:
    """Resolutions after each upsampling: log-spaced from the initial to the final one."""
    out = []
    for k in range(1, n_upsamples + 1):
        f = k / n_upsamples
        out.append(
            tuple(
                round(math.exp((1 - f) * math.log(a) + f * math.log(b)))
                for a, b in zip(spec.initial_resolution, spec.resolution, strict=True)
            )
        )
    return out
