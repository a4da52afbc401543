"""Differentiable Gaussian splatting in plain torch: 2-D images and 3-D anisotropic Gaussians.

:func:`render_2d` composites 2-D Gaussians (means, 2 x 2 covariances, colours, opacities)
front to back in a given order: a pixel at ``p`` gets
``alpha_n(p) = min(o_n exp(-(p - mu_n)^T S_n^{-1} (p - mu_n) / 2), alpha_max)`` from each
Gaussian and ``C(p) = sum_n T_n(p) alpha_n(p) c_n + T_N(p) background`` with the
transmittance ``T_n = prod_{m < n} (1 - alpha_m)``, as 3D Gaussian Splatting does
(arXiv 2308.04079). :func:`render_3d` projects 3-D Gaussians (``Sigma = R diag(s^2) R^T``)
through a pinhole :class:`Camera` with the local affine (EWA) approximation
``S = J W Sigma W^T J^T (+ blur I)``, sorts them by camera depth and calls
:func:`render_2d`. Every pixel sees every Gaussian (no tiles, no 3-sigma cut-off): exact and
simple, ``O(N H W)`` time and memory, meant for small images on the CPU.

Pixel ``(row, col)`` has its centre at ``(u, v) = (col + 0.5, row + 0.5)``; ``u`` grows to the
right, ``v`` downwards; the camera looks along its ``+z`` axis.

Importing this module imports torch (``import tensorsim`` does not).

References
----------
B. Kerbl, G. Kopanas, T. Leimkuehler, G. Drettakis, "3D Gaussian Splatting for Real-Time
Radiance Field Rendering", arXiv 2308.04079 (SIGGRAPH 2023).
M. Zwicker, H. Pfister, J. van Baar, M. Gross, "EWA Splatting", IEEE TVCG 8(3), 2002.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

__all__ = [
    "Camera",
    "check_covariances",
    "check_rotation",
    "covariance_3d",
    "look_at",
    "project",
    "quaternion_to_rotation",
    "render_2d",
    "render_3d",
]

logger = logging.getLogger(__name__)


def _tol(dtype: torch.dtype) -> float:
    return 1e-4 if dtype in (torch.float16, torch.bfloat16, torch.float32) else 1e-8


def _check_tensor(x: object, name: str, shape: tuple[int | None, ...]) -> torch.Tensor:
    """Check that ``x`` is a floating tensor of ``shape`` (None: any size); return it."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != len(shape) or any(
        s is not None and s != n for s, n in zip(shape, x.shape, strict=True)
    ):
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(x.shape)}")
    return x


def check_rotation(r: torch.Tensor, name: str = "rotation") -> torch.Tensor:
    """Check that ``r`` is a proper rotation matrix (``r r^T = I``, ``det r = +1``).

    Parameters
    ----------
    r
        A 3 x 3 floating tensor.
    name
        The argument name used in error messages.

    Returns
    -------
    torch.Tensor
        ``r`` itself.

    Raises
    ------
    TypeError
        If ``r`` is not a floating torch tensor.
    ValueError
        If it is not 3 x 3, not orthogonal (to ``1e-4`` in float32, ``1e-8`` in float64) or a
        reflection.
    """
    _check_tensor(r, name, (3, 3))
    rd = r.detach()
    if not bool(torch.isfinite(rd).all()):
        raise ValueError(f"{name}: expected a rotation matrix, got non-finite entries")
    tol = _tol(r.dtype)
    err = float(torch.linalg.matrix_norm(rd @ rd.T - torch.eye(3, dtype=r.dtype)))
    if err > tol:
        raise ValueError(f"{name}: expected an orthogonal matrix, ||R R^T - I||_F = {err:.3g}")
    det = float(torch.linalg.det(rd))
    if det < 0:
        raise ValueError(f"{name}: expected a proper rotation (det +1), got det = {det:.6g}")
    return r


def check_covariances(cov: torch.Tensor, name: str = "covariances") -> torch.Tensor:
    """Check that ``cov`` holds symmetric positive-definite ``d x d`` matrices, shape (N, d, d).

    Raises
    ------
    TypeError, ValueError
        If ``cov`` is not a floating tensor of that shape, not symmetric, or not positive
        definite (the message names the first bad index).
    """
    if not isinstance(cov, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(cov).__name__}")
    if cov.ndim != 3 or cov.shape[1] != cov.shape[2]:
        raise ValueError(f"{name}: expected shape (N, d, d), got {tuple(cov.shape)}")
    c = cov.detach()
    scale = c.abs().amax(dim=(1, 2)).clamp_min(torch.finfo(c.dtype).tiny)
    asym = (c - c.mT).abs().amax(dim=(1, 2)) / scale
    bad = torch.nonzero(~(asym <= _tol(c.dtype)))
    if bad.numel():
        raise ValueError(f"{name}: expected symmetric matrices, entry {int(bad[0, 0])} is not")
    eig = torch.linalg.eigvalsh(c)
    bad = torch.nonzero(~(eig[:, 0] > 0))
    if bad.numel():
        i = int(bad[0, 0])
        raise ValueError(
            f"{name}: expected positive-definite matrices, entry {i} has smallest "
            f"eigenvalue {float(eig[i, 0]):.3g}"
        )
    return cov


def quaternion_to_rotation(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (N, 3, 3) of quaternions ``(w, x, y, z)`` (N, 4), normalised first.

    Raises
    ------
    TypeError, ValueError
        If ``q`` is not a floating (N, 4) tensor or a quaternion has zero norm.
    """
    _check_tensor(q, "q", (None, 4))
    norm = torch.linalg.vector_norm(q, dim=1, keepdim=True)
    if bool((norm.detach() == 0).any()):
        raise ValueError("q: expected non-zero quaternions, got one of norm 0")
    w, x, y, z = (q / norm).unbind(1)
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ]
    return torch.stack([torch.stack(row, dim=1) for row in rows], dim=1)


def covariance_3d(scales: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    """``Sigma = R diag(s^2) R^T`` for scales (N, 3) and rotations (N, 3, 3) or quaternions (N, 4).

    Raises
    ------
    TypeError, ValueError
        On wrong shapes, or scales that are not finite and positive.
    """
    _check_tensor(scales, "scales", (None, 3))
    s = scales.detach()
    if not bool(((s > 0) & torch.isfinite(s)).all()):
        raise ValueError("scales: expected finite positive values (standard deviations)")
    if isinstance(rotations, torch.Tensor) and rotations.ndim == 2:
        rotations = quaternion_to_rotation(rotations)
    _check_tensor(rotations, "rotations", (scales.shape[0], 3, 3))
    return (rotations * scales[:, None, :] ** 2) @ rotations.mT


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: world point ``x`` maps to camera point ``rotation @ x + translation``.

    Attributes
    ----------
    rotation
        World-to-camera rotation (3, 3), a proper rotation (checked).
    translation
        (3,).
    focal
        Focal length in pixels (``> 0``).
    width, height
        Image size in pixels (``>= 1``).
    """

    rotation: torch.Tensor
    translation: torch.Tensor
    focal: float
    width: int
    height: int

    def __post_init__(self) -> None:
        check_rotation(self.rotation, "rotation")
        _check_tensor(self.translation, "translation", (3,))
        if not (isinstance(self.focal, int | float) and math.isfinite(self.focal)):
            raise TypeError(f"focal: expected a finite number, got {self.focal!r}")
        if self.focal <= 0:
            raise ValueError(f"focal: expected a positive focal length, got {self.focal}")
        for label, n in (("width", self.width), ("height", self.height)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"{label}: expected an integer >= 1, got {n!r}")


def look_at(
    eye: torch.Tensor,
    target: torch.Tensor,
    up: torch.Tensor,
    *,
    focal: float,
    width: int,
    height: int,
) -> Camera:
    """The :class:`Camera` at ``eye`` looking at ``target`` (image ``v`` axis along ``-up``).

    Raises
    ------
    ValueError
        If ``eye == target`` or ``up`` is parallel to the viewing direction.
    """
    for name, v in (("eye", eye), ("target", target), ("up", up)):
        _check_tensor(v, name, (3,))
    forward = target - eye
    if float(torch.linalg.vector_norm(forward)) == 0:
        raise ValueError("eye: expected a point different from target")
    forward = forward / torch.linalg.vector_norm(forward)
    right = torch.linalg.cross(forward, up)
    if float(torch.linalg.vector_norm(right)) < 1e-6:
        raise ValueError("up: expected a direction not parallel to target - eye")
    right = right / torch.linalg.vector_norm(right)
    down = torch.linalg.cross(forward, right)
    rot = torch.stack([right, down, forward])
    return Camera(rot, -rot @ eye, float(focal), width, height)


def project(
    means: torch.Tensor, covariances: torch.Tensor, camera: Camera, *, near: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Project 3-D Gaussians to the image: 2-D means (N, 2), covariances (N, 2, 2), depths (N,).

    Uses the Jacobian of the perspective map at each mean (EWA splatting). Gaussians with
    depth below ``near`` are the caller's to drop (their projection is meaningless).
    """
    rot = camera.rotation.to(dtype=means.dtype, device=means.device)
    cam = means @ rot.mT + camera.translation.to(dtype=means.dtype, device=means.device)
    x, y, z = cam.unbind(1)
    zs = z.clamp_min(near)
    f = camera.focal
    uv = torch.stack([f * x / zs + camera.width / 2, f * y / zs + camera.height / 2], dim=1)
    zero = torch.zeros_like(z)
    jac = torch.stack(
        [
            torch.stack([f / zs, zero, -f * x / zs**2], dim=1),
            torch.stack([zero, f / zs, -f * y / zs**2], dim=1),
        ],
        dim=1,
    )
    m = jac @ rot
    return uv, m @ covariances @ m.mT, z


def _pixel_grid(height: int, width: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    v, u = torch.meshgrid(
        torch.arange(height, dtype=dtype, device=device) + 0.5,
        torch.arange(width, dtype=dtype, device=device) + 0.5,
        indexing="ij",
    )
    return torch.stack([u.reshape(-1), v.reshape(-1)], dim=1)


def render_2d(
    means: torch.Tensor,
    covariances: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    *,
    height: int,
    width: int,
    background: torch.Tensor | float = 0.0,
    order: torch.Tensor | None = None,
    alpha_max: float = 0.99,
    validate: bool = True,
) -> torch.Tensor:
    """Composite 2-D Gaussians front to back into an image of shape (height, width, C).

    Parameters
    ----------
    means
        Centres in pixel units, (N, 2) as ``(u, v)``.
    covariances
        Symmetric positive-definite (N, 2, 2), in pixels^2.
    colors
        (N, C).
    opacities
        (N,), in ``[0, 1]``.
    height, width
        Image size (``>= 1``).
    background
        Colour behind everything: a number or (C,).
    order
        Indices of the Gaussians from front to back (a permutation); None: as given.
    alpha_max
        Upper clamp of each Gaussian's alpha, in ``(0, 1)`` (0.99 as in 3DGS).
    validate
        Check covariances for positive definiteness (costs an eigen-decomposition of the
        2 x 2 matrices; switch off in inner loops that guarantee it).

    Returns
    -------
    torch.Tensor
        The image; differentiable in every input.

    Raises
    ------
    TypeError, ValueError
        On wrong shapes or types, covariances that are not positive definite, opacities
        outside ``[0, 1]`` or a bad ``alpha_max``.
    """
    _check_tensor(means, "means", (None, 2))
    n = means.shape[0]
    _check_tensor(covariances, "covariances", (n, 2, 2))
    _check_tensor(colors, "colors", (n, None))
    _check_tensor(opacities, "opacities", (n,))
    for label, v in (("height", height), ("width", width)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{label}: expected an integer >= 1, got {v!r}")
    if not 0 < alpha_max < 1:
        raise ValueError(f"alpha_max: expected a value in (0, 1), got {alpha_max!r}")
    o = opacities.detach()
    if not bool(((o >= 0) & (o <= 1)).all()):
        raise ValueError("opacities: expected values in [0, 1]")
    if validate and n:
        check_covariances(covariances)
    if order is not None:
        if not isinstance(order, torch.Tensor) or order.shape != (n,):
            raise ValueError(f"order: expected a permutation tensor of shape ({n},)")
        if validate and not torch.equal(torch.sort(order).values, torch.arange(n)):
            raise ValueError(f"order: expected a permutation of 0..{n - 1}")
        means, covariances, colors, opacities = (
            t[order] for t in (means, covariances, colors, opacities)
        )
    pix = _pixel_grid(height, width, means.dtype, means.device)
    bg = torch.as_tensor(background, dtype=colors.dtype, device=colors.device)
    bg = bg.expand(colors.shape[1])
    if n == 0:
        return bg.expand(height, width, colors.shape[1]).clone()
    a, b, c = covariances[:, 0, 0], covariances[:, 0, 1], covariances[:, 1, 1]
    det = a * c - b * b
    du = pix[:, 0:1] - means[:, 0]  # (P, N): pixels x Gaussians, Gaussians contiguous
    dv = pix[:, 1:2] - means[:, 1]
    q = (c * du * du - 2 * b * du * dv + a * dv * dv) / det
    alpha = (opacities * torch.exp(-0.5 * q)).clamp(max=alpha_max)
    # transmittance through log-sums (cumprod's backward is slower on the CPU)
    log_t = torch.cumsum(torch.log1p(-alpha), dim=1)
    before = torch.exp(torch.cat([torch.zeros_like(log_t[:, :1]), log_t[:, :-1]], dim=1))
    image = (before * alpha) @ colors + torch.exp(log_t[:, -1:]) * bg
    return image.reshape(height, width, colors.shape[1])


def render_3d(
    means: torch.Tensor,
    covariances: torch.Tensor,
    colors: torch.Tensor,
    opacities: torch.Tensor,
    camera: Camera,
    *,
    background: torch.Tensor | float = 0.0,
    blur: float = 0.3,
    near: float = 1e-2,
    alpha_max: float = 0.99,
    validate: bool = True,
) -> torch.Tensor:
    """Render 3-D anisotropic Gaussians through ``camera``: EWA projection, depth sort, blend.

    Parameters
    ----------
    means
        World positions (N, 3).
    covariances
        World covariances (N, 3, 3), symmetric positive definite (:func:`covariance_3d`).
    colors, opacities
        (N, C) and (N,) in ``[0, 1]``.
    camera
        The :class:`Camera`.
    background
        A number or (C,).
    blur
        Variance (pixels^2) added to each projected covariance (3DGS's low-pass filter,
        0.3); ``>= 0``.
    near
        Gaussians whose centre has camera depth ``<= near`` are dropped.
    alpha_max, validate
        As in :func:`render_2d` (``validate`` checks the 3-D covariances).

    Returns
    -------
    torch.Tensor
        (camera.height, camera.width, C), differentiable in every input but the sort order.

    Raises
    ------
    TypeError, ValueError
        On wrong shapes or types, non-positive-definite covariances, negative ``blur``.
    """
    if not isinstance(camera, Camera):
        raise TypeError(f"camera: expected a Camera, got {type(camera).__name__}")
    _check_tensor(means, "means", (None, 3))
    n = means.shape[0]
    _check_tensor(covariances, "covariances", (n, 3, 3))
    if not (isinstance(blur, int | float) and blur >= 0):
        raise ValueError(f"blur: expected a number >= 0, got {blur!r}")
    if validate and n:
        check_covariances(covariances)
    uv, cov2, depth = project(means, covariances, camera, near=near)
    keep = torch.nonzero(depth.detach() > near).reshape(-1)
    order = keep[torch.argsort(depth.detach()[keep], stable=True)]
    cov2 = cov2 + blur * torch.eye(2, dtype=cov2.dtype, device=cov2.device)
    return render_2d(
        uv[order],
        cov2[order],
        colors[order],
        opacities[order],
        height=camera.height,
        width=camera.width,
        background=background,
        alpha_max=alpha_max,
        validate=False,
    )
