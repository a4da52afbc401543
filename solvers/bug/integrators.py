"""The BUG integrators on tree tensor networks: fixed-rank, augmented (rank-adaptive), parallel.

One recursive tree code serves matrices (two leaves), Tucker tensors (a star) and general
trees. Every step starts from an orthonormal state and ends with an orthonormal state
truncated by :func:`tensorsim.ttn.truncate`.

References
----------
G. Ceruti, Ch. Lubich, BIT 62 (2022) 23, arXiv 2010.02022 (fixed rank);
G. Ceruti, J. Kusch, Ch. Lubich, BIT 62 (2022) 1149, arXiv 2104.05247 (rank-adaptive);
G. Ceruti, Ch. Lubich, D. Sulz, SIAM J. Numer. Anal. 61 (2023) 194, arXiv 2201.10291 (trees);
G. Ceruti, J. Kusch, Ch. Lubich, arXiv 2304.05660 and G. Ceruti, J. Kusch, Ch. Lubich,
D. Sulz, arXiv 2412.00858 (parallel BUG for matrices and trees).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from solvers.bug.common import (
    LinearTreeRHS,
    LocalProblems,
    StepInfo,
    Substep,
    basis_environments,
    register_integrator,
    timer,
    tree_levels,
)
from solvers.bug.enrichment import enrich_bases, normal_component
from tensorsim._array_api import Array, array_namespace, device, to_float, to_numpy
from tensorsim.linalg import Truncation, augment_basis
from tensorsim.parallel import Executor, SerialComm
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn.conservation import functional_network, restore_functional
from tensorsim.ttn.network import TTN, inner, orthonormalize, truncate

__all__ = ["augmented_bug_step", "bug_step", "parallel_bug_step"]

logger = logging.getLogger(__name__)

OffDiagonal = Literal["krylov", "euler"]


def _serial_executor() -> Executor:
    return Executor(SerialComm())


def _pad(x: Array, shape: tuple[int, ...]) -> Array:
    """Zero-pad ``x`` into ``shape`` (``x`` in the leading corner)."""
    xp = array_namespace(x)
    if tuple(x.shape) == tuple(shape):
        return x
    out = xp.zeros(shape, dtype=x.dtype, device=device(x))
    out[tuple(slice(0, s) for s in x.shape)] = x
    return out


def _mat0(x: Array) -> Array:
    """``Mat_0(C)^T``: the columns are indexed by mode 0."""
    xp = array_namespace(x)
    return xp.reshape(x, (x.shape[0], -1)).mT


def _ten0(m: Array, shape_rest: tuple[int, ...]) -> Array:
    xp = array_namespace(m)
    return xp.reshape(m.mT, (m.shape[1], *shape_rest))


def _cost(x: Array) -> float:
    return float(math.prod(x.shape)) * float(sum(x.shape))


@dataclass
class _Basis:
    """A new (or augmented) orthonormal basis of one subtree and what the parent needs.

    ``tensor`` is the leaf basis or the subtree's top tensor; ``down``/``mixed`` are its
    operator and source environments; ``block`` is the new directions' share of the local
    update (K-based off-diagonal block of the parallel BUG); ``overlap`` is ``new^H old``
    (fixed-rank BUG).
    """

    tensor: Array
    down: Array | None = None
    mixed: Array | None = None
    block: Array | None = None
    overlap: Array | None = None


class _Bases:
    """The new bases of all subtrees, filled leaves to root (replicated on every rank)."""

    def __init__(self, lp: LocalProblems) -> None:
        self.lp = lp
        self.items: list[_Basis | None] = [None] * lp.state.tree.n_nodes

    def sizes(self, node: int) -> tuple[int, ...]:
        tree = self.lp.state.tree
        return tuple(_parent_size(tree, c, self.items[c].tensor) for c in tree.children[node])

    def child_envs(self, node: int) -> tuple[list[Array], list[Array]]:
        """Operator and source environments of the new children of ``node``."""
        kids = [self.items[c] for c in self.lp.state.tree.children[node]]
        return [b.down for b in kids], [b.mixed for b in kids]

    def network(self, root_tensor: Array) -> TTN:
        tree = self.lp.state.tree
        tensors = [
            root_tensor if n == tree.root else self.items[n].tensor for n in range(tree.n_nodes)
        ]
        return TTN(tree, tuple(tensors))


def _parent_size(tree: Any, node: int, tensor: Array) -> int:
    return tensor.shape[1] if tree.is_leaf(node) else tensor.shape[0]


def _basis(
    lp: LocalProblems,
    node: int,
    tensor: Array,
    bases: _Bases,
    ket: Array | None = None,
    **extra: Any,
) -> _Basis:
    """Environments of a new basis tensor at ``node`` (its children's are in ``bases``).

    ``ket``: the old tensor at ``node`` for rectangular operator environments (new bra, old
    ket; the children's in ``bases`` rectangular alike); square by default.
    """
    tree = lp.state.tree
    child_down, child_mixed = bases.child_envs(node) if not tree.is_leaf(node) else ([], [])
    down, mixed = basis_environments(lp.rhs, tree, node, tensor, child_down, child_mixed, ket)
    return _Basis(tensor, down, mixed, **extra)


def _augmented_leaf(
    lp: LocalProblems, node: int, k1: Array, bases: _Bases, rectangular: bool = False
) -> _Basis:
    """Augment a leaf basis with its K-step result (old columns first).

    ``rectangular``: operator environment between the augmented basis and the old one only
    (all the parallel BUG reads: ``F(Y0)`` projected; a quarter of the square one's cost).
    """
    old = lp.state.tensors[node]
    u_hat = augment_basis(old, k1)
    block = array_namespace(u_hat).conj(u_hat[:, old.shape[1] :]).mT @ k1
    return _basis(lp, node, u_hat, bases, old if rectangular else None, block=block)


def _augmented_subtree(
    lp: LocalProblems, node: int, c1: Array, bases: _Bases, rectangular: bool = False
) -> _Basis:
    """Augment the basis of the subtree at ``node`` with its updated top tensor ``c1``.

    ``rectangular``: as :func:`_augmented_leaf`.
    """
    start = lp.state.tensors[node]
    old = _pad(start, (start.shape[0], *bases.sizes(node)))
    w = augment_basis(_mat0(old), _mat0(c1))
    block = array_namespace(w).conj(w[:, old.shape[0] :]).mT @ _mat0(c1)
    ket = start if rectangular else None
    return _basis(lp, node, _ten0(w, tuple(c1.shape[1:])), bases, ket, block=block)


def _run_levels(
    executor: Executor,
    levels: list[list[int]],
    task: Callable[[int], Any],
    cost: Callable[[int], float],
    store: Callable[[int, Any], None],
) -> None:
    """Map ``task`` over each level in turn (nodes of a level are independent)."""
    for level in levels:
        results = executor.map(task, level, costs=[cost(n) for n in level])
        for node, result in zip(level, results, strict=True):
            store(node, result)


def _finish(
    y: TTN, trunc: Truncation | None, info: StepInfo, conserve: Sequence[Any] | None = None
) -> tuple[TTN, StepInfo]:
    clock = timer()
    if trunc is None:
        out, discarded = y, {}
    elif conserve is None:
        out, discarded = truncate(y, trunc)
    else:
        # one direction per edge is reserved for the functional's direction
        r_max = trunc.max_rank
        if r_max is not None and r_max > (trunc.min_rank or 1):
            trunc = dataclasses.replace(trunc, max_rank=r_max - 1)
        w = functional_network(y, conserve)
        out, discarded = truncate(y, trunc)
        out = restore_functional(out, w, inner(w, y))
    info.trunc_error = math.sqrt(sum(v * v for v in discarded.values()))
    info.ranks = out.ranks()
    info.wall_serial += clock()
    return out, info


class _Timed:
    """Wrap an executor so that the time inside ``map`` is counted as parallel time."""

    def __init__(self, executor: Executor, info: StepInfo) -> None:
        self.executor = executor
        self.info = info

    def map(self, func: Callable, tasks: list, *, costs: list | None = None) -> list:
        clock = timer()
        out = self.executor.map(func, tasks, costs=costs)
        self.info.wall_parallel += clock()
        return out


@register_integrator("augmented_bug")
def augmented_bug_step(
    state: TTN,
    t: float,
    h: float,
    *,
    rhs: LinearTreeRHS,
    trunc: Truncation,
    executor: Executor | None = None,
    substep: Substep = "krylov",
    conserve: Sequence[Any] | None = None,
    enrich: int = 8,
    normal_rtol: float | None = 1e-2,
) -> tuple[TTN, StepInfo]:
    """One step of the rank-adaptive (augmented) BUG integrator for trees.

    Leaves first: every child basis is updated (K-step for a leaf, the recursive step for a
    subtree) and augmented with the old basis first; then the connecting tensor takes a
    Galerkin step in the augmented bases from the zero-padded old tensor; finally the tree
    is truncated. Norm and energy are conserved up to the truncation for Hermitian ``H``
    and ``factor = -1j``. The leaf K-steps are independent and go through ``executor``.

    Parameters
    ----------
    state
        Orthonormal TTN at time ``t``.
    t, h
        Time and step size (autonomous problems: ``t`` is not used).
    rhs
        The linear right-hand side.
    trunc
        Truncation after the step (absolute ``atol`` per edge, ``max_rank``, ``min_rank``).
    executor
        Spreads the independent local problems over MPI ranks (serial by default).
    substep
        ``"krylov"`` (exact exponentials) or ``"rk4"``.
    conserve
        Weight vectors ``w_0, ..., w_{d-1}`` (one per site) of a product functional
        ``m(Y) = <w_0 (x) ... (x) w_{d-1}, Y>`` (e.g. the mass) that truncation must not
        change: the truncated network is corrected along ``W`` (rank + 1 per edge at
        most, within ``max_rank``; :mod:`tensorsim.ttn.conservation`). With the
        functional's directions in the bases, the Galerkin step conserves ``m`` whenever
        the operator does, so ``m`` is then kept to round-off.
    enrich
        Before the step, add up to this many directions of ``H Y0`` to every edge basis
        (:func:`solvers.bug.enrichment.enrich_bases`; ``Y0`` is unchanged); ``0``: none.
        Without it, dynamics whose first steps need two-site changes across an edge (the
        XXZ chain from a Néel state) depend on the zero-weight padding and can be lost.
    normal_rtol
        Enrichment control: if the step leaves more than this fraction of the first-order
        increment unrepresented (``info.normal > normal_rtol * info.increment``), it is
        redone once with the enrichment widened to ``trunc.max_rank`` (``8 * enrich``
        without a rank cap) and counted in ``info.rejected``; ``None``: never.

    Returns
    -------
    (TTN, StepInfo)
        ``info.normal`` is ``h ||(I - P) F(Y0)||`` for the augmented Galerkin space.

    References
    ----------
    arXiv 2104.05247 (matrices, Tucker), arXiv 2201.10291 (trees); enrichment after
    arXiv 2005.06104.
    """
    _check_step(state, h)
    _check_normal_rtol(normal_rtol)

    def attempt(rank: int) -> tuple[TTN, StepInfo]:
        return _augmented_attempt(state, h, rhs, trunc, executor, substep, conserve, rank)

    return _controlled(attempt, enrich, normal_rtol, trunc)


def _augmented_attempt(
    state: TTN,
    h: float,
    rhs: LinearTreeRHS,
    trunc: Truncation,
    executor: Executor | None,
    substep: Substep,
    conserve: Sequence[Any] | None,
    enrich: int,
) -> tuple[TTN, StepInfo]:
    """One augmented BUG step from ``state`` enriched by ``enrich`` directions per edge."""
    info = StepInfo()
    state = _enriched(state, rhs, enrich, trunc, info)
    clock = timer()
    ex = _Timed(executor or _serial_executor(), info)
    lp = LocalProblems(state, rhs, ex)
    tree = state.tree
    bases = _Bases(lp)
    levels = tree_levels(tree)
    root_tensor: list[Array] = []

    def leaf_task(node: int) -> _Basis:
        return _augmented_leaf(lp, node, lp.flow(node, lp.x[node], h, substep), bases)

    def inner_task(node: int) -> Any:
        x = lp.x[node]
        c0 = _pad(x, (x.shape[0], *bases.sizes(node)))
        c1 = lp.flow(node, c0, h, substep, *bases.child_envs(node))
        return c1 if node == tree.root else _augmented_subtree(lp, node, c1, bases)

    def store(node: int, result: Any) -> None:
        if node == tree.root:
            root_tensor.append(result)
        else:
            bases.items[node] = result

    _run_levels(ex, levels[:1], leaf_task, lambda n: _cost(lp.x[n]), store)
    _run_levels(ex, levels[1:], inner_task, lambda n: _cost(lp.x[n]) * 8, store)
    info.normal, info.increment = _normal(lp, bases, h, ex)
    info.wall_serial += clock() - info.wall_parallel
    return _finish(bases.network(root_tensor[0]), trunc, info, conserve)


@register_integrator("bug")
def bug_step(
    state: TTN,
    t: float,
    h: float,
    *,
    rhs: LinearTreeRHS,
    trunc: Truncation | None = None,
    executor: Executor | None = None,
    substep: Substep = "krylov",
) -> tuple[TTN, StepInfo]:
    """One step of the fixed-rank BUG ("unconventional") integrator for trees.

    As :func:`augmented_bug_step` but every updated basis keeps the old rank (an orthonormal
    basis of the K-step result alone) and the Galerkin step starts from the old tensor
    expressed in the new bases; ``trunc`` is ignored except for reporting (ranks are fixed).

    References
    ----------
    arXiv 2010.02022 (matrices, Tucker), applied recursively on trees (arXiv 2201.10291).
    """
    _check_step(state, h)
    xp = array_namespace(*state.tensors)
    info = StepInfo()
    clock = timer()
    ex = _Timed(executor or _serial_executor(), info)
    lp = LocalProblems(state, rhs, ex)
    tree = state.tree
    bases = _Bases(lp)
    root_tensor: list[Array] = []

    def leaf_task(node: int) -> _Basis:
        u1, _ = xp.linalg.qr(lp.flow(node, lp.x[node], h, substep))
        overlap = xp.conj(u1).mT @ state.tensors[node]
        return _basis(lp, node, u1, bases, overlap=overlap)

    def inner_task(node: int) -> Any:
        c0, old_in_new = lp.x[node], state.tensors[node]
        for i, c in enumerate(tree.children[node], start=1):
            c0 = mode_dot(c0, bases.items[c].overlap, i)
            old_in_new = mode_dot(old_in_new, bases.items[c].overlap, i)
        c1 = lp.flow(node, c0, h, substep, *bases.child_envs(node))
        if node == tree.root:
            return c1
        q, _ = xp.linalg.qr(_mat0(c1))
        overlap = xp.conj(q).mT @ _mat0(old_in_new)
        return _basis(lp, node, _ten0(q, tuple(c1.shape[1:])), bases, overlap=overlap)

    def store(node: int, result: Any) -> None:
        if node == tree.root:
            root_tensor.append(result)
        else:
            bases.items[node] = result

    levels = tree_levels(tree)
    _run_levels(ex, levels[:1], leaf_task, lambda n: _cost(lp.x[n]), store)
    _run_levels(ex, levels[1:], inner_task, lambda n: _cost(lp.x[n]), store)
    y = bases.network(root_tensor[0])
    info.ranks = y.ranks()
    info.wall_serial = clock() - info.wall_parallel
    return y, info


@register_integrator("parallel_bug")
def parallel_bug_step(
    state: TTN,
    t: float,
    h: float,
    *,
    rhs: LinearTreeRHS,
    trunc: Truncation,
    executor: Executor | None = None,
    substep: Substep = "krylov",
    offdiag: OffDiagonal = "krylov",
    rejection: Literal["none", "paper", "norm"] = "norm",
    c_eta: float = 10.0,
    c_norm: float = 10.0,
    max_rejections: int = 1,
    max_halvings: int = 3,
    conserve: Sequence[Any] | None = None,
    enrich: int = 8,
    normal_rtol: float | None = 1e-2,
) -> tuple[TTN, StepInfo]:
    """One step of the parallel BUG integrator for trees (arXiv 2412.00858).

    Every leaf K-step and every Galerkin step of a connecting tensor in the *old* bases
    reads only ``Y0``: they are independent and go through ``executor`` at once (MPI ranks).
    The serial glue then augments the bases leaves to root and assembles each augmented
    connecting tensor block by block: the old block from the Galerkin step, the blocks with
    one new child direction from that child's update, zero for blocks with two or more new
    directions. The tree is then truncated.

    Parameters
    ----------
    state, t, h, rhs, trunc, executor, substep, conserve
        As :func:`augmented_bug_step` (the old-basis Galerkin step conserves ``m`` too: the
        blocks with new directions are orthogonal to ``W``).
    offdiag
        Blocks with one new direction: ``"krylov"`` projects the child's exact local update
        (``Ũ^H K(t1)``, as the authors' Tucker code does); ``"euler"`` uses
        ``h F(Y0)`` projected (the authors' tree codes). Both are first order; the first is
        far more accurate from rank-deficient (zero-padded) states.
    rejection
        ``"paper"``: the rules of arXiv 2412.00858 (their code): reject when an edge rank
        after truncation is twice the old one (and below ``max_rank``), or when
        ``h * eta > c_eta * tol`` with ``tol = trunc.tolerance(||Y0||)`` (the absolute
        tolerance, or ``rtol * ||Y0||``); the step is then redone from ``Y0`` embedded in the
        augmented bases. ``"norm"`` (default): the paper's eta test, and instead of the
        rank-doubling rule (whose redos at doubled ranks are costly on large trees) a
        norm-defect test for norm-conserving problems (Hermitian ``H``, imaginary
        ``factor``): reject when ``| ||Y1|| - ||Y0|| | > c_norm * tol``, with ``Y1``
        the augmented result before truncation. The exact flow conserves the norm, so the
        defect is a computable local error estimate; it catches the large first-step errors
        from zero-padded states, where the paper's rules cannot fire (the dropped blocks are
        exactly zero and ranks grow by less than a factor two). A redo starts from ``Y0``
        embedded in the augmented bases, capped at ``trunc.max_rank``. If the last redo
        still fails (typically because ``max_rank`` binds and leaves no room for new
        directions) the step is done as two half steps under the same control, at most
        ``max_halvings`` times nested. ``"none"``: never reject.
    c_eta
        Constant of the eta test.
    c_norm
        Constant of the norm-defect test.
    max_rejections
        At most this many redos per step.
    max_halvings
        ``"norm"`` control only: how many times a step may be split into two half steps
        when its redos fail (0: never).
    enrich, normal_rtol
        As :func:`augmented_bug_step`: directions of ``H Y0`` added to every edge basis
        before the step (``0``: none), and the control that widens them. The enrichment
        makes the step second order: pre-augmenting the bases by ``F(Y0)`` before the
        parallel step is Kusch's second-order parallel integrator (arXiv 2403.02834,
        "Variant 2"; measured slope 2.09 on the matrix test and 1.96-2.95 on the 12-site
        XXZ quench with ``rejection="none"``); ``enrich=0`` is first order.

    Returns
    -------
    (TTN, StepInfo)
        ``info.eta`` is ``max over nodes of h * ||F(Y0) on blocks with >= 2 new directions||``;
        ``info.normal`` is ``h ||(I - P) F(Y0)||`` for the augmented Galerkin space.
    """
    _check_step(state, h)
    if offdiag not in ("krylov", "euler"):
        raise ValueError(f"offdiag: expected 'krylov' or 'euler', got {offdiag!r}")
    if rejection not in ("none", "paper", "norm"):
        raise ValueError(f"rejection: expected 'none', 'paper' or 'norm', got {rejection!r}")
    if not (isinstance(max_halvings, int) and max_halvings >= 0):
        raise ValueError(f"max_halvings: expected an integer >= 0, got {max_halvings!r}")
    _check_normal_rtol(normal_rtol)
    options = dict(
        rhs=rhs,
        trunc=trunc,
        executor=executor or _serial_executor(),
        substep=substep,
        offdiag=offdiag,
        rejection=rejection,
        c_eta=c_eta,
        c_norm=c_norm,
        max_rejections=max_rejections,
        max_halvings=max_halvings,
        conserve=conserve,
        normal_rtol=normal_rtol,
    )

    def attempt(rank: int) -> tuple[TTN, StepInfo]:
        return _parallel_step(state, t, h, enrich=rank, **options)

    return _controlled(attempt, enrich, normal_rtol, trunc)


def _parallel_step(
    state: TTN,
    t: float,
    h: float,
    *,
    rhs: LinearTreeRHS,
    trunc: Truncation,
    executor: Executor,
    substep: Substep,
    offdiag: OffDiagonal,
    rejection: str,
    c_eta: float,
    c_norm: float,
    max_rejections: int,
    max_halvings: int,
    conserve: Sequence[Any] | None,
    enrich: int,
    normal_rtol: float | None,
) -> tuple[TTN, StepInfo]:
    """The parallel BUG step with its rejections and halvings, enriched by ``enrich``."""
    conserving = rhs.hermitian and complex(rhs.factor).real == 0.0 and rhs.source is None
    info = StepInfo()
    current = _enriched(state, rhs, enrich, trunc, info)
    for attempt in range(max_rejections + 1):
        y, embedded, eta, normal = _parallel_attempt(
            current, h, rhs, executor, substep, offdiag, info
        )
        out, info = _finish(y, trunc, info, conserve)
        info.eta, (info.normal, info.increment) = eta, normal
        if rejection == "none":
            return out, info
        old_ranks = current.ranks()
        r_max = trunc.max_rank if trunc.max_rank is not None else math.inf
        doubled = rejection == "paper" and any(
            info.ranks[e] == 2 * old_ranks[e] and 2 * old_ranks[e] < r_max for e in old_ranks
        )
        tol = trunc.tolerance(_root_norm(current))
        too_big = tol > 0 and eta > c_eta * tol
        # the exact flow conserves the norm: the defect of the untruncated result is a local
        # error estimate (truncation is judged separately, by trunc_error)
        defect = (
            rejection == "norm"
            and conserving
            and tol > 0
            and abs(_root_norm(y) - _root_norm(current)) > c_norm * tol
        )
        if not (doubled or too_big or defect):
            return out, info
        if attempt < max_rejections:
            info.rejected += 1
            current = _cap_ranks(embedded, trunc.max_rank)
    if rejection != "norm" or max_halvings == 0:
        return out, info
    # the redo did not help (typically a binding max_rank leaves no room to augment):
    # two half steps, as MPSKit's experimental parallel BUG does on rejection
    options = dict(
        rhs=rhs,
        trunc=trunc,
        executor=executor,
        substep=substep,
        offdiag=offdiag,
        rejection=rejection,
        c_eta=c_eta,
        c_norm=c_norm,
        max_rejections=max_rejections,
        max_halvings=max_halvings - 1,
        conserve=conserve,
        enrich=enrich,
        normal_rtol=normal_rtol,
    )
    mid, first = parallel_bug_step(state, t, h / 2, **options)
    out, second = parallel_bug_step(mid, t + h / 2, h / 2, **options)
    return out, _merge(info, first, second)


def _merge(wasted: StepInfo, first: StepInfo, second: StepInfo) -> StepInfo:
    """Info of a step done as two half steps after the attempts in ``wasted`` failed."""
    return StepInfo(
        ranks=second.ranks,
        trunc_error=math.hypot(first.trunc_error, second.trunc_error),
        eta=max(first.eta, second.eta),
        normal=max(first.normal, second.normal),
        increment=max(first.increment, second.increment),
        enrich=max(first.enrich, second.enrich),
        rejected=wasted.rejected + 1 + first.rejected + second.rejected,
        wall_parallel=wasted.wall_parallel + first.wall_parallel + second.wall_parallel,
        wall_serial=wasted.wall_serial + first.wall_serial + second.wall_serial,
        substeps=first.substeps + second.substeps,
    )


def _parallel_attempt(
    state: TTN,
    h: float,
    rhs: LinearTreeRHS,
    executor: Executor,
    substep: Substep,
    offdiag: OffDiagonal,
    info: StepInfo,
) -> tuple[TTN, TTN, float, tuple[float, float]]:
    """One try: (augmented result, Y0 embedded in its bases, eta, (nu, increment))."""
    xp = array_namespace(*state.tensors)
    tree = state.tree
    clock = timer()
    before = info.wall_parallel
    ex = _Timed(executor, info)
    lp = LocalProblems(state, rhs, ex)
    bases = _Bases(lp)
    galerkin: dict[int, Array] = {}
    root: list[Array] = []
    root_rhs: list[Array] = []
    etas: list[float] = []

    # every leaf K-step (with its augmentation) and every old-basis Galerkin step at once
    def first_task(node: int) -> Any:
        flow = lp.flow(node, lp.x[node], h, substep)
        if tree.is_leaf(node):
            return _augmented_leaf(lp, node, flow, bases, rectangular=True)
        return flow

    def store_first(node: int, result: Any) -> None:
        if tree.is_leaf(node):
            bases.items[node] = result
        else:
            galerkin[node] = result

    _run_levels(ex, [list(tree.postorder)], first_task, lambda n: _cost(lp.x[n]), store_first)

    # assemble the augmented connecting tensors, leaves to root, one level at a time
    def assemble(node: int) -> tuple[Any, float]:
        kids = tree.children[node]
        x = lp.x[node]
        sizes = bases.sizes(node)
        old_sizes = tuple(x.shape[1:])
        c_hat = _pad(galerkin[node], (x.shape[0], *sizes))
        f0 = _projected_rhs(lp, bases, node, old_sizes)
        for i, c in enumerate(kids, start=1):
            index = [slice(None)] + [slice(0, s) for s in old_sizes]
            index[i] = slice(old_sizes[i - 1], sizes[i - 1])
            if offdiag == "krylov":
                c_hat[tuple(index)] = mode_dot(lp.q[c], bases.items[c].block, i)
            else:
                c_hat[tuple(index)] = h * f0[tuple(index)]
        eta = h * _norm_two_new(xp, f0, old_sizes)
        if node == tree.root:
            return c_hat, eta, f0
        return _augmented_subtree(lp, node, c_hat, bases, rectangular=True), eta

    def store(node: int, result: tuple) -> None:
        value, eta = result[:2]
        etas.append(eta)
        if node == tree.root:
            root.append(value)
            root_rhs.append(result[2])
        else:
            bases.items[node] = value

    _run_levels(ex, tree_levels(tree)[1:], assemble, lambda n: _cost(lp.x[n]) * 4, store)
    y = bases.network(root[0])
    embedded = bases.network(_pad(state.tensors[tree.root], (1, *bases.sizes(tree.root))))
    normal = _normal(lp, bases, h, ex, root_rhs[0])
    info.wall_serial += clock() - (info.wall_parallel - before)
    return y, embedded, max(etas), normal


def _enriched(state: TTN, rhs: LinearTreeRHS, rank: int, trunc: Truncation, info: StepInfo) -> TTN:
    """``state`` in bases enriched by ``rank`` directions of ``H Y0`` (none without H)."""
    if not (isinstance(rank, int) and not isinstance(rank, bool) and rank >= 0):
        raise ValueError(f"enrich: expected an integer >= 0, got {rank!r}")
    if rhs.op is None or rank == 0:
        return state
    clock = timer()
    out = enrich_bases(state, rhs.op, rank, trunc.max_rank)
    info.enrich = rank
    info.wall_serial += clock()
    return out


def _normal(
    lp: LocalProblems,
    bases: _Bases,
    h: float,
    executor: Executor,
    projected: Array | None = None,
) -> tuple[float, float]:
    """``(nu, increment)`` of a step; NaN with a source term or without an operator.

    :func:`solvers.bug.enrichment.normal_component` at ``Y0`` for the augmented bases of
    ``bases``, its environments on ``executor``. ``projected``: ``P F(Y0)`` at the root if
    already computed.
    """
    rhs = lp.rhs
    if rhs.op is None or rhs.source is not None:
        return math.nan, math.nan
    root = lp.state.tree.root
    if projected is None:
        projected = _projected_rhs(lp, bases, root, tuple(lp.x[root].shape[1:]))
    energy = complex(to_numpy(lp.down[root])[0, 0, 0])
    return normal_component(lp.state, rhs, projected, h, energy, executor)


def _check_normal_rtol(normal_rtol: float | None) -> None:
    if normal_rtol is not None and not (
        isinstance(normal_rtol, int | float) and normal_rtol > 0 and math.isfinite(normal_rtol)
    ):
        raise ValueError(f"normal_rtol: expected a positive number or None, got {normal_rtol!r}")


def _controlled(
    attempt: Callable[[int], tuple[TTN, StepInfo]],
    enrich: int,
    normal_rtol: float | None,
    trunc: Truncation,
) -> tuple[TTN, StepInfo]:
    """Run ``attempt(enrich)``; redo it once, widely enriched, if ``nu`` is too large."""
    out, info = attempt(enrich)
    if normal_rtol is None or enrich == 0 or not info.normal > normal_rtol * info.increment:
        return out, info
    wider = trunc.max_rank if trunc.max_rank is not None else 8 * enrich
    if wider <= enrich:
        return out, info
    out, second = attempt(wider)
    second.rejected += 1 + info.rejected
    second.wall_parallel += info.wall_parallel
    second.wall_serial += info.wall_serial
    return out, second


def _cap_ranks(y: TTN, max_rank: int | None) -> TTN:
    """Drop the zero-weight directions beyond ``max_rank`` of an embedded state.

    After a rejection ``Y0`` lives in the augmented bases, old directions first and the new
    ones (zero weight) after them in order of importance; keeping the first ``max_rank`` of
    each edge leaves ``Y0`` unchanged. The QR sweep restores orthonormality.
    """
    if max_rank is None:
        return y
    tree = y.tree
    tensors = list(y.tensors)
    for node in tree.edges:
        if tree.is_leaf(node):
            tensors[node] = tensors[node][:, :max_rank]
        else:
            tensors[node] = tensors[node][:max_rank, ...]
    for node in tree.inner_nodes:
        tensors[node] = tensors[node][
            (slice(None),) + (slice(0, max_rank),) * (tensors[node].ndim - 1)
        ]
    return orthonormalize(TTN(tree, tuple(tensors)))


def _projected_rhs(lp: LocalProblems, bases: _Bases, node: int, old_sizes: tuple) -> Array:
    """``F(Y0)`` at ``node`` projected on the augmented child bases (bra) from the old ones."""
    kids = lp.state.tree.children[node]
    x = lp.x[node]
    f0 = None
    if lp.rhs.op is not None:
        rect = [bases.items[c].down[:, :, :s] for c, s in zip(kids, old_sizes, strict=True)]
        f0 = lp.rhs.factor * lp.apply(node, x, rect)
    if lp.rhs.source is not None:
        s = lp.source(node, [bases.items[c].mixed for c in kids])
        f0 = s if f0 is None else f0 + s
    return f0


def _root_norm(y: TTN) -> float:
    """Norm of an orthonormal TTN (the norm of its root tensor)."""
    xp = array_namespace(y.tensors[-1])
    return to_float(xp.linalg.vector_norm(y.tensors[y.tree.root]))


def _norm_two_new(xp: Any, g: Array, old_sizes: tuple[int, ...]) -> float:
    """Norm of the blocks of ``g`` with two or more new (index >= old size) child modes."""
    m = len(old_sizes)
    total = to_float(xp.sum(xp.abs(g) ** 2))
    kept = to_float(xp.sum(xp.abs(g[(slice(None), *[slice(0, s) for s in old_sizes])]) ** 2))
    for i in range(m):
        index = [slice(None)] + [slice(0, s) for s in old_sizes]
        index[i + 1] = slice(old_sizes[i], None)
        kept += to_float(xp.sum(xp.abs(g[tuple(index)]) ** 2))
    return math.sqrt(max(total - kept, 0.0))


def _check_step(state: TTN, h: float) -> None:
    if not isinstance(state, TTN):
        raise TypeError(f"state: expected a TTN, got {type(state).__name__}")
    if not (isinstance(h, int | float) and h > 0 and math.isfinite(h)):
        raise ValueError(f"h: expected a positive step size, got {h!r}")
