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

import logging
import math
from typing import Any, Literal

from solvers.bug.common import (
    LinearTreeRHS,
    LocalProblems,
    StepInfo,
    Substep,
    register_integrator,
    timer,
)
from tensorsim._array_api import Array, array_namespace, device, to_float
from tensorsim.linalg import Truncation, augment_basis
from tensorsim.parallel import Executor, SerialComm
from tensorsim.tensor_ops import mode_dot
from tensorsim.ttn.environment import (
    leaf_environment,
    mixed_node_environment,
    node_environment,
)
from tensorsim.ttn.network import TTN, truncate

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


def _local_flows(
    lp: LocalProblems, nodes: list[int], h: float, executor: Executor, substep: Substep
) -> dict[int, Array]:
    """Run the independent local flows of ``nodes`` (old bases) through the executor."""

    def task(node: int) -> Array:
        return lp.flow(node, lp.x[node], h, substep)

    costs = [_cost(lp.x[n]) for n in nodes]
    return dict(zip(nodes, executor.map(task, nodes, costs=costs), strict=True))


class _Augmented:
    """Augmented bases of the subtrees, built leaves to root (old columns first)."""

    def __init__(self, lp: LocalProblems) -> None:
        self.lp = lp
        n = lp.state.tree.n_nodes
        self.tensor: list[Array] = [None] * n  # type: ignore[list-item]
        self.down: list[Array | None] = [None] * n
        self.mixed: list[Array | None] = [None] * n
        self.block: list[Array] = [None] * n  # type: ignore[list-item]

    def sizes(self, node: int) -> tuple[int, ...]:
        tree = self.lp.state.tree
        return tuple(_parent_size(tree, c, self.tensor[c]) for c in tree.children[node])

    def leaf(self, node: int, k1: Array) -> None:
        """Augment a leaf basis with the K-step result ``k1``."""
        old = self.lp.state.tensors[node]
        u_hat = augment_basis(old, k1)
        self._store(node, u_hat, k1, old.shape[1])

    def subtree(self, node: int, c1: Array) -> None:
        """Augment the basis of the subtree at ``node`` with its updated tensor ``c1``."""
        start = self.lp.state.tensors[node]
        old = _pad(start, (start.shape[0], *self.sizes(node)))
        w = augment_basis(_mat0(old), _mat0(c1))
        self._store(node, _ten0(w, tuple(c1.shape[1:])), _mat0(c1), old.shape[0], matrix=w)

    def _store(
        self, node: int, tensor: Array, new: Array, r_old: int, matrix: Array | None = None
    ) -> None:
        xp = array_namespace(tensor)
        self.tensor[node] = tensor
        self.down[node], self.mixed[node] = _environments(self.lp, node, tensor, self)
        basis = tensor if self.lp.state.tree.is_leaf(node) else matrix
        # the new directions' share of the updated value (the K-based off-diagonal block)
        self.block[node] = xp.conj(basis[:, r_old:]).mT @ new

    def child_envs(self, node: int) -> tuple[list[Array], list[Array]]:
        """Operator and source environments of the augmented children of ``node``."""
        kids = self.lp.state.tree.children[node]
        return [self.down[c] for c in kids], [self.mixed[c] for c in kids]


def _environments(lp: LocalProblems, node: int, tensor: Array, below: Any) -> tuple[Any, Any]:
    """Operator and source environments of a new basis tensor at ``node``.

    ``below`` holds the environments of the (new) children in ``down`` and ``mixed``.
    """
    tree = lp.state.tree
    op, src = lp.rhs.op, lp.rhs.source
    down = mixed = None
    if tree.is_leaf(node):
        if op is not None:
            down = leaf_environment(tensor, op.tensors[node], tensor)
        if src is not None:
            xp = array_namespace(tensor)
            mixed = xp.conj(tensor).mT @ src.tensors[node]
        return down, mixed
    kids = tree.children[node]
    if op is not None:
        down = node_environment(tensor, op.tensors[node], [below.down[c] for c in kids], tensor)
    if src is not None:
        mixed = mixed_node_environment(tensor, [below.mixed[c] for c in kids], src.tensors[node])
    return down, mixed


def _parent_size(tree: Any, node: int, tensor: Array) -> int:
    return tensor.shape[1] if tree.is_leaf(node) else tensor.shape[0]


def _network(lp: LocalProblems, aug: _Augmented, root_tensor: Array) -> TTN:
    tree = lp.state.tree
    tensors = [aug.tensor[n] if n != tree.root else root_tensor for n in range(tree.n_nodes)]
    return TTN(tree, tuple(tensors))


def _finish(
    y: TTN, trunc: Truncation, info: StepInfo, clock_serial: float
) -> tuple[TTN, StepInfo]:
    clock = timer()
    out, discarded = truncate(y, trunc)
    info.trunc_error = math.sqrt(sum(v * v for v in discarded.values()))
    info.ranks = out.ranks()
    info.wall_serial += clock_serial + clock()
    return out, info


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

    References
    ----------
    arXiv 2104.05247 (matrices, Tucker), arXiv 2201.10291 (trees).
    """
    _check_step(state, h)
    executor = executor or _serial_executor()
    info = StepInfo()
    clock = timer()
    lp = LocalProblems(state, rhs)
    tree = state.tree
    serial = clock()
    clock = timer()
    leaves = [n for n in tree.postorder if tree.is_leaf(n)]
    flows = _local_flows(lp, leaves, h, executor, substep)
    info.wall_parallel = clock()
    clock = timer()
    aug = _Augmented(lp)
    root_tensor = None
    for node in tree.postorder:
        if tree.is_leaf(node):
            aug.leaf(node, flows[node])
            continue
        x = lp.x[node]
        c0 = _pad(x, (x.shape[0], *aug.sizes(node)))
        envs, mixed = aug.child_envs(node)
        c1 = lp.flow(node, c0, h, substep, envs, mixed)
        if node == tree.root:
            root_tensor = c1
        else:
            aug.subtree(node, c1)
    return _finish(_network(lp, aug, root_tensor), trunc, info, serial + clock())


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
    executor = executor or _serial_executor()
    xp = array_namespace(*state.tensors)
    info = StepInfo()
    clock = timer()
    lp = LocalProblems(state, rhs)
    tree = state.tree
    serial = clock()
    clock = timer()
    leaves = [n for n in tree.postorder if tree.is_leaf(n)]
    flows = _local_flows(lp, leaves, h, executor, substep)
    info.wall_parallel = clock()
    clock = timer()
    new = _Augmented(lp)  # holds the new (not augmented) bases and their environments
    overlap: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]  # new^H old
    root_tensor = None
    for node in tree.postorder:
        old = state.tensors[node]
        if tree.is_leaf(node):
            u1, _ = xp.linalg.qr(flows[node])
            new.tensor[node] = u1
            new.down[node], new.mixed[node] = _environments(lp, node, u1, new)
            overlap[node] = xp.conj(u1).mT @ old
            continue
        kids = tree.children[node]
        c0 = lp.x[node]
        old_in_new = old
        for i, c in enumerate(kids, start=1):
            c0 = mode_dot(c0, overlap[c], i)
            old_in_new = mode_dot(old_in_new, overlap[c], i)
        envs, mixed = new.child_envs(node)
        c1 = lp.flow(node, c0, h, substep, envs, mixed)
        if node == tree.root:
            root_tensor = c1
            continue
        q, _ = xp.linalg.qr(_mat0(c1))
        tensor = _ten0(q, tuple(c1.shape[1:]))
        new.tensor[node] = tensor
        new.down[node], new.mixed[node] = _environments(lp, node, tensor, new)
        overlap[node] = xp.conj(q).mT @ _mat0(old_in_new)
    tensors = [new.tensor[n] if n != tree.root else root_tensor for n in range(tree.n_nodes)]
    y = TTN(tree, tuple(tensors))
    info.ranks = y.ranks()
    info.wall_serial = serial + clock()
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
    max_rejections: int = 3,
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
    state, t, h, rhs, trunc, executor, substep
        As :func:`augmented_bug_step`.
    offdiag
        Blocks with one new direction: ``"krylov"`` projects the child's exact local update
        (``Ũ^H K(t1)``, as the authors' Tucker code does); ``"euler"`` uses
        ``h F(Y0)`` projected (the authors' tree codes). Both are first order; the first is
        far more accurate from rank-deficient (zero-padded) states.
    rejection
        ``"paper"``: the rules of arXiv 2412.00858 (their code): reject when an edge rank
        after truncation is twice the old one (and below ``max_rank``), or when
        ``h * eta > c_eta * trunc.atol``; the step is then redone from ``Y0`` embedded in the
        augmented bases. ``"norm"`` (default): the paper's rules plus a norm-defect test
        for norm-conserving problems (Hermitian ``H``, imaginary ``factor``): reject when
        ``| ||Y1|| - ||Y0|| | > c_norm * trunc.atol``. The exact flow conserves the norm, so
        the defect is a computable local error estimate; it catches the large first-step
        errors from zero-padded states, where the paper's rules cannot fire (the dropped
        blocks are exactly zero and ranks grow by less than a factor two). ``"none"``: never
        reject.
    c_eta
        Constant of the eta test.
    c_norm
        Constant of the norm-defect test.
    max_rejections
        At most this many redos per step.

    Returns
    -------
    (TTN, StepInfo)
        ``info.eta`` is ``max over nodes of h * ||F(Y0) on blocks with >= 2 new directions||``.
    """
    _check_step(state, h)
    if offdiag not in ("krylov", "euler"):
        raise ValueError(f"offdiag: expected 'krylov' or 'euler', got {offdiag!r}")
    if rejection not in ("none", "paper", "norm"):
        raise ValueError(f"rejection: expected 'none', 'paper' or 'norm', got {rejection!r}")
    conserving = rhs.hermitian and complex(rhs.factor).real == 0.0 and rhs.source is None
    executor = executor or _serial_executor()
    info = StepInfo()
    current = state
    for attempt in range(max_rejections + 1):
        y, embedded, eta, old_ranks = _parallel_attempt(
            current, h, rhs, executor, substep, offdiag, info
        )
        out, info = _finish(y, trunc, info, 0.0)
        info.eta = eta
        if rejection == "none" or attempt == max_rejections:
            break
        r_max = trunc.max_rank if trunc.max_rank is not None else math.inf
        doubled = any(
            info.ranks[e] == 2 * old_ranks[e] and 2 * old_ranks[e] < r_max for e in old_ranks
        )
        too_big = trunc.atol is not None and eta > c_eta * trunc.atol
        defect = False
        if rejection == "norm" and conserving and trunc.atol is not None:
            defect = abs(_root_norm(out) - _root_norm(current)) > c_norm * trunc.atol
        if not (doubled or too_big or defect):
            break
        info.rejected += 1
        current = embedded
    return out, info


def _parallel_attempt(
    state: TTN,
    h: float,
    rhs: LinearTreeRHS,
    executor: Executor,
    substep: Substep,
    offdiag: OffDiagonal,
    info: StepInfo,
) -> tuple[TTN, TTN, float, dict[int, int]]:
    """One try of the parallel step: (augmented result, Y0 embedded, eta, old ranks)."""
    xp = array_namespace(*state.tensors)
    tree = state.tree
    clock = timer()
    lp = LocalProblems(state, rhs)
    serial = clock()
    clock = timer()
    flows = _local_flows(lp, list(tree.postorder), h, executor, substep)
    info.wall_parallel += clock()
    clock = timer()
    aug = _Augmented(lp)
    eta = 0.0
    root_tensor = None
    for node in tree.postorder:
        if tree.is_leaf(node):
            aug.leaf(node, flows[node])
            continue
        kids = tree.children[node]
        x = lp.x[node]
        sizes = aug.sizes(node)
        old_sizes = tuple(x.shape[1:])
        c_hat = _pad(flows[node], (x.shape[0], *sizes))
        f0 = _projected_rhs(lp, aug, node, old_sizes)
        for i, c in enumerate(kids, start=1):
            index = [slice(None)] + [slice(0, s) for s in old_sizes]
            index[i] = slice(old_sizes[i - 1], sizes[i - 1])
            if offdiag == "krylov":
                c_hat[tuple(index)] = mode_dot(lp.q[c], aug.block[c], i)
            else:
                c_hat[tuple(index)] = h * f0[tuple(index)]
        eta = max(eta, h * _norm_two_new(xp, f0, old_sizes))
        if node == tree.root:
            root_tensor = c_hat
        else:
            aug.subtree(node, c_hat)
    y = _network(lp, aug, root_tensor)
    root = state.tensors[tree.root]
    embedded = _network(lp, aug, _pad(root, (1, *aug.sizes(tree.root))))
    info.wall_serial += serial + clock()
    return y, embedded, eta, state.ranks()


def _projected_rhs(lp: LocalProblems, aug: _Augmented, node: int, old_sizes: tuple) -> Array:
    """``F(Y0)`` at ``node`` projected on the augmented child bases (bra) from the old ones."""
    kids = lp.state.tree.children[node]
    x = lp.x[node]
    f0 = None
    if lp.rhs.op is not None:
        rect = [aug.down[c][:, :, :s] for c, s in zip(kids, old_sizes, strict=True)]
        f0 = lp.rhs.factor * lp.apply(node, x, rect)
    if lp.rhs.source is not None:
        s = lp.source(node, [aug.mixed[c] for c in kids])
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
