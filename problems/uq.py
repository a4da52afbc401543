"""Radiative transfer with uncertain cross sections: stochastic collocation on a tree.

The cross sections depend affinely on two independent parameters ``xi, eta`` uniform on
``[-1, 1]``:

``sigma_s(xi, eta) = sigma_s + sigma_s_xi xi + sigma_s_eta eta``,
``sigma_a(xi, eta) = sigma_a + sigma_a_xi xi + sigma_a_eta eta``.

Each parameter is discretized by Gauss-Legendre collocation, so the unknown is the tensor
``u(space..., moment, xi_i, eta_j)`` and the generator stays a sum of Kronecker products
(``diag(xi)`` on the ``xi`` site). The tree follows arXiv 2412.00858 (Secs. 5.2, 5.3):
``root -> {(space, moments), (xi, eta)}``, with the 2-D space split into ``x`` and ``y``
leaves of the same node: ``root -> {(x, y, moments), (xi, eta)}``. (The nested
``((x, y), moments)`` is far less accurate from the zero-padded product state: its
``(x, y)`` basis update sees the moments only through their old basis, where the transport
term ``D_x (x) A_x`` has no component, so the odd-in-``x`` directions never enter.)

Expected value and variance of the density over the parameters come straight from the
tree (:func:`density_statistics`), never from the full tensor. The reference
(:func:`collocation_reference`) solves the deterministic problem at every collocation point
(full rank, :func:`problems.radiative_transfer.full_rank_solve`); the points are independent
and go through an executor (MPI ranks).

Problems are declarative: this module builds data and imports neither MPI, HDF5 nor solvers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.interpolate import BarycentricInterpolator

from problems.pn_moments import isotropic_weight
from problems.radiative_transfer import (
    CASES,
    TransportParams,
    collision_terms,
    density,
    full_rank_solve,
    initial_moments,
    mass_weights,
    site_dims,
    streaming_terms,
)
from tensorsim._array_api import array_namespace, device, to_numpy
from tensorsim.config import Params, param
from tensorsim.ttn import TTN, Tree, subtree_tensor
from tensorsim.ttn.operator import SumOfProducts

__all__ = [
    "UQParams",
    "collocation_points",
    "collocation_reference",
    "density_statistics",
    "initial_vectors",
    "interpolated_density",
    "quadrature",
    "reference_statistics",
    "uq_mass_weights",
    "uq_operator",
    "uq_sites",
    "uq_tree",
]


@dataclass(frozen=True)
class UQParams(Params):
    """An uncertain radiative transfer problem and its collocation grid.

    Defaults: arXiv 2412.00858, Sec. 5.2 (slab, 201 cells, 100 moments,
    ``sigma_s = 5 + 4 xi + eta``, ``sigma_a = 0``, 100 x 100 Gauss points, T = 2);
    :meth:`section_5_3` gives Sec. 5.3.

    Attributes
    ----------
    transport
        The deterministic problem; its ``sigma_s`` and ``sigma_a`` are the means.
    sigma_s_xi, sigma_s_eta, sigma_a_xi, sigma_a_eta
        Sensitivities of the cross sections to ``xi`` and ``eta``.
    nodes_xi, nodes_eta
        Gauss-Legendre points per parameter.
    """

    transport: TransportParams = param(
        TransportParams(cells=201, degree=99, sigma_s=5.0, cfl=0.1, t_end=2.0),
        "deterministic problem; its cross sections are the means",
    )
    sigma_s_xi: float = param(4.0, "sigma_s = sigma_s + sigma_s_xi xi + sigma_s_eta eta")
    sigma_s_eta: float = param(1.0, "sensitivity of sigma_s to eta")
    sigma_a_xi: float = param(0.0, "sigma_a = sigma_a + sigma_a_xi xi + sigma_a_eta eta")
    sigma_a_eta: float = param(0.0, "sensitivity of sigma_a to eta")
    nodes_xi: int = param(100, "Gauss-Legendre points for xi", ge=1)
    nodes_eta: int = param(100, "Gauss-Legendre points for eta", ge=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        t = self.transport
        for name, mean, a, b in (
            ("sigma_s", t.sigma_s, self.sigma_s_xi, self.sigma_s_eta),
            ("sigma_a", t.sigma_a, self.sigma_a_xi, self.sigma_a_eta),
        ):
            if mean - abs(a) - abs(b) < 0:
                raise ValueError(
                    f"{name}_xi, {name}_eta: {name} = {mean} + {a} xi + {b} eta is negative "
                    "for some xi, eta in "
                    "[-1, 1]; cross sections must be >= 0"
                )

    @classmethod
    def section_5_3(cls, **overrides: Any) -> UQParams:
        """The setting of arXiv 2412.00858, Sec. 5.3.

        2-D line source, ``sigma_s = 1 + xi``, ``sigma_a = 1 + eta``, 100 x 100 cells,
        P_31, T = 1, CFL 0.5; ``overrides`` replace fields (``transport`` as a mapping of
        :class:`TransportParams` fields).
        """
        transport = overrides.pop("transport", {})
        values: dict[str, Any] = dict(
            transport=TransportParams.line_source(sigma_s=1.0, sigma_a=1.0, **transport),
            sigma_s_xi=1.0,
            sigma_s_eta=0.0,
            sigma_a_xi=0.0,
            sigma_a_eta=1.0,
        )
        values.update(overrides)
        return cls(**values)


def uq_sites(params: UQParams) -> tuple[list[int], int, int, int]:
    """Site numbers: (space sites, moment site, xi site, eta site)."""
    dim = CASES[params.transport.case]
    return list(range(dim)), dim, dim + 1, dim + 2


def quadrature(params: UQParams) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(xi, p_xi, eta, p_eta)``: Gauss-Legendre nodes and probability weights (sum 1)."""
    xi, w_xi = np.polynomial.legendre.leggauss(params.nodes_xi)
    eta, w_eta = np.polynomial.legendre.leggauss(params.nodes_eta)
    return xi, w_xi / 2.0, eta, w_eta / 2.0


def uq_operator(params: UQParams) -> SumOfProducts:
    """The generator on (space..., moments, xi, eta)."""
    t = params.transport
    _, _, s_xi, s_eta = uq_sites(params)
    xi, _, eta, _ = quadrature(params)
    d_xi, d_eta = {s_xi: np.diag(xi)}, {s_eta: np.diag(eta)}
    terms = streaming_terms(t)
    terms += collision_terms(t, t.sigma_s, t.sigma_a)
    terms += collision_terms(t, params.sigma_s_xi, params.sigma_a_xi, d_xi)
    terms += collision_terms(t, params.sigma_s_eta, params.sigma_a_eta, d_eta)
    return SumOfProducts(terms, [*site_dims(t), params.nodes_xi, params.nodes_eta])


def uq_tree(params: UQParams) -> Tree:
    """``root -> {(space, moments), (xi, eta)}`` (2-D: ``(x, y, moments)`` under one node)."""
    space, m, s_xi, s_eta = uq_sites(params)
    physical = (*space, m)
    return Tree.from_nested((physical, (s_xi, s_eta)), uq_operator(params).dims)


def initial_vectors(params: UQParams) -> list[np.ndarray]:
    """Per-site vectors of the (parameter-independent) initial state."""
    return [
        *initial_moments(params.transport),
        np.ones(params.nodes_xi),
        np.ones(params.nodes_eta),
    ]


def uq_mass_weights(params: UQParams) -> list[np.ndarray]:
    """Per-site weights of the expected mass ``E[int rho dx]``."""
    _, p_xi, _, p_eta = quadrature(params)
    return [*mass_weights(params.transport), p_xi, p_eta]


def density_statistics(params: UQParams, y: TTN) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and variance of the density over the parameters, from the tree.

    With ``Phi`` the physical subtree's basis (moments contracted to the density), ``B`` the
    parameter subtree's basis and ``C`` the root matrix: ``rho = Phi C B^T``, so
    ``E[rho] = Phi C B^T p`` and ``E[rho^2] = rowsum((Phi C) G * (Phi C))`` with the
    weighted Gram matrix ``G = B^T diag(p) B``. Cost: the size of the physical space times
    the ranks, plus that of the parameter grid times the ranks.

    Returns
    -------
    (mean, variance)
        Arrays of the space shape (``(cells,)`` or ``(cells, cells)``).
    """
    tree = y.tree
    if tree != uq_tree(params):
        raise ValueError("y: expected a TTN on uq_tree(params)")
    t = params.transport
    space, m, _, _ = uq_sites(params)
    iso = np.zeros(tree.dims[m])
    iso[0] = isotropic_weight("slab" if len(space) == 1 else "planar")
    physical, parametric = tree.children[tree.root]
    phi, _ = subtree_tensor(y, physical, {m: _like(y, iso)})
    basis, _ = subtree_tensor(y, parametric)
    phi = to_numpy(phi).reshape(-1, phi.shape[-1])
    basis = to_numpy(basis).reshape(-1, basis.shape[-1])
    core = to_numpy(y.tensors[tree.root])[0]
    _, p_xi, _, p_eta = quadrature(params)
    p = np.outer(p_xi, p_eta).reshape(-1)
    left = phi @ core
    mean = left @ (basis.T @ p)
    gram = basis.T @ (p[:, None] * basis)
    second = np.einsum("xa,ab,xb->x", left, gram, left)
    shape = (t.cells,) * len(space)
    return np.real(mean).reshape(shape), np.real(second - mean**2).reshape(shape)


def _like(y: TTN, v: np.ndarray) -> Any:
    ref = y.tensors[y.tree.root]
    xp = array_namespace(ref)
    return xp.asarray(v, dtype=ref.dtype, device=device(ref))


def collocation_points(params: UQParams) -> list[tuple[int, int, TransportParams]]:
    """One deterministic problem per collocation point: ``(i, j, params at xi_i, eta_j)``."""
    xi, _, eta, _ = quadrature(params)
    t = params.transport
    points = []
    for i, a in enumerate(xi):
        for j, b in enumerate(eta):
            sigma_s = t.sigma_s + params.sigma_s_xi * a + params.sigma_s_eta * b
            sigma_a = t.sigma_a + params.sigma_a_xi * a + params.sigma_a_eta * b
            points.append(
                (
                    i,
                    j,
                    dataclasses.replace(t, sigma_s=max(sigma_s, 0.0), sigma_a=max(sigma_a, 0.0)),
                )
            )
    return points


def collocation_reference(
    params: UQParams,
    solve: Callable[[TransportParams], np.ndarray],
    map_points: Callable[..., list[Any]] | None = None,
    *,
    sigma_s_nodes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and variance of the density at ``t_end`` by full-rank collocation.

    Parameters
    ----------
    params
        The problem.
    solve
        Deterministic solver returning the moments at ``t_end`` for one point (e.g.
        ``lambda p: full_rank_solve(p)[-1]``).
    map_points
        ``map_points(func, tasks)`` evaluating ``func`` on every task, e.g. the ``map`` of a
        :class:`tensorsim.parallel.Executor` (MPI ranks); serial by default.
    sigma_s_nodes
        ``None`` (default): one full-rank solve per collocation point. An integer: the
        densities at the points come from :func:`interpolated_density` with this many
        solves, which makes the 100 x 100 references of Secs. 5.2 and 5.3 affordable.

    Returns
    -------
    (mean, variance)
        As :func:`density_statistics`.
    """
    points = collocation_points(params)
    t = params.transport
    if sigma_s_nodes is None:

        def one(point: tuple[int, int, TransportParams]) -> np.ndarray:
            return density(t, solve(point[2]))

        rhos = _map(map_points)(one, points)
    else:
        rho_at = interpolated_density(params, sigma_s_nodes, solve, map_points)
        rhos = list(
            rho_at(
                np.array([p.sigma_s for _, _, p in points]),
                np.array([p.sigma_a for _, _, p in points]),
            )
        )
    _, p_xi, _, p_eta = quadrature(params)
    mean = np.zeros_like(rhos[0])
    second = np.zeros_like(rhos[0])
    for (i, j, _), rho in zip(points, rhos, strict=True):
        mean += p_xi[i] * p_eta[j] * rho
        second += p_xi[i] * p_eta[j] * rho**2
    return mean, second - mean**2


def reference_statistics(
    params: UQParams,
    nodes: int = 0,
    map_points: Callable[..., list[Any]] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Expected value and variance of the density at ``t_end``, full-rank collocation.

    :func:`collocation_reference` with full-rank RK4 solves
    (:func:`problems.radiative_transfer.full_rank_solve`): ``nodes`` solves at Chebyshev
    points in ``sigma_s`` (:func:`interpolated_density`), or one solve per collocation point
    when ``nodes`` is 0 or not fewer than the points.

    Parameters
    ----------
    params
        The problem.
    nodes
        Full-rank solves of the interpolated reference (0: one per collocation point).
    map_points
        As in :func:`collocation_reference` (e.g. an executor's ``map``).
    """
    points = params.nodes_xi * params.nodes_eta
    return collocation_reference(
        params,
        lambda point: full_rank_solve(point)[-1],
        map_points,
        sigma_s_nodes=nodes if 0 < nodes < points else None,
    )


def interpolated_density(
    params: UQParams,
    nodes: int,
    solve: Callable[[TransportParams], np.ndarray],
    map_points: Callable[..., list[Any]] | None = None,
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """The density at ``t_end`` as a function of the cross sections, from ``nodes`` solves.

    Two facts make a handful of full-rank solves stand for all collocation points:

    * The cross sections are uniform in space, so the absorption term ``-sigma_a u``
      commutes with the rest of the generator and factors out of the flow:
      ``u(t; sigma_s, sigma_a) = exp(-sigma_a t) u(t; sigma_s, 0)``. (Exact for the
      time-continuous problem; the discrete solves differ from it by their own RK4 error.)
    * ``u(t; sigma_s, 0)`` is an entire function of ``sigma_s`` (an exponential of an
      affine matrix function), so polynomial interpolation at Chebyshev points on the range
      of ``sigma_s`` converges faster than geometrically.

    The interpolant is SciPy's barycentric formula on Chebyshev points of the second kind;
    test it against direct solves before trusting it with a new setting (the tests do).

    Parameters
    ----------
    params
        The problem; the interpolation interval is the range of ``sigma_s`` over its
        collocation points.
    nodes
        Number of Chebyshev points (full-rank solves), >= 1.
    solve, map_points
        As in :func:`collocation_reference`.

    Returns
    -------
    callable
        ``rho(sigma_s, sigma_a)`` for arrays of ``m`` cross-section pairs, shape
        ``(m, *space)``.
    """
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise ValueError(f"nodes: expected an integer >= 1, got {nodes!r}")
    t = params.transport
    sigmas = [p.sigma_s for _, _, p in collocation_points(params)]
    low, high = min(sigmas), max(sigmas)
    if nodes == 1 or high == low:
        centres = np.array([0.5 * (low + high)])
    else:
        centres = low + 0.5 * (high - low) * (1.0 + np.cos(np.pi * np.arange(nodes) / (nodes - 1)))

    def one(sigma_s: float) -> np.ndarray:
        return density(t, solve(dataclasses.replace(t, sigma_s=float(sigma_s), sigma_a=0.0)))

    values = np.stack(_map(map_points)(one, list(centres)))
    interpolant = BarycentricInterpolator(centres, values, axis=0) if centres.size > 1 else None

    def rho(sigma_s: np.ndarray, sigma_a: np.ndarray) -> np.ndarray:
        sigma_s, sigma_a = np.atleast_1d(sigma_s), np.atleast_1d(sigma_a)
        if sigma_s.shape != sigma_a.shape or sigma_s.ndim != 1:
            raise ValueError("sigma_s, sigma_a: expected 1-D arrays of equal length")
        if np.any(sigma_s < low - 1e-12 * (1 + abs(low))) or np.any(
            sigma_s > high + 1e-12 * (1 + abs(high))
        ):
            raise ValueError(
                f"sigma_s: expected values in the interpolation range [{low}, {high}]"
            )
        base = (
            interpolant(sigma_s)
            if interpolant is not None
            else np.broadcast_to(values[0], (sigma_s.size, *values.shape[1:]))
        )
        decay = np.exp(-sigma_a * t.t_end).reshape(-1, *([1] * (values.ndim - 1)))
        return decay * base

    return rho


def _map(map_points: Callable[..., list[Any]] | None) -> Callable[..., list[Any]]:
    return map_points or (lambda func, tasks: [func(task) for task in tasks])
