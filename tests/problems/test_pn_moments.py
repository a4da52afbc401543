"""P_N moment matrices: slab against Gauss-Legendre nodes and direct quadrature, planar
against hand-derived P_1 values, SciPy's spherical harmonics and rotational invariance."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from numpy.polynomial import legendre as npleg
from scipy.special import sph_harm_y

from problems.pn_moments import (
    GEOMETRIES,
    isotropic_weight,
    planar_basis,
    planar_moment_degrees,
    planar_moment_orders,
    planar_moments,
    roe_matrix,
    slab_moments,
)

# ----------------------------------------------------------------------------- helpers


def _legendre_orthonormal(n: int, mu: np.ndarray) -> np.ndarray:
    """``sqrt((2l+1)/2) P_l(mu)`` for l < n, from numpy's Legendre series (independent)."""
    return np.stack(
        [math.sqrt((2 * ell + 1) / 2) * npleg.Legendre.basis(ell)(mu) for ell in range(n)]
    )


def _scipy_real_harmonics(degree: int, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Real harmonics with l + m even, built from scipy's complex ``Y_l^m`` (which carries
    the Condon-Shortley phase, removed here by ``(-1)^m``), ordered by l, then m."""
    theta = np.arccos(mu)
    rows = []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            if (ell + m) % 2:
                continue
            y = sph_harm_y(ell, abs(m), theta, phi)
            if m == 0:
                rows.append(y.real)
            elif m > 0:
                rows.append(math.sqrt(2) * (-1) ** m * y.real)
            else:
                rows.append(math.sqrt(2) * (-1) ** m * y.imag)
    return np.stack(rows)


def _sphere_grid(n_mu: int, n_phi: int):
    """Product grid (Gauss in mu, trapezoid in phi): flattened mu, phi and weights."""
    mu, w_mu = npleg.leggauss(n_mu)
    phi = 2 * np.pi * (np.arange(n_phi) + 0.5) / n_phi  # shifted: differs from the module's
    mm, pp = np.meshgrid(mu, phi, indexing="ij")
    w = np.outer(w_mu, np.full(n_phi, 2 * np.pi / n_phi))
    return mm.ravel(), pp.ravel(), w.ravel()


# ----------------------------------------------------------------------------- slab


@pytest.mark.parametrize("n", [1, 2, 3, 8, 17, 40])
def test_slab_eigenvalues_are_gauss_legendre_nodes(n):
    a = slab_moments(n)
    nodes, _ = npleg.leggauss(n)
    np.testing.assert_allclose(np.linalg.eigvalsh(a), np.sort(nodes), atol=1e-12, rtol=0)


@pytest.mark.parametrize("n", [1, 4, 9])
def test_slab_entries_match_direct_quadrature(n):
    mu, w = npleg.leggauss(n + 3)
    m = _legendre_orthonormal(n, mu)
    np.testing.assert_allclose(m * w @ m.T, np.eye(n), atol=1e-13)  # the basis itself
    expected = (m * (w * mu)) @ m.T
    a = slab_moments(n)
    assert a.shape == (n, n) and a.dtype == np.float64
    np.testing.assert_allclose(a, expected, atol=1e-14, rtol=0)


def test_slab_p1_value():
    # integral of mu * (1/sqrt2) * sqrt(3/2) mu dmu = sqrt(3)/2 * 2/3 = 1/sqrt(3)
    np.testing.assert_allclose(slab_moments(2), [[0, 1 / math.sqrt(3)], [1 / math.sqrt(3), 0]])


@pytest.mark.parametrize("bad", [0, -3, 2.0, True, "3", None])
def test_slab_bad_input(bad):
    with pytest.raises(ValueError, match="n_moments"):
        slab_moments(bad)


def test_slab_accepts_numpy_int():
    np.testing.assert_array_equal(slab_moments(np.int64(5)), slab_moments(5))


# ----------------------------------------------------------------------------- planar


@pytest.mark.parametrize("degree", [0, 1, 2, 5, 10, 31])
def test_planar_sizes_symmetry_and_spectrum(degree):
    ax, ay = planar_moments(degree)
    size = (degree + 1) * (degree + 2) // 2
    for a in (ax, ay):
        assert a.shape == (size, size) and a.dtype == np.float64
        np.testing.assert_array_equal(a, a.T)
        lam = np.linalg.eigvalsh(a)
        # Compression of multiplication by |Omega_x| <= 1: spectrum inside [-1, 1].
        assert lam.min() >= -1 - 1e-12 and lam.max() <= 1 + 1e-12
    degrees = planar_moment_degrees(degree)
    assert degrees.shape == (size,) and degrees[0] == 0
    assert np.all(np.diff(degrees) >= 0) and degrees[-1] == degree


def test_planar_degree_31_has_528_moments_and_is_fast():
    start = time.perf_counter()
    ax, ay = planar_moments(31)
    elapsed = time.perf_counter() - start
    assert ax.shape == ay.shape == (528, 528)
    assert elapsed < 2.0, elapsed


def test_planar_orders_have_even_parity():
    ls, ms = planar_moment_degrees(4), planar_moment_orders(4)
    expected = [(ell, m) for ell in range(5) for m in range(-ell, ell + 1) if (ell + m) % 2 == 0]
    assert list(zip(ls.tolist(), ms.tolist(), strict=True)) == expected


def test_planar_p1_hand_derived():
    # Basis: Y00 = 1/sqrt(4 pi), Y_{1,-1} = sqrt(3/(4 pi)) Omega_y, Y_{1,1} = sqrt(3/(4 pi))
    # Omega_x. integral Omega_x^2 dOmega = 4 pi / 3, odd moments vanish, so
    # Ax[0, 2] = 1/sqrt(4 pi) * sqrt(3/(4 pi)) * 4 pi / 3 = 1/sqrt(3), everything else 0
    # (integral Omega_x Omega_x Omega_y = integral Omega_x^3 = 0).
    c = 1 / math.sqrt(3)
    ax, ay = planar_moments(1)
    np.testing.assert_allclose(ax, [[0, 0, c], [0, 0, 0], [c, 0, 0]], atol=1e-15)
    np.testing.assert_allclose(ay, [[0, c, 0], [c, 0, 0], [0, 0, 0]], atol=1e-15)
    # The P_1 wave speeds are +-1/sqrt(3) (and 0).
    np.testing.assert_allclose(np.linalg.eigvalsh(ax), [-c, 0, c], atol=1e-15)


def test_planar_basis_p1_is_linear_in_omega():
    mu = np.array([0.3, -0.7, 0.0, 1.0])
    phi = np.array([0.1, 2.0, 4.0, 5.5])
    s = np.sqrt(1 - mu**2)
    b = planar_basis(1, mu, phi)
    k = math.sqrt(3 / (4 * math.pi))
    np.testing.assert_allclose(b[0], 1 / math.sqrt(4 * math.pi))
    np.testing.assert_allclose(b[1], k * s * np.sin(phi), atol=1e-15)
    np.testing.assert_allclose(b[2], k * s * np.cos(phi), atol=1e-15)


@pytest.mark.parametrize("degree", [0, 3, 8, 20])
def test_planar_basis_matches_scipy_harmonics(degree):
    rng = np.random.default_rng(degree)
    mu = rng.uniform(-1, 1, 50)
    phi = rng.uniform(0, 2 * np.pi, 50)
    np.testing.assert_allclose(
        planar_basis(degree, mu, phi), _scipy_real_harmonics(degree, mu, phi), atol=1e-11
    )


def test_planar_basis_even_in_omega_z_and_broadcasts():
    mu = np.linspace(-1, 1, 7)[:, None]
    phi = np.linspace(0, 2 * np.pi, 5)[None, :]
    b = planar_basis(6, mu, phi)
    assert b.shape == (28, 7, 5)
    np.testing.assert_allclose(b, planar_basis(6, -mu, phi), atol=1e-13)


@pytest.mark.parametrize("degree", [2, 7])
def test_planar_basis_orthonormal(degree):
    # Exact for degree-2N products: N + 1 Gauss nodes, 2N + 1 trapezoid nodes; use more.
    mu, phi, w = _sphere_grid(degree + 3, 2 * degree + 5)
    b = planar_basis(degree, mu, phi)
    np.testing.assert_allclose((b * w) @ b.T, np.eye(b.shape[0]), atol=1e-13)


@pytest.mark.parametrize("degree", [2, 6])
def test_planar_entries_match_independent_quadrature(degree):
    mu, phi, w = _sphere_grid(degree + 9, 2 * degree + 17)
    b = _scipy_real_harmonics(degree, mu, phi)
    s = np.sqrt(1 - mu**2)
    ax, ay = planar_moments(degree)
    np.testing.assert_allclose(ax, (b * (w * s * np.cos(phi))) @ b.T, atol=1e-13)
    np.testing.assert_allclose(ay, (b * (w * s * np.sin(phi))) @ b.T, atol=1e-13)


def test_planar_rotational_invariance():
    ax, ay = planar_moments(5)
    ref = np.linalg.eigvalsh(ax)
    np.testing.assert_allclose(np.linalg.eigvalsh(ay), ref, atol=1e-10)
    for t in (0.3, 1.0, 2.2, 4.0):
        lam = np.linalg.eigvalsh(math.cos(t) * ax + math.sin(t) * ay)
        np.testing.assert_allclose(lam, ref, atol=1e-10)


def test_planar_quadrature_refinement_changes_nothing():
    ax, ay = planar_moments(9)
    for extra in (1, 6):
        bx, by = planar_moments(9, extra_nodes=extra)
        np.testing.assert_allclose(bx, ax, atol=1e-14, rtol=0)
        np.testing.assert_allclose(by, ay, atol=1e-14, rtol=0)


def test_planar_exact_zeros():
    # Omega_x couples only |m| -> |m| +- 1 and l -> l +- 1; all other entries are exact zeros.
    ax, ay = planar_moments(6)
    ls, ms = planar_moment_degrees(6), np.abs(planar_moment_orders(6))
    allowed = (np.abs(ls[:, None] - ls[None, :]) == 1) & (np.abs(ms[:, None] - ms[None, :]) == 1)
    assert np.all(ax[~allowed] == 0.0) and np.all(ay[~allowed] == 0.0)
    assert np.count_nonzero(ax) > 0


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2", None])
def test_planar_bad_degree(bad):
    with pytest.raises(ValueError, match="degree"):
        planar_moments(bad)
    with pytest.raises(ValueError, match="degree"):
        planar_moment_degrees(bad)
    with pytest.raises(ValueError, match="degree"):
        planar_moment_orders(bad)
    with pytest.raises(ValueError, match="degree"):
        planar_basis(bad, 0.0, 0.0)


@pytest.mark.parametrize("bad", [-1, 0.5, False])
def test_planar_bad_extra_nodes(bad):
    with pytest.raises(ValueError, match="extra_nodes"):
        planar_moments(2, extra_nodes=bad)


def test_planar_basis_bad_mu():
    with pytest.raises(ValueError, match="mu"):
        planar_basis(2, np.array([0.0, 1.5]), 0.0)


# ----------------------------------------------------------------------------- roe


@pytest.mark.parametrize(
    "a",
    [
        slab_moments(7),
        planar_moments(4)[0],
        0.6 * planar_moments(3)[0] - 0.8 * planar_moments(3)[1],
    ],
    ids=["slab", "planar_x", "planar_rotated"],
)
def test_roe_matrix_properties(a):
    r = roe_matrix(a)
    np.testing.assert_array_equal(r, r.T)
    np.testing.assert_allclose(r @ r, a @ a, atol=1e-13)
    assert np.linalg.eigvalsh(r).min() >= -1e-13
    np.testing.assert_allclose(r @ a, a @ r, atol=1e-13)  # |A| is a function of A
    np.testing.assert_allclose(
        np.sort(np.linalg.eigvalsh(r)), np.sort(np.abs(np.linalg.eigvalsh(a))), atol=1e-13
    )


def test_roe_matrix_known_values():
    np.testing.assert_allclose(
        roe_matrix(np.diag([-2.0, 0.0, 3.0])), np.diag([2.0, 0.0, 3.0]), atol=1e-15
    )
    # [[0, 1], [1, 0]] has eigenvalues +-1, so |A| = I.
    np.testing.assert_allclose(
        roe_matrix(np.array([[0.0, 1.0], [1.0, 0.0]])), np.eye(2), atol=1e-15
    )
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    spd = q @ np.diag([0.5, 1.0, 2.0, 3.0, 4.0]) @ q.T
    np.testing.assert_allclose(roe_matrix(spd), spd, atol=1e-13)
    np.testing.assert_allclose(roe_matrix(-spd), spd, atol=1e-13)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros(3), "square"),
        (np.zeros((2, 3)), "square"),
        (np.zeros((2, 2, 2)), "square"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "symmetric"),
        (np.array([[0.0, 1j], [-1j, 0.0]]), "real"),
        (np.array([[np.nan, 0.0], [0.0, 1.0]]), "finite"),
    ],
)
def test_roe_matrix_bad_input(bad, match):
    with pytest.raises(ValueError, match=rf"a must .*{match}"):
        roe_matrix(bad)


# ----------------------------------------------------------------------------- isotropic


def test_isotropic_weight_values():
    assert isotropic_weight("slab") == pytest.approx(math.sqrt(2), rel=1e-15)
    assert isotropic_weight("planar") == pytest.approx(math.sqrt(4 * math.pi), rel=1e-15)
    assert set(GEOMETRIES) == {"slab", "planar"}


def test_isotropic_weight_gives_density():
    # psi = 1: u_0 = integral of m_0, rho = measure of the angular domain (2 and 4 pi).
    mu, w = npleg.leggauss(4)
    u0 = np.sum(w * _legendre_orthonormal(1, mu)[0])
    assert isotropic_weight("slab") * u0 == pytest.approx(2.0, rel=1e-14)
    mu, phi, w = _sphere_grid(4, 8)
    u0 = np.sum(w * planar_basis(0, mu, phi)[0])
    assert isotropic_weight("planar") * u0 == pytest.approx(4 * math.pi, rel=1e-14)


@pytest.mark.parametrize("bad", ["3d", "Slab", "", None])
def test_isotropic_weight_bad_geometry(bad):
    with pytest.raises(ValueError, match=r"geometry.*slab.*planar"):
        isotropic_weight(bad)
