"""Multi-identity 3-D Gaussian sets on an articulated skeleton, seen by few cameras each.

The planted tensor of raw Gaussian parameters (:data:`tensorsim.nn.gaussians.PARAM_BLOCKS`:
position, log-scale, quaternion, colour logits, opacity logit) is a shared template plus
low-rank identity offsets,

    ``W[i, g, :] = T[g, :] + sum_k a[i, k] b[g, k] c[:, k]``,

with ``a`` Gaussian (one row per identity), ``b`` Gaussian per Gaussian (both clipped at 2
standard deviations) and ``c`` scaled per
parameter block (:attr:`GaussianIdentitiesParams.offset_scales`), so the identity-specific
part has CP rank ``offset_rank`` and ``W`` has CP rank at most ``rank(T) + offset_rank``.
The template is a body of ``n_torso`` Gaussians in an ellipsoid and four limbs (chains of
``n_limb`` Gaussians), with isotropic scales, identity rotations, one opacity and colours
that depend on the part and linearly on the position (so the front and back of the torso
differ).

A *pose* rotates each limb rigidly about its joint (shoulders, hips) by a random rotation of
angle up to ``pose_angle`` degrees (one-hot skinning,
:func:`tensorsim.nn.gaussians.pose_gaussians`): poses are articulations, not global transforms.
A *view* is a camera on a circle around the body (azimuth, elevation), looking at the origin.
Each identity is observed in ``train_views`` (pose, view) pairs only (a monocular few-shot
setting, as in MIGS's ZJU-MoCap protocol); every identity is tested on the same ``test_poses``
unseen poses, each seen from ``test_views`` azimuths. One more identity (index
``n_identities``), never in training, is observed in one (pose, view) pair: the unseen
identity.

Problems are declarative: NumPy data from a seed; :func:`render` (torch, through
:mod:`tensorsim.nn.splat`) turns raw parameters, a pose and a view into an image, and
:func:`make_data` renders every ground-truth image of a problem once (:class:`Data`, with the
PSNR of a model's identities on them: the data the training of :mod:`solvers.migs` gets).

References
----------
A. Chatziagapi, G. G. Chrysos, D. Samaras, "MIGS: Multi-Identity Gaussian Splatting via Tensor
Decomposition", arXiv 2407.07284 (ECCV 2024).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tensorsim.config import ConfigError, Params, param

__all__ = [
    "Data",
    "GaussianIdentities",
    "GaussianIdentitiesParams",
    "camera",
    "initial_params",
    "make_data",
    "make_problem",
    "psnr",
    "render",
]

#: Parts: torso, left/right arm, left/right leg. Joint (pivot) and direction of each limb.
_LIMBS = (
    ((0.38, 0.45, 0.0), (1.0, -0.15, 0.0)),
    ((-0.38, 0.45, 0.0), (-1.0, -0.15, 0.0)),
    ((0.18, -0.55, 0.0), (0.15, -1.0, 0.0)),
    ((-0.18, -0.55, 0.0), (-0.15, -1.0, 0.0)),
)


@dataclass(frozen=True)
class GaussianIdentitiesParams(Params):
    """The multi-identity problem.

    Attributes
    ----------
    n_identities
        Identities in training (one more, unseen, is made too).
    n_torso, n_limb
        Gaussians in the torso and in each of the four limbs.
    offset_rank
        CP rank of the identity offsets.
    gaussian_scale
        Standard deviation of the template's (isotropic) Gaussians; the starting point of
        the models uses 1.1 times it.
    init_noise
        Standard deviation of the noise on the template positions in the models' starting
        point (a coarse body prior, like MIGS's SMPL point cloud; 0.08 is about one
        Gaussian's size).
    offset_scales
        Scale of the offsets per block: xyz, log-scale, quaternion, colour logit, opacity
        logit.
    train_views
        (pose, view) pairs observed per training identity.
    test_poses, test_views
        Unseen poses, and azimuths each test pose is seen from.
    pose_angle
        Largest limb rotation angle (degrees).
    image_size
        Square image side (pixels).
    focal
        Focal length (pixels); the cameras sit at distance ``distance`` from the origin.
    distance
        Camera distance.
    seed
        Seed of everything random.
    """

    n_identities: int = param(12, "training identities", ge=1)
    n_torso: int = param(24, "Gaussians in the torso", ge=1)
    n_limb: int = param(10, "Gaussians per limb", ge=1)
    offset_rank: int = param(3, "CP rank of the identity offsets", ge=0)
    offset_scales: tuple[float, ...] = param(
        (0.08, 0.1, 0.1, 1.2, 0.5), "offset scale per block", ge=0.0
    )
    train_views: int = param(1, "(pose, view) pairs per training identity", ge=1)
    test_poses: int = param(3, "unseen test poses", ge=1)
    test_views: int = param(4, "azimuths per test pose", ge=1)
    gaussian_scale: float = param(0.09, "template Gaussian standard deviation", gt=0.0)
    init_noise: float = param(0.08, "position noise of the models' starting point", ge=0.0)
    pose_angle: float = param(70.0, "largest limb rotation (degrees)", gt=0.0, le=180.0)
    image_size: int = param(32, "image side (pixels)", ge=4)
    focal: float = param(36.0, "focal length (pixels)", gt=0.0)
    distance: float = param(4.0, "camera distance", gt=0.0)
    seed: int = param(0, "seed", ge=0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.offset_scales) != 5:
            raise ConfigError(
                "config key 'offset_scales': expected 5 values (xyz, scaling, rotation, "
                f"color, opacity), got {len(self.offset_scales)}"
            )

    @property
    def n_gaussians(self) -> int:
        """Gaussians per identity."""
        return self.n_torso + 4 * self.n_limb


@dataclass(frozen=True)
class GaussianIdentities:
    """A made problem (NumPy arrays).

    Attributes
    ----------
    params
        The :class:`GaussianIdentitiesParams`.
    truth
        Raw parameters ``(n_identities + 1, N_g, 14)``; the last identity is the unseen one.
    template
        ``T`` (N_g, 14).
    parts
        Part of each Gaussian (N_g,): 0 torso, 1-4 limbs.
    pose_rotations, pose_translations
        Per pose and part: rotation (n_poses, 5, 3, 3) and translation (n_poses, 5, 3).
    views
        (azimuth, elevation) in radians per view, (n_views, 2).
    train
        Rows ``(identity, pose, view)`` of the training images of the known identities.
    test
        Rows ``(pose, view)`` of the test images (the same for every identity; poses and
        views never seen in training).
    unseen_train
        The one ``(pose, view)`` row observed of the unseen identity.
    """

    params: GaussianIdentitiesParams
    truth: np.ndarray
    template: np.ndarray
    parts: np.ndarray
    pose_rotations: np.ndarray
    pose_translations: np.ndarray
    views: np.ndarray
    train: np.ndarray
    test: np.ndarray
    unseen_train: np.ndarray

    @property
    def unseen(self) -> int:
        """Index of the unseen identity in :attr:`truth`."""
        return self.params.n_identities


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' formula (NumPy-only)."""
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _template(p: GaussianIdentitiesParams, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Template raw parameters (N_g, 14), parts (N_g,), joints (5, 3)."""
    radii = np.array([0.32, 0.55, 0.22])
    pts = []
    while len(pts) < p.n_torso:
        x = rng.uniform(-1, 1, 3)
        if x @ x <= 1:
            pts.append(x * radii)
    xyz = [np.array(pts)]
    parts = [np.zeros(p.n_torso, dtype=np.int64)]
    joints = [np.zeros(3)]
    for j, (joint, direction) in enumerate(_LIMBS, start=1):
        d = np.asarray(direction) / np.linalg.norm(direction)
        t = (np.arange(p.n_limb) + 0.5) / p.n_limb * 0.85
        xyz.append(np.asarray(joint) + t[:, None] * d)
        parts.append(np.full(p.n_limb, j, dtype=np.int64))
        joints.append(np.asarray(joint, dtype=float))
    xyz = np.concatenate(xyz)
    part = np.concatenate(parts)
    n = xyz.shape[0]
    base_color = rng.normal(0.0, 1.2, (5, 3))
    color = base_color[part] + xyz @ rng.normal(0.0, 2.0, (3, 3))
    t = np.concatenate(
        [
            xyz,
            np.full((n, 3), math.log(p.gaussian_scale)),
            np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
            color,
            np.full((n, 1), 2.0),
        ],
        axis=1,
    )
    return t, part, np.array(joints)


def _pose(
    joints: np.ndarray, angle: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random limb rotations about the joints; the torso stays (R = I, t = 0)."""
    rots, trans = [np.eye(3)], [np.zeros(3)]
    for j in range(1, joints.shape[0]):
        r = _rotation(rng.normal(size=3), rng.uniform(0.3, 1.0) * angle)
        rots.append(r)
        trans.append(joints[j] - r @ joints[j])
    return np.array(rots), np.array(trans)


def make_problem(p: GaussianIdentitiesParams) -> GaussianIdentities:
    """Draw the template, the identities, the poses and the views of ``p``.

    Raises
    ------
    TypeError
        If ``p`` is not a :class:`GaussianIdentitiesParams`.
    """
    if not isinstance(p, GaussianIdentitiesParams):
        raise TypeError(f"p: expected GaussianIdentitiesParams, got {type(p).__name__}")
    rng = np.random.default_rng(p.seed)
    template, parts, joints = _template(p, rng)
    n_i, n_g, m = p.n_identities + 1, template.shape[0], template.shape[1]
    widths = (3, 3, 4, 3, 1)
    scale = np.repeat(np.asarray(p.offset_scales), widths)
    # clipped at 2 standard deviations: no extreme Gaussians (products of three normals
    # are heavy-tailed)
    a = np.clip(rng.normal(size=(n_i, p.offset_rank)), -2, 2)
    b = np.clip(rng.normal(size=(n_g, p.offset_rank)), -2, 2)
    c = rng.normal(size=(m, p.offset_rank)) * scale[:, None]
    truth = template[None] + np.einsum("ik,gk,mk->igm", a, b, c)
    angle = math.radians(p.pose_angle)
    n_train = p.n_identities * p.train_views + 1
    n_poses = n_train + p.test_poses
    poses = [_pose(joints, angle, rng) for _ in range(n_poses)]
    # training azimuths spread at random; test azimuths on a regular circle, offset
    train_az = rng.uniform(0, 2 * math.pi, n_train)
    test_az = 2 * math.pi * (np.arange(p.test_views) + 0.5) / p.test_views + 0.3
    elev = rng.uniform(-0.25, 0.35, n_train + p.test_views)
    views = np.stack([np.concatenate([train_az, test_az]), elev], axis=1)
    ids = np.repeat(np.arange(p.n_identities), p.train_views)
    train = np.stack([ids, np.arange(n_train - 1), np.arange(n_train - 1)], axis=1)
    test = np.array(
        [(n_train + a_, n_train + b_) for a_ in range(p.test_poses) for b_ in range(p.test_views)]
    )
    return GaussianIdentities(
        params=p,
        truth=truth,
        template=template,
        parts=parts,
        pose_rotations=np.array([r for r, _ in poses]),
        pose_translations=np.array([t for _, t in poses]),
        views=views,
        train=train,
        test=test,
        unseen_train=np.array([n_train - 1, n_train - 1]),
    )


def initial_params(problem: GaussianIdentities, rng: np.random.Generator) -> np.ndarray:
    """The starting point of every model (the "body template" point cloud, MIGS's SMPL init).

    Template positions plus noise (std ``init_noise``), 1.1 times the template's scale, identity
    rotation, grey colour (logit 0) and opacity logit 1: nothing identity-specific.
    """
    t = problem.template
    scale = 1.1 * problem.params.gaussian_scale
    n = t.shape[0]
    return np.concatenate(
        [
            t[:, :3] + rng.normal(0, problem.params.init_noise, (n, 3)),
            np.full((n, 3), math.log(scale)),
            np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)),
            np.zeros((n, 3)),
            np.ones((n, 1)),
        ],
        axis=1,
    )


def camera(problem: GaussianIdentities, view: int) -> Any:
    """The :class:`tensorsim.nn.splat.Camera` of view ``view`` (float64)."""
    import torch

    from tensorsim.nn.splat import look_at

    p = problem.params
    if not 0 <= view < problem.views.shape[0]:
        raise ValueError(f"view: expected an index in [0, {problem.views.shape[0]}), got {view}")
    az, el = problem.views[view]
    eye = p.distance * torch.tensor(
        [math.sin(az) * math.cos(el), -math.sin(el), -math.cos(az) * math.cos(el)],
        dtype=torch.float64,
    )
    # world +y is up; image v grows downwards, so "up" for look_at is -y
    return look_at(
        eye,
        torch.zeros(3, dtype=torch.float64),
        torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64),
        focal=p.focal,
        width=p.image_size,
        height=p.image_size,
    )


def render(
    problem: GaussianIdentities,
    params: Any,
    pose: int,
    view: int,
    *,
    cam: Any = None,
    validate: bool = False,
) -> Any:
    """Image (H, W, 3) of raw parameters ``params`` (N_g, 14) in pose ``pose`` from ``view``.

    ``params`` may be a NumPy array or a torch tensor (kept differentiable); background black.
    """
    import torch

    from tensorsim.nn.gaussians import activate, pose_gaussians
    from tensorsim.nn.splat import render_3d

    if not 0 <= pose < problem.pose_rotations.shape[0]:
        raise ValueError(
            f"pose: expected an index in [0, {problem.pose_rotations.shape[0]}), got {pose}"
        )
    x = params if isinstance(params, torch.Tensor) else torch.as_tensor(params)
    g = activate(x)
    g = pose_gaussians(
        g,
        torch.as_tensor(problem.parts),
        torch.as_tensor(problem.pose_rotations[pose], dtype=x.dtype),
        torch.as_tensor(problem.pose_translations[pose], dtype=x.dtype),
    )
    c = camera(problem, view) if cam is None else cam
    return render_3d(
        g.means, g.covariances(), g.colors, g.opacities, c, background=0.0, validate=validate
    )


def psnr(image: Any, reference: Any) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1]: ``-10 log10(MSE)``."""
    a = np.asarray(image, dtype=float)
    b = np.asarray(reference, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"image: expected shape {b.shape} like reference, got {a.shape}")
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else -10.0 * math.log10(mse)


@dataclass
class Data:
    """Ground-truth renders of a problem (float64 torch tensors) and its evaluations.

    Attributes
    ----------
    problem
        The problem.
    cameras
        One :class:`tensorsim.nn.splat.Camera` per view.
    train
        Training images (n_train, H, W, 3), rows of ``problem.train``.
    test
        Test images (n_identities + 1, n_test, H, W, 3) (the last identity is the unseen one).
    unseen_train
        The unseen identity's one observed image (H, W, 3).
    """

    problem: GaussianIdentities
    cameras: list[Any]
    train: Any
    test: Any
    unseen_train: Any

    def image(self, params: Any, pose: int, view: int) -> Any:
        """Render raw parameters (N_g, 14) in ``pose`` from ``view``."""
        return render(self.problem, params, int(pose), int(view), cam=self.cameras[int(view)])

    def test_psnr(self, params: Any, identity: int) -> float:
        """Mean PSNR over the test images of ``identity``."""
        values = [
            psnr(self.image(params, pose, view).numpy(), self.test[identity, k].numpy())
            for k, (pose, view) in enumerate(self.problem.test)
        ]
        return float(np.mean(values))

    def train_psnr(self, identity_params: Callable[[int], Any]) -> float:
        """Mean PSNR over the training images; ``identity_params(i)``: identity i's parameters."""
        return float(
            np.mean(
                [
                    psnr(
                        self.image(identity_params(int(i)), p, v).numpy(),
                        self.train[k].numpy(),
                    )
                    for k, (i, p, v) in enumerate(self.problem.train)
                ]
            )
        )

    def unseen_train_psnr(self, params: Any) -> float:
        """PSNR of the unseen identity's parameters on its one observed image."""
        pose, view = self.problem.unseen_train
        return psnr(self.image(params, pose, view).numpy(), self.unseen_train.numpy())

    def initial_params(self, rng: np.random.Generator) -> np.ndarray:
        """The models' starting point (:func:`initial_params`)."""
        return initial_params(self.problem, rng)


def make_data(problem: GaussianIdentities) -> Data:
    """Render every ground-truth image of ``problem`` (training, test, the unseen identity's)."""
    import torch

    cams = [camera(problem, v) for v in range(problem.views.shape[0])]
    truth = torch.as_tensor(problem.truth)
    with torch.no_grad():
        data = Data(problem, cams, torch.empty(0), torch.empty(0), torch.empty(0))
        train = torch.stack([data.image(truth[i], p, v) for i, p, v in problem.train])
        test = torch.stack(
            [
                torch.stack([data.image(truth[i], p, v) for p, v in problem.test])
                for i in range(truth.shape[0])
            ]
        )
        unseen = data.image(truth[problem.unseen], *problem.unseen_train)
    data.train, data.test, data.unseen_train = train, test, unseen
    return data
