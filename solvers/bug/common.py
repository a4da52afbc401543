"""Shared pieces of the BUG integrators: the problem, step info, registry, local flows.

All integrators here work on one recursive tree code: a two-leaf tree is the matrix case,
a star the Tucker case. States are orthonormal TTNs (norm at the root). The right-hand side
is linear, ``dY/dt = factor * H Y`` with ``H`` a :class:`~tensorsim.ttn.operator.TTNO`
(``factor = -1j`` for the Schrödinger equation).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tensorsim._array_api import Array, array_namespace, device
from tensorsim.linalg import expm_multiply, rk4_step
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn.apply import gram_operator
from tensorsim.ttn.environment import (
    apply_leaf,
    apply_node,
    edge_gauge,
    leaf_environment,
    mixed_node_environment,
    mixed_up_environment,
    node_environment,
    project_leaf,
    project_node,
    root_up_environment,
    up_environment,
)
from tensorsim.ttn.network import TTN
from tensorsim.ttn.operator import TTNO
from tensorsim.ttn.tree import Tree

__all__ = [
    "INTEGRATORS",
    "INTEGRATOR_OPTIONS",
    "LinearTreeRHS",
    "LocalProblems",
    "StepInfo",
    "basis_environments",
    "local_flow",
    "register_integrator",
    "tree_levels",
]

logger = logging.getLogger(__name__)

#: name -> step function, filled by :func:`register_integrator`.
INTEGRATORS: dict[str, Callable[..., tuple[TTN, StepInfo]]] = {}

#: name -> the keyword-only options its step function declares (``rhs``, ``trunc``,
#: ``substep``, ...), read from the signature when it is registered, so that a wrapper put
#: into :data:`INTEGRATORS` later (a test's fault injection) does not change it.
INTEGRATOR_OPTIONS: dict[str, frozenset[str]] = {}

Substep = Literal["krylov", "rk4"]


def register_integrator(name: str) -> Callable[[Callable], Callable]:
    """Register a step function under ``name`` (drivers pick integrators by name).

    The step function is ``step(state, t, h, *, rhs, trunc, ...)``; its keyword-only
    parameters are recorded in :data:`INTEGRATOR_OPTIONS` (what
    :func:`solvers.bug.make_stepper` may pass it).
    """

    def decorate(func: Callable) -> Callable:
        if name in INTEGRATORS:
            raise ValueError(f"integrator {name!r} is registered twice")
        INTEGRATORS[name] = func
        INTEGRATOR_OPTIONS[name] = frozenset(
            p.name
            for p in inspect.signature(func).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        )
        return func

    return decorate


@dataclass(frozen=True)
class LinearTreeRHS:
    """The right-hand side ``F(Y) = factor * H Y + G`` of an autonomous affine problem.

    Attributes
    ----------
    op
        The operator ``H`` as a TTNO on the state's tree, or ``None`` (no linear part).
    factor
        Scalar in front of ``H`` (``-1j`` for ``i dY/dt = H Y``; ``1`` for ``dY/dt = H Y``).
    source
        A constant source ``G`` as a TTN on the same tree, or ``None``. (With ``op=None``
        this is the setting of the exactness property of BUG: ``F = (A(t1) - A(t0)) / h``.)
    """

    op: TTNO | None
    factor: complex = -1j
    source: TTN | None = None

    def __post_init__(self) -> None:
        if self.op is None and self.source is None:
            raise ValueError("rhs: give an operator, a source, or both")
        if self.op is not None and self.source is not None and self.op.tree != self.source.tree:
            raise ValueError("source: expected a TTN on the operator's tree")

    @functools.cached_property
    def gram(self) -> TTNO:
        """``H^H H`` as a TTNO (built on first use): ``||H Y||^2 = <Y|H^H H|Y>``."""
        if self.op is None:
            raise ValueError("rhs: no operator, so no H^H H")
        return gram_operator(self.op)

    @property
    def hermitian(self) -> bool:
        """Whether ``H`` is Hermitian (Lanczos substeps); False without an operator."""
        return self.op is not None and self.op.hermitian


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
    normal
        ``h * ||(I - P) F(Y0)||`` with ``P`` the projection onto the step's augmented
        Galerkin space (:func:`solvers.bug.enrichment.normal_component`): the part of the
        first-order increment the step could not represent. NaN where not computed (fixed
        rank, or a source term).
    increment
        ``h * |factor| * ||(H - e) Y0||`` (``e`` the energy of ``Y0``): the size of the
        first-order change of the normalized state, the scale ``normal`` is judged by.
    enrich
        New directions per edge the accepted attempt was enriched with (0: none).
    rejected
        Number of rejected attempts before the accepted one.
    wall_parallel
        Seconds in the independent local problems (the part spread over ranks).
    wall_serial
        Seconds in the serial glue (environments, augmentation, assembly, truncation).
    substeps
        Number of accepted steps that made up this step (more than one after step halving).
    """

    ranks: dict[int, int] = field(default_factory=dict)
    trunc_error: float = 0.0
    eta: float = math.nan
    normal: float = math.nan
    increment: float = math.nan
    enrich: int = 0
    rejected: int = 0
    wall_parallel: float = 0.0
    wall_serial: float = 0.0
    substeps: int = 1


def local_flow(
    apply: Callable[[Array], Array] | None,
    x0: Array,
    h: float,
    rhs: LinearTreeRHS,
    *,
    source: Array | None = None,
    substep: Substep = "krylov",
    tol: float = 1e-12,
    rk4_steps: int = 1,
) -> Array:
    """Solve ``x' = factor * apply(x) + source`` over a time ``h`` from ``x0``.

    ``"krylov"``: exact exponential by Lanczos/Arnoldi (:func:`tensorsim.expm_multiply`);
    with a source, of the augmented generator ``[[factor A, s], [0, 0]]`` acting on
    ``(x, 1)``. ``"rk4"``: ``rk4_steps`` classical Runge-Kutta steps. Without an operator
    (``apply=None``) the flow is ``x0 + h * source``, exactly.
    """
    if substep not in ("krylov", "rk4"):
        raise ValueError(f"substep: expected 'krylov' or 'rk4', got {substep!r}")
    if apply is None:
        return x0 + h * source
    if substep == "rk4":
        x = x0 + 0j * rhs.factor if isinstance(rhs.factor, complex) else x0
        dt = h / rk4_steps

        def f(t: float, y: Array) -> Array:
            dy = rhs.factor * apply(y)
            return dy if source is None else dy + source

        for k in range(rk4_steps):
            x = rk4_step(f, k * dt, x, dt)
        return x
    if source is None:
        return expm_multiply(apply, x0, rhs.factor * h, tol=tol, hermitian=rhs.hermitian)
    xp = array_namespace(x0)
    shape = x0.shape
    size = math.prod(shape)
    s = xp.reshape(source, (-1,)) / rhs.factor  # the generator is factor * [[A, s/factor]]

    def augmented(v: Array) -> Array:
        ax = xp.reshape(apply(xp.reshape(v[:size], shape)), (-1,)) + v[size] * s
        return xp.concat([ax, xp.zeros(1, dtype=ax.dtype, device=device(ax))])

    one = xp.ones(1, dtype=x0.dtype, device=device(x0))
    v0 = xp.concat([xp.reshape(x0, (-1,)), one])
    v1 = expm_multiply(augmented, v0, rhs.factor * h, tol=tol)
    return xp.reshape(v1[:size], shape)


class LocalProblems:
    """The restricted sub-problems of one step from an orthonormal state ``Y0``.

    Computed from ``Y0`` only (the data every parallel task reads), a tree level at a time
    through ``executor`` (the nodes of a level are independent): down environments
    ``down[node]``, leaves to root; then, root to leaves, for every non-root node the
    gauge of its parent edge ``q[node]`` (the parent's tensor orthonormal in this node's
    mode) and ``r[node]``; the initial values ``x[node]`` of the local problems (``U R^T`` for a
    leaf, ``C ×_0 R^T`` for an inner node, ``C`` at the root); the up environments
    ``up[node]``; and, with a source ``G``, the mixed environments ``mdown``/``mup`` of
    ``Y0`` against ``G``.
    """

    def __init__(self, state: TTN, rhs: LinearTreeRHS, executor: Any = None) -> None:
        tree = state.tree
        self.state = state
        self.rhs = rhs
        op, src = rhs.op, rhs.source
        n = tree.n_nodes
        self.down: list[Array | None] = [None] * n
        self.mdown: list[Array | None] = [None] * n
        self.x: list[Array] = [None] * n  # type: ignore[list-item]
        self.up: list[Array | None] = [None] * n
        self.mup: list[Array | None] = [None] * n
        self.q: list[Array | None] = [None] * n
        self.r: list[Array | None] = [None] * n
        root = tree.root
        like = state.tensors[root]
        xp = array_namespace(like)
        self.x[root] = like
        if op is not None:
            self.up[root] = root_up_environment(op, like)
        if src is not None:
            self.mup[root] = xp.ones((1, 1), dtype=like.dtype, device=device(like))
        # down environments, leaves to root, a level at a time (independent within a level)
        for level in tree_levels(tree):
            results = _map(executor, self._down_task, level)
            for node, (down, mdown) in zip(level, results, strict=True):
                self.down[node], self.mdown[node] = down, mdown
        # gauges, initial values and up environments, root to leaves
        for level in reversed(tree_levels(tree)[1:]):
            results = _map(executor, self._up_task, level)
            for node, per_child in zip(level, results, strict=True):
                for c, (q, r, x, up, mup) in zip(tree.children[node], per_child, strict=True):
                    self.q[c], self.r[c], self.x[c], self.up[c], self.mup[c] = q, r, x, up, mup

    def _down_task(self, node: int) -> tuple[Array | None, Array | None]:
        tree = self.state.tree
        kids = tree.children[node]
        return basis_environments(
            self.rhs,
            tree,
            node,
            self.state.tensors[node],
            [self.down[c] for c in kids],
            [self.mdown[c] for c in kids],
        )

    def _up_task(self, node: int) -> list[tuple]:
        """Gauge, initial value and up environments of every child of ``node``."""
        tree = self.state.tree
        op, src = self.rhs.op, self.rhs.source
        kids = tree.children[node]
        out = []
        for i, c in enumerate(kids, start=1):
            q, r = edge_gauge(self.x[node], i)
            up = mup = None
            if op is not None:
                down = [self.down[k] for k in kids]
                up = up_environment(q, op.tensors[node], self.up[node], down, i)
            if src is not None:
                mdown = [self.mdown[k] for k in kids]
                mup = mixed_up_environment(q, self.mup[node], mdown, src.tensors[node], i)
            t = self.state.tensors[c]
            x = t @ r.mT if tree.is_leaf(c) else mode_dot(t, r, 0)
            out.append((q, r, x, up, mup))
        return out

    def apply(self, node: int, x: Array, child_envs: list[Array] | None = None) -> Array:
        """The operator restricted to ``node`` (old child environments by default)."""
        tree = self.state.tree
        w = self.rhs.op.tensors[node]
        if tree.is_leaf(node):
            return apply_leaf(x, w, self.up[node])
        if child_envs is None:
            child_envs = [self.down[c] for c in tree.children[node]]
        return apply_node(x, w, self.up[node], child_envs)

    def source(self, node: int, child_envs: list[Array] | None = None) -> Array | None:
        """The source projected on the problem of ``node`` (None without a source).

        ``child_envs``: mixed environments of the children's (new) bases against the
        source's; the old ones by default.
        """
        src = self.rhs.source
        if src is None:
            return None
        tree = self.state.tree
        if tree.is_leaf(node):
            return project_leaf(src.tensors[node], self.mup[node])
        if child_envs is None:
            child_envs = [self.mdown[c] for c in tree.children[node]]
        return project_node(src.tensors[node], self.mup[node], child_envs)

    def flow(
        self,
        node: int,
        x0: Array,
        h: float,
        substep: Substep,
        child_envs: list[Array] | None = None,
        child_mixed: list[Array] | None = None,
    ) -> Array:
        """The local flow of ``node`` from ``x0`` (operator and source restricted alike)."""
        apply = None
        if self.rhs.op is not None:

            def apply(x: Array) -> Array:
                return self.apply(node, x, child_envs)

        return local_flow(
            apply, x0, h, self.rhs, source=self.source(node, child_mixed), substep=substep
        )


def basis_environments(
    rhs: LinearTreeRHS,
    tree: Tree,
    node: int,
    tensor: Array,
    child_down: list[Array | None],
    child_mixed: list[Array | None],
    ket: Array | None = None,
) -> tuple[Array | None, Array | None]:
    """Operator and source environments of the subtree basis with top ``tensor`` at ``node``.

    ``child_down``/``child_mixed`` are those of the children's bases (empty for a leaf).
    Returns ``(down, mixed)``; an entry is None when ``rhs`` has no operator or no source.
    ``ket``: another top tensor at ``node`` for the right side of the operator environment
    (rectangular, ``(chi, r_tensor, r_ket)``; its children's ``child_down`` rectangular
    alike); ``tensor`` itself by default.
    """
    op, src = rhs.op, rhs.source
    ket = tensor if ket is None else ket
    down = mixed = None
    if tree.is_leaf(node):
        if op is not None:
            down = leaf_environment(tensor, op.tensors[node], ket)
        if src is not None:
            mixed = array_namespace(tensor).conj(tensor).mT @ src.tensors[node]
        return down, mixed
    if op is not None:
        down = node_environment(tensor, op.tensors[node], child_down, ket)
    if src is not None:
        mixed = mixed_node_environment(tensor, child_mixed, src.tensors[node])
    return down, mixed


def tree_levels(tree: Tree) -> list[list[int]]:
    """Nodes grouped by height: the leaves first, the root last.

    Nodes of one level never depend on each other in a leaves-to-root sweep (nor, taken in
    reverse order, in a root-to-leaves sweep over their children), so each level is one
    batch of independent tasks.
    """
    height = [0] * tree.n_nodes
    for node in tree.postorder:
        if not tree.is_leaf(node):
            height[node] = 1 + max(height[c] for c in tree.children[node])
    levels: list[list[int]] = [[] for _ in range(height[tree.root] + 1)]
    for node in tree.postorder:
        levels[height[node]].append(node)
    return levels


def subtree_split(tree: Tree, pieces: int) -> tuple[list[int], list[list[int]]]:
    """Cut ``tree`` into at least ``pieces`` whole subtrees (where it has that many nodes).

    The subtree with the most nodes is split at its root (the root moves to the top part)
    until there are ``pieces`` subtrees or every subtree is a leaf.

    Returns
    -------
    (roots, top)
        The roots of the subtrees, in postorder; the nodes above them grouped by height as
        :func:`tree_levels` does (empty when the whole tree is one piece).
    """
    size = [1] * tree.n_nodes
    for node in tree.postorder:
        size[node] += sum(size[c] for c in tree.children[node])
    roots, above = {tree.root}, set()
    while len(roots) < pieces:
        node = max((n for n in roots if not tree.is_leaf(n)), key=size.__getitem__, default=None)
        if node is None:
            break
        roots.remove(node)
        above.add(node)
        roots.update(tree.children[node])
    order = {node: k for k, node in enumerate(tree.postorder)}
    top = [[n for n in level if n in above] for level in tree_levels(tree)]
    return sorted(roots, key=order.__getitem__), [level for level in top if level]


def reduce_up(
    executor: Any,
    tree: Tree,
    func: Callable[[int, list[Any]], Any],
    pieces: int = 16,
) -> Any:
    """``func(node, [results of its children])`` leaves to root; the root's result.

    The tree is cut into whole subtrees (:func:`subtree_split`); each is one task of
    ``executor`` (its nodes in postorder on one rank, only its root's result exchanged),
    then the nodes above them go a level at a time. Results are the same for any number of
    ranks.
    """
    roots, top = subtree_split(tree, pieces)
    results: dict[int, Any] = {}

    def subtree(root: int) -> Any:
        local: dict[int, Any] = {}
        for node in tree.subtree_postorder(root):
            local[node] = func(node, [local[c] for c in tree.children[node]])
        return local[root]

    def above(node: int) -> Any:
        return func(node, [results[c] for c in tree.children[node]])

    results.update(zip(roots, _map(executor, subtree, roots), strict=True))
    for level in top:
        results.update(zip(level, _map(executor, above, level), strict=True))
    return results[tree.root]


def _map(executor: Any, func: Callable[[int], Any], nodes: list[int]) -> list[Any]:
    if executor is None or len(nodes) == 1:
        return [func(n) for n in nodes]
    return executor.map(func, nodes)


def timer() -> Callable[[], float]:
    """Return a function giving the seconds since this call."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start
