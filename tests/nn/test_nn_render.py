"""Volume rendering: ray-box intersection, sampling, compositing, shader, radiance field."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from tensorsim.nn.fields import Box, CPField  # noqa: E402
from tensorsim.nn.render import (  # noqa: E402
    RadianceField,
    Shader,
    composite,
    positional_encoding,
    psnr,
    ray_box_intersection,
    sample_rays,
    volume_render,
)

D = torch.float64


def _rays(origins, dirs):
    dirs = torch.nn.functional.normalize(dirs, dim=1)
    return torch.cat([origins, dirs], dim=1)


def test_homogeneous_slab_matches_the_analytic_transmittance():
    # slab 0 <= z <= 0.3, wide in x and y; oblique rays from below: path length 0.3 / cos
    box = Box((-50.0, -50.0, 0.0), (50.0, 50.0, 0.3))
    g = torch.Generator().manual_seed(3)
    n = 64
    theta = 1.2 * torch.rand(n, generator=g, dtype=D)  # up to ~69 degrees off the normal
    phi = 2 * math.pi * torch.rand(n, generator=g, dtype=D)
    dirs = torch.stack([torch.sin(theta) * torch.cos(phi), torch.sin(theta) * torch.sin(phi),
                        torch.cos(theta)], dim=1)  # fmt: skip
    origins = torch.randn(n, 3, generator=g, dtype=D) * 0.5 - torch.tensor([0, 0, 2.0], dtype=D)
    rays = _rays(origins, dirs)
    sigma0, colour = 3.7, torch.tensor([0.2, 0.5, 0.9], dtype=D)
    length = 0.3 / torch.cos(theta)
    for n_samples, scale in ((1, 1.0), (7, 1.0), (33, 25.0)):
        out = volume_render(
            rays, box,
            density=lambda x: torch.full((x.shape[0],), sigma0, dtype=D),
            colour=lambda x, d: colour.expand(x.shape[0], 3),
            n_samples=n_samples, distance_scale=scale,
            generator=torch.Generator().manual_seed(1),
        )  # fmt: skip
        t = torch.exp(-sigma0 * scale * length)
        torch.testing.assert_close(out.transmittance, t, rtol=0, atol=1e-4)
        torch.testing.assert_close(out.transmittance, t, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(
            out.rgb, colour * (1 - t[:, None]) + t[:, None], rtol=0, atol=1e-4
        )
        torch.testing.assert_close(out.weights.sum(1) + out.transmittance, torch.ones(n, dtype=D))


def test_ray_box_intersection_and_samples():
    box = Box((-1.0, -2.0, 0.0), (1.0, 2.0, 3.0))
    rays = torch.tensor(
        [[-5.0, 0.0, 1.0, 1.0, 0.0, 0.0],  # along x: enters at 4, leaves at 6
         [0.0, 0.0, 1.0, 0.0, 0.0, 1.0],  # from inside, up: 0 to 2
         [0.0, -9.0, 2.0, 0.0, 1.0, 0.0]],  # along y: 7 to 11
        dtype=D,
    )  # fmt: skip
    t0, t1, hit = ray_box_intersection(rays[:, :3], rays[:, 3:], box)
    torch.testing.assert_close(t0, torch.tensor([4.0, 0.0, 7.0], dtype=D))
    torch.testing.assert_close(t1, torch.tensor([6.0, 2.0, 11.0], dtype=D))
    assert bool(hit.all())
    s = sample_rays(rays, box, 8, generator=torch.Generator().manual_seed(0))
    assert bool(box.contains(s.points.reshape(-1, 3)).all())
    torch.testing.assert_close(s.deltas[:, 0], torch.tensor([0.25, 0.25, 0.5], dtype=D))
    t = (s.points - rays[:, None, :3]).norm(dim=-1)
    assert bool((t[:, 1:] > t[:, :-1]).all())  # ordered along each ray
    mid = sample_rays(rays, box, 4)
    torch.testing.assert_close(
        mid.points[0, :, 0], torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=D)
    )


def test_rays_missing_the_box_raise_or_render_background():
    box = Box.cube(1.0)
    rays = torch.tensor([[0, 0, -3, 0, 0, 1.0], [0, 5, -3, 0, 0, 1.0]], dtype=D)
    with pytest.raises(ValueError, match="rays: 1 of 2 rays miss the box"):
        sample_rays(rays, box, 4)
    dens = lambda x: torch.full((x.shape[0],), 2.0, dtype=D)  # noqa: E731
    col = lambda x, d: torch.zeros(x.shape[0], 3, dtype=D)  # noqa: E731
    with pytest.raises(ValueError, match="allow_miss=True"):
        volume_render(rays, box, density=dens, colour=col, n_samples=4)
    out = volume_render(rays, box, density=dens, colour=col, n_samples=4, allow_miss=True,
                        background=0.5)  # fmt: skip
    torch.testing.assert_close(out.rgb[1], torch.full((3,), 0.5, dtype=D))
    torch.testing.assert_close(out.transmittance[0], torch.tensor(math.exp(-4.0), dtype=D))


def test_bad_rays_and_arguments():
    box = Box.cube(1.0)
    with pytest.raises(ValueError, match=r"rays: expected shape \(N, 6\)"):
        sample_rays(torch.zeros(3, 5), box, 4)
    with pytest.raises(ValueError, match="unit vectors"):
        sample_rays(torch.tensor([[0, 0, -3, 0, 0, 2.0]]), box, 4)
    with pytest.raises(ValueError, match="finite"):
        sample_rays(torch.tensor([[0, 0, math.nan, 0, 0, 1.0]]), box, 4)
    with pytest.raises(ValueError, match="n_samples"):
        sample_rays(torch.tensor([[0, 0, -3, 0, 0, 1.0]]), box, 0)
    with pytest.raises(TypeError, match="box"):
        ray_box_intersection(torch.zeros(1, 3), torch.ones(1, 3), (0, 1))
    with pytest.raises(ValueError, match="sigma, rgb, deltas"):
        composite(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(TypeError, match="field"):
        RadianceField(torch.nn.Linear(2, 2), Shader(4))
    with pytest.raises(ValueError, match="prediction, target"):
        psnr(torch.zeros(2), torch.zeros(3))


def test_composite_front_to_back_weights():
    sigma = torch.tensor([[1.0, 0.0, 2.0]], dtype=D)
    deltas = torch.full((1, 3), 0.5, dtype=D)
    rgb = torch.eye(3, dtype=D)[None]
    out = composite(sigma, rgb, deltas, background=0.0)
    a0, a2 = 1 - math.exp(-0.5), 1 - math.exp(-1.0)
    w = torch.tensor([[a0, 0.0, (1 - a0) * a2]], dtype=D)
    torch.testing.assert_close(out.weights, w)
    torch.testing.assert_close(out.rgb, w)
    torch.testing.assert_close(out.transmittance, torch.tensor([math.exp(-1.5)], dtype=D))


def test_positional_encoding_and_psnr():
    x = torch.tensor([[0.3, -1.2]], dtype=D)
    pe = positional_encoding(x, 2)
    # feature-major: x_0 at frequencies 1, 2, then x_1; sines then cosines
    ref = [math.sin(0.3), math.sin(0.6), math.sin(-1.2), math.sin(-2.4),
           math.cos(0.3), math.cos(0.6), math.cos(-1.2), math.cos(-2.4)]  # fmt: skip
    torch.testing.assert_close(pe, torch.tensor([ref], dtype=D))
    assert positional_encoding(x, 0).shape == (1, 0)
    a = torch.zeros(10)
    assert psnr(a + 0.1, a) == pytest.approx(20.0)
    assert psnr(a, a) == math.inf


def test_radiance_field_renders_and_fits_a_grey_slab():
    # a field that learns a uniform grey fog in the box from rays along z
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    box = Box.cube(1.0)
    field = CPField(box, density_rank=2, app_rank=2, resolution=4, app_dim=4, generator=g)
    model = RadianceField(field, Shader(4, hidden=8, generator=g), n_samples=8,
                          weight_threshold=0.0)  # fmt: skip
    miss = torch.tensor([[5.0, 5.0, -3.0, 0.0, 0.0, 1.0]])
    with pytest.raises(ValueError, match="miss the box"):
        model(miss)
    model.allow_miss = True
    torch.testing.assert_close(model(miss), torch.ones(1, 3))
    xy = 1.6 * torch.rand(64, 2, generator=g) - 0.8
    rays = torch.cat([xy, torch.full((64, 1), -3.0), torch.tensor([[0, 0, 1.0]]).expand(64, 3)], 1)
    target = torch.full((64, 3), 0.4)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    first = float(((model(rays) - target) ** 2).mean().detach())
    for _ in range(150):
        loss = ((model(rays) - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    final = float(((model.render(rays, chunk=16) - target) ** 2).mean())
    assert final < 1e-3 < first
    counts = model.n_parameters()
    assert counts["field"] == 3 * 4 * 4 + 4 * 2
    assert counts["shader"] == sum(p.numel() for p in model.shader.parameters())
