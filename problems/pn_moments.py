"""Angular (moment) part of P_N discretizations of the linear kinetic equation.

The P_N method expands the angular flux ``psi(x, Omega)`` of the linear radiative
transfer (kinetic) equation ``d_t psi + Omega . grad_x psi = collisions`` in an orthonormal
basis ``m_i(Omega)`` of angular polynomials, ``psi ~ sum_i u_i m_i``. Galerkin projection
turns the streaming term into ``d_t u + sum_d A_d d_{x_d} u`` with the symmetric transport
matrices ``A_d[i, j] = integral of Omega_d m_i m_j`` over the angular domain.

Conventions
-----------
``"slab"`` (1-D slab geometry)
    The angular variable is ``mu = Omega_x`` in ``[-1, 1]`` with measure ``dmu``. The basis
    is ``m_l(mu) = sqrt((2 l + 1) / 2) P_l(mu)``, ``l = 0 .. n_moments - 1``, orthonormal
    on ``[-1, 1]``. :func:`slab_moments` gives ``A[i, j] = integral of mu m_i m_j dmu``.
``"planar"`` (2-D: ``psi`` does not depend on ``z``, hence is even in ``Omega_z``)
    ``Omega = (sqrt(1 - mu^2) cos phi, sqrt(1 - mu^2) sin phi, mu)`` with ``mu = Omega_z`` and
    measure ``dOmega = dmu dphi`` on the whole unit sphere (area ``4 pi``). The basis is the
    real spherical harmonics ``Y_lm`` of degree ``l <= N`` with ``l + m`` even (exactly the
    harmonics even in ``Omega_z``), ordered by ``l``, then ``m`` ascending, and orthonormal
    over the whole sphere::

        Y_lm = Q_l^|m|(mu) / sqrt(pi) * cos(m phi)     m > 0
        Y_l0 = Q_l^0(mu) / sqrt(2 pi)
        Y_lm = Q_l^|m|(mu) / sqrt(pi) * sin(|m| phi)   m < 0

    where ``Q_l^m = sqrt((2 l + 1) / 2 * (l - m)! / (l + m)!) P_l^m`` is the associated
    Legendre function normalized on ``[-1, 1]`` *without* the Condon-Shortley phase
    ``(-1)^m``. Hence ``Y_00 = 1 / sqrt(4 pi)``, ``Y_1,1 = sqrt(3 / (4 pi)) Omega_x`` and
    ``Y_1,-1 = sqrt(3 / (4 pi)) Omega_y``. There are ``(N + 1)(N + 2) / 2`` basis functions.
    :func:`planar_moments` gives ``(Ax, Ay)``; :func:`planar_basis` evaluates the basis and
    :func:`planar_moment_degrees` gives ``l`` of each basis function.

In both geometries moment 0 is the isotropic one and the density is
``rho = integral of psi = isotropic_weight(geometry) * u_0``. :func:`roe_matrix` gives
``|A| = V |Lambda| V^T``, the numerical viscosity matrix of an upwind (Roe) flux.

Problems are declarative: this module builds data and imports neither MPI, HDF5 nor solvers;
nothing is computed at import time.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "GEOMETRIES",
    "isotropic_weight",
    "planar_basis",
    "planar_moment_degrees",
    "planar_moment_orders",
    "planar_moments",
    "roe_matrix",
    "slab_moments",
]

GEOMETRIES = ("slab", "planar")
"""Angular domains known to :func:`isotropic_weight`."""

_ZERO_TOL = 1e-13


def _check_int(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def slab_moments(n_moments: int) -> np.ndarray:
    """Slab-geometry P_N transport matrix in the orthonormal Legendre basis.

    Parameters
    ----------
    n_moments
        Number of moments ``n = N + 1`` (an int ``>= 1``); the basis is
        ``m_l(mu) = sqrt((2 l + 1) / 2) P_l(mu)`` for ``l = 0 .. n - 1``.

    Returns
    -------
    numpy.ndarray
        ``A`` of shape ``(n, n)``, float64, ``A[i, j] = integral_{-1}^{1} mu m_i m_j dmu``:
        symmetric tridiagonal with ``A[l, l + 1] = (l + 1) / sqrt((2 l + 1)(2 l + 3))``. It is
        the Jacobi matrix of the Legendre polynomials, so its eigenvalues are the
        ``n``-point Gauss-Legendre nodes.

    Raises
    ------
    ValueError
        If ``n_moments`` is not an int ``>= 1``.
    """
    n = _check_int(n_moments, "n_moments", 1)
    ell = np.arange(n - 1, dtype=np.float64)
    off = (ell + 1.0) / np.sqrt((2.0 * ell + 1.0) * (2.0 * ell + 3.0))
    return np.diag(off, 1) + np.diag(off, -1)


def _planar_indices(degree: int) -> tuple[np.ndarray, np.ndarray]:
    ls, ms = [], []
    for ell in range(degree + 1):
        for m in range(-ell, ell + 1):
            if (ell + m) % 2 == 0:
                ls.append(ell)
                ms.append(m)
    return np.array(ls, dtype=np.int64), np.array(ms, dtype=np.int64)


def planar_moment_degrees(degree: int) -> np.ndarray:
    """Degree ``l`` of each planar basis function.

    Parameters
    ----------
    degree
        P_N degree ``N`` (an int ``>= 0``).

    Returns
    -------
    numpy.ndarray
        Integer array of length ``(N + 1)(N + 2) / 2`` in the basis order of
        :func:`planar_moments` (by ``l``, then ``m`` ascending, ``l + m`` even). Index 0 has
        ``l = 0``: the isotropic moment.

    Raises
    ------
    ValueError
        If ``degree`` is not an int ``>= 0``.
    """
    return _planar_indices(_check_int(degree, "degree", 0))[0]


def planar_moment_orders(degree: int) -> np.ndarray:
    """Order ``m`` of each planar basis function (same order as :func:`planar_moment_degrees`).

    Parameters
    ----------
    degree
        P_N degree ``N`` (an int ``>= 0``).

    Returns
    -------
    numpy.ndarray
        Integer array of length ``(N + 1)(N + 2) / 2``: ``m > 0`` is a ``cos(m phi)``
        harmonic, ``m < 0`` a ``sin(|m| phi)`` one.

    Raises
    ------
    ValueError
        If ``degree`` is not an int ``>= 0``.
    """
    return _planar_indices(_check_int(degree, "degree", 0))[1]


def _normalized_legendre(degree: int, mu: np.ndarray) -> np.ndarray:
    """``Q[l, m] = Q_l^m(mu)`` for ``0 <= m <= l <= degree`` (zero for ``m > l``).

    Normalized on ``[-1, 1]``, without the Condon-Shortley phase; computed with the
    standard stable three-term recurrence in ``l`` at fixed ``m``.
    """
    q = np.zeros((degree + 1, degree + 1, *mu.shape), dtype=np.float64)
    sine = np.sqrt(np.clip(1.0 - mu * mu, 0.0, None))
    q[0, 0] = 1.0 / math.sqrt(2.0)
    for m in range(1, degree + 1):
        q[m, m] = math.sqrt((2.0 * m + 1.0) / (2.0 * m)) * sine * q[m - 1, m - 1]
    for m in range(degree):
        q[m + 1, m] = math.sqrt(2.0 * m + 3.0) * mu * q[m, m]
        for ell in range(m + 2, degree + 1):
            a = math.sqrt((4.0 * ell * ell - 1.0) / (ell * ell - m * m))
            b = math.sqrt(((ell - 1.0) ** 2 - m * m) / (4.0 * (ell - 1.0) ** 2 - 1.0))
            q[ell, m] = a * (mu * q[ell - 1, m] - b * q[ell - 2, m])
    return q


def _azimuthal(m: int, phi: np.ndarray) -> np.ndarray:
    if m > 0:
        return np.cos(m * phi) / math.sqrt(math.pi)
    if m < 0:
        return np.sin(-m * phi) / math.sqrt(math.pi)
    return np.full(np.shape(phi), 1.0 / math.sqrt(2.0 * math.pi))


def planar_basis(degree: int, mu: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Evaluate the planar basis (real spherical harmonics with ``l + m`` even).

    Parameters
    ----------
    degree
        P_N degree ``N`` (an int ``>= 0``).
    mu
        ``Omega_z = cos(polar angle)``, values in ``[-1, 1]``.
    phi
        Azimuth; ``Omega_x + i Omega_y = sqrt(1 - mu^2) exp(i phi)``. Broadcast with ``mu``.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_basis, *broadcast_shape)`` with ``n_basis = (N + 1)(N + 2) / 2`` in the
        order of :func:`planar_moment_degrees`; see the module docstring for the formulas.

    Raises
    ------
    ValueError
        If ``degree`` is not an int ``>= 0`` or ``mu`` leaves ``[-1, 1]``.
    """
    n = _check_int(degree, "degree", 0)
    mu_b, phi_b = np.broadcast_arrays(
        np.asarray(mu, dtype=np.float64), np.asarray(phi, dtype=np.float64)
    )
    if mu_b.size and not (np.all(np.abs(mu_b) <= 1.0)):
        raise ValueError("mu must lie in [-1, 1]")
    q = _normalized_legendre(n, mu_b)
    ls, ms = _planar_indices(n)
    out = np.empty((ls.size, *mu_b.shape), dtype=np.float64)
    for k, (ell, m) in enumerate(zip(ls.tolist(), ms.tolist(), strict=True)):
        out[k] = q[ell, abs(m)] * _azimuthal(m, phi_b)
    return out


def _planar_quadrature(
    degree: int, extra_nodes: int
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Gauss-Legendre nodes in ``mu`` and the uniform trapezoid rule in ``phi``.

    ``Omega_d m_i m_j`` is, after the ``phi`` integration, a polynomial of degree at most
    ``2 N + 1`` in ``mu`` (odd powers of ``sqrt(1 - mu^2)`` integrate to zero in ``phi``),
    and a trigonometric polynomial of degree at most ``2 N + 1`` in ``phi``: ``N + 1``
    Gauss nodes and ``2 N + 2`` trapezoid nodes are exact. One more of each is used.
    """
    n_mu = degree + 2 + extra_nodes
    n_phi = 2 * degree + 4 + 2 * extra_nodes
    mu, w_mu = np.polynomial.legendre.leggauss(n_mu)
    phi = 2.0 * math.pi * np.arange(n_phi) / n_phi
    w_phi = np.full(n_phi, 2.0 * math.pi / n_phi)
    return (mu, phi), (w_mu, w_phi)


def planar_moments(degree: int, *, extra_nodes: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Planar (2-D) P_N transport matrices ``(Ax, Ay)`` in the real-harmonic basis.

    ``Ax[i, j] = integral over the unit sphere of Omega_x m_i m_j dOmega`` and likewise
    ``Ay`` with ``Omega_y``; the basis ``m_i`` is described in the module docstring.

    The matrices are computed by a product quadrature (Gauss-Legendre in ``mu``, uniform
    trapezoid in ``phi``) that is exact for these integrands: this is simple, exact up to
    rounding, and independent of the sign and normalization conventions of the recursion
    formulas for ``Omega Y_lm`` that closed-form entries would rely on. Entries below
    ``1e-13`` in magnitude are then set to exactly 0 and the matrices are symmetrized.

    Parameters
    ----------
    degree
        P_N degree ``N`` (an int ``>= 0``); the basis has ``(N + 1)(N + 2) / 2`` functions.
    extra_nodes
        Additional quadrature nodes (an int ``>= 0``; ``extra_nodes`` more in ``mu``, twice
        as many more in ``phi``). The default is already exact; this only serves to check it.

    Returns
    -------
    tuple of numpy.ndarray
        ``(Ax, Ay)``, each of shape ``(n_basis, n_basis)``, float64, symmetric, with
        eigenvalues in ``[-1, 1]``.

    Raises
    ------
    ValueError
        If ``degree`` is not an int ``>= 0`` or ``extra_nodes`` is not an int ``>= 0``.
    """
    n = _check_int(degree, "degree", 0)
    extra = _check_int(extra_nodes, "extra_nodes", 0)
    (mu, phi), (w_mu, w_phi) = _planar_quadrature(n, extra)
    ls, ms = _planar_indices(n)
    q = _normalized_legendre(n, mu)  # (l, m, n_mu)
    # Separable evaluation: basis[k] = Q_{l_k}^{|m_k|}(mu) outer F_{m_k}(phi).
    polar = q[ls, np.abs(ms)]  # (n_basis, n_mu)
    azim = np.stack([_azimuthal(int(m), phi) for m in ms.tolist()])  # (n_basis, n_phi)
    sine = np.sqrt(1.0 - mu * mu)
    # Omega_x = sine(mu) cos(phi), Omega_y = sine(mu) sin(phi): both factor, so
    # A[i, j] = sum_mu w sine P_i P_j * sum_phi w trig F_i F_j, elementwise.
    polar_part = (polar * (w_mu * sine)) @ polar.T
    out = []
    for trig in (np.cos(phi), np.sin(phi)):
        azim_part = (azim * (w_phi * trig)) @ azim.T
        a = polar_part * azim_part
        a[np.abs(a) < _ZERO_TOL] = 0.0
        out.append(0.5 * (a + a.T))
    return out[0], out[1]


def roe_matrix(a: np.ndarray) -> np.ndarray:
    """Absolute value ``|A| = V |Lambda| V^T`` of a real symmetric matrix.

    Parameters
    ----------
    a
        Real symmetric square matrix (symmetric to a relative tolerance of ``1e-12``).

    Returns
    -------
    numpy.ndarray
        ``|A|``, float64, symmetric positive semidefinite, with ``|A|^2 = A^2``; computed by
        :func:`numpy.linalg.eigh`.

    Raises
    ------
    ValueError
        If ``a`` is not a finite real square symmetric matrix.
    """
    arr = np.asarray(a)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"a must be a square 2-D matrix, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"a must be a real matrix, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError("a must be finite")
    scale = float(np.max(np.abs(arr))) if arr.size else 0.0
    if np.max(np.abs(arr - arr.T), initial=0.0) > 1e-12 * max(scale, 1e-300):
        raise ValueError("a must be symmetric")
    lam, vec = np.linalg.eigh(0.5 * (arr + arr.T))
    out = (vec * np.abs(lam)) @ vec.T
    return 0.5 * (out + out.T)


def isotropic_weight(geometry: str) -> float:
    """Integral of the isotropic basis function ``m_0`` over the angular domain.

    Parameters
    ----------
    geometry
        ``"slab"`` (``m_0 = 1 / sqrt(2)`` on ``[-1, 1]``) or ``"planar"``
        (``m_0 = 1 / sqrt(4 pi)`` on the unit sphere).

    Returns
    -------
    float
        ``sqrt(2)`` for ``"slab"``, ``sqrt(4 pi)`` for ``"planar"``, so that the density is
        ``rho = isotropic_weight(geometry) * u_0``.

    Raises
    ------
    ValueError
        If ``geometry`` is not one of :data:`GEOMETRIES`.
    """
    if geometry == "slab":
        return math.sqrt(2.0)
    if geometry == "planar":
        return math.sqrt(4.0 * math.pi)
    raise ValueError(f"geometry must be one of {GEOMETRIES}, got {geometry!r}")
