"""Ground states of tree tensor networks by two-site and one-site DMRG.

The sweep is the one of the two-site TDVP integrator (:mod:`solvers.bug.tdvp2`, children
first and back): for every edge the two tensors it joins are optimized as one, as the
lowest eigenvector of the operator restricted to the pair (Lanczos,
:func:`tensorsim.linalg.lowest_eigenpair`), then split by a truncated SVD; nothing moves
backward in time. On the caterpillar (MPS-like) tree this is the two-site DMRG of White
(1992) with one site per spine node; on other trees it is the tree DMRG of Shi, Duan &
Vidal (2006) and of PyTreeNet / ITensorNetworks. Before a sweep the edge bases can be
enriched by directions of ``H Y`` (:func:`solvers.bug.enrichment.enrich_bases`), the
subspace expansion that lets a branched tree reach couplings between leaves under
different parents, which a pair cannot create from nothing.

The one-site variant (``sites=1``) optimizes one tensor at a time in the sweep of the
one-site TDVP integrator (:mod:`solvers.bug.tdvp`): its local problems are smaller by the
physical dimension, and ranks grow by bond expansion whenever the centre moves (the edge
basis completed and widened by directions of the restricted ``H x``,
:func:`solvers.bug.tdvp.expanded_gauge`: the subspace expansion of Hubig, McCulloch,
Schollwöck & Wolf, arXiv 1501.05504, in the controlled form of Gleis, Li & von Delft,
arXiv 2207.14712); the widened state is truncated once per sweep.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from solvers.bug.common import INTEGRATORS, LinearTreeRHS
from solvers.bug.enrichment import enrich_bases
from solvers.bug.tdvp import _Sweep
from solvers.bug.tdvp2 import _TwoSiteSweep, complete_leaves
from tensorsim._array_api import Array, array_namespace, to_float
from tensorsim.linalg import Truncation, lowest_eigenpair
from tensorsim.ttn.apply import gram_operator
from tensorsim.ttn.environment import root_up_environment
from tensorsim.ttn.network import TTN, orthonormalize, truncate
from tensorsim.ttn.observables import expectation
from tensorsim.ttn.operator import TTNO

__all__ = ["GroundState", "dmrg", "imaginary_time"]

logger = logging.getLogger(__name__)


@dataclass
class GroundState:
    """What :func:`dmrg` found, sweep by sweep.

    Attributes
    ----------
    state
        The last sweep's state, orthonormal, normalized.
    energies
        ``<H>`` of the state after every sweep (the last entry is the result).
    variances
        ``<H^2> - <H>^2`` after every sweep (zero for an eigenstate; resolved to about
        ``eps * E^2``).
    discarded
        Per sweep, the 2-norm of every singular value the splits discarded.
    max_ranks
        Per sweep, the largest edge rank.
    wall_times
        Per sweep, the wall time since the start (seconds; enrichment and measurements
        included).
    converged
        Whether the energy changed by at most ``energy_tol`` relative in the last sweep.
    """

    state: TTN
    energies: list[float] = field(default_factory=list)
    variances: list[float] = field(default_factory=list)
    discarded: list[float] = field(default_factory=list)
    max_ranks: list[int] = field(default_factory=list)
    wall_times: list[float] = field(default_factory=list)
    converged: bool = False


def dmrg(
    op: TTNO,
    state: TTN,
    trunc: Truncation,
    *,
    sweeps: int = 30,
    energy_tol: float = 1e-12,
    enrich: int = 0,
    eig_tol: float = 1e-10,
    sites: int = 2,
    expand: int = 4,
    callback: Callable[[int, GroundState], None] | None = None,
) -> GroundState:
    """The lowest eigenstate of a Hermitian tree operator by DMRG sweeps.

    Parameters
    ----------
    op
        The Hamiltonian as a TTNO on ``state.tree`` (Hermitian).
    state
        Start state (any TTN on the tree, not zero; a random one of moderate rank avoids
        the symmetric traps of product states).
    trunc
        Truncation of every split (two-site) or of the state after every sweep (one-site):
        ``atol``/``rtol`` on the discarded singular values, ``max_rank`` the bond dimension.
    sweeps
        Largest number of sweeps (each visits every edge twice, down and up).
    energy_tol
        Stop when the energy of two consecutive sweeps differs by at most
        ``energy_tol * max(1, |E|)``.
    enrich
        Directions of ``H Y`` added to every edge basis before each sweep (``0``: none;
        useful on branched trees).
    eig_tol
        Residual tolerance of the local eigenproblems (relative to their scale).
    sites
        ``2``: two-site DMRG (pairs optimized and split); ``1``: one-site DMRG with bond
        expansion.
    expand
        One-site only: directions of the restricted ``H x`` added to an edge whenever the
        centre moves across it (within ``trunc.max_rank``); ``0``: fixed ranks.
    callback
        Called after every sweep with the sweep's number and the result so far (progress
        lines, checkpoints).

    Returns
    -------
    GroundState

    Raises
    ------
    TypeError
        If ``op`` is not a TTNO or ``state`` not a TTN.
    ValueError
        If ``op`` is not Hermitian or on another tree, ``state`` is zero, or an option is
        out of range.
    """
    _check(op, state, sweeps, energy_tol, enrich)
    if sites not in (1, 2) or isinstance(sites, bool):
        raise ValueError(f"sites: expected 1 (one-site) or 2 (two-site DMRG), got {sites!r}")
    if not (isinstance(expand, int) and not isinstance(expand, bool) and expand >= 0):
        raise ValueError(f"expand: expected an integer >= 0, got {expand!r}")
    start = time.perf_counter()
    rhs = LinearTreeRHS(op)
    gram = gram_operator(op)
    y = orthonormalize(state)
    y = _normalized(y)
    out = GroundState(y)
    for number in range(1, sweeps + 1):
        if enrich:
            y = enrich_bases(y, op, enrich, trunc.max_rank)
        y = complete_leaves(y, trunc.max_rank)
        if sites == 2:
            y, discarded = _two_site_sweep(y, rhs, trunc, eig_tol)
        else:
            y, discarded = _one_site_sweep(y, rhs, trunc, eig_tol, expand)
        y = _normalized(y)
        energy = expectation(y, op).real
        out.state = y
        out.energies.append(energy)
        out.variances.append(max(expectation(y, gram).real - energy**2, 0.0))
        out.discarded.append(discarded)
        out.max_ranks.append(max(y.ranks().values()))
        out.wall_times.append(time.perf_counter() - start)
        if callback is not None:
            callback(number, out)
        if len(out.energies) > 1:
            change = abs(out.energies[-1] - out.energies[-2])
            if change <= energy_tol * max(1.0, abs(energy)):
                out.converged = True
                break
    logger.debug(
        "dmrg: %d sweeps, E = %.12g, variance %.1e, converged %s",
        len(out.energies),
        out.energies[-1],
        out.variances[-1],
        out.converged,
    )
    return out


def _two_site_sweep(
    y: TTN, rhs: LinearTreeRHS, trunc: Truncation, eig_tol: float
) -> tuple[TTN, float]:
    """One two-site sweep (down and up); returns the state and the discarded 2-norm."""
    tree = y.tree
    sweep = _GroundSweep(y, rhs, trunc, eig_tol)
    x = y.tensors[tree.root]
    up = root_up_environment(rhs.op, x)
    if sweep.active_children(tree.root):
        x = sweep.forward(tree.root, x, up, 0.0)
        x = sweep.backward(tree.root, x, up, 0.0)
    else:  # every leaf complete under the root: the root tensor is the whole state
        x = sweep.node_ground(tree.root, x, up)
    return sweep.network(x), math.sqrt(sweep.discarded2)


def _one_site_sweep(
    y: TTN, rhs: LinearTreeRHS, trunc: Truncation, eig_tol: float, expand: int
) -> tuple[TTN, float]:
    """One one-site sweep with bond expansion, then the truncation of the widened state."""
    tree = y.tree
    sweep = _OneSiteGroundSweep(y, rhs, eig_tol, expand, trunc.max_rank)
    x = y.tensors[tree.root]
    up = root_up_environment(rhs.op, x)
    x = sweep.forward(tree.root, x, up, 0.0, evolve_node=False)
    x = sweep.backward(tree.root, x, up, 0.0)
    out, discarded = truncate(sweep.network(x), trunc)
    return out, math.sqrt(sum(v * v for v in discarded.values()))


def imaginary_time(
    op: TTNO,
    state: TTN,
    trunc: Truncation,
    *,
    integrator: str = "tdvp2",
    tau: float = 0.05,
    max_steps: int = 2000,
    energy_tol: float = 1e-12,
    callback: Callable[[int, GroundState], None] | None = None,
    **options: object,
) -> GroundState:
    """The ground state as the limit of ``exp(-tau k H) Y`` (renormalized every step).

    The second route to ground states: ``dY/dtau = -H Y`` integrated by any registered
    integrator (``"tdvp2"``, ``"tdvp"``, ``"augmented_bug"``, ...) with the state
    renormalized after every step, until the energy changes by at most
    ``energy_tol * max(1, |E|)`` from one step to the next. The fixed point carries the
    integrator's error at ``tau`` (for the TDVP sweeps the splitting error of the
    projector, a bias that shrinks with ``tau``); :func:`dmrg` has none.

    Parameters
    ----------
    op, state, trunc
        As :func:`dmrg`.
    integrator
        Name in :data:`solvers.bug.INTEGRATORS`.
    tau
        Imaginary-time step.
    max_steps
        Largest number of steps.
    energy_tol
        Stop criterion on the energy change per step.
    callback
        Called after every step with its number and the result so far.
    **options
        Further keywords of the integrator's step (``enrich``, ...).

    Returns
    -------
    GroundState
        One entry per *step* in ``energies``, ``variances``, ``discarded``, ``max_ranks``.
    """
    _check(op, state, max_steps, energy_tol, 0, count_name="max_steps")
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator: expected one of {sorted(INTEGRATORS)}, got {integrator!r}")
    if not (isinstance(tau, int | float) and tau > 0 and math.isfinite(tau)):
        raise ValueError(f"tau: expected a positive step, got {tau!r}")
    step = INTEGRATORS[integrator]
    rhs = LinearTreeRHS(op, factor=-1.0)
    gram = gram_operator(op)
    y = _normalized(orthonormalize(state))
    out = GroundState(y)
    for number in range(1, max_steps + 1):
        y, info = step(y, (number - 1) * tau, tau, rhs=rhs, trunc=trunc, **options)
        y = _normalized(y)
        energy = expectation(y, op).real
        out.state = y
        out.energies.append(energy)
        out.variances.append(max(expectation(y, gram).real - energy**2, 0.0))
        out.discarded.append(info.trunc_error)
        out.max_ranks.append(max(y.ranks().values()))
        if callback is not None:
            callback(number, out)
        if number > 1 and abs(energy - out.energies[-2]) <= energy_tol * max(1.0, abs(energy)):
            out.converged = True
            break
    return out


class _GroundSweep(_TwoSiteSweep):
    """The two-site sweep with every pair optimized instead of evolved."""

    def __init__(self, state: TTN, rhs: LinearTreeRHS, trunc: Truncation, eig_tol: float):
        super().__init__(state, rhs, "krylov", trunc)
        self.eig_tol = eig_tol

    def _pair_flow(
        self, node: int, q: Array, child: int, child_x: Array, up: Array, pos: int, h: float
    ) -> Array:
        theta, apply = self._pair_problem(node, q, child, child_x, up, pos)
        _, vector = lowest_eigenpair(apply, theta, tol=self.eig_tol)
        return vector

    def node_flow(self, node: int, x: Array, up: Array, h: float) -> Array:
        """Nothing moves back in time: the centre stays as the split left it."""
        return x

    def node_ground(self, node: int, x: Array, up: Array) -> Array:
        """The lowest eigenvector of the operator restricted to one node, from ``x``."""
        _, vector = lowest_eigenpair(lambda v: self.apply(node, v, up), x, tol=self.eig_tol)
        return vector


class _OneSiteGroundSweep(_Sweep):
    """The one-site sweep with every node optimized and no bond moving back in time."""

    def __init__(
        self, state: TTN, rhs: LinearTreeRHS, eig_tol: float, expand: int, max_rank: int | None
    ):
        super().__init__(state, rhs, "krylov", grow=expand, max_rank=max_rank)
        self.eig_tol = eig_tol

    def node_flow(self, node: int, x: Array, up: Array, h: float) -> Array:
        """The lowest eigenvector of the operator restricted to ``node``, from ``x``."""
        _, vector = lowest_eigenpair(lambda v: self.apply(node, v, up), x, tol=self.eig_tol)
        return vector

    def _bond_flow(self, bond: Array, up: Array, child: int, h: float) -> Array:
        return bond


def _normalized(y: TTN) -> TTN:
    root = y.tree.root
    xp = array_namespace(y.tensors[root])
    tensors = list(y.tensors)
    tensors[root] = tensors[root] / to_float(xp.linalg.vector_norm(tensors[root]))
    return TTN(y.tree, tuple(tensors))


def _check(
    op: TTNO, state: TTN, count: int, energy_tol: float, enrich: int, count_name: str = "sweeps"
) -> None:
    """Refuse what neither route can use (``count`` is the sweeps or the steps)."""
    if not isinstance(op, TTNO):
        raise TypeError(f"op: expected a TTNO, got {type(op).__name__}")
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    if op.tree != state.tree:
        raise ValueError("op: expected a TTNO on the state's tree")
    if not op.hermitian:
        raise ValueError("op: expected a Hermitian operator (a ground state needs one)")
    if state.norm() == 0.0:
        raise ValueError("state: expected a nonzero start state")
    if not (isinstance(count, int) and not isinstance(count, bool) and count >= 1):
        raise ValueError(f"{count_name}: expected an integer >= 1, got {count!r}")
    if not (energy_tol >= 0 and math.isfinite(energy_tol)):
        raise ValueError(f"energy_tol: expected a finite number >= 0, got {energy_tol!r}")
    if not (isinstance(enrich, int) and not isinstance(enrich, bool) and enrich >= 0):
        raise ValueError(f"enrich: expected an integer >= 0, got {enrich!r}")
