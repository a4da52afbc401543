"""Shared pieces of the BUG integrators: the problem, step info, registry, local flows.

All integrators here work on one recursive tree code: a two-leaf tree is the matrix case,
a star the Tucker case. States are orthonormal TTNs (norm at the root). The right-hand side
is linear, ``dY/dt = factor * H Y`` with ``H`` a :class:`~tensorsim.ttn.operator.TTNO`
(``factor = -1j`` for the Schrödinger equation).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from tensorsim._array_api import Array
from tensorsim.linalg import expm_multiply, rk4_step
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn.environment import (
    apply_leaf,
    apply_node,
    down_environments,
    edge_gauge,
    root_up_environment,
    up_environment,
)
from tensorsim.ttn.network import TTN
from tensorsim.ttn.operator import TTNO

__all__ = [
    "INTEGRATORS",
    "LinearTreeRHS",
    "LocalProblems",
    "StepInfo",
    "local_flow",
    "register_integrator",
]

logger = logging.getLogger(__name__)

#: name -> step function, filled by :func:`register_integrator`.
INTEGRATORS: dict[str, Callable[..., tuple[TTN, StepInfo]]] = {}

Substep = Literal["krylov", "rk4"]


def register_integrator(name: str) -> Callable[[Callable], Callable]:
    """Register a step function under ``name`` (drivers pick integrators by name)."""

    def decorate(func: Callable) -> Callable:
        if name in INTEGRATORS:
            raise ValueError(f"integrator {name!r} is registered twice")
        INTEGRATORS[name] = func
        return func

    return decorate


@dataclass(frozen=True)
class LinearTreeRHS:
    """The right-hand side ``F(Y) = factor * H Y`` of a linear, autonomous problem.

    Attributes
    ----------
    op
        The operator ``H`` as a TTNO on the state's tree.
    factor
        Scalar in front (``-1j`` for ``i dY/dt = H Y``; ``1`` for ``dY/dt = H Y``).
    """

    op: TTNO
    factor: complex = -1j

    @property
    def hermitian(self) -> bool:
        """Whether ``H`` is Hermitian (Lanczos substeps)."""
        return self.op.hermitian


@dataclass
class StepInfo:
    """What one step did (filled by the integrators; the driver adds norm and energy).

    Attributes
    ----------
    ranks
        Rank of every edge after the step.
    trunc_error
        2-norm of all singular values discarded by the truncation.
    eta
        Error indicator: ``h * ||F(Y0)||`` on the dropped blocks (parallel BUG), else NaN.
    rejected
        Number of rejected attempts before the accepted one.
    wall_parallel
        Seconds in the independent local problems (the part spread over ranks).
    wall_serial
        Seconds in the serial glue (environments, augmentation, assembly, truncation).
    """

    ranks: dict[int, int] = field(default_factory=dict)
    trunc_error: float = 0.0
    eta: float = math.nan
    rejected: int = 0
    wall_parallel: float = 0.0
    wall_serial: float = 0.0


def local_flow(
    apply: Callable[[Array], Array],
    x0: Array,
    h: float,
    rhs: LinearTreeRHS,
    *,
    substep: Substep = "krylov",
    tol: float = 1e-12,
    rk4_steps: int = 1,
) -> Array:
    """Solve ``x' = factor * apply(x)`` over a time ``h`` from ``x0``.

    ``"krylov"``: exact exponential by Lanczos/Arnoldi (:func:`tensorsim.expm_multiply`);
    ``"rk4"``: ``rk4_steps`` classical Runge-Kutta steps.
    """
    if substep == "krylov":
        return expm_multiply(apply, x0, rhs.factor * h, tol=tol, hermitian=rhs.hermitian)
    if substep == "rk4":
        x = x0 + 0j * rhs.factor if isinstance(rhs.factor, complex) else x0
        dt = h / rk4_steps
        for k in range(rk4_steps):
            x = rk4_step(lambda t, y: rhs.factor * apply(y), k * dt, x, dt)
        return x
    raise ValueError(f"substep: expected 'krylov' or 'rk4', got {substep!r}")


class LocalProblems:
    """The restricted sub-problems of one step from an orthonormal state ``Y0``.

    Computed serially, root to leaves, from ``Y0`` only (the data every parallel task
    reads): down environments ``down[node]``; for every non-root node the gauge of its
    parent edge ``q[node]`` (the parent's tensor orthonormal in this node's mode) and
    ``r[node]``; the initial values ``x[node]`` of the local problems (``U R^T`` for a
    leaf, ``C ×_0 R^T`` for an inner node, ``C`` at the root); and the up environments
    ``up[node]``.
    """

    def __init__(self, state: TTN, rhs: LinearTreeRHS) -> None:
        tree = state.tree
        self.state = state
        self.rhs = rhs
        self.down = down_environments(state, rhs.op)
        n = tree.n_nodes
        self.x: list[Array] = [None] * n  # type: ignore[list-item]
        self.up: list[Array] = [None] * n  # type: ignore[list-item]
        self.q: list[Array | None] = [None] * n
        self.r: list[Array | None] = [None] * n
        root = tree.root
        self.x[root] = state.tensors[root]
        self.up[root] = root_up_environment(rhs.op, state.tensors[root])
        for node in tree.preorder:
            if tree.is_leaf(node):
                continue
            kids = tree.children[node]
            child_down = [self.down[c] for c in kids]
            for i, c in enumerate(kids, start=1):
                q, r = edge_gauge(self.x[node], i)
                self.q[c], self.r[c] = q, r
                self.up[c] = up_environment(q, rhs.op.tensors[node], self.up[node], child_down, i)
                t = state.tensors[c]
                self.x[c] = t @ r.mT if tree.is_leaf(c) else mode_dot(t, r, 0)

    def apply(self, node: int, x: Array, child_envs: list[Array] | None = None) -> Array:
        """The operator restricted to ``node`` (old child environments by default)."""
        tree = self.state.tree
        w = self.rhs.op.tensors[node]
        if tree.is_leaf(node):
            return apply_leaf(x, w, self.up[node])
        envs = (
            child_envs if child_envs is not None else [self.down[c] for c in tree.children[node]]
        )
        return apply_node(x, w, self.up[node], envs)


def timer() -> Callable[[], float]:
    """Return a function giving the seconds since this call."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
