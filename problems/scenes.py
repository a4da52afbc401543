"""Procedural radiance-field scenes: analytic density and colour, pinhole cameras, true renders.

A :class:`Scene` lives in the cube ``[-h, h]^3`` and holds

- **soft blobs**: ``peak * exp(-|x - c|^2 / (2 r^2))``;
- **rotated thin rods**: ``peak * exp(-d_perp^2 / (2 w^2)) * cap(s)`` around segments of
  length ``L`` along random directions far from the coordinate axes (``cap`` a smooth logistic
  end). An axis-aligned rod is a rank-one (separable) function of ``(x, y, z)``; a rotated one
  is not (its mode-1 unfolding over the box has numerical rank ~14 at 1e-2), but over a cube of
  about one width around a point of its axis it is nearly rank-one (second singular value about
  a tenth of the first): the case for local tensors (Strivec, arXiv 2307.13226, section 1);
- a smooth colour field ``c_k(x) = 0.5 + 0.4 sin(a_k . x + phi_k)`` (view independent).

Cameras are pinholes (:class:`Camera`: camera-to-world rotation with columns right, up, back,
looking along ``-z``) on an orbit around the origin (:func:`orbit_cameras`). True images are
rendered by :func:`tensorsim.nn.render.volume_render` with many samples in float64 and a white
background (:func:`make_views`); rays that miss the cube are background.

This module builds torch tensors from a seed and imports neither MPI, HDF5 nor solvers.

References
----------
arXiv 2203.09517 (TensoRF), arXiv 2307.13226 (Strivec); the tiny analytic scene of the
project's research notes (section 5.3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from tensorsim.config import Params, param
from tensorsim.nn.fields import Box
from tensorsim.nn.render import volume_render

__all__ = [
    "Camera",
    "Scene",
    "SceneParams",
    "Views",
    "camera_rays",
    "look_at",
    "make_scene",
    "make_views",
    "orbit_cameras",
    "render_truth",
    "rod_density",
]


@dataclass(frozen=True)
class SceneParams(Params):
    """A procedural scene and its views.

    Attributes
    ----------
    half_size
        The scene is the cube ``[-half_size, half_size]^3``.
    n_blobs, blob_radius
        Soft Gaussian blobs and their radius (standard deviation).
    n_rods, rod_width, rod_length
        Rotated thin rods: count, Gaussian cross-section width, length.
    peak
        Peak density (per scene unit) of blobs and rods.
    image_size
        Pixels per image side.
    n_train, n_test
        Training and held-out views.
    camera_radius, fov_deg
        Orbit radius and full field of view of the cameras.
    truth_samples
        Samples per ray of the true renders.
    seed
        Seed of the scene's geometry and colours.
    """

    half_size: float = param(1.0, "half-width of the scene cube", gt=0.0)
    n_blobs: int = param(3, "soft Gaussian blobs", ge=0)
    blob_radius: float = param(0.18, "blob radius (standard deviation)", gt=0.0)
    n_rods: int = param(6, "rotated thin rods", ge=0)
    rod_width: float = param(0.04, "rod cross-section width (standard deviation)", gt=0.0)
    rod_length: float = param(1.2, "rod length", gt=0.0)
    peak: float = param(40.0, "peak density", gt=0.0)
    image_size: int = param(32, "pixels per image side", ge=2)
    n_train: int = param(24, "training views", ge=1)
    n_test: int = param(8, "held-out views", ge=1)
    camera_radius: float = param(3.0, "camera orbit radius", gt=0.0)
    fov_deg: float = param(40.0, "full field of view (degrees)", gt=0.0, lt=180.0)
    truth_samples: int = param(256, "samples per ray of the true renders", ge=1)
    seed: int = param(0, "seed of geometry and colours", ge=0)


@dataclass(frozen=True)
class Scene:
    """Analytic density and colour (float64 parameters; evaluate at any dtype).

    Attributes
    ----------
    box
        The scene cube.
    blob_centres, rod_centres, rod_directions
        ``(n_blobs, 3)``, ``(n_rods, 3)``, ``(n_rods, 3)`` (unit directions).
    colour_waves, colour_phases
        ``(3, 3)`` wave vectors ``a_k`` and ``(3,)`` phases of the colour field.
    params
        The parameters.
    """

    box: Box
    blob_centres: torch.Tensor
    rod_centres: torch.Tensor
    rod_directions: torch.Tensor
    colour_waves: torch.Tensor
    colour_phases: torch.Tensor
    params: SceneParams

    def density(self, x: torch.Tensor) -> torch.Tensor:
        """Density ``(N,)`` at points ``(N, 3)``."""
        p = self.params
        out = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if p.n_blobs:
            c = self.blob_centres.to(x)
            d2 = ((x[:, None, :] - c[None]) ** 2).sum(-1)
            out = out + p.peak * torch.exp(-d2 / (2 * p.blob_radius**2)).sum(1)
        if p.n_rods:
            out = out + p.peak * rod_density(
                x, self.rod_centres.to(x), self.rod_directions.to(x), p.rod_width, p.rod_length
            )
        return out

    def colour(self, x: torch.Tensor, directions: torch.Tensor | None = None) -> torch.Tensor:
        """Colour ``(N, 3)`` in (0.1, 0.9) at points ``(N, 3)`` (independent of direction)."""
        return 0.5 + 0.4 * torch.sin(x @ self.colour_waves.to(x).T + self.colour_phases.to(x))


def rod_density(
    x: torch.Tensor, centres: torch.Tensor, directions: torch.Tensor, width: float, length: float
) -> torch.Tensor:
    """Sum over rods of ``exp(-d_perp^2 / (2 width^2)) * cap(s)`` at points ``(N, 3)``.

    ``s`` is the coordinate along the rod from its centre, ``d_perp`` the distance to its
    axis, ``cap(s) = sigmoid((length / 2 - |s|) / width)``.
    """
    rel = x[:, None, :] - centres[None]  # (N, n, 3)
    s = (rel * directions[None]).sum(-1)
    perp2 = (rel * rel).sum(-1) - s * s
    cap = torch.sigmoid((0.5 * length - s.abs()) / width)
    return (torch.exp(-perp2.clamp_min(0) / (2 * width**2)) * cap).sum(1)


def make_scene(params: SceneParams) -> Scene:
    """Draw a scene: blob centres, rods at oblique directions, colour waves (seeded)."""
    if not isinstance(params, SceneParams):
        raise TypeError(f"params: expected SceneParams, got {type(params).__name__}")
    rng = np.random.default_rng([params.seed, 7])
    h = params.half_size
    blobs = rng.uniform(-0.5 * h, 0.5 * h, size=(params.n_blobs, 3))
    centres = rng.uniform(-0.35 * h, 0.35 * h, size=(params.n_rods, 3))
    dirs = []
    while len(dirs) < params.n_rods:  # oblique: no component above 0.8 in magnitude
        v = rng.standard_normal(3)
        v /= np.linalg.norm(v)
        if np.abs(v).max() < 0.8:
            dirs.append(v)
    waves = rng.normal(0.0, 2.0 / h, size=(3, 3))
    phases = rng.uniform(0, 2 * math.pi, size=3)
    t = torch.tensor
    return Scene(
        box=Box.cube(h),
        blob_centres=t(blobs, dtype=torch.float64),
        rod_centres=t(centres, dtype=torch.float64),
        rod_directions=t(np.asarray(dirs).reshape(-1, 3), dtype=torch.float64),
        colour_waves=t(waves, dtype=torch.float64),
        colour_phases=t(phases, dtype=torch.float64),
        params=params,
    )


@dataclass(frozen=True)
class Camera:
    """A pinhole camera.

    Attributes
    ----------
    rotation
        ``(3, 3)`` camera-to-world rotation: columns right, up, back (the camera looks along
        its ``-z``); a proper rotation (``R^T R = I``, ``det R = +1``).
    position
        ``(3,)`` centre of projection.
    focal
        Focal length in pixels (> 0).
    width, height
        Image size in pixels (>= 1).

    Raises
    ------
    ValueError
        If ``rotation`` is not a proper rotation (to 1e-6) or another value is out of range.
    """

    rotation: np.ndarray
    position: np.ndarray
    focal: float
    width: int
    height: int

    def __post_init__(self) -> None:
        r = np.asarray(self.rotation, dtype=np.float64)
        if r.shape != (3, 3) or not np.all(np.isfinite(r)):
            raise ValueError(f"rotation: expected a finite (3, 3) matrix, got shape {r.shape}")
        ortho = float(np.abs(r.T @ r - np.eye(3)).max())
        det = float(np.linalg.det(r))
        if ortho > 1e-6 or abs(det - 1.0) > 1e-6:
            raise ValueError(
                "rotation: expected a proper rotation (R^T R = I and det R = +1), got "
                f"max |R^T R - I| = {ortho:.2e}, det R = {det:.6f}"
            )
        pos = np.asarray(self.position, dtype=np.float64)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValueError(f"position: expected 3 finite numbers, got {self.position!r}")
        if not (math.isfinite(self.focal) and self.focal > 0):
            raise ValueError(f"focal: expected a number > 0, got {self.focal!r}")
        for name in ("width", "height"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {v!r}")
        object.__setattr__(self, "rotation", r)
        object.__setattr__(self, "position", pos)


def look_at(
    position: np.ndarray,
    *,
    target: tuple[float, float, float] = (0.0, 0.0, 0.0),
    up: tuple[float, float, float] = (0.0, 0.0, 1.0),
    fov_deg: float,
    size: int,
) -> Camera:
    """A square camera at ``position`` looking at ``target`` with the given field of view."""
    pos = np.asarray(position, dtype=np.float64)
    back = pos - np.asarray(target, dtype=np.float64)
    if np.linalg.norm(back) == 0:
        raise ValueError("position: must differ from target")
    back /= np.linalg.norm(back)
    right = np.cross(np.asarray(up, dtype=np.float64), back)
    if np.linalg.norm(right) < 1e-9:
        raise ValueError("up: must not be parallel to the viewing direction")
    right /= np.linalg.norm(right)
    cam_up = np.cross(back, right)
    focal = 0.5 * size / math.tan(math.radians(fov_deg) / 2)
    return Camera(np.stack([right, cam_up, back], axis=1), pos, focal, size, size)


def orbit_cameras(
    n: int, *, radius: float, fov_deg: float, size: int, phase: float = 0.0
) -> list[Camera]:
    """``n`` cameras around the origin: azimuths ``2 pi (i + phase) / n``, elevations in +-45 deg.

    The elevation of camera ``i`` is ``45 sin(2 pi 0.618 (i + phase))`` degrees, so views cover
    low and high angles; ``phase = 0.5`` gives views between those of ``phase = 0``.
    """
    cams = []
    for i in range(n):
        az = 2 * math.pi * (i + phase) / n
        el = math.radians(45.0 * math.sin(2 * math.pi * 0.618 * (i + phase)))
        pos = radius * np.array(
            [math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)]
        )
        cams.append(look_at(pos, fov_deg=fov_deg, size=size))
    return cams


def camera_rays(camera: Camera, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Rays ``(height * width, 6)`` through the pixel centres, row by row from the top."""
    if not isinstance(camera, Camera):
        raise TypeError(f"camera: expected a Camera, got {type(camera).__name__}")
    j, i = np.meshgrid(np.arange(camera.height), np.arange(camera.width), indexing="ij")
    x = (i + 0.5 - 0.5 * camera.width) / camera.focal
    y = -(j + 0.5 - 0.5 * camera.height) / camera.focal
    d_cam = np.stack([x, y, -np.ones_like(x)], axis=-1).reshape(-1, 3)
    d = d_cam @ camera.rotation.T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    o = np.broadcast_to(camera.position, d.shape)
    return torch.tensor(np.concatenate([o, d], axis=1), dtype=dtype)


@dataclass(frozen=True)
class Views:
    """Training and held-out rays with their true colours.

    Attributes
    ----------
    train_rays, train_rgb
        ``(n_train * H * W, 6)`` and ``(n_train * H * W, 3)``.
    test_rays, test_rgb
        The held-out views, likewise.
    test_images
        ``(n_test, H, W, 3)`` (the test colours as images).
    """

    train_rays: torch.Tensor
    train_rgb: torch.Tensor
    test_rays: torch.Tensor
    test_rgb: torch.Tensor
    test_images: torch.Tensor


def render_truth(
    scene: Scene, rays: torch.Tensor, *, n_samples: int, chunk: int = 2048
) -> torch.Tensor:
    """True colours of rays ``(N, 6)``: float64 volume rendering with ``n_samples`` samples."""
    rays64 = rays.to(torch.float64)
    out = []
    for i in range(0, rays64.shape[0], chunk):
        out.append(
            volume_render(
                rays64[i : i + chunk],
                scene.box,
                density=scene.density,
                colour=scene.colour,
                n_samples=n_samples,
                allow_miss=True,
            ).rgb
        )
    return torch.cat(out).to(rays.dtype)


def make_views(scene: Scene, *, dtype: torch.dtype = torch.float32) -> Views:
    """Cameras on two interleaved orbits (train: phase 0, test: phase 0.5) and true renders."""
    p = scene.params
    kw = {"radius": p.camera_radius, "fov_deg": p.fov_deg, "size": p.image_size}
    train = [camera_rays(c, dtype=dtype) for c in orbit_cameras(p.n_train, **kw)]
    test = [camera_rays(c, dtype=dtype) for c in orbit_cameras(p.n_test, phase=0.5, **kw)]
    train_rays, test_rays = torch.cat(train), torch.cat(test)
    train_rgb = render_truth(scene, train_rays, n_samples=p.truth_samples)
    test_rgb = render_truth(scene, test_rays, n_samples=p.truth_samples)
    images = test_rgb.reshape(p.n_test, p.image_size, p.image_size, 3)
    return Views(train_rays, train_rgb, test_rays, test_rgb, images)
