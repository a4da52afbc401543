"""Factorized feature fields: interpolation, CP/VM values, upsampling, Strivec's lookup."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tensorsim.decomp import cp_to_dense  # noqa: E402
from tensorsim.nn.fields import (  # noqa: E402
    Box,
    CPField,
    LocalCPField,
    LocalScale,
    VMField,
    interp_line,
    interp_plane,
    occupancy_from_density,
    upsample_line,
    upsample_plane,
)

D = torch.float64


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(7)


def _points(n, box, gen):
    low, high = box.tensors(torch.zeros(1, dtype=D))
    return low + (high - low) * torch.rand(n, 3, generator=gen, dtype=D)


def test_interp_line_and_plane_match_grid_sample(gen):
    f = torch.nn.functional
    line = torch.randn(9, 5, generator=gen, dtype=D)
    u = 2.2 * torch.rand(200, generator=gen, dtype=D) - 1.1  # some outside [-1, 1]: clamped
    grid = torch.stack([torch.zeros_like(u), u], -1)[None, :, None, :]  # (1, N, 1, 2)
    ref = f.grid_sample(
        line.T[None, :, :, None], grid, mode="bilinear", padding_mode="border", align_corners=True
    )[0, :, :, 0].T
    torch.testing.assert_close(interp_line(line, u), ref, rtol=0, atol=1e-13)
    plane = torch.randn(6, 11, 4, generator=gen, dtype=D)
    ux, uy = (2 * torch.rand(300, generator=gen, dtype=D) - 1 for _ in range(2))
    grid = torch.stack([ux, uy], -1)[None, :, None, :]
    ref = f.grid_sample(plane.permute(2, 0, 1)[None], grid, align_corners=True)[0, :, :, 0].T
    torch.testing.assert_close(interp_plane(plane, ux, uy), ref, rtol=0, atol=1e-13)


def test_interpolation_is_exact_for_linear_factors(gen):
    nodes = torch.linspace(-1, 1, 7, dtype=D)
    a, b = torch.randn(3, generator=gen, dtype=D), torch.randn(3, generator=gen, dtype=D)
    line = a + b * nodes[:, None]  # (7, 3): linear in u
    u = 2 * torch.rand(500, generator=gen, dtype=D) - 1
    torch.testing.assert_close(interp_line(line, u), a + b * u[:, None], rtol=0, atol=1e-14)
    # bilinear c0 + c1 x + c2 y + c3 x y is reproduced exactly by bilinear interpolation
    c = torch.randn(4, 2, generator=gen, dtype=D)
    hy, wx = torch.linspace(-1, 1, 5, dtype=D), torch.linspace(-1, 1, 8, dtype=D)
    yy, xx = torch.meshgrid(hy, wx, indexing="ij")
    plane = c[0] + c[1] * xx[..., None] + c[2] * yy[..., None] + c[3] * (xx * yy)[..., None]
    ux, uy = (2 * torch.rand(400, generator=gen, dtype=D) - 1 for _ in range(2))
    exact = c[0] + c[1] * ux[:, None] + c[2] * uy[:, None] + c[3] * (ux * uy)[:, None]
    torch.testing.assert_close(interp_plane(plane, ux, uy), exact, rtol=0, atol=1e-13)
    # upsampling keeps linear factors exactly
    torch.testing.assert_close(
        upsample_line(line, 13), a + b * torch.linspace(-1, 1, 13, dtype=D)[:, None]
    )
    up = upsample_plane(plane, 9)
    torch.testing.assert_close(interp_plane(up, ux, uy), exact, rtol=0, atol=1e-13)


def _linear_lines(field_lines, coeffs, g):
    nodes = torch.linspace(-1, 1, g, dtype=D)
    with torch.no_grad():
        for m, p in enumerate(field_lines):
            a, b = coeffs[m]
            p.copy_(a + b * nodes[:, None])


def test_cp_field_equals_the_analytic_product(gen):
    box = Box((-1.0, 0.0, 2.0), (1.0, 3.0, 2.5))
    r, g = 3, 6
    f = CPField(box, density_rank=r, app_rank=2, resolution=g, dtype=D, generator=gen)
    coeffs = [(torch.randn(r, generator=gen, dtype=D), torch.randn(r, generator=gen, dtype=D))
              for _ in range(3)]  # fmt: skip
    _linear_lines(f.density_lines, coeffs, g)
    x = _points(400, box, gen)
    u = 2 * (x - torch.tensor(box.low, dtype=D)) / torch.tensor(box.size, dtype=D) - 1
    exact = torch.ones(400, r, dtype=D)
    for m, (a, b) in enumerate(coeffs):
        exact = exact * (a + b * u[:, m : m + 1])
    torch.testing.assert_close(f.density(x), exact.sum(1), rtol=1e-12, atol=1e-12)


def test_cp_field_at_grid_nodes_is_the_shared_cp_reconstruction(gen):
    box = Box.cube(1.0)
    f = CPField(box, density_rank=4, app_rank=2, resolution=5, dtype=D, generator=gen)
    dense = cp_to_dense(f.density_cp())  # (5, 5, 5)
    nodes = torch.linspace(-1, 1, 5, dtype=D)
    x = torch.stack(torch.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    torch.testing.assert_close(f.density(x).reshape(5, 5, 5), dense, rtol=1e-12, atol=1e-14)
    # appearance: per-component products through the basis matrix
    comps = f.appearance_components(x)
    ref = torch.ones_like(comps)
    idx = ((x + 1) * 2).round().long()
    for m in range(3):
        ref = ref * f.app_lines[m].detach()[idx[:, m]]
    torch.testing.assert_close(comps, ref)
    torch.testing.assert_close(f.appearance(x), ref @ f.basis.weight.T)


def test_vm_field_equals_the_analytic_plane_line_sum(gen):
    box = Box.cube(2.0)
    g, r = 4, 2
    f = VMField(box, density_rank=r, app_rank=1, resolution=g, dtype=D, generator=gen)
    nodes = torch.linspace(-1, 1, g, dtype=D)
    yy, xx = torch.meshgrid(nodes, nodes, indexing="ij")  # plane (H, W): H <- second axis
    c = torch.randn(3, 3, r, generator=gen, dtype=D)
    with torch.no_grad():
        for m in range(3):
            f.density_planes[m].copy_(c[m, 0] + c[m, 1] * xx[..., None] * yy[..., None])
            f.density_lines[m].copy_(1.0 + c[m, 2] * nodes[:, None])
    x = _points(300, box, gen)
    u = x / 2.0
    exact = torch.zeros(300, dtype=D)
    for m, ((a, b), k) in enumerate((((0, 1), 2), ((0, 2), 1), ((1, 2), 0))):
        plane = c[m, 0] + c[m, 1] * (u[:, a] * u[:, b])[:, None]
        exact = exact + (plane * (1.0 + c[m, 2] * u[:, k : k + 1])).sum(1)
    torch.testing.assert_close(f.density(x), exact, rtol=1e-12, atol=1e-12)


def test_upsampling_keeps_linear_fields_and_counts_parameters(gen):
    box = Box.cube(1.0)
    f = CPField(box, density_rank=2, app_rank=3, resolution=4, app_dim=5, dtype=D, generator=gen)
    coeffs = [(torch.randn(2, generator=gen, dtype=D), torch.randn(2, generator=gen, dtype=D))
              for _ in range(3)]  # fmt: skip
    _linear_lines(f.density_lines, coeffs, 4)
    x = _points(100, box, gen)
    before = f.density(x)
    assert f.n_parameters() == 3 * 4 * (2 + 3) + 5 * 3
    f.upsample(9)
    assert f.resolution == 9 and f.n_parameters() == 3 * 9 * (2 + 3) + 5 * 3
    torch.testing.assert_close(f.density(x), before, rtol=1e-12, atol=1e-13)
    vm = VMField(box, density_rank=2, app_rank=1, resolution=3, app_dim=4, generator=gen)
    assert vm.n_parameters() == 3 * (3 * 3 + 3) * 3 + 4 * 3
    vm.upsample(5)
    assert vm.n_parameters() == 3 * (5 * 5 + 5) * 3 + 4 * 3


def _strivec(gen, top_k=4, weighting="inverse"):
    box = Box.cube(1.0)
    occ = torch.zeros(10, 10, 10, dtype=torch.bool)
    occ[2:8, 4:6, 3:7] = True
    scales = [LocalScale(0.5, 0.35, 5, 2, 3), LocalScale(0.25, 0.2, 4, 1, 2)]
    return LocalCPField(box, scales, occ, top_k=top_k, weighting=weighting, app_dim=6,
                        dtype=D, generator=gen)  # fmt: skip


@pytest.mark.parametrize(
    ("top_k", "weighting"), [(4, "inverse"), (2, "inverse_square"), (8, "uniform")]
)
def test_strivec_lookup_equals_the_all_pairs_evaluation(gen, top_k, weighting):
    f = _strivec(gen, top_k, weighting)
    x = 1.6 * torch.rand(600, 3, generator=gen, dtype=D) - 0.8
    torch.testing.assert_close(f.density(x), f.density(x, method="dense"), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(
        f.appearance(x), f.appearance(x, method="dense"), rtol=1e-12, atol=1e-14
    )
    for s in range(2):
        cov = f.covering(x, s)
        assert float(cov.local.abs().max()) <= 1.0 + 1e-12  # every pair covers its point
        counts = torch.bincount(cov.point, minlength=600)
        assert int(counts.max()) <= top_k
        sums = torch.zeros(600, dtype=D).index_add_(0, cov.point, cov.weight)
        torch.testing.assert_close(sums[counts > 0], torch.ones(int((counts > 0).sum()), dtype=D))
        # the centre really is within the half-extent of the point
        centres = f.scales[s].centres[cov.tensor]
        e = f.scales[s].spec.half_extent
        torch.testing.assert_close((x[cov.point] - centres) / e, cov.local)


def test_strivec_single_tensor_is_its_rank_one_product(gen):
    box = Box.cube(1.0)
    occ = torch.zeros(8, 8, 8, dtype=torch.bool)
    occ[4, 4, 4] = True  # the cell [0, 0.25]^3: of the spacing-1 lattice only (0, 0, 0) meets it
    f = LocalCPField(box, [LocalScale(1.0, 0.6, 3, 2, 1)], occ, dtype=D, generator=gen)
    assert f.n_tensors == (1,)
    torch.testing.assert_close(f.scales[0].centres, torch.zeros(1, 3, dtype=D))
    nodes = torch.linspace(-1, 1, 3, dtype=D)
    a, b = torch.randn(3, 2, generator=gen, dtype=D), torch.randn(3, 2, generator=gen, dtype=D)
    with torch.no_grad():
        for m in range(3):
            f.scales[0].density_lines[m, 0] = a[m] + b[m] * nodes[:, None]
    x = 0.6 * (2 * torch.rand(50, 3, generator=gen, dtype=D) - 1)  # inside the local cube
    local = x / 0.6
    exact = torch.ones(50, 2, dtype=D)
    for m in range(3):
        exact = exact * (a[m] + b[m] * local[:, m : m + 1])
    torch.testing.assert_close(f.density(x), exact.sum(1), rtol=1e-12, atol=1e-13)
    outside = torch.tensor([[0.7, 0.0, 0.0], [-0.9, 0.5, 0.1]], dtype=D)
    torch.testing.assert_close(f.density(outside), torch.zeros(2, dtype=D))


def test_strivec_places_tensors_only_near_occupied_cells(gen):
    f = _strivec(gen)
    for s in f.scales:
        c = s.centres
        e = s.spec.half_extent
        # occupied region [-0.6, 0.6] x [-0.2, 0.2] x [-0.4, 0.4] (cells of 0.2)
        lo, hi = torch.tensor([-0.6, -0.2, -0.4], dtype=D), torch.tensor([0.6, 0.2, 0.4], dtype=D)
        gap = torch.maximum(lo - c, c - hi).clamp_min(0)
        assert float(gap.max()) < e
        assert s.n_tensors < int(s.table.numel())
    n = f.n_parameters()
    expected = sum(3 * s.n_tensors * s.spec.resolution * (s.spec.density_rank + s.spec.app_rank)
                   + 6 * s.spec.app_rank for s in f.scales)  # fmt: skip
    assert n == expected
    f.upsample((7, 6))
    assert f.resolution == (7, 6)


def test_strivec_gradients_reach_the_lines(gen):
    f = _strivec(gen)
    x = 0.4 * torch.rand(50, 3, generator=gen, dtype=D) - 0.2
    (f.density(x).sum() + f.appearance(x).sum()).backward()
    for s in f.scales:
        assert s.density_lines.grad is not None and float(s.density_lines.grad.abs().sum()) > 0


def test_occupancy_from_density_marks_a_ball():
    box = Box.cube(1.0)
    occ = occupancy_from_density(lambda x: (x.norm(dim=1) < 0.5).double(), box, 20, 0.5,
                                 dilate=0, dtype=D)  # fmt: skip
    n = torch.linspace(-0.95, 0.95, 20, dtype=D)
    centres = torch.stack(torch.meshgrid(n, n, n, indexing="ij"), -1)
    torch.testing.assert_close(occ, centres.norm(dim=-1) < 0.5)
    grown = occupancy_from_density(lambda x: (x.norm(dim=1) < 0.5).double(), box, 20, 0.5)
    assert int(grown.sum()) > int(occ.sum()) and bool((grown | occ).eq(grown).all())


def test_bad_inputs_raise_clear_errors(gen):
    with pytest.raises(ValueError, match="box: expected high > low"):
        Box((0.0, 0.0, 0.0), (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="low: expected three"):
        Box((0.0, 0.0), (1.0, 1.0, 1.0))
    box = Box.cube(1.0)
    with pytest.raises(ValueError, match="density_rank: expected an integer >= 1"):
        CPField(box, density_rank=0, app_rank=2, resolution=4)
    with pytest.raises(ValueError, match="app_rank"):
        VMField(box, density_rank=1, app_rank=-1, resolution=4)
    with pytest.raises(TypeError, match="density_rank"):
        CPField(box, density_rank=2.0, app_rank=2, resolution=4)
    with pytest.raises(ValueError, match="resolution: expected at least 2"):
        CPField(box, density_rank=1, app_rank=1, resolution=1)
    with pytest.raises(TypeError, match="box: expected a Box"):
        CPField((0, 1), density_rank=1, app_rank=1, resolution=4)
    with pytest.raises(ValueError, match="density_rank"):
        LocalScale(0.5, 0.3, 4, 0, 1)
    with pytest.raises(ValueError, match="half_extent"):
        LocalScale(0.5, 0.2, 4, 1, 1)
    occ = torch.ones(4, 4, 4, dtype=torch.bool)
    with pytest.raises(ValueError, match="top_k"):
        LocalCPField(box, [LocalScale(0.5, 0.3, 4, 1, 1)], occ, top_k=9)
    with pytest.raises(ValueError, match="no occupied cell"):
        LocalCPField(box, [LocalScale(0.5, 0.3, 4, 1, 1)], torch.zeros(4, 4, 4, dtype=torch.bool))
    with pytest.raises(TypeError, match="occupancy"):
        LocalCPField(box, [LocalScale(0.5, 0.3, 4, 1, 1)], np.ones((4, 4, 4), bool))
    f = CPField(box, density_rank=1, app_rank=1, resolution=4)
    with pytest.raises(ValueError, match=r"x: expected points of shape \(N, 3\)"):
        f.density(torch.zeros(5, 2))
