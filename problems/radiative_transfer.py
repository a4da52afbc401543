"""Linear radiative transfer (kinetic) equation: P_N moments in angle, finite volumes in space.

The equation for the angular flux ``psi(t, x, Omega)`` with isotropic scattering is

``d_t psi + Omega . grad_x psi + sigma_t psi = sigma_s / |S| int psi dOmega'``,

``sigma_t = sigma_s + sigma_a``. Expanding ``psi`` in angular basis functions orthonormal on
the angular domain (Legendre polynomials in the slab, real spherical harmonics in the plane,
:mod:`problems.pn_moments`) gives for the moments ``u(x, l)``

``d_t u = - sum_d D_d u A_d^T + sum_d D_dd u |A_d|^T - sigma_a u - sigma_s u G``,

``G = diag(0, 1, ..., 1)`` (scattering keeps the isotropic moment). Space is discretized
by central differences ``D_d`` stabilized by the Roe-matrix term ``D_dd |A_d|``
(``D_dd = (1, -2, 1) / (2 dx)``: the upwind dissipation), with zero ghost cells, as in the
code of arXiv 2412.00858 (Sections 5.2 and 5.3). Every term is a Kronecker product of one
matrix per factor: the operator is a :class:`~tensorsim.ttn.operator.SumOfProducts` on the
sites ``(x, moments)`` (slab) or ``(x, y, moments)`` (plane) and the tensor integrators
apply it factor by factor. The 2-D space is two sites (``x`` and ``y``), not one flattened
leaf as in the paper's code: the leaf operators stay ``n x n`` instead of ``n^2 x n^2``.

Test cases (Gaussian initial density of standard deviation ``width``, isotropic):

``"plane_source"``
    Slab, ``rho0(x) = exp(-x^2 / (2 w^2)) / sqrt(2 pi w^2)``.
``"line_source"``
    Plane, ``rho0(x, y) = exp(-(x^2 + y^2) / (2 w^2)) / (2 pi w^2)``.

Problems are declarative: this module builds data and imports neither MPI, HDF5 nor solvers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from problems.pn_moments import isotropic_weight, planar_moments, roe_matrix, slab_moments
from tensorsim._array_api import to_numpy
from tensorsim.config import ConfigError, Params, param
from tensorsim.ttn import TTN, Tree, subtree_tensor
from tensorsim.ttn.operator import SumOfProducts

__all__ = [
    "CASES",
    "Grid",
    "TransportParams",
    "build_tree",
    "check_problem",
    "collision_terms",
    "density",
    "full_rank_reference",
    "full_rank_solve",
    "grid",
    "initial_moments",
    "initial_space_vectors",
    "mass",
    "mass_weights",
    "space_names",
    "stability_limit",
    "streaming_terms",
    "time_step",
    "transport_operator",
    "tree_density",
]

logger = logging.getLogger(__name__)

Case = Literal["plane_source", "line_source"]
#: test case -> number of space dimensions
CASES: dict[str, int] = {"plane_source": 1, "line_source": 2}

Term = tuple[float, dict[int, np.ndarray]]

#: Default memory bound of the full-rank moments :func:`full_rank_reference` keeps at once.
REFERENCE_BYTES = 256 * 2**20


@dataclass(frozen=True)
class TransportParams(Params):
    """A radiative transfer test case and its discretization.

    The defaults are the 1-D setting of arXiv 2412.00858, Sec. 5.2 (deterministic part);
    :meth:`line_source` gives the 2-D setting of Sec. 5.3.

    Attributes
    ----------
    case
        ``"plane_source"`` (slab, 1-D) or ``"line_source"`` (plane, 2-D).
    cells
        Finite-volume cells per space direction.
    half_width
        The domain is ``[-half_width, half_width]`` per direction.
    degree
        P_N degree ``N``: ``N + 1`` moments in the slab, ``(N + 1)(N + 2) / 2`` in the plane.
    sigma_s, sigma_a
        Scattering and absorption cross sections (constant; the UQ problems perturb them).
    width
        Standard deviation of the Gaussian initial density.
    cfl
        Step size ``h = cfl * dx``; at most :func:`stability_limit`.
    t_end
        Final time.
    boundary
        ``"zero"``: zero ghost cells, i.e. free outflow with no inflow (the paper's code);
        mass leaves through the boundary once the solution reaches it. ``"periodic"``:
        every column of the stencils sums to zero, so the operator conserves mass exactly
        (``sigma_a = 0``).
    """

    case: Case = param("plane_source", "test case: plane_source (1-D) or line_source (2-D)")
    cells: int = param(201, "finite-volume cells per space direction", ge=3)
    half_width: float = param(2.5, "domain [-half_width, half_width] per direction", gt=0.0)
    degree: int = param(99, "P_N degree N (slab: N+1 moments; plane: (N+1)(N+2)/2)", ge=0)
    sigma_s: float = param(1.0, "scattering cross section", ge=0.0)
    sigma_a: float = param(0.0, "absorption cross section", ge=0.0)
    width: float = param(0.03, "standard deviation of the Gaussian initial density", gt=0.0)
    cfl: float = param(0.1, "step size h = cfl * dx", gt=0.0)
    t_end: float = param(2.0, "final time", ge=0.0)
    boundary: Literal["zero", "periodic"] = param(
        "zero", "space boundary: zero ghost cells (outflow) or periodic (conserves mass)"
    )

    @classmethod
    def line_source(cls, **overrides: object) -> TransportParams:
        """The 2-D line source of arXiv 2412.00858, Sec. 5.3 (100 x 100 cells, P_31)."""
        values: dict[str, object] = dict(
            case="line_source", cells=100, half_width=1.5, degree=31, cfl=0.5, t_end=1.0
        )
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Grid:
    """Cell centres and widths of the space discretization.

    Attributes
    ----------
    centres
        Cell centres, shape ``(cells,)`` (the same in every direction).
    dx
        Cell width.
    dim
        Number of space dimensions.
    """

    centres: np.ndarray
    dx: float
    dim: int

    @property
    def cell_volume(self) -> float:
        """``dx ** dim``."""
        return self.dx**self.dim


def _check(params: TransportParams) -> None:
    if not isinstance(params, TransportParams):
        raise TypeError(f"params: expected TransportParams, got {type(params).__name__}")
    if params.case not in CASES:
        raise ValueError(f"case: expected one of {sorted(CASES)}, got {params.case!r}")
    for name in ("sigma_s", "sigma_a"):
        if not (math.isfinite(getattr(params, name)) and getattr(params, name) >= 0):
            raise ValueError(f"{name}: expected a finite cross section >= 0")
    limit = stability_limit(params)
    if params.cfl > limit:
        raise ValueError(
            f"cfl: {params.cfl} is above the stability limit {limit} of the "
            f"{CASES[params.case]}-D scheme"
        )


def stability_limit(params: TransportParams) -> float:
    """Largest CFL number accepted: ``1 / dim`` (explicit upwind-type bound, per direction)."""
    return 1.0 / CASES[params.case]


def grid(params: TransportParams) -> Grid:
    """The cell centres and width."""
    _check(params)
    dx = 2.0 * params.half_width / params.cells
    centres = -params.half_width + dx * (np.arange(params.cells) + 0.5)
    return Grid(centres, dx, CASES[params.case])


def check_problem(params: TransportParams, key: str = "problem") -> None:
    """Raise :class:`~tensorsim.config.ConfigError` naming ``key`` if :func:`grid` refuses it.

    The discretization is refused for a CFL number above :func:`stability_limit`, an
    unknown case or a negative cross section.
    """
    try:
        grid(params)
    except ValueError as exc:
        raise ConfigError(f"config key {key!r}: {exc}") from exc


def space_names(params: TransportParams) -> tuple[str, ...]:
    """Names of the space dimensions: ``("x",)`` in the slab, ``("x", "y")`` in the plane."""
    return ("x",) if grid(params).dim == 1 else ("x", "y")


def time_step(params: TransportParams) -> tuple[float, int]:
    """``(h, steps)``: ``cfl * dx`` shortened so that ``steps * h = t_end`` exactly."""
    g = grid(params)
    if params.t_end == 0:
        return params.cfl * g.dx, 0
    steps = math.ceil(params.t_end / (params.cfl * g.dx) - 1e-12)
    return params.t_end / steps, steps


def _moment_matrices(params: TransportParams) -> list[np.ndarray]:
    if CASES[params.case] == 1:
        return [slab_moments(params.degree + 1)]
    return list(planar_moments(params.degree))


def _geometry(params: TransportParams) -> str:
    return "slab" if CASES[params.case] == 1 else "planar"


def _stencils(cells: int, dx: float, periodic: bool) -> tuple[np.ndarray, np.ndarray]:
    """Central difference and Roe dissipation stencils (zero ghost cells or periodic)."""
    up = np.eye(cells, k=1)
    if periodic:
        up[-1, 0] = 1.0
    central = (up - up.T) / (2.0 * dx)
    dissipation = (up + up.T - 2.0 * np.eye(cells)) / (2.0 * dx)
    return central, dissipation


def streaming_terms(params: TransportParams) -> list[Term]:
    """The transport terms ``- D_d (x) A_d + D_dd (x) |A_d|`` on sites (space..., moments)."""
    g = grid(params)
    central, dissipation = _stencils(params.cells, g.dx, params.boundary == "periodic")
    moment_site = g.dim
    terms: list[Term] = []
    for d, a in enumerate(_moment_matrices(params)):
        terms.append((-1.0, {d: central, moment_site: a}))
        terms.append((1.0, {d: dissipation, moment_site: roe_matrix(a)}))
    return terms


def scattering_matrix(params: TransportParams) -> np.ndarray:
    """``G = diag(0, 1, ..., 1)``: the moments scattering removes (all but the isotropic)."""
    n = _moment_count(params)
    g = np.ones(n)
    g[0] = 0.0
    return np.diag(g)


def _moment_count(params: TransportParams) -> int:
    return _moment_matrices(params)[0].shape[0]


def collision_terms(
    params: TransportParams,
    sigma_s: float,
    sigma_a: float,
    extra: dict[int, np.ndarray] | None = None,
) -> list[Term]:
    """``- sigma_a I - sigma_s G`` (times the factors ``extra`` on further sites)."""
    extra = dict(extra or {})
    moment_site = CASES[params.case]
    terms: list[Term] = []
    if sigma_a != 0:
        terms.append((-float(sigma_a), dict(extra)))
    if sigma_s != 0:
        terms.append((-float(sigma_s), {moment_site: scattering_matrix(params), **extra}))
    return terms


def site_dims(params: TransportParams) -> list[int]:
    """Sizes of the sites (space..., moments)."""
    return [params.cells] * CASES[params.case] + [_moment_count(params)]


def transport_operator(params: TransportParams) -> SumOfProducts:
    """The deterministic generator: ``d_t u = L u`` with ``L`` a sum of Kronecker products."""
    terms = streaming_terms(params) + collision_terms(params, params.sigma_s, params.sigma_a)
    return SumOfProducts(terms, site_dims(params))


def initial_space_vectors(params: TransportParams) -> list[np.ndarray]:
    """The initial density as a product of one vector per space direction."""
    g = grid(params)
    gauss = np.exp(-(g.centres**2) / (2.0 * params.width**2)) / math.sqrt(
        2.0 * math.pi * params.width**2
    )
    return [gauss.copy() for _ in range(g.dim)]


def initial_moments(params: TransportParams) -> list[np.ndarray]:
    """Per-site vectors of the initial moments: the density in ``u_0`` (isotropic)."""
    e0 = np.zeros(_moment_count(params))
    e0[0] = 1.0 / isotropic_weight(_geometry(params))
    return [*initial_space_vectors(params), e0]


def mass_weights(params: TransportParams) -> list[np.ndarray]:
    """Per-site vectors ``w`` with ``mass = <w_x (x) ... (x) w_m, u>`` (a product functional)."""
    g = grid(params)
    iso = np.zeros(_moment_count(params))
    iso[0] = isotropic_weight(_geometry(params))
    return [np.full(params.cells, g.dx) for _ in range(g.dim)] + [iso]


def density(params: TransportParams, u: np.ndarray) -> np.ndarray:
    """Density ``rho = int psi dOmega`` of full moments ``u`` (space..., moments)."""
    return isotropic_weight(_geometry(params)) * np.asarray(u)[..., 0]


def mass(params: TransportParams, u: np.ndarray) -> float:
    """``int rho dx`` of full moments ``u``."""
    return float(np.sum(density(params, u)) * grid(params).cell_volume)


def build_tree(dims: Sequence[int], shape: Literal["nested", "star"] = "star") -> Tree:
    """The tree of the moments on the sites ``dims`` (:func:`site_dims`).

    ``(x, moments)`` in the slab (the matrix DLRA); in the plane the star
    ``(x, y, moments)`` (``shape = "star"``) or the nested ``((x, y), moments)``
    (``shape = "nested"``). From the zero-padded product state, the augmented BUG on the
    nested plane tree is far less accurate than on the star (line source, 100 x 100 cells,
    P_31: relative density error 2.7e-2 after one step and 0.27 after four, against 2.5e-5
    and 6.8e-5): the ``(x, y)`` update sees the moments only through their old basis, where
    the transport term has no component.
    """
    if len(dims) == 2:
        return Tree.from_nested((0, 1), dims)
    return Tree.from_nested(((0, 1), 2) if shape == "nested" else (0, 1, 2), dims)


def tree_density(y: TTN, iso: np.ndarray) -> np.ndarray:
    """Density of a tree network: its moment site (the last one) summed against ``iso``.

    ``iso`` is the moment weight of :func:`mass_weights` (its last vector); the result has
    the space shape ``(cells,)`` or ``(cells, cells)``, axes in site order.
    """
    moment_site = y.tree.n_sites - 1
    rho, sites = subtree_tensor(y, y.tree.root, {moment_site: iso})
    return np.transpose(to_numpy(rho)[..., 0], np.argsort(sites))


def full_rank_reference(
    params: TransportParams, times: Sequence[float], *, max_bytes: int = REFERENCE_BYTES
) -> list[tuple[np.ndarray, float]]:
    """``(density, mass)`` of the full-rank solution at ``times``, in bounded memory.

    The times are solved in chunks by :func:`full_rank_solve`, each chunk from ``t = 0``,
    keeping the moments of at most ``max_bytes`` at once (more times cost repeated solves).

    Parameters
    ----------
    params
        The test case.
    times
        Increasing times in ``[0, t_end]``.
    max_bytes
        Memory bound of the moments kept at once (at least one time is always solved).
    """
    times = np.asarray(times, dtype=float)
    chunk = max(1, max_bytes // (8 * math.prod(site_dims(params))))
    out: list[tuple[np.ndarray, float]] = []
    for i in range(0, times.size, chunk):
        for u in full_rank_solve(params, times[i : i + chunk]):
            out.append((density(params, u), mass(params, u)))
    return out


def _outer(vectors: list[np.ndarray]) -> np.ndarray:
    out = vectors[0]
    for v in vectors[1:]:
        out = np.multiply.outer(out, v)
    return out


def full_rank_solve(
    params: TransportParams,
    times: np.ndarray | None = None,
    *,
    callback: Callable[[float, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Full-rank reference: classical RK4 on the full moment tensor.

    The step is that of :func:`time_step` (the scheme of the authors' deterministic solver).

    Parameters
    ----------
    params
        The test case.
    times
        Increasing times in ``[0, t_end]`` at which to return the moments; default
        ``[t_end]``. Each is reached by RK4 steps of at most :func:`time_step`'s size.
    callback
        Called as ``callback(t, u)`` at every requested time.

    Returns
    -------
    numpy.ndarray
        Moments at the requested times, shape ``(len(times), *site_dims)``.
    """
    op = transport_operator(params)
    h_max, _ = time_step(params)
    times = np.asarray([params.t_end] if times is None else times, dtype=float)
    if times.ndim != 1 or np.any(np.diff(times) < 0) or np.any(times < 0):
        raise ValueError("times: expected a 1-D increasing array of times >= 0")
    u = _outer(initial_moments(params))
    out = np.empty((times.size, *u.shape))
    t = 0.0
    for k, target in enumerate(times):
        span = target - t
        steps = math.ceil(span / h_max - 1e-12) if span > 0 else 0
        for _ in range(steps):
            u = _rk4(op.apply, u, span / steps)
        t = float(target)
        out[k] = u
        if callback is not None:
            callback(t, u)
    return out


def _rk4(f: Callable[[np.ndarray], np.ndarray], u: np.ndarray, h: float) -> np.ndarray:
    k1 = f(u)
    k2 = f(u + 0.5 * h * k1)
    k3 = f(u + 0.5 * h * k2)
    k4 = f(u + h * k3)
    return u + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
