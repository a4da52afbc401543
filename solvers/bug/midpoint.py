"""The second-order midpoint BUG integrator on trees.

One step from ``Y0``, after Ceruti, Einkemmer, Kusch & Lubich (arXiv 2402.08607), who
define it for matrices: a half step with a first-order BUG integrator gives ``Y_half``;
then a Galerkin step over the full step ``h`` from ``Y0``, in bases that span ``Y0``,
``Y_half`` and ``F(Y_half)``, followed by truncation.

On a tree "bases" means every edge's subtree basis, and the Galerkin space is every network
with those bases and any root tensor; the Galerkin step is then one exponential of the
operator projected on the root tensor. Why this is second order: the Galerkin solution
leaves the exact one by ``int_0^h (I - P) F(Y(s)) ds``, which the midpoint rule gives as
``h (I - P) F(Y(h/2)) + O(h^3)``; with ``F(Y_half)`` in the space and ``Y_half`` first-order
accurate this is ``O(h^3)`` per step. The bases are those of ``Y0``
(old columns first, so ``Y0`` is represented exactly), augmented by ``Y_half``'s
(:func:`solvers.bug.enrichment.augment_bases`) and by the tree analogue of the matrix
method's ``F(Y_half) V_half``: at every node the operator restricted by ``Y_half``'s
environments applied to ``Y_half``'s local value, at inner nodes in the children's augmented
bases. The step reports ``normal = h ||(I - P) F(Y_half)||``, exactly the term the midpoint
rule needs to vanish; if it exceeds ``normal_rtol`` times ``h |factor| ||(H - e) Y_half||``,
up to ``max_rank`` directions of ``H Y_half`` itself (complement-weighted) are added per
edge (counted in ``rejected``).

Ranks before truncation reach about ``3 r`` (``4 r`` in the matrix paper, whose second
side gets its own directions).
"""

from __future__ import annotations

import logging

from solvers.bug.common import (
    LinearTreeRHS,
    LocalProblems,
    StepInfo,
    Substep,
    local_flow,
    register_integrator,
    timer,
)
from solvers.bug.enrichment import augment_bases, normal_component, padded_in_new_bases
from solvers.bug.integrators import (
    _check_normal_rtol,
    _check_step,
    _finish,
    augmented_bug_step,
)
from tensorsim._array_api import Array, array_namespace
from tensorsim.linalg import Truncation, augment_basis
from tensorsim.parallel import Executor
from tensorsim.ttn.environment import (
    apply_node,
    down_environments,
    leaf_environment,
    node_environment,
    root_up_environment,
)
from tensorsim.ttn.network import TTN

__all__ = ["midpoint_bug_step"]

logger = logging.getLogger(__name__)


@register_integrator("midpoint_bug")
def midpoint_bug_step(
    state: TTN,
    t: float,
    h: float,
    *,
    rhs: LinearTreeRHS,
    trunc: Truncation,
    executor: Executor | None = None,
    substep: Substep = "krylov",
    enrich: int = 8,
    normal_rtol: float | None = 1e-2,
) -> tuple[TTN, StepInfo]:
    """One step of the midpoint BUG integrator (second order) on a tree.

    Parameters
    ----------
    state
        Orthonormal TTN at time ``t``.
    t, h
        Time and step size.
    rhs
        The linear right-hand side; an operator is needed, a source term is not supported.
    trunc
        Truncation of the half step and of the result.
    executor
        Spreads the half step's independent local problems over MPI ranks.
    substep
        Local problems by Krylov exponentials (``"krylov"``) or one RK4 step (``"rk4"``).
    enrich
        The enrichment of the half step (:func:`solvers.bug.augmented_bug_step`).
    normal_rtol
        Control of the half step, as in the augmented BUG, and of the Galerkin space (see
        the module docstring); ``None``: never widen.

    Returns
    -------
    (TTN, StepInfo)
        ``info.normal = h ||(I - P) F(Y_half)||`` and ``info.increment`` its scale;
        ``rejected`` counts the half step's redos and a rebuilt space.

    References
    ----------
    arXiv 2402.08607 (matrices); the half step is the rank-adaptive tree BUG of
    arXiv 2201.10291 with the enrichment of :mod:`solvers.bug.enrichment`.
    """
    _check_step(state, h)
    _check_normal_rtol(normal_rtol)
    if rhs.op is None or rhs.source is not None:
        raise ValueError("rhs: midpoint_bug needs an operator and no source term")
    half, half_info = augmented_bug_step(
        state,
        t,
        h / 2,
        rhs=rhs,
        trunc=trunc,
        executor=executor,
        substep=substep,
        enrich=enrich,
        normal_rtol=normal_rtol,
    )
    clock = timer()
    info = StepInfo(
        rejected=half_info.rejected,
        wall_parallel=half_info.wall_parallel,
        wall_serial=half_info.wall_serial,
        enrich=enrich,
    )
    both = augment_bases(state, half)  # Y0's bases, then Y_half's
    space = _with_midpoint_directions(both, LocalProblems(half, rhs))
    info.normal, info.increment = _midpoint_defect(space, half, rhs, h)
    wider = trunc.max_rank if trunc.max_rank is not None else 8 * max(enrich, 1)
    if normal_rtol is not None and info.normal > normal_rtol * info.increment:
        # what the restricted directions miss: H Y_half's own, weighted by the complement
        space = augment_bases(space, half, op=rhs.op, rank=wider, weighted=True)
        info.normal, info.increment = _midpoint_defect(space, half, rhs, h)
        info.rejected += 1
        info.enrich = wider
    root = state.tree.root
    envs = down_environments(space, rhs.op)
    children = [envs[c] for c in state.tree.children[root]]
    w, up = rhs.op.tensors[root], root_up_environment(rhs.op, space.tensors[root])

    def apply(x: Array) -> Array:
        return apply_node(x, w, up, children)

    c1 = local_flow(apply, space.tensors[root], h, rhs, substep=substep)
    y = TTN(state.tree, tuple(c1 if n == root else x for n, x in enumerate(space.tensors)))
    info.wall_serial += clock()
    return _finish(y, trunc, info)


def _with_midpoint_directions(both: TTN, lp: LocalProblems) -> TTN:
    """``both`` in bases augmented by the restricted directions of ``F`` at ``Y_half``.

    Per edge these are the tree analogue of the matrix method's ``F(Y_half) V_half``: the
    operator restricted to the node by ``Y_half``'s environments (``lp``), applied to
    ``Y_half``'s local initial value; at an inner node in the children's augmented bases
    (rectangular environments, new bases against ``Y_half``'s). Old columns first; ``both``
    is the same vector afterwards.
    """
    tree = both.tree
    half = lp.state
    op = lp.rhs.op
    xp = array_namespace(*both.tensors)
    new: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    rect: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    for node in tree.postorder:
        t = both.tensors[node]
        if tree.is_leaf(node):
            direction = lp.apply(node, lp.x[node])
            new[node] = augment_basis(t, direction)
            rect[node] = leaf_environment(new[node], op.tensors[node], half.tensors[node])
            continue
        kids = tree.children[node]
        padded, sizes = padded_in_new_bases(tree, node, t, new)
        if node == tree.root:
            new[node] = padded
            continue
        direction = lp.apply(node, lp.x[node], [rect[c] for c in kids])
        old = t.shape[0]
        columns = xp.reshape(direction, (direction.shape[0], -1)).mT
        basis = augment_basis(xp.reshape(padded, (old, -1)).mT, columns)
        new[node] = xp.reshape(basis.mT, (basis.shape[1], *sizes))
        rect[node] = node_environment(
            new[node], op.tensors[node], [rect[c] for c in kids], half.tensors[node]
        )
    return TTN(tree, tuple(new))


def _midpoint_defect(space: TTN, half: TTN, rhs: LinearTreeRHS, h: float) -> tuple[float, float]:
    """``h ||(I - P) F(Y_half)||`` and its scale ``h |factor| ||(H - e) Y_half||``.

    ``P`` projects on the Galerkin space of ``space``'s bases: rectangular environments of
    those bases (bra) against ``Y_half``'s (ket) give ``P H Y_half`` at the root.
    """
    tree = space.tree
    op = rhs.op
    rect: list[Array] = [None] * tree.n_nodes  # type: ignore[list-item]
    for node in tree.postorder[:-1]:
        bra, ket = space.tensors[node], half.tensors[node]
        if tree.is_leaf(node):
            rect[node] = leaf_environment(bra, op.tensors[node], ket)
        else:
            kids = [rect[c] for c in tree.children[node]]
            rect[node] = node_environment(bra, op.tensors[node], kids, ket)
    root = tree.root
    x = half.tensors[root]
    up = root_up_environment(op, x)
    projected = rhs.factor * apply_node(
        x, op.tensors[root], up, [rect[c] for c in tree.children[root]]
    )
    return normal_component(half, rhs, projected, h)
