"""Factorized feature fields for radiance fields: TensoRF (CP, VM) and Strivec (local CP).

- :mod:`~tensorsim.nn.fields._grid`: :class:`Box`, linear interpolation of lines and planes
  (``grid_sample`` semantics, ``align_corners=True``) and their upsampling;
- :mod:`~tensorsim.nn.fields.tensorf`: :class:`CPField` and :class:`VMField` (arXiv 2203.09517);
- :mod:`~tensorsim.nn.fields.strivec`: :class:`LocalCPField`, sparse multi-scale local
  tri-vector tensors with a covering lookup (arXiv 2307.13226).

Volume rendering and the shading network are in :mod:`tensorsim.nn.render`.
"""

from tensorsim.nn.fields._grid import (
    Box,
    interp_line,
    interp_plane,
    upsample_line,
    upsample_plane,
)
from tensorsim.nn.fields.strivec import (
    Covering,
    LocalCPField,
    LocalScale,
    occupancy_from_density,
)
from tensorsim.nn.fields.tensorf import CPField, FeatureField, VMField

__all__ = [
    "Box",
    "CPField",
    "Covering",
    "FeatureField",
    "LocalCPField",
    "LocalScale",
    "VMField",
    "interp_line",
    "interp_plane",
    "occupancy_from_density",
    "upsample_line",
    "upsample_plane",
]
