"""Volume rendering of radiance fields in a box, and the TensoRF shading network.

- :func:`ray_box_intersection`: entry and exit distances of rays through a :class:`Box`
  (slab method);
- :func:`sample_rays`: ``n_samples`` points per ray between entry and exit (midpoints, or
  stratified with a seeded jitter for training);
- :func:`composite`: alpha compositing ``alpha_i = 1 - exp(-sigma_i delta_i s)`` with the
  transmittance ``T_i = exp(-sum_{j<i} sigma_j delta_j s)`` (``s``: distance scale) in log space,
  so a homogeneous medium gives ``exp(-sigma L s)`` exactly whatever the number of samples;
  the background (white by default) shows through the final transmittance;
- :func:`volume_render`: the three above for density and colour callables (ground truth of
  analytic scenes, tests);
- :class:`Shader`: appearance features + positional encoding of features and view direction
  -> MLP -> RGB (TensoRF's ``MLP_Fea``);
- :class:`RadianceField`: a factorized :class:`~tensorsim.nn.fields.FeatureField`, the
  density activation ``softplus(feature + shift)`` and a :class:`Shader`; colour is evaluated
  only at samples whose compositing weight exceeds ``weight_threshold``.

Rays are ``(N, 6)`` tensors: origin then unit direction. Rays that miss the box raise
``ValueError`` unless ``allow_miss=True``, which renders them as pure background.

References
----------
A. Chen, Z. Xu, A. Geiger, J. Yu, H. Su, "TensoRF: Tensorial Radiance Fields",
arXiv 2203.09517; B. Mildenhall et al., "NeRF", arXiv 2003.08934 (volume rendering).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tensorsim.nn.fields import Box, FeatureField

__all__ = [
    "RadianceField",
    "RaySamples",
    "Rendered",
    "Shader",
    "composite",
    "positional_encoding",
    "psnr",
    "ray_box_intersection",
    "sample_rays",
    "split_rays",
    "volume_render",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySamples:
    """Sample points along rays.

    Attributes
    ----------
    points
        ``(N, S, 3)`` sample positions.
    deltas
        ``(N, S)`` lengths of the segments the samples stand for (0 for rays that miss).
    hit
        ``(N,)`` whether each ray crosses the box.
    """

    points: torch.Tensor
    deltas: torch.Tensor
    hit: torch.Tensor


@dataclass(frozen=True)
class Rendered:
    """Composited rays.

    Attributes
    ----------
    rgb
        ``(N, 3)`` colours including the background.
    weights
        ``(N, S)`` compositing weights ``T_i alpha_i``.
    transmittance
        ``(N,)`` transmittance through the whole ray (the background's weight).
    """

    rgb: torch.Tensor
    weights: torch.Tensor
    transmittance: torch.Tensor


def split_rays(rays: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Origins and directions of rays ``(N, 6)``, checked (finite, unit directions)."""
    if not isinstance(rays, torch.Tensor):
        raise TypeError(f"rays: expected a torch.Tensor (N, 6), got {type(rays).__name__}")
    if rays.ndim != 2 or rays.shape[1] != 6:
        raise ValueError(
            f"rays: expected shape (N, 6) (origin, direction), got {tuple(rays.shape)}"
        )
    if not bool(torch.isfinite(rays).all()):
        raise ValueError("rays: expected finite values")
    origins, dirs = rays[:, :3], rays[:, 3:]
    norms = dirs.norm(dim=1)
    if rays.shape[0] and float((norms - 1).abs().max()) > 1e-4:
        raise ValueError("rays: the directions (columns 3:6) must be unit vectors")
    return origins, dirs


def ray_box_intersection(
    origins: torch.Tensor, directions: torch.Tensor, box: Box
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Entry and exit distances ``t_near <= t_far`` of rays through ``box`` (slab method).

    Returns ``(t_near, t_far, hit)``, each ``(N,)``; ``t_near >= 0`` (an origin inside the box
    starts there); ``hit`` is False for rays that miss (their ``t_near = t_far``).
    """
    if not isinstance(box, Box):
        raise TypeError(f"box: expected a Box, got {type(box).__name__}")
    low, high = box.tensors(origins)
    safe = torch.where(directions.abs() < 1e-12, torch.full_like(directions, 1e-12), directions)
    t0, t1 = (low - origins) / safe, (high - origins) / safe
    t_near = torch.minimum(t0, t1).amax(dim=1).clamp_min(0.0)
    t_far = torch.maximum(t0, t1).amin(dim=1)
    hit = t_far > t_near
    return t_near, torch.where(hit, t_far, t_near), hit


def sample_rays(
    rays: torch.Tensor,
    box: Box,
    n_samples: int,
    *,
    generator: torch.Generator | None = None,
    allow_miss: bool = False,
) -> RaySamples:
    """``n_samples`` points per ray between its entry into and exit from ``box``.

    Parameters
    ----------
    rays
        ``(N, 6)``: origins and unit directions.
    box
        The scene box.
    n_samples
        Samples per ray (>= 1); each stands for ``1 / n_samples`` of the ray's path in the box.
    generator
        If given, each sample is jittered uniformly inside its segment (stratified sampling);
        else samples sit at segment midpoints.
    allow_miss
        Accept rays that miss the box (zero-length segments: pure background).

    Raises
    ------
    ValueError
        If a ray misses the box and ``allow_miss`` is False, or on bad shapes/values.
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise ValueError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
    origins, dirs = split_rays(rays)
    t_near, t_far, hit = ray_box_intersection(origins, dirs, box)
    if not allow_miss and not bool(hit.all()):
        missed = int((~hit).sum())
        first = int(torch.nonzero(~hit)[0, 0])
        raise ValueError(
            f"rays: {missed} of {rays.shape[0]} rays miss the box low={box.low}, "
            f"high={box.high} (first: ray {first}); pass allow_miss=True to render them as "
            "background"
        )
    n = rays.shape[0]
    if generator is None:
        frac = torch.full((n, n_samples), 0.5, dtype=rays.dtype, device=rays.device)
    else:
        frac = torch.rand((n, n_samples), generator=generator, dtype=rays.dtype).to(rays.device)
    steps = torch.arange(n_samples, dtype=rays.dtype, device=rays.device)
    length = (t_far - t_near)[:, None]
    t = t_near[:, None] + (steps + frac) / n_samples * length
    points = origins[:, None, :] + t[..., None] * dirs[:, None, :]
    deltas = (length / n_samples).expand(n, n_samples)
    return RaySamples(points, deltas, hit)


def composite(
    sigma: torch.Tensor,
    rgb: torch.Tensor,
    deltas: torch.Tensor,
    *,
    distance_scale: float = 1.0,
    background: float = 1.0,
) -> Rendered:
    """Alpha-composite samples front to back over a constant background.

    Parameters
    ----------
    sigma
        ``(N, S)`` non-negative densities.
    rgb
        ``(N, S, 3)`` sample colours.
    deltas
        ``(N, S)`` segment lengths.
    distance_scale
        Multiplies ``sigma * delta`` (TensoRF uses 25).
    background
        Grey level of the background (1: white).
    """
    if sigma.shape != deltas.shape or rgb.shape != (*sigma.shape, 3):
        raise ValueError(
            f"sigma, rgb, deltas: expected shapes (N, S), (N, S, 3), (N, S), got "
            f"{tuple(sigma.shape)}, {tuple(rgb.shape)}, {tuple(deltas.shape)}"
        )
    tau = sigma * deltas * distance_scale
    before = torch.cumsum(tau, dim=1) - tau
    weights = torch.exp(-before) * (1.0 - torch.exp(-tau))
    transmittance = torch.exp(-tau.sum(dim=1))
    colour = (weights[..., None] * rgb).sum(dim=1) + background * transmittance[:, None]
    return Rendered(colour, weights, transmittance)


def volume_render(
    rays: torch.Tensor,
    box: Box,
    *,
    density: Callable[[torch.Tensor], torch.Tensor],
    colour: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    n_samples: int,
    distance_scale: float = 1.0,
    background: float = 1.0,
    weight_threshold: float = 0.0,
    generator: torch.Generator | None = None,
    allow_miss: bool = False,
) -> Rendered:
    """Render rays through ``box``: sample, evaluate ``density`` and ``colour``, composite.

    Parameters
    ----------
    rays
        ``(N, 6)``: origins and unit directions.
    box
        The scene box.
    density
        ``density(points (M, 3)) -> (M,)``, non-negative.
    colour
        ``colour(points (M, 3), directions (M, 3)) -> (M, 3)``.
    n_samples
        Samples per ray.
    distance_scale, background
        See :func:`composite`.
    weight_threshold
        Evaluate ``colour`` only at samples whose weight exceeds this (others get black,
        contributing at most ``weight_threshold`` each).
    generator, allow_miss
        See :func:`sample_rays`.
    """
    samples = sample_rays(rays, box, n_samples, generator=generator, allow_miss=allow_miss)
    n, s = samples.deltas.shape
    pts = samples.points.reshape(-1, 3)
    sigma = density(pts).reshape(n, s)
    tau = sigma * samples.deltas * distance_scale
    before = torch.cumsum(tau, dim=1) - tau
    weights = torch.exp(-before) * (1.0 - torch.exp(-tau))
    dirs = rays[:, None, 3:].expand(n, s, 3).reshape(-1, 3)
    mask = (weights > weight_threshold).reshape(-1)
    rgb = torch.zeros(n * s, 3, dtype=rays.dtype, device=rays.device)
    if bool(mask.any()):
        rgb = rgb.index_put(
            (torch.nonzero(mask)[:, 0],), colour(pts[mask], dirs[mask]).to(rgb.dtype)
        )
    return composite(
        sigma,
        rgb.reshape(n, s, 3),
        samples.deltas,
        distance_scale=distance_scale,
        background=background,
    )


def positional_encoding(x: torch.Tensor, n_freqs: int) -> torch.Tensor:
    """``[sin(2^k x), cos(2^k x)]`` for ``k < n_freqs``, ``(N, D) -> (N, 2 D n_freqs)``.

    Sines first, then cosines; within each, feature-major (``x_0`` at every frequency, then
    ``x_1``, ...).
    """
    if isinstance(n_freqs, bool) or not isinstance(n_freqs, int) or n_freqs < 0:
        raise ValueError(f"n_freqs: expected an integer >= 0, got {n_freqs!r}")
    if n_freqs == 0:
        return x[:, :0]
    freqs = 2.0 ** torch.arange(n_freqs, dtype=x.dtype, device=x.device)
    scaled = (x[..., None] * freqs).reshape(x.shape[0], -1)
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=-1)


class Shader(torch.nn.Module):
    """TensoRF's ``MLP_Fea``: features, view direction and their encodings -> RGB in (0, 1).

    Parameters
    ----------
    app_dim
        Appearance features in.
    hidden
        Width of the two hidden layers.
    feature_freqs, view_freqs
        Positional-encoding frequencies of the features and of the view direction.
    generator, dtype
        Seeded initialization and dtype.

    References
    ----------
    arXiv 2203.09517 (TensoRF), section 4 (appearance decoding).
    """

    def __init__(
        self,
        app_dim: int = 27,
        *,
        hidden: int = 128,
        feature_freqs: int = 2,
        view_freqs: int = 2,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        for name, value in (("app_dim", app_dim), ("hidden", hidden)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
        self.feature_freqs, self.view_freqs = feature_freqs, view_freqs
        n_in = app_dim * (1 + 2 * feature_freqs) + 3 * (1 + 2 * view_freqs)
        layers = [torch.nn.Linear(n_in, hidden, dtype=dtype), torch.nn.ReLU()]
        layers += [torch.nn.Linear(hidden, hidden, dtype=dtype), torch.nn.ReLU()]
        layers += [torch.nn.Linear(hidden, 3, dtype=dtype)]
        self.mlp = torch.nn.Sequential(*layers)
        with torch.no_grad():
            for m in self.mlp:
                if isinstance(m, torch.nn.Linear):
                    bound = 1.0 / m.in_features**0.5
                    m.weight.copy_(
                        (2 * torch.rand(m.weight.shape, generator=generator, dtype=dtype) - 1)
                        * bound
                    )
                    m.bias.zero_()

    def forward(self, features: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """RGB ``(N, 3)`` from features ``(N, app_dim)`` and unit view directions ``(N, 3)``."""
        parts = [features, directions]
        parts += [positional_encoding(features, self.feature_freqs)]
        parts += [positional_encoding(directions, self.view_freqs)]
        return torch.sigmoid(self.mlp(torch.cat(parts, dim=-1)))


class RadianceField(torch.nn.Module):
    """A factorized radiance field: feature field, softplus density, shader, volume rendering.

    Parameters
    ----------
    field
        The feature field (:class:`~tensorsim.nn.fields.CPField`, ``VMField``,
        ``LocalCPField``).
    shader
        The colour network (its ``app_dim`` must match the field's).
    n_samples
        Samples per ray.
    density_shift
        ``sigma = softplus(feature + density_shift)`` (TensoRF: -10).
    distance_scale
        Multiplies ``sigma * delta`` in the compositing (TensoRF: 25).
    background
        Background grey level (1: white).
    weight_threshold
        Samples whose weight is below this skip the appearance features and the shader.
    seed
        Seed of the stratified-sampling jitter used in training mode.
    allow_miss
        Render rays that miss the box as background (else they raise ``ValueError``).

    References
    ----------
    arXiv 2203.09517 (TensoRF); arXiv 2307.13226 (Strivec).
    """

    def __init__(
        self,
        field: FeatureField,
        shader: Shader,
        *,
        n_samples: int = 64,
        density_shift: float = -10.0,
        distance_scale: float = 25.0,
        background: float = 1.0,
        weight_threshold: float = 1e-4,
        seed: int = 0,
        allow_miss: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(field, FeatureField):
            raise TypeError(f"field: expected a FeatureField, got {type(field).__name__}")
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples: expected an integer >= 1, got {n_samples!r}")
        if not (math.isfinite(distance_scale) and distance_scale > 0):
            raise ValueError(f"distance_scale: expected a number > 0, got {distance_scale!r}")
        self.field, self.shader = field, shader
        self.n_samples = n_samples
        self.density_shift, self.distance_scale = float(density_shift), float(distance_scale)
        self.background, self.weight_threshold = float(background), float(weight_threshold)
        self._generator = torch.Generator().manual_seed(seed)
        self.allow_miss = bool(allow_miss)

    def sigma(self, x: torch.Tensor) -> torch.Tensor:
        """Activated density ``softplus(feature + shift)`` at points ``(N, 3)``."""
        return torch.nn.functional.softplus(self.field.density(x) + self.density_shift)

    def colour(self, x: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
        """Shaded colour at points ``(N, 3)`` seen along ``directions``."""
        return self.shader(self.field.appearance(x), directions)

    def forward(self, rays: torch.Tensor) -> torch.Tensor:
        """Render rays ``(N, 6)`` to RGB ``(N, 3)`` (jittered samples in training mode)."""
        return volume_render(
            rays,
            self.field.box,
            density=self.sigma,
            colour=self.colour,
            n_samples=self.n_samples,
            distance_scale=self.distance_scale,
            background=self.background,
            weight_threshold=self.weight_threshold,
            generator=self._generator if self.training else None,
            allow_miss=self.allow_miss,
        ).rgb

    def render(self, rays: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
        """Render many rays in chunks without gradients (evaluation)."""
        with torch.no_grad():
            parts = [self(rays[i : i + chunk]) for i in range(0, rays.shape[0], chunk)]
        return torch.cat(parts) if parts else rays[:, :3] * 0

    def n_parameters(self) -> dict[str, int]:
        """Trainable values: ``field`` (grids + basis matrices) and ``shader``."""
        return {
            "field": self.field.n_parameters(),
            "shader": sum(p.numel() for p in self.shader.parameters()),
        }


def psnr(prediction: torch.Tensor, target: torch.Tensor, *, peak: float = 1.0) -> float:
    """Peak signal-to-noise ratio ``10 log10(peak^2 / MSE)`` in dB (inf for equal inputs)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction, target: expected equal shapes, got {tuple(prediction.shape)} and "
            f"{tuple(target.shape)}"
        )
    mse = float(((prediction.double() - target.double()) ** 2).mean())
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)
